r"""Histograms of counts, as every estimator in this package reads them.

``counts`` are non-negative numbers of observations per bin (integer or float), bins along
``axis``. They are laid out with the bins last and computed in at least float32. What the
estimators share is written here once:

- the sample size :math:`N = \sum_i n_i`, and a value safe to divide by where :math:`N = 0`;
- an all-zero histogram (:math:`N = 0`, no observations; also a histogram with no bins) is an
  empty sample: every estimator gives 0 for it, with gradient 0, as ``jaxent.entropy`` does
  for an empty distribution;
- a negative, NaN or infinite count gives NaN for its histogram (values cannot raise under
  ``jit``, and an invalid count must never produce a plausible number);
- the derivative convention for estimators that sum over the observed bins only (plug-in,
  Miller-Madow, Grassberger, Chao-Shen, mutual information): an empty bin lies outside the
  sample, and its count gets gradient 0 (the plug-in's slope diverges there, as
  :math:`-p \log p` does at 0 in ``jaxent.entropy``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .. import arguments


class Histograms(NamedTuple):
    """Validated counts, bins last, with the per-histogram sample size.

    Attributes:
      n: the counts, shape ``[..., K]``, in the compute dtype.
      total: :math:`N`, shape ``[...]``.
      safe_total: :math:`N` where positive, 1 elsewhere (so that nothing divides by 0).
      valid: no count is negative, NaN or infinite, shape ``[...]``.
      num_bins: K, the number of bins (static).
    """

    n: jax.Array
    total: jax.Array
    safe_total: jax.Array
    valid: jax.Array
    num_bins: int

    def finish(self, value: jax.Array, base: float | None) -> jax.Array:
        """``value`` in the units of ``base``: 0 for an empty sample, NaN for invalid counts."""
        value = jnp.where(self.total > 0, value, 0)
        value = jnp.where(self.valid, value, jnp.nan)
        return arguments.in_base(value, base)


def histograms(
    counts: jax.typing.ArrayLike, axis: arguments.Axis, *, occupied_only: bool
) -> Histograms:
    """``counts`` validated and laid out with the bins (``axis``, flattened if a tuple) last.

    With ``occupied_only``, the gradient reaching an empty bin's count is 0 (see the module
    docstring); the values are unchanged.
    """
    counts = arguments.as_array(counts, "counts")
    arguments.require_real(counts, "counts")
    axes = arguments.normalize_axes(axis, counts.ndim)
    n = arguments.flatten_axes(counts, axes)
    n = n.astype(arguments.compute_dtype(n))
    return from_bins_last(n, occupied_only=occupied_only)


def from_bins_last(n: jax.Array, *, occupied_only: bool) -> Histograms:
    """The ``Histograms`` of float counts ``n`` whose bins lie along the last axis."""
    valid = jnp.all((n >= 0) & (n < jnp.inf), axis=-1)
    n = jnp.where(valid[..., None], n, 0)
    if occupied_only:
        n = jnp.where(n > 0, n, jax.lax.stop_gradient(n))
    total = jnp.sum(n, axis=-1)
    safe_total = jnp.where(total > 0, total, 1)
    return Histograms(n, total, safe_total, valid, n.shape[-1])


def occupied(n: jax.Array) -> jax.Array:
    """The number of occupied bins :math:`m` (piecewise constant: its derivative is 0)."""
    return jnp.sum(n > 0, axis=-1).astype(n.dtype)
