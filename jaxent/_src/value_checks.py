r"""Opt-in checks of values, which the losses themselves cannot make under ``jit``.

On concrete arrays they raise ``ValueError`` naming the offending entries. On traced
arrays they emit ``jax.experimental.checkify`` checks, so that a jitted function wrapped in
``checkify.checkify`` reports the failure as an error value.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from . import arguments

_MAX_LISTED = 5


def _listing(bad: np.ndarray, values: np.ndarray) -> str:
    idx = np.argwhere(bad)
    shown = ", ".join(
        f"{tuple(int(i) for i in ix)}: {values[tuple(ix)]!r}" for ix in idx[:_MAX_LISTED]
    )
    more = f" and {len(idx) - _MAX_LISTED} more" if len(idx) > _MAX_LISTED else ""
    return f"{len(idx)} offending entries, at index: value {shown}{more}"


def check_probabilities(
    p: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    atol: float = 1e-5,
) -> None:
    r"""Checks that ``p`` holds probability distributions along ``axis``.

    Every allowed entry must be finite and non-negative, and each distribution's allowed
    entries must sum to 1 within ``atol``. Masked-out entries are not inspected.

    What the measures return on invalid values, since they cannot raise under ``jit``:
    a negative or NaN probability gives NaN; a zero :math:`q_i` where :math:`p_i > 0`
    gives +inf (cross-entropy, KL); distributions that do not sum to 1 are used as given
    (no renormalisation), which is a plausible but wrong number: check them here.

    Args:
      p: probabilities, shape ``[..., n, ...]``.
      axis: the distribution axis or axes.
      where: optional boolean mask, broadcastable to ``p`` or per-distribution.
      atol: absolute tolerance on each sum.

    Raises:
      ValueError: on concrete input, naming the offending entries and sums.
      checkify.JaxRuntimeError: through ``checkify``, for traced input.

    Examples:
      >>> import jaxent as je
      >>> je.check_probabilities([[0.5, 0.5], [0.2, 0.7]])
      Traceback (most recent call last):
      ...
      ValueError: `p` has distributions along axis -1 that do not sum to 1 (atol=1e-05): ...
    """
    p = arguments.as_array(p, "p")
    arguments.require_real(p, "p")
    atol = arguments.static_float(atol, "atol", 0.0, math.inf, high_open=True)
    axes = arguments.normalize_axes(axis, p.ndim)
    mask = arguments.normalize_where(where, p.shape, axes)
    pf = p.astype(arguments.compute_dtype(p))
    allowed = jnp.ones(p.shape, bool) if mask is None else mask.full
    bad_entry = allowed & ~(jnp.isfinite(pf) & (pf >= 0))
    sums = jnp.sum(jnp.where(allowed, pf, 0), axis=axes)
    bad_sum = ~(jnp.abs(sums - 1) <= atol)
    if arguments.is_traced(p, mask):
        checkify.check(
            ~jnp.any(bad_entry),
            "`p` has {n} negative or non-finite entries (first at flat index {i})",
            n=jnp.sum(bad_entry),
            i=jnp.argmax(bad_entry.ravel()),
        )
        checkify.check(
            ~jnp.any(bad_sum),
            "`p` has {n} distributions that do not sum to 1 (first at flat index {i}, sum {s})",
            n=jnp.sum(bad_sum),
            i=jnp.argmax(bad_sum.ravel()),
            s=sums.ravel()[jnp.argmax(bad_sum.ravel())],
        )
        return
    bad_entry_np, p_np = np.asarray(bad_entry), np.asarray(p)
    if bad_entry_np.any():
        raise ValueError(f"`p` has negative or non-finite entries: {_listing(bad_entry_np, p_np)}.")
    bad_sum_np = np.asarray(bad_sum)
    if bad_sum_np.any():
        raise ValueError(
            f"`p` has distributions along axis {axis} that do not sum to 1 (atol={atol}): "
            f"{_listing(bad_sum_np, np.asarray(sums))}."
        )


def check_integer_labels(
    labels: jax.typing.ArrayLike, num_classes: int, *, ignore_index: int | None = None
) -> None:
    r"""Checks that every label lies in ``[0, num_classes)`` or equals ``ignore_index``.

    ``softmax_cross_entropy_with_integer_labels`` returns NaN for such an example, in value
    and gradient, since it cannot raise under ``jit``; this check names the culprits.

    Args:
      labels: integer class indices, any shape.
      num_classes: the number of classes K (static).
      ignore_index: a label value that marks examples to skip, or None.

    Raises:
      TypeError: the labels are not integers.
      ValueError: on concrete input, naming the offending entries.
      checkify.JaxRuntimeError: through ``checkify``, for traced input.

    Examples:
      >>> import jaxent as je
      >>> je.check_integer_labels([0, 2, -100], 3, ignore_index=-100)
      >>> je.check_integer_labels([0, 3, -1], 3)
      Traceback (most recent call last):
      ...
      ValueError: `labels` must lie in [0, 3): 2 offending entries, at index: value ...
    """
    labels = arguments.as_array(labels, "labels")
    arguments.require_integer(labels, "labels")
    k = arguments.static_index(num_classes, "num_classes")
    if k is None or k < 1:
        raise ValueError(f"`num_classes` must be a positive Python int, got {num_classes!r}.")
    ignore_index = arguments.static_index(ignore_index, "ignore_index")
    bad = arguments.label_status(labels, k, ignore_index=ignore_index).invalid
    if arguments.is_traced(labels):  # labels' value is unknown: the check goes through checkify
        checkify.check(
            ~jnp.any(bad),
            f"`labels` has {{n}} entries outside [0, {num_classes}) "
            "(first at flat index {i}, value {v})",
            n=jnp.sum(bad),
            i=jnp.argmax(bad.ravel()),
            v=labels.ravel()[jnp.argmax(bad.ravel())],
        )
        return
    bad_np = np.asarray(bad)
    if bad_np.any():
        ignore = "" if ignore_index is None else f" or equal ignore_index={ignore_index}"
        raise ValueError(
            f"`labels` must lie in [0, {num_classes}){ignore}: "
            f"{_listing(bad_np, np.asarray(labels))}."
        )
