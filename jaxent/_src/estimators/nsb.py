r"""The Nemenman-Shafee-Bialek (NSB) entropy estimate: a Bayesian posterior mean.

A symmetric Dirichlet prior of concentration :math:`\beta` on the K bin probabilities
implies a prior mean entropy :math:`\xi(\beta) = \psi(K\beta + 1) - \psi(\beta + 1)`, which
rises from 0 (:math:`\beta \to 0`) to :math:`\log K` (:math:`\beta \to \infty`). NSB mixes
these priors so that :math:`\xi` is uniform on :math:`(0, \log K)`: the prior on the
entropy is then nearly flat, instead of the sharp peak any single :math:`\beta` imposes.
The posterior mean entropy is an integral over :math:`\xi`, computed here on a fixed grid.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, gammaln

from .. import arguments
from .histograms import histograms

#: Quadrature nodes in xi: two-point Gauss-Legendre on each of GRID_SIZE / 2 equal panels
#: of (0, log K) (equal weights).
GRID_SIZE = 128

# log(beta) brackets for inverting xi(beta) by bisection: xi(e^-40) < 1e-13 K and
# log K - xi(e^25) < 1e-10 K, outside the grid for every K of practical size.
_LOG_BETA_RANGE = (-40.0, 25.0)
_BISECTIONS = 60


def prior_mean_entropy(beta: jax.Array, num_bins: int) -> jax.Array:
    r""":math:`\xi(\beta) = \psi(K\beta + 1) - \psi(\beta + 1)`, increasing in :math:`\beta`."""
    return digamma(num_bins * beta + 1) - digamma(beta + 1)


def xi_grid(num_bins: int, dtype) -> tuple[jax.Array, jax.Array]:
    r"""The quadrature nodes: :math:`\xi_j = (j + \tfrac12) \log K / G` and their
    :math:`\beta_j = \xi^{-1}(\xi_j)`, found by bisection in :math:`\log \beta`."""
    log_k = math.log(num_bins)
    panels = GRID_SIZE // 2
    offsets = jnp.array([0.5 - 0.5 / math.sqrt(3), 0.5 + 0.5 / math.sqrt(3)], dtype)
    xi = ((jnp.arange(panels, dtype=dtype)[:, None] + offsets) * (log_k / panels)).reshape(-1)
    lo = jnp.full_like(xi, _LOG_BETA_RANGE[0])
    hi = jnp.full_like(xi, _LOG_BETA_RANGE[1])

    def step(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) / 2
        below = prior_mean_entropy(jnp.exp(mid), num_bins) < xi
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, _BISECTIONS, step, (lo, hi))
    return xi, jnp.exp((lo + hi) / 2)


def entropy_nsb(
    counts: jax.typing.ArrayLike, *, axis: arguments.Axis = -1, base: float | None = None
) -> jax.Array:
    r"""Nemenman-Shafee-Bialek entropy estimate: the posterior mean under the NSB prior.

    With a Dirichlet(:math:`\beta, \dots, \beta`) prior on K bins, the evidence of the
    counts and the posterior mean entropy given :math:`\beta` are

    .. math::
        p(n \mid \beta) \propto \frac{\Gamma(K\beta)}{\Gamma(N + K\beta)}
        \prod_{i=1}^K \frac{\Gamma(n_i + \beta)}{\Gamma(\beta)}, \qquad
        \langle H \rangle_\beta = \psi(N + K\beta + 1)
        - \sum_{i=1}^K \frac{n_i + \beta}{N + K\beta}\, \psi(n_i + \beta + 1),

    and NSB averages over a prior uniform in :math:`\xi(\beta) = \psi(K\beta + 1) -
    \psi(\beta + 1)` on :math:`(0, \log K)`:

    .. math::
        \hat H_\text{NSB} = \frac{\int_0^{\log K} p(n \mid \beta(\xi))\,
        \langle H \rangle_{\beta(\xi)}\, d\xi}{\int_0^{\log K} p(n \mid \beta(\xi))\, d\xi}
        \quad\text{nats (divided by } \ln b \text{ for } \texttt{base}).

    The integrals use two-point Gauss-Legendre quadrature on 64 equal panels of
    :math:`(0, \log K)` (``GRID_SIZE`` = 128 nodes, equal weights), with
    :math:`\beta(\xi)` found by bisection and the log-evidence through ``gammaln``,
    normalised by its log-sum-exp; everything is jit-able, and the cost is :math:`128\,K`
    evaluations of ``gammaln`` and ``digamma`` per histogram. Against adaptive quadrature
    in float64 (``scipy.integrate.quad``) the largest relative difference measured was
    7e-8, over eleven histograms with K = 2 to 1000 and N = 3 to 10^5; the tests hold it to 1e-6
    in float64 and 3e-5 in float32. Not so for histograms with all their counts in one bin,
    whose posterior sits in a sliver of :math:`\xi` near 0 that the grid does not resolve:
    8e-6 at K = 100, N = 1000 and 3e-4 at K = 1000, N = 10^5 (small estimates, so small
    absolute errors), and 3e-3 for a lone count of 1e-4 beside 50. K = 1 gives 0 (a single
    bin has no entropy); an all-zero histogram gives 0, not the prior mean
    :math:`\log K / 2`; a negative, NaN or infinite count gives NaN.

    Differentiable in the counts (as floats), empty bins included: the evidence and
    :math:`\langle H \rangle_\beta` are smooth in every :math:`n_i`; the grid does not
    depend on the counts. The exact estimate's one-sided slope in an empty bin's count can
    diverge (logarithmically) where the posterior weighs :math:`\beta \to 0`, as for
    [0, 0, 7]: there the gradient is the grid's finite value (5.5), not the limit.

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
      >>> print(f"{estimators.entropy_nsb([3, 1, 0, 0]):.4f}")
      0.8528

    References:
      I. Nemenman, F. Shafee and W. Bialek, "Entropy and inference, revisited", NIPS 14,
      2002. D. H. Wolpert and D. R. Wolf, "Estimating functions of probability
      distributions from a finite set of samples", Physical Review E 52, 1995.
    """
    h = histograms(counts, axis, occupied_only=False)
    k = h.num_bins
    if k <= 1:
        return h.finish(jnp.zeros_like(h.total), base)
    return h.finish(_posterior_mean_entropy(h.n, h.total, num_bins=k), base)


@functools.partial(jax.jit, static_argnames=("num_bins",))
def _posterior_mean_entropy(n: jax.Array, total: jax.Array, *, num_bins: int) -> jax.Array:
    """The NSB integrals on the grid; jitted so that eager calls reuse the compiled loops."""
    _, beta = xi_grid(num_bins, n.dtype)

    def at_node(b):
        """Log-evidence and posterior mean entropy at one node, for every histogram."""
        kb = num_bins * b
        log_evidence = (
            gammaln(kb) - gammaln(total + kb) + jnp.sum(gammaln(n + b) - gammaln(b), axis=-1)
        )
        sum_psi = jnp.sum((n + b) * digamma(n + b + 1), axis=-1)
        return log_evidence, digamma(total + kb + 1) - sum_psi / (total + kb)

    # One node at a time: the [..., K] terms of a node are reduced before the next.
    log_evidence, mean_h = jax.lax.map(at_node, beta)
    weights = jax.nn.softmax(log_evidence, axis=0)
    return jnp.sum(weights * mean_h, axis=0)
