r"""Entropy estimators from histograms of counts: plug-in and its bias corrections, shrinkage.

Each takes counts :math:`n_1, \dots, n_K` with :math:`N = \sum_i n_i` observations and
estimates the entropy of the distribution they were drawn from. The shared conventions (an
all-zero histogram gives 0, invalid counts give NaN, empty bins get gradient 0 where the
estimator sums over occupied bins only) live in ``histograms``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma

from .. import arguments
from ..numerics import negated, xlogx_to_sum
from .histograms import Histograms, histograms, occupied


def _plugin(h: Histograms) -> jax.Array:
    p = h.n / h.safe_total[..., None]
    return negated(jnp.sum(xlogx_to_sum(p), axis=-1))


def entropy_plugin(
    counts: jax.typing.ArrayLike, *, axis: arguments.Axis = -1, base: float | None = None
) -> jax.Array:
    r"""Plug-in (maximum-likelihood) entropy estimate: the entropy of the empirical distribution.

    .. math::
        \hat H_\text{ML} = -\sum_{i:\,n_i > 0} \frac{n_i}{N} \log_b \frac{n_i}{N},
        \qquad N = \sum_i n_i .

    Biased low: :math:`E[\hat H_\text{ML}] = H - (K - 1)/(2N) + O(N^{-2})` nats when every
    bin has positive probability. An all-zero histogram gives 0; a negative, NaN or
    infinite count gives NaN.

    Differentiable in the counts (as floats): :math:`\partial \hat H / \partial n_i =
    -(\log(n_i/N) + \hat H)/(N \ln b)` for an occupied bin, and 0 for an empty one (where
    the slope diverges; the bin lies outside the sample).

    Args:
      counts: histograms, shape ``[..., K, ...]``, integer or float (non-negative).
      axis: the bin axis, or a tuple of axes flattened together.
      base: logarithm base (static); None for nats, 2 for bits.

    Returns:
      ``counts``' shape without ``axis``; float32 for integer and half-precision counts,
      float64 for float64 counts.

    Raises:
      TypeError: ``counts`` is not real-valued.
      ValueError: ``axis`` is out of range or ``base`` is invalid.

    Examples:
      >>> from jaxent import estimators
      >>> print(f"{estimators.entropy_plugin([5, 5], base=2):.4f}")
      1.0000
      >>> print(f"{estimators.entropy_plugin([3, 1, 0, 0]):.4f}")
      0.5623

    References:
      G. A. Miller, "Note on the bias of information estimates", in Information Theory in
      Psychology, 1955. L. Paninski, "Estimation of entropy and mutual information",
      Neural Computation 15, 2003.
    """
    h = histograms(counts, axis, occupied_only=True)
    return h.finish(_plugin(h), base)


def entropy_miller_madow(
    counts: jax.typing.ArrayLike, *, axis: arguments.Axis = -1, base: float | None = None
) -> jax.Array:
    r"""Miller-Madow entropy estimate: the plug-in estimate plus its first-order bias.

    .. math::
        \hat H_\text{MM} = \hat H_\text{ML} + \frac{m - 1}{2N} \quad\text{nats},
        \qquad m = \#\{i : n_i > 0\},

    the number of occupied bins standing in for the unknown support size. An all-zero
    histogram gives 0; a negative, NaN or infinite count gives NaN.

    Differentiable in the counts (as floats) as the plug-in estimate is, plus
    :math:`-(m - 1)/(2N^2 \ln b)` for every occupied bin; :math:`m` is piecewise constant
    (derivative 0), and an empty bin gets gradient 0.

    Args:
      counts: histograms, shape ``[..., K, ...]``, integer or float (non-negative).
      axis: the bin axis, or a tuple of axes flattened together.
      base: logarithm base (static); None for nats, 2 for bits.

    Returns:
      ``counts``' shape without ``axis``; float32 for integer and half-precision counts,
      float64 for float64 counts.

    Raises:
      TypeError: ``counts`` is not real-valued.
      ValueError: ``axis`` is out of range or ``base`` is invalid.

    Examples:
      >>> from jaxent import estimators
      >>> print(f"{estimators.entropy_miller_madow([3, 1, 0, 0]):.4f}")
      0.6873

    References:
      G. A. Miller, "Note on the bias of information estimates", in Information Theory in
      Psychology, 1955.
    """
    h = histograms(counts, axis, occupied_only=True)
    return h.finish(_plugin(h) + (occupied(h.n) - 1) / (2 * h.safe_total), base)


def _grassberger_g(n: jax.Array) -> jax.Array:
    r""":math:`G(n) = \psi(n) + \tfrac12 (-1)^n [\psi(\tfrac{n+1}{2}) - \psi(\tfrac n2)]`, n > 0.

    :math:`(-1)^n` is :math:`\cos(\pi r)` with :math:`r = n - 2\,\mathrm{round}(n/2)` (exact
    in floating point): equal to it at integers, where its derivative is 0, and continuous
    in between.
    """
    r = n - 2 * jnp.round(n / 2)
    return digamma(n) + 0.5 * jnp.cos(jnp.pi * r) * (digamma((n + 1) / 2) - digamma(n / 2))


def entropy_grassberger(
    counts: jax.typing.ArrayLike, *, axis: arguments.Axis = -1, base: float | None = None
) -> jax.Array:
    r"""Grassberger's (2003) entropy estimate, in its digamma form.

    .. math::
        \hat H_\text{G} = \log N - \frac1N \sum_{i:\,n_i > 0} n_i\, G(n_i), \qquad
        G(n) = \psi(n) + \frac{(-1)^n}{2}
        \Bigl[\psi\Bigl(\frac{n + 1}{2}\Bigr) - \psi\Bigl(\frac n2\Bigr)\Bigr],

    in nats (divided by :math:`\ln b` for ``base``), with :math:`\psi` the digamma
    function. Its bias is far smaller than the plug-in's when counts are small; a single
    observation gives :math:`\gamma + \ln 2 = 1.2704` nats. An all-zero histogram gives 0;
    a negative, NaN or infinite count gives NaN.

    Differentiable in the counts (as floats): :math:`(-1)^n` is extended between integers
    by :math:`\cos(\pi n)`, whose derivative is 0 at integers; an empty bin gets
    gradient 0.

    Args:
      counts: histograms, shape ``[..., K, ...]``, integer or float (non-negative).
      axis: the bin axis, or a tuple of axes flattened together.
      base: logarithm base (static); None for nats, 2 for bits.

    Returns:
      ``counts``' shape without ``axis``; float32 for integer and half-precision counts,
      float64 for float64 counts.

    Raises:
      TypeError: ``counts`` is not real-valued.
      ValueError: ``axis`` is out of range or ``base`` is invalid.

    Examples:
      >>> from jaxent import estimators
      >>> print(f"{estimators.entropy_grassberger([1]):.4f}")
      1.2704
      >>> print(f"{estimators.entropy_grassberger([3, 1, 0, 0]):.4f}")
      1.1567

    References:
      P. Grassberger, "Entropy estimates from insufficient samplings",
      arXiv:physics/0307138, 2003.
    """
    h = histograms(counts, axis, occupied_only=True)
    seen = h.n > 0
    g = _grassberger_g(jnp.where(seen, h.n, 1))
    p = h.n / h.safe_total[..., None]
    terms = jnp.where(seen, p * (jnp.log(h.safe_total)[..., None] - g), 0)
    return h.finish(jnp.sum(terms, axis=-1), base)


def entropy_chao_shen(
    counts: jax.typing.ArrayLike, *, axis: arguments.Axis = -1, base: float | None = None
) -> jax.Array:
    r"""Chao-Shen entropy estimate: coverage-adjusted Horvitz-Thompson.

    .. math::
        \hat H_\text{CS} = -\sum_{i:\,n_i > 0}
        \frac{\hat p_i \log_b \hat p_i}{1 - (1 - \hat p_i)^N}, \qquad
        \hat p_i = \hat C \frac{n_i}{N}, \qquad \hat C = 1 - \frac{f_1}{N},

    with :math:`f_1` the number of singletons (bins with :math:`n_i = 1`), replaced by
    :math:`N - 1` when every observation is a singleton (:math:`f_1 = N`), so that the
    coverage :math:`\hat C` stays positive. The coverage shrinks the observed bins'
    probabilities to leave room for unseen ones; dividing by the probability that a bin is
    seen at all corrects for the bins that were missed. An all-zero histogram gives 0; a
    negative, NaN or infinite count gives NaN.

    Differentiable in the counts (as floats) through :math:`n_i` and :math:`N`;
    :math:`f_1` is piecewise constant (derivative 0), its stand-in :math:`N - 1` included
    (a perturbed singleton is no singleton, and the count of singletons stays
    :math:`N - 1` on either side), and an empty bin gets gradient 0.

    Args:
      counts: histograms, shape ``[..., K, ...]``, integer or float (non-negative).
      axis: the bin axis, or a tuple of axes flattened together.
      base: logarithm base (static); None for nats, 2 for bits.

    Returns:
      ``counts``' shape without ``axis``; float32 for integer and half-precision counts,
      float64 for float64 counts.

    Raises:
      TypeError: ``counts`` is not real-valued.
      ValueError: ``axis`` is out of range or ``base`` is invalid.

    Examples:
      >>> from jaxent import estimators
      >>> print(f"{estimators.entropy_chao_shen([3, 1, 0, 0]):.4f}")
      0.8923

    References:
      A. Chao and T.-J. Shen, "Nonparametric estimation of Shannon's index of diversity
      when there are unseen species in sample", Environmental and Ecological Statistics
      10, 2003.
    """
    h = histograms(counts, axis, occupied_only=True)
    n_total = h.safe_total[..., None]
    singletons = jnp.sum(h.n == 1, axis=-1, keepdims=True).astype(h.n.dtype)
    # f1 = N - 1 where every observation is a singleton: a count, piecewise constant like
    # f1 itself (no derivative through N).
    all_single = singletons == n_total
    singletons = jnp.where(all_single, jax.lax.stop_gradient(n_total) - 1, singletons)
    coverage = 1 - singletons / n_total
    p = coverage * h.n / n_total
    # 1 - (1 - p)^N, accurate for small p; 1 where p = 1 (which also keeps log1p finite).
    below_one = p < 1
    seen = -jnp.expm1(n_total * jnp.log1p(-jnp.where(below_one, p, 0)))
    seen = jnp.where(below_one, seen, 1)
    terms = jnp.where(h.n > 0, xlogx_to_sum(p) / jnp.where(h.n > 0, seen, 1), 0)
    return h.finish(negated(jnp.sum(terms, axis=-1)), base)


def entropy_james_stein(
    counts: jax.typing.ArrayLike, *, axis: arguments.Axis = -1, base: float | None = None
) -> jax.Array:
    r"""James-Stein shrinkage entropy estimate (Hausser and Strimmer, 2009).

    The entropy of the empirical distribution shrunk towards the uniform one:

    .. math::
        \hat H_\text{JS} = -\sum_{i=1}^K \hat p_i \log_b \hat p_i, \qquad
        \hat p_i = \lambda \frac1K + (1 - \lambda) \frac{n_i}{N}, \qquad
        \lambda = \operatorname{clip}\Biggl(
        \frac{1 - \sum_i (n_i/N)^2}{(N - 1) \sum_i (1/K - n_i/N)^2}, 0, 1\Biggr),

    the data-driven shrinkage intensity that minimises the estimated mean squared error of
    :math:`\hat p`. Every one of the K bins counts, empty ones included. :math:`\lambda = 1`
    (the uniform distribution, :math:`\log_b K`) where the formula has no value: for
    :math:`N \le 1`, or when the counts are already uniform. An all-zero histogram gives
    0; a negative, NaN or infinite count gives NaN.

    Differentiable in the counts (as floats) everywhere the clip is inactive, empty bins
    included (their shrunk probability :math:`\lambda/K` is positive); where
    :math:`\lambda` is clipped to 0 or 1 it is constant (derivative 0).

    Args:
      counts: histograms, shape ``[..., K, ...]``, integer or float (non-negative).
      axis: the bin axis, or a tuple of axes flattened together.
      base: logarithm base (static); None for nats, 2 for bits.

    Returns:
      ``counts``' shape without ``axis``; float32 for integer and half-precision counts,
      float64 for float64 counts.

    Raises:
      TypeError: ``counts`` is not real-valued.
      ValueError: ``axis`` is out of range or ``base`` is invalid.

    Examples:
      >>> from jaxent import estimators
      >>> print(f"{estimators.entropy_james_stein([3, 1, 0, 0]):.4f}")
      1.0751

    References:
      J. Hausser and K. Strimmer, "Entropy inference and the James-Stein estimator, with
      application to nonlinear gene association networks", Journal of Machine Learning
      Research 10, 2009.
    """
    h = histograms(counts, axis, occupied_only=False)
    n_total = h.safe_total[..., None]
    u = h.n / n_total
    target = 1 / max(h.num_bins, 1)
    numerator = 1 - jnp.sum(u * u, axis=-1, keepdims=True)
    misfit = jnp.sum(jnp.square(target - u), axis=-1, keepdims=True)
    defined = (n_total > 1) & (misfit > 0)
    ratio = numerator / jnp.where(defined, (n_total - 1) * misfit, 1)
    lam = jnp.where(defined, jnp.clip(ratio, 0, 1), 1)
    p = lam * target + (1 - lam) * u
    return h.finish(negated(jnp.sum(xlogx_to_sum(p), axis=-1)), base)
