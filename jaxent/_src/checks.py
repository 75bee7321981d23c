"""Static argument checks shared by every public function.

Everything here runs at trace time on shapes, dtypes and Python options, so it raises
eagerly and under ``jit`` alike. Values are never inspected here (see ``value_checks``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

Axis = int | Sequence[int]


def as_array(x: jax.typing.ArrayLike, name: str) -> jax.Array:
    """Converts ``x`` to a JAX array, naming the argument if that fails."""
    try:
        return jnp.asarray(x)
    except TypeError as err:
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__}.") from err


def compute_dtype(*arrays: jax.Array) -> jnp.dtype:
    """The dtype a computation runs in: the inputs' common float type, at least float32."""
    return jnp.result_type(*(a.dtype for a in arrays), jnp.float32)


def require_float(x: jax.Array, name: str) -> None:
    """Raises if ``x`` is not of a floating dtype (integer logits are a common slip)."""
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(
            f"`{name}` must have a floating dtype, got {x.dtype}; "
            f"cast it first, e.g. `{name}.astype(jnp.float32)`."
        )


def require_real(x: jax.Array, name: str) -> None:
    """Raises if ``x`` is neither boolean, integer nor floating (complex, say)."""
    if not (
        jnp.issubdtype(x.dtype, jnp.floating)
        or jnp.issubdtype(x.dtype, jnp.integer)
        or x.dtype == jnp.bool_
    ):
        raise TypeError(f"`{name}` must hold real numbers, got dtype {x.dtype}.")


def require_integer(x: jax.Array, name: str) -> None:
    """Raises if ``x`` is not of an integer dtype."""
    if not jnp.issubdtype(x.dtype, jnp.integer):
        raise TypeError(
            f"`{name}` must hold integer class indices, got dtype {x.dtype}; for "
            "probabilities or one-hot labels use `softmax_cross_entropy`."
        )


def require_same_shape(a: jax.Array, b: jax.Array, name_a: str, name_b: str) -> None:
    """Raises unless the two shapes are identical: no silent broadcasting."""
    if a.shape != b.shape:
        raise ValueError(
            f"`{name_b}` must have the same shape as `{name_a}`: got {name_b}.shape="
            f"{b.shape} and {name_a}.shape={a.shape}. Broadcasting is not applied; "
            "reshape one of them explicitly."
        )


def normalize_axes(axis: Axis, ndim: int, name: str = "axis") -> tuple[int, ...]:
    """Returns the sorted, non-negative axes named by ``axis`` (an int or a sequence)."""
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    if not axes:
        raise ValueError(f"`{name}` must name at least one axis, got {axis!r}.")
    out = []
    for a in axes:
        if not isinstance(a, int | np.integer):
            raise TypeError(f"`{name}` must be an int or a tuple of ints, got {axis!r}.")
        if not -ndim <= a < ndim:
            raise ValueError(
                f"`{name}`={axis!r} is out of range for an input with {ndim} dimensions; "
                f"use a value in [{-ndim}, {ndim})."
            )
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"`{name}`={axis!r} names the same axis twice.")
    return tuple(sorted(out))


def flatten_axes(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """Moves ``axes`` to the end of ``x`` and merges them into one trailing axis."""
    if len(axes) == 1 and axes[0] == x.ndim - 1:
        return x
    batch = tuple(i for i in range(x.ndim) if i not in axes)
    x = jnp.transpose(x, batch + axes)
    return x.reshape((*x.shape[: len(batch)], -1))


def normalize_where(
    where: jax.typing.ArrayLike | None, shape: tuple[int, ...], axes: tuple[int, ...]
) -> jax.Array | None:
    """Returns the mask broadcast to ``shape``, or None.

    A mask with as many dimensions as the input must broadcast to its shape. A mask with
    fewer dimensions is a per-example mask: its shape must equal the input's shape without
    the reduced ``axes`` (optax's convention).
    """
    if where is None:
        return None
    mask = as_array(where, "where")
    if mask.dtype != jnp.bool_:
        raise TypeError(f"`where` must be a boolean mask, got dtype {mask.dtype}.")
    if mask.ndim == len(shape):
        try:
            np.broadcast_shapes(mask.shape, shape)
        except ValueError:
            pass
        else:
            if np.broadcast_shapes(mask.shape, shape) == tuple(shape):
                return jnp.broadcast_to(mask, shape)
    else:
        batch_shape = tuple(s for i, s in enumerate(shape) if i not in axes)
        if mask.shape == batch_shape:
            mask = jnp.expand_dims(mask, axes)
            return jnp.broadcast_to(mask, shape)
    raise ValueError(
        f"`where` has shape {mask.shape}, which neither broadcasts to the input shape "
        f"{tuple(shape)} nor equals the per-example shape "
        f"{tuple(s for i, s in enumerate(shape) if i not in axes)}."
    )


def log_base(base: float | None) -> float | None:
    """Validates ``base`` and returns ln(base), or None for natural units."""
    if base is None:
        return None
    if isinstance(base, jax.core.Tracer):
        raise TypeError("`base` must be a Python number (it is static), not a traced array.")
    b = float(base)
    if not (math.isfinite(b) and b > 0 and b != 1):
        raise ValueError(
            f"`base` must be a positive number other than 1, got {base!r}; "
            "use 2 for bits, 10 for hartleys or None for nats."
        )
    if b == math.e:
        return None
    return math.log(b)


def static_float(value: float, name: str, low: float, high: float, *, high_open: bool) -> float:
    """Validates a static option lying in [low, high) or [low, high]."""
    if isinstance(value, jax.core.Tracer):
        raise TypeError(f"`{name}` must be a Python number (it is static), not a traced array.")
    v = float(value)
    ok = low <= v < high if high_open else low <= v <= high
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"`{name}` must lie in [{low}, {high}{bracket}, got {value!r}.")
    return v


def class_weight_array(
    class_weights: jax.typing.ArrayLike | None, class_shape: tuple[int, ...]
) -> jax.Array | None:
    """Validates per-class weights; returns them flattened to shape [K], or None."""
    if class_weights is None:
        return None
    w = as_array(class_weights, "class_weights")
    require_real(w, "class_weights")
    k = math.prod(class_shape)
    if w.shape not in ((k,), tuple(class_shape)):
        raise ValueError(
            f"`class_weights` must have shape ({k},), one weight per class, got {w.shape}."
        )
    return w.reshape(k)
