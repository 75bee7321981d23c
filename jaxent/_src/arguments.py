r"""Argument handling shared by every public function: static checks, class axes, label meaning.

Everything here but ``label_status`` runs at trace time on shapes, dtypes and Python
options, so it raises eagerly and under ``jit`` alike; values are never inspected (see
``value_checks``). What an integer label means, and what each softmax-loss option does, is
written once here and called by every loss that takes them: the dense losses, the streaming
large-vocabulary loss and anything built on its per-row statistics.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .numerics import negated

Axis = int | Sequence[int]


def is_traced(*xs: object) -> bool:
    """Whether any array in ``xs`` (pytrees included) is traced, its value unknown."""
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(xs))


def as_array(x: jax.typing.ArrayLike, name: str) -> jax.Array:
    """Converts ``x`` to a JAX array, naming the argument if that fails."""
    if isinstance(x, str | bytes):
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__} {x!r}.")
    try:
        return jnp.asarray(x)
    except TypeError as err:
        raise TypeError(f"`{name}` must be an array, got {type(x).__name__}.") from err


def compute_dtype(*arrays: jax.Array, weights: tuple[jax.Array, ...] = ()) -> jnp.dtype:
    """The dtype a computation runs in: the inputs' common float type, at least float32.

    ``weights`` take part too, but a weakly typed one (a Python scalar) does not widen it:
    a Python float weight beside float32 logits leaves float32, under ``jax_enable_x64``.
    """
    return jnp.result_type(*(a.dtype for a in arrays), *weights, jnp.float32)


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


def _as_index(value: object) -> int | None:
    """``value`` as a Python int if it is an integer (numpy's included, bool excluded)."""
    if isinstance(value, bool | np.bool_) or is_traced(value):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def normalize_axes(axis: Axis, ndim: int, name: str = "axis") -> tuple[int, ...]:
    """The non-negative axes named by ``axis`` (an int or a sequence), in the order given."""
    single = _as_index(axis)
    if single is not None:
        given: tuple[object, ...] = (single,)
    elif isinstance(axis, Sequence) and not isinstance(axis, str | bytes):
        given = tuple(axis)
    else:
        raise TypeError(
            f"`{name}` must be a Python int or a tuple of ints (it is static), got {axis!r}."
        )
    if not given:
        raise ValueError(f"`{name}` must name at least one axis, got {axis!r}.")
    out = []
    for a in given:
        i = _as_index(a)
        if i is None:
            raise TypeError(f"`{name}` must be a Python int or a tuple of ints, got {axis!r}.")
        if not -ndim <= i < ndim:
            raise ValueError(
                f"`{name}`={axis!r} is out of range for an input with {ndim} dimensions; "
                f"use a value in [{-ndim}, {ndim})."
            )
        out.append(i % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"`{name}`={axis!r} names the same axis twice.")
    return tuple(out)


def flatten_axes(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """Moves ``axes`` to the end of ``x`` in the order given and merges them into one axis."""
    if len(axes) == 1 and axes[0] == x.ndim - 1:
        return x
    batch = tuple(i for i in range(x.ndim) if i not in axes)
    x = jnp.transpose(x, batch + axes)
    return x.reshape((*x.shape[: len(batch)], math.prod(x.shape[len(batch) :])))


def batch_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without the reduced ``axes``: the shape of the per-example results."""
    return tuple(s for i, s in enumerate(shape) if i not in axes)


class Mask(NamedTuple):
    """A validated ``where``: ``full`` broadcast to the input; ``rows`` when per-example."""

    full: jax.Array
    rows: jax.Array | None


def _long_axes(shape: tuple[int, ...]) -> list[int]:
    return [i for i, n in enumerate(shape) if n > 1]


def normalize_where(
    where: jax.typing.ArrayLike | None, shape: tuple[int, ...], axes: tuple[int, ...]
) -> Mask | None:
    """The mask ``where``, validated, or None.

    A mask whose shape equals the per-example shape (the input's shape without ``axes``)
    masks whole examples (optax's convention); any other mask must broadcast to the
    input's shape by NumPy's rules (a ``(K,)`` mask on ``(N, K)`` logits masks classes).
    A mask that could be read either way, with different meanings (a ``(K,)`` mask on
    ``(K, K)`` logits), raises ValueError.
    """
    if where is None:
        return None
    mask = as_array(where, "where")
    if mask.dtype != jnp.bool_:
        raise TypeError(f"`where` must be a boolean mask, got dtype {mask.dtype}.")
    per_example = batch_shape(shape, axes)
    try:
        ok = np.broadcast_shapes(mask.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if mask.shape == per_example and len(per_example) < len(shape):
        # Both readings place the mask's axes of length > 1 on axes of the input: as
        # examples (``axes`` inserted) or by broadcasting (aligned on the right).
        as_rows = np.expand_dims(np.empty(mask.shape, bool), axes).shape
        explicit = (1,) * (len(shape) - mask.ndim) + mask.shape
        if ok and _long_axes(as_rows) != _long_axes(explicit):
            n = len(shape)
            trailing = sorted(a % n for a in axes) == list(range(n - len(axes), n))
            insert = (
                f"where[..., {', '.join(['None'] * len(axes))}]"
                if trailing
                else f"jnp.expand_dims(where, {tuple(axes)})"
            )
            raise ValueError(
                f"`where` of shape {mask.shape} is ambiguous for an input of shape "
                f"{tuple(shape)}: it is the per-example shape and also broadcasts over the "
                f"reduced axes {tuple(axes)}. Pass `{insert}` (shape {as_rows}, the reduced "
                f"axes inserted) to mask whole examples, or a mask with those axes explicit "
                f"(shape {explicit}) to mask entries."
            )
        return Mask(jnp.broadcast_to(jnp.expand_dims(mask, axes), shape), mask)
    if not ok:
        raise ValueError(
            f"`where` has shape {mask.shape}, which neither broadcasts to the input shape "
            f"{tuple(shape)} nor equals the per-example shape {per_example}."
        )
    return Mask(jnp.broadcast_to(mask, shape), None)


def log_base(base: float | None) -> float | None:
    """Validates ``base`` and returns ln(base), or None for natural units."""
    if base is None:
        return None
    b = static_number(base, "base")
    if not (math.isfinite(b) and b > 0 and b != 1):
        raise ValueError(
            f"`base` must be a positive number other than 1, got {base!r}; "
            "use 2 for bits, 10 for hartleys or None for nats."
        )
    if b == math.e:
        return None
    return math.log(b)


def static_number(value: object, name: str) -> float:
    """A static numeric option as a Python float; raises naming ``name`` otherwise."""
    if is_traced(value):
        raise TypeError(f"`{name}` must be a Python number (it is static), not a traced array.")
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a Python number, got {type(value).__name__} {value!r}.")
    return float(value)


def static_float(value: object, name: str, low: float, high: float, *, high_open: bool) -> float:
    """Validates a static option lying in [low, high) or [low, high]."""
    v = static_number(value, name)
    ok = low <= v < high if high_open else low <= v <= high
    if not ok:
        bracket = ")" if high_open else "]"
        raise ValueError(f"`{name}` must lie in [{low}, {high}{bracket}, got {value!r}.")
    return v


def static_index(value: object, name: str) -> int | None:
    """A static integer option (None allowed) as a Python int; numpy integers accepted."""
    if value is None:
        return None
    i = _as_index(value)
    if i is None:
        raise TypeError(f"`{name}` must be a Python int or None (it is static), got {value!r}.")
    return i


def static_flag(value: object, name: str) -> bool:
    """A static boolean option as a Python bool."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    raise TypeError(f"`{name}` must be a Python bool (it is static), got {value!r}.")


def probabilities(x: jax.typing.ArrayLike, name: str) -> jax.Array:
    """``x`` as an array of real numbers (probabilities, weights or labels)."""
    x = as_array(x, name)
    require_real(x, name)
    return x


def in_base(value: jax.Array, base: float | None) -> jax.Array:
    """``value`` in nats converted to the units of ``base`` (validated here)."""
    return in_units(value, log_base(base))


def in_units(value: jax.Array, ln_b: float | None) -> jax.Array:
    """``value`` in nats divided by ``ln_b`` (None: nats). An exact zero stays +0 for a base
    below 1, whose log is negative (``0 / ln_b`` would be -0)."""
    if ln_b is None:
        return value
    if ln_b > 0:
        return value / ln_b
    return negated(value / -ln_b)


def masked_sum(terms: jax.Array, axes: tuple[int, ...], mask: Mask | None) -> jax.Array:
    """The sum of ``terms`` over ``axes``, masked-out terms (even NaN) left out."""
    if mask is not None:
        terms = jnp.where(mask.full, terms, 0)
    return jnp.sum(terms, axis=axes)


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


def gather(table: jax.Array, index: jax.Array) -> jax.Array:
    """``table[index]`` for a 1-D table, sharded like ``index`` under Explicit mesh axes."""
    if jax.sharding.get_abstract_mesh().explicit_axes:
        return table.at[index].get(out_sharding=jax.typeof(index).sharding)
    return table[index]


class ClassAxis:
    """Logits laid out for a softmax over one class axis, with the mask and class count.

    A tuple ``axis`` is moved to the end and flattened in the order given (as optax does),
    so an integer label is a row-major index into those axes in that order. A softmax
    needs at least one class: zero classes raise, naming the argument.
    """

    def __init__(self, logits: jax.Array, axis: Axis, where, name: str = "logits"):
        require_float(logits, name)
        axes = normalize_axes(axis, logits.ndim)
        self.class_shape = tuple(logits.shape[a] for a in axes)
        self.num_classes = math.prod(self.class_shape)
        if self.num_classes == 0:
            raise ValueError(
                f"`{name}` has no classes along axis={axis!r} (shape {logits.shape}): a "
                "softmax needs at least one class."
            )
        mask = normalize_where(where, logits.shape, axes)
        self.axes = axes
        self.batch_shape = batch_shape(logits.shape, axes)
        self.flat = len(axes) > 1
        self.axis = logits.ndim - len(axes) if self.flat else axes[0]
        self.z = self.layout(logits)
        self.mask = None if mask is None else self.layout(mask.full)
        #: The per-example mask when ``where`` masks whole examples, else None.
        self.row_mask = None if mask is None else mask.rows

    def layout(self, x: jax.Array) -> jax.Array:
        return flatten_axes(x, self.axes) if self.flat else x

    def expand(self, x: jax.Array) -> jax.Array:
        """Inserts the class axis into a per-example array."""
        return jnp.expand_dims(x, self.axis)

    def along_classes(self, w: jax.Array) -> jax.Array:
        """Reshapes a [K] vector to broadcast along the class axis."""
        return w.reshape((self.num_classes,) + (1,) * (self.z.ndim - self.axis - 1))

    def clean(self, x: jax.Array, fill) -> jax.Array:
        return x if self.mask is None else jnp.where(self.mask, x, fill)

    def allowed_count(self) -> jax.Array | int:
        if self.mask is None:
            return self.num_classes
        return jnp.sum(self.mask, axis=self.axis, keepdims=True)


class SoftmaxOptions(NamedTuple):
    r"""The validated static options of the softmax cross-entropies, and what they mean.

    With :math:`\epsilon` = ``label_smoothing`` and K allowed classes, the targets are
    :math:`t = (1 - \epsilon)\,y + \epsilon / K`; ``z_loss`` :math:`\zeta` adds
    :math:`\zeta \operatorname{lse}(z)^2` (0 for a row with no allowed finite logit);
    ``ignore_index`` marks integer labels that give 0 with gradient 0.
    """

    label_smoothing: float = 0.0
    z_loss: float = 0.0
    ignore_index: int | None = None

    @classmethod
    def validate(cls, label_smoothing=0.0, z_loss=0.0, ignore_index=None) -> SoftmaxOptions:
        return cls(
            static_float(label_smoothing, "label_smoothing", 0.0, 1.0, high_open=True),
            static_float(z_loss, "z_loss", 0.0, math.inf, high_open=True),
            static_index(ignore_index, "ignore_index"),
        )

    @property
    def on_label(self) -> float:
        """The target mass :math:`1 - \\epsilon` a label keeps after smoothing."""
        return 1.0 - self.label_smoothing

    def per_class(self, num_allowed):
        """The smoothing mass :math:`\\epsilon / K` every allowed class receives."""
        return self.label_smoothing / jnp.maximum(num_allowed, 1)

    def add_z_loss(self, loss: jax.Array, lse: jax.Array) -> jax.Array:
        """``loss`` plus the z-loss of the per-row log-sum-exp ``lse``."""
        if self.z_loss == 0:
            return loss
        lse = jnp.where(lse == -jnp.inf, 0, lse)
        # (zeta lse) lse: its derivative 2 zeta lse stays finite where 2 lse would overflow.
        return loss + (self.z_loss * lse) * lse


class LabelStatus(NamedTuple):
    """What each integer label means, per example.

    Attributes:
      target: the label as an int32 class index clipped into ``[0, K)`` (safe to gather with).
      counted: the example takes part: a label in range, not ignored, not masked.
      invalid: NaN is due: a label outside ``[0, K)`` that is neither ignored nor masked.
    """

    target: jax.Array
    counted: jax.Array
    invalid: jax.Array

    @property
    def skipped(self) -> jax.Array:
        """Examples that give 0 with gradient 0, whatever their logits: ignored or masked."""
        return ~(self.counted | self.invalid)


def label_status(
    labels: jax.Array,
    num_classes: int,
    *,
    ignore_index: int | None = None,
    row_mask: jax.Array | None = None,
) -> LabelStatus:
    """Classifies integer labels as counted, skipped (ignored or masked) or invalid.

    Comparisons are made against bounds that fit the labels' dtype, so that a narrow dtype
    never wraps a bound or ``ignore_index`` around (``uint8`` labels with K = 256 are all
    valid, and ``ignore_index=-100`` matches no ``uint8`` label). A label is in range if
    it lies in ``[0, num_classes)``; it is skipped if it equals ``ignore_index`` or its
    example is excluded by ``row_mask``, whatever its value; otherwise an out-of-range
    label is invalid.
    """
    info = jnp.iinfo(labels.dtype)
    in_range = jnp.ones(labels.shape, bool)
    if info.min < 0:
        in_range = in_range & (labels >= 0)
    if num_classes - 1 < info.max:
        in_range = in_range & (labels <= num_classes - 1)
    keep = jnp.ones(labels.shape, bool) if row_mask is None else row_mask
    if ignore_index is not None and info.min <= ignore_index <= info.max:
        keep = keep & (labels != ignore_index)
    target = jnp.clip(labels, 0, min(num_classes - 1, int(info.max))).astype(jnp.int32)
    return LabelStatus(target, in_range & keep, ~in_range & keep)
