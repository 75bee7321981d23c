r"""Closed forms for multivariate Gaussians: differential entropy and KL divergence.

Full covariances go through their Cholesky factors :math:`\Sigma = L L^\top`: the log
determinant is :math:`2 \sum_i \log L_{ii}`, and the trace and Mahalanobis terms of the KL
divergence come from triangular solves, never from an inverse or a determinant. Only the
lower triangle of the symmetric part :math:`(\Sigma + \Sigma^\top)/2` is read. A covariance
that is not positive definite (in the working precision) has no Cholesky factor and gives
NaN. Diagonal covariances are given by their log-variances, as a VAE's encoder outputs
them. Derivatives are those of the formulas (JAX's rules for the Cholesky factorisation
and triangular solves); the tests check them against the closed forms.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from . import arguments

_LOG_2PI_E = 1.0 + math.log(2 * math.pi)


def _real(x: jax.typing.ArrayLike, name: str) -> jax.Array:
    x = arguments.as_array(x, name)
    arguments.require_real(x, name)
    return x


def _require_covariance(cov: jax.Array, name: str) -> None:
    if cov.ndim < 2 or cov.shape[-1] != cov.shape[-2]:
        raise ValueError(
            f"`{name}` must be a batch of square matrices, shape [..., D, D], got shape "
            f"{cov.shape}."
        )


def _require_mean_for(mean: jax.Array, cov: jax.Array, mean_name: str, cov_name: str) -> None:
    if mean.shape != cov.shape[:-1]:
        raise ValueError(
            f"`{mean_name}` must have shape [..., D] matching `{cov_name}` [..., D, D]: got "
            f"{mean_name}.shape={mean.shape} and {cov_name}.shape={cov.shape}. Broadcasting "
            "is not applied."
        )


def _cholesky(cov: jax.Array) -> jax.Array:
    """The lower Cholesky factor of the symmetric part; NaN where not positive definite."""
    return jnp.linalg.cholesky(cov)


def _diagonal(m: jax.Array) -> jax.Array:
    return jnp.diagonal(m, axis1=-2, axis2=-1)


# 1 / k! for k = 2 .. 19: the Taylor series of e^x - 1 - x, which for |x| <= 1 keeps full
# relative accuracy in float64 (the first omitted term is below 1e-17 of the sum).
_TAYLOR = tuple(1 / math.factorial(k) for k in range(2, 20))


def _half_exp(x: jax.Array) -> jax.Array:
    """e^x / 2 as e^(x/2) (e^(x/2) / 2): finite wherever the result is, though e^x is not."""
    h = jnp.exp(0.5 * x)
    return h * (0.5 * h)


@jax.custom_jvp
def _half_expm1_minus_identity(x: jax.Array) -> jax.Array:
    """(e^x - 1 - x) / 2 to the working precision's relative accuracy for every x.

    For |x| <= 1 its Taylor series (``expm1(x) - x`` loses eps / |x| there); above, with
    e^x / 2 formed without overflowing; +inf at x = +inf (not inf - inf).
    """
    small = jnp.clip(x, -1, 1)
    series = jnp.zeros_like(x)
    for c in reversed(_TAYLOR[1:]):
        series = (series + c) * small
    series = 0.5 * (series + _TAYLOR[0]) * small * small
    large = jnp.where(x > 1, _half_exp(x) - 0.5 * (1 + x), 0.5 * (jnp.expm1(x) - x))
    out = jnp.where(jnp.abs(x) <= 1, series, large)
    return jnp.where(x == jnp.inf, jnp.inf, out)


@_half_expm1_minus_identity.defjvp
def _half_expm1_minus_identity_jvp(primals, tangents):
    # The derivative (e^x - 1) / 2, finite wherever it is (+inf at x = +inf, not NaN).
    (x,), (dx,) = primals, tangents
    slope = jnp.where(x > 1, _half_exp(x) - 0.5, 0.5 * jnp.expm1(x))
    return _half_expm1_minus_identity(x), slope * dx


@jax.custom_jvp
def _far(delta: jax.Array) -> jax.Array:
    """+inf where a difference of means is infinite (``delta`` holds those, 0 elsewhere),
    else 0; its derivative is inf with the sign of the infinite difference there, the sign
    of the Mahalanobis term's slope."""
    return jnp.where(jnp.any(jnp.isinf(delta), axis=-1), jnp.inf, 0).astype(delta.dtype)


@_far.defjvp
def _far_jvp(primals, tangents):
    (delta,), (d_delta,) = primals, tangents
    slope = jnp.where(jnp.isinf(delta), delta, 0)
    return _far(delta), jnp.sum(slope * d_delta, axis=-1)


def gaussian_entropy(cov: jax.typing.ArrayLike, *, base: float | None = None) -> jax.Array:
    r"""Differential entropy of a Gaussian :math:`\mathcal N(\mu, \Sigma)` in D dimensions.

    .. math::
        h = \tfrac{D}{2} (1 + \log 2\pi) + \tfrac12 \log\det\Sigma
          = \tfrac{D}{2} (1 + \log 2\pi) + \sum_i \log L_{ii},
        \qquad \Sigma = L L^\top,
        \qquad \frac{\partial h}{\partial \Sigma} = \tfrac12 \Sigma^{-1},

    all divided by :math:`\ln b`. The mean plays no part. Differential entropy may be
    negative. A covariance that is not positive definite in the working precision gives NaN
    (a singular one -inf or NaN, as rounding falls); D = 0 gives 0.

    Args:
      cov: covariance matrices, shape ``[..., D, D]``, symmetric positive definite.
      base: logarithm base (static); None for nats.

    Returns:
      Shape ``[...]``, float32 for half-precision input, float64 for float64.

    Raises:
      TypeError: ``cov`` is not real-valued.
      ValueError: ``cov`` is not a batch of square matrices, or ``base`` is invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> print(f"{je.gaussian_entropy(jnp.eye(2)):.4f}")
      2.8379
      >>> print(f"{je.gaussian_entropy(jnp.array([[2.0, 1.0], [1.0, 2.0]]), base=2):.4f}")
      4.8867

    References:
      T. M. Cover and J. A. Thomas, "Elements of Information Theory", theorem 8.4.1.
    """
    cov = _real(cov, "cov")
    _require_covariance(cov, "cov")
    cov = cov.astype(arguments.compute_dtype(cov))
    ln_b = arguments.log_base(base)
    half_log_det = jnp.sum(jnp.log(_diagonal(_cholesky(cov))), axis=-1)
    h = 0.5 * cov.shape[-1] * _LOG_2PI_E + half_log_det
    return arguments.in_units(h, ln_b)


def gaussian_entropy_diag(log_var: jax.typing.ArrayLike, *, base: float | None = None) -> jax.Array:
    r"""Differential entropy of a Gaussian with diagonal covariance, from its log-variances.

    .. math::
        h = \tfrac{D}{2} (1 + \log 2\pi) + \tfrac12 \sum_i \log\sigma_i^2,
        \qquad \frac{\partial h}{\partial \log\sigma_i^2} = \tfrac12,

    divided by :math:`\ln b`. A log-variance of -inf (a point mass) gives -inf, +inf gives
    +inf, NaN gives NaN; D = 0 gives 0.

    Args:
      log_var: log-variances :math:`\log\sigma_i^2`, shape ``[..., D]``.
      base: logarithm base (static); None for nats.

    Returns:
      Shape ``[...]``, at least float32.

    Raises:
      TypeError: ``log_var`` is not real-valued.
      ValueError: ``log_var`` is a scalar, or ``base`` is invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> print(f"{je.gaussian_entropy_diag(jnp.zeros(2)):.4f}")
      2.8379

    References:
      T. M. Cover and J. A. Thomas, "Elements of Information Theory", theorem 8.4.1.
    """
    log_var = _real(log_var, "log_var")
    if log_var.ndim < 1:
        raise ValueError("`log_var` must have shape [..., D], got a scalar.")
    log_var = log_var.astype(arguments.compute_dtype(log_var))
    ln_b = arguments.log_base(base)
    h = 0.5 * (log_var.shape[-1] * _LOG_2PI_E + jnp.sum(log_var, axis=-1))
    return arguments.in_units(h, ln_b)


def gaussian_kl(
    mean_p: jax.typing.ArrayLike,
    cov_p: jax.typing.ArrayLike,
    mean_q: jax.typing.ArrayLike,
    cov_q: jax.typing.ArrayLike,
    *,
    base: float | None = None,
) -> jax.Array:
    r"""KL divergence :math:`D(\mathcal N_p \,\|\, \mathcal N_q)` between two Gaussians.

    .. math::
        D = \tfrac12 \left[\operatorname{tr}(\Sigma_q^{-1} \Sigma_p)
            + (\mu_q - \mu_p)^\top \Sigma_q^{-1} (\mu_q - \mu_p) - D
            + \log\det\Sigma_q - \log\det\Sigma_p\right].

    Computed from the Cholesky factors :math:`L_p, L_q` through :math:`M = L_q^{-1} L_p`
    (lower triangular) and :math:`v = L_q^{-1}(\mu_q - \mu_p)`, both by triangular solves:

    .. math::
        D = \tfrac12 \Big[\sum_i \big(e^{x_i} - 1 - x_i\big)
            + \sum_{i > j} M_{ij}^2 + \lVert v \rVert^2\Big],
        \qquad x_i = \log M_{ii}^2,

    a sum of terms that are each :math:`\ge 0` (:math:`e^x - 1 - x` to full relative accuracy,
    as in ``gaussian_kl_diag``), so the result is never negative and has no cancellation
    near equality, where the textbook sum of :math:`O(1)` terms cancels; for equal
    arguments it is 0 up to the rounding of :math:`L^{-1} L` (a few :math:`\epsilon^2`).
    What error remains is the factorisation's: :math:`M` carries a relative error of order
    :math:`\kappa\epsilon` for covariances of condition number :math:`\kappa`, so each
    :math:`x_i` is off by about that much absolutely, and near equality
    (:math:`|x_i| \ll 1`) the result keeps a relative accuracy of about
    :math:`\kappa\epsilon / |x_i|` (in float32, :math:`2 \cdot 10^{-3}` for a variance
    ratio of :math:`e^{10^{-4}}`; ``gaussian_kl_diag`` takes its log-variances as given and
    keeps full accuracy). Divided by :math:`\ln b`. Gradients:
    :math:`\partial_{\mu_p} = \Sigma_q^{-1}(\mu_p - \mu_q)`,
    :math:`\partial_{\Sigma_p} = \tfrac12(\Sigma_q^{-1} - \Sigma_p^{-1})`,
    :math:`\partial_{\Sigma_q} = \tfrac12(\Sigma_q^{-1}
    - \Sigma_q^{-1}(\Sigma_p + \delta\delta^\top)\Sigma_q^{-1})` with
    :math:`\delta = \mu_p - \mu_q`. A covariance that is not positive definite in the
    working precision gives NaN. An infinite mean, the other finite, gives +inf (as
    ``gaussian_kl_diag`` does); infinite in both at the same coordinate, NaN. The
    derivative in such a coordinate is infinite with the sign of the slope there
    (:math:`+\infty` for :math:`\mu_p = +\infty`, as ``gaussian_kl_diag``'s), and in the
    other coordinates that of the finite part of :math:`\delta`.

    Args:
      mean_p: means of p, shape ``[..., D]``.
      cov_p: covariances of p, shape ``[..., D, D]``, symmetric positive definite.
      mean_q: means of q, the shape of ``mean_p``.
      cov_q: covariances of q, the shape of ``cov_p``.
      base: logarithm base (static); None for nats.

    Returns:
      Shape ``[...]``, in the inputs' common float dtype, at least float32.

    Raises:
      TypeError: an input is not real-valued.
      ValueError: a covariance is not a batch of square matrices, the shapes do not match
        (broadcasting is not applied), or ``base`` is invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> cov_p = jnp.array([[2.0, 1.0], [1.0, 2.0]])
      >>> print(f"{je.gaussian_kl(jnp.ones(2), cov_p, jnp.zeros(2), jnp.eye(2)):.4f}")
      1.4507

    References:
      S. Kullback, "Information Theory and Statistics", 1959, ch. 9; J. Duchi,
      "Derivations for Linear Algebra and Optimization", sec. 9.
    """
    mean_p, cov_p = _real(mean_p, "mean_p"), _real(cov_p, "cov_p")
    mean_q, cov_q = _real(mean_q, "mean_q"), _real(cov_q, "cov_q")
    _require_covariance(cov_p, "cov_p")
    _require_mean_for(mean_p, cov_p, "mean_p", "cov_p")
    arguments.require_same_shape(cov_p, cov_q, "cov_p", "cov_q")
    arguments.require_same_shape(mean_p, mean_q, "mean_p", "mean_q")
    dtype = arguments.compute_dtype(mean_p, cov_p, mean_q, cov_q)
    ln_b = arguments.log_base(base)
    lp = _cholesky(cov_p.astype(dtype))
    lq = _cholesky(cov_q.astype(dtype))
    m = solve_triangular(lq, lp, lower=True)
    delta = (mean_q.astype(dtype) - mean_p.astype(dtype))[..., None]
    # An infinite difference of means makes the Mahalanobis term +inf (Sigma_q is positive
    # definite); the solve would meet 0 * inf. The rest of delta (NaN included) is solved.
    infinite = jnp.isinf(delta)
    v = solve_triangular(lq, jnp.where(infinite, 0, delta), lower=True)[..., 0]
    far = _far(jnp.where(infinite, delta, 0)[..., 0])
    x = 2 * jnp.log(_diagonal(m))
    off = jnp.tril(m, -1)
    d = jnp.sum(_half_expm1_minus_identity(x), axis=-1) + 0.5 * (
        jnp.sum(off * off, axis=(-2, -1)) + jnp.sum(v * v, axis=-1) + far
    )
    return arguments.in_units(d, ln_b)


def gaussian_kl_diag(
    mean_p: jax.typing.ArrayLike,
    log_var_p: jax.typing.ArrayLike,
    mean_q: jax.typing.ArrayLike,
    log_var_q: jax.typing.ArrayLike,
    *,
    base: float | None = None,
) -> jax.Array:
    r"""KL divergence between Gaussians with diagonal covariances, from log-variances.

    With :math:`\delta_i = \log\sigma_{p,i}^2 - \log\sigma_{q,i}^2`:

    .. math::
        D = \tfrac12 \sum_i \Big[e^{\delta_i} - 1 - \delta_i
            + (\mu_{p,i} - \mu_{q,i})^2\, e^{-\log\sigma_{q,i}^2}\Big],

    each term :math:`\ge 0`, with :math:`e^{\delta} - 1 - \delta` computed to full
    relative accuracy (its Taylor series for :math:`|\delta| \le 1`, where
    ``expm1(delta) - delta`` would keep only :math:`\epsilon / |\delta|`; :math:`e^\delta / 2`
    formed without overflow above, finite wherever the result is) and the Mahalanobis term 0 where
    the means are equal, whatever the variance. Divided by :math:`\ln b`. With
    :math:`q = \mathcal N(0, I)` (zeros for ``mean_q`` and ``log_var_q``) this is the VAE's
    KL term :math:`\tfrac12 \sum_i (\sigma_i^2 + \mu_i^2 - 1 - \log\sigma_i^2)`. Gradients:
    :math:`\partial_{\mu_p} = (\mu_p - \mu_q) e^{-\log\sigma_q^2}`,
    :math:`\partial_{\log\sigma_p^2} = \tfrac12 (e^{\delta} - 1)`,
    :math:`\partial_{\log\sigma_q^2} = \tfrac12 (1 - e^{\delta}
    - (\mu_p - \mu_q)^2 e^{-\log\sigma_q^2})`. A log-variance of -inf (a point mass) in
    p or in q alone gives +inf; in both, NaN (the ratio of the variances is undefined).
    The derivatives are these formulas there too: infinite ones are reported as such, not
    NaN (q a point mass, p not: :math:`+\infty` in :math:`\log\sigma_p^2` and
    :math:`-\infty` in :math:`\log\sigma_q^2`; p a point mass: :math:`-\tfrac12` and
    :math:`+\tfrac12`).

    Args:
      mean_p: means of p, shape ``[..., D]``.
      log_var_p: log-variances of p, the same shape.
      mean_q: means of q, the same shape.
      log_var_q: log-variances of q, the same shape.
      base: logarithm base (static); None for nats.

    Returns:
      Shape ``[...]``, in the inputs' common float dtype, at least float32.

    Raises:
      TypeError: an input is not real-valued.
      ValueError: the shapes differ (broadcasting is not applied), the inputs are scalars,
        or ``base`` is invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> mu, log_var = jnp.array([1.0, 0.0]), jnp.log(jnp.array([2.0, 0.5]))
      >>> zeros = jnp.zeros(2)
      >>> print(f"{je.gaussian_kl_diag(mu, log_var, zeros, zeros):.4f}")
      0.7500

    References:
      D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", 2014, appendix B.
    """
    names = ("mean_p", "log_var_p", "mean_q", "log_var_q")
    xs = [_real(x, n) for x, n in zip((mean_p, log_var_p, mean_q, log_var_q), names, strict=True)]
    for x, n in zip(xs[1:], names[1:], strict=True):
        arguments.require_same_shape(xs[0], x, names[0], n)
    if xs[0].ndim < 1:
        raise ValueError("`mean_p` and the other inputs must have shape [..., D], got scalars.")
    dtype = arguments.compute_dtype(*xs)
    mp, lvp, mq, lvq = (x.astype(dtype) for x in xs)
    ln_b = arguments.log_base(base)
    delta = lvp - lvq
    diff = mp - mq
    same = diff == 0
    # (diff e^{-lvq/2})^2, 0 where the means agree, even at a log-variance of -inf.
    scaled = jnp.where(same, 0, diff * jnp.exp(-0.5 * jnp.where(same, 0, lvq)))
    d = jnp.sum(_half_expm1_minus_identity(delta) + 0.5 * (scaled * scaled), axis=-1)
    return arguments.in_units(d, ln_b)
