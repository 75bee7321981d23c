r"""Information measures on probabilities: self-information, entropy, cross-entropy, KL.

Every function is pure and elementwise or per-distribution (no batch reduction). Inputs of
any real dtype are computed in at least float32: float16 and bfloat16 come back as float32,
float64 stays float64. Gradients follow the convention of ``numerics``: exact where finite,
0 where a finite term has a diverging slope at a zero probability.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import checks
from .numerics import rel_entr, xlogx, xlogx_to_sum, xlogy


def _probabilities(x: jax.typing.ArrayLike, name: str) -> jax.Array:
    x = checks.as_array(x, name)
    checks.require_real(x, name)
    return x


def _in_base(value: jax.Array, base: float | None) -> jax.Array:
    ln_b = checks.log_base(base)
    return value if ln_b is None else value / ln_b


def _reduce(terms: jax.Array, axes: tuple[int, ...], mask: jax.Array | None) -> jax.Array:
    if mask is not None:
        terms = jnp.where(mask, terms, 0)
    return jnp.sum(terms, axis=axes)


def self_information(p: jax.typing.ArrayLike, *, base: float | None = None) -> jax.Array:
    r"""Self-information (surprisal) of outcomes with probability ``p``, elementwise.

    .. math::
        I(p) = -\log_b p, \qquad I(0) = +\infty, \qquad I(p) = \text{NaN for } p < 0.

    Args:
      p: probabilities, any shape and real dtype.
      base: logarithm base: None for nats, 2 for bits, 10 for hartleys (static).

    Returns:
      An array of ``p``'s shape in ``p``'s float dtype, at least float32.

    Raises:
      TypeError: ``p`` is not real-valued.
      ValueError: ``base`` is not positive or equals 1.

    Examples:
      >>> import jaxent as je
      >>> print(f"{je.self_information(0.01, base=2):.4f} bits")
      6.6439 bits
      >>> print(f"{je.self_information(1 / 8, base=2):.4f} bits")
      3.0000 bits

    References:
      C. E. Shannon, "A Mathematical Theory of Communication", 1948.
    """
    p = _probabilities(p, "p")
    p = p.astype(checks.compute_dtype(p))
    return _in_base(-jnp.log(p), base)


def entropy(
    p: jax.typing.ArrayLike,
    *,
    axis: checks.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Shannon entropy of the distributions ``p`` along ``axis``.

    .. math::
        H(p) = -\sum_{i \in \text{where}} p_i \log_b p_i, \qquad 0 \log 0 = 0.

    Entries where ``where`` is False take no part (their values, even NaN, are ignored); a
    fully masked distribution has entropy 0. ``p`` is not renormalised. Negative or NaN
    entries inside the mask give NaN. The gradient is :math:`-(\log p_i + 1)/\ln b`, and 0
    at :math:`p_i = 0` (the slope diverges there; the entry is treated as outside the
    support).

    Args:
      p: probabilities, shape ``[..., n, ...]``.
      axis: the distribution axis or axes.
      where: optional boolean mask broadcastable to ``p``, or per-distribution.
      base: logarithm base (static); None for nats.

    Returns:
      ``p``'s shape without ``axis``, float32 for half-precision input, float64 for float64.

    Raises:
      TypeError: ``p`` is not real-valued or ``where`` is not boolean.
      ValueError: ``axis`` is out of range, ``where`` has the wrong shape, or ``base`` is
        invalid.

    Examples:
      >>> import jaxent as je
      >>> print(f"{je.entropy([0.5, 0.5], base=2):.4f}")
      1.0000
      >>> print(f"{je.entropy([0.99, 0.01], base=2):.4f}")
      0.0808

    References:
      T. M. Cover and J. A. Thomas, "Elements of Information Theory", ch. 2.
    """
    p = _probabilities(p, "p")
    axes = checks.normalize_axes(axis, p.ndim)
    mask = checks.normalize_where(where, p.shape, axes)
    p = p.astype(checks.compute_dtype(p))
    if mask is not None:
        p = jnp.where(mask, p, 0)
    return _in_base(-_reduce(xlogx_to_sum(p), axes, mask), base)


def binary_entropy(p: jax.typing.ArrayLike, *, base: float | None = None) -> jax.Array:
    r"""Entropy of a Bernoulli variable with success probability ``p``, elementwise.

    .. math::
        H_b(p) = -p \log_b p - (1 - p) \log_b (1 - p), \qquad H_b(0) = H_b(1) = 0.

    Values outside [0, 1] give NaN. The derivative :math:`\log_b((1 - p)/p)` is reported
    as 0 at p = 0 and p = 1, where it diverges.

    Args:
      p: success probabilities, any shape.
      base: logarithm base (static); None for nats.

    Returns:
      An array of ``p``'s shape, at least float32.

    Raises:
      TypeError: ``p`` is not real-valued.
      ValueError: ``base`` is invalid.

    Examples:
      >>> import jaxent as je
      >>> print(f"{je.binary_entropy(0.5, base=2):.4f}")
      1.0000
      >>> print(f"{je.binary_entropy(0.01, base=2):.4f}")
      0.0808

    References:
      T. M. Cover and J. A. Thomas, "Elements of Information Theory", sec. 2.1.
    """
    p = _probabilities(p, "p")
    p = p.astype(checks.compute_dtype(p))
    return _in_base(_binary_entropy(p), base)


@jax.custom_jvp
def _binary_entropy(p: jax.Array) -> jax.Array:
    return -(xlogx(p) + xlogx(1 - p))


@_binary_entropy.defjvp
def _binary_entropy_jvp(primals, tangents):
    (p,), (dp,) = primals, tangents
    edge = (p == 0) | (p == 1)
    inner = jnp.where(edge, 0.5, p)
    slope = jnp.where(edge, 0, jnp.log1p(-inner) - jnp.log(inner))
    return _binary_entropy(p), slope * dp


def cross_entropy(
    p: jax.typing.ArrayLike,
    q: jax.typing.ArrayLike,
    *,
    axis: checks.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Cross-entropy :math:`H(p, q)` of ``q`` relative to the reference ``p``.

    .. math::
        H(p, q) = -\sum_{i \in \text{where}} p_i \log_b q_i = H(p) + D(p \,\|\, q),
        \qquad 0 \log q = 0 \text{ for every } q \text{, } 0 \text{ included}.

    +inf where some :math:`q_i = 0 < p_i`; NaN for negative or NaN entries inside the mask.
    Gradients: :math:`-\log_b q_i` in :math:`p_i` (0 where :math:`p_i = q_i = 0`) and
    :math:`-p_i / (q_i \ln b)` in :math:`q_i` (exactly 0 where :math:`p_i = 0`).

    Args:
      p: reference (target) probabilities, shape ``[..., n, ...]``.
      q: model probabilities, the same shape as ``p``.
      axis: the distribution axis or axes.
      where: optional boolean mask broadcastable to ``p``, or per-distribution.
      base: logarithm base (static); None for nats.

    Returns:
      ``p``'s shape without ``axis``, in the inputs' common float dtype, at least float32.

    Raises:
      TypeError: an input is not real-valued or ``where`` is not boolean.
      ValueError: the shapes differ, ``axis`` is out of range, or ``base`` is invalid.

    Examples:
      >>> import jaxent as je
      >>> print(f"{je.cross_entropy([1.0, 0.0, 0.0], [0.7, 0.2, 0.1]):.4f}")
      0.3567

    References:
      T. M. Cover and J. A. Thomas, "Elements of Information Theory", sec. 2.3.
    """
    p = _probabilities(p, "p")
    q = _probabilities(q, "q")
    checks.require_same_shape(p, q, "p", "q")
    axes = checks.normalize_axes(axis, p.ndim)
    mask = checks.normalize_where(where, p.shape, axes)
    dtype = checks.compute_dtype(p, q)
    p, q = p.astype(dtype), q.astype(dtype)
    if mask is not None:
        p, q = jnp.where(mask, p, 0), jnp.where(mask, q, 1)
    return _in_base(-_reduce(xlogy(p, q), axes, mask), base)


def kl_divergence(
    p: jax.typing.ArrayLike,
    q: jax.typing.ArrayLike,
    *,
    axis: checks.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Relative entropy (Kullback-Leibler divergence) :math:`D(p \,\|\, q)`.

    .. math::
        D(p \,\|\, q) = \sum_{i \in \text{where}} p_i \log_b \frac{p_i}{q_i},
        \qquad \text{terms with } p_i = 0 \text{ are } 0,
        \quad +\infty \text{ where } q_i = 0 < p_i.

    ``p``, the reference distribution, comes first, as in ``scipy.stats.entropy(p, q)``.
    Beware: ``optax.losses.kl_divergence(log_predictions, targets)`` and
    ``torch.nn.functional.kl_div(input, target)`` take the model first, and in log space.
    Negative or NaN entries inside the mask give NaN. Gradients:
    :math:`(\log(p_i/q_i) + 1)/\ln b` in :math:`p_i` (0 at :math:`p_i = 0`, where it
    diverges) and :math:`-p_i/(q_i \ln b)` in :math:`q_i`.

    Args:
      p: reference probabilities, shape ``[..., n, ...]``.
      q: approximating probabilities, the same shape as ``p``.
      axis: the distribution axis or axes.
      where: optional boolean mask broadcastable to ``p``, or per-distribution.
      base: logarithm base (static); None for nats.

    Returns:
      ``p``'s shape without ``axis``, in the inputs' common float dtype, at least float32.

    Raises:
      TypeError: an input is not real-valued or ``where`` is not boolean.
      ValueError: the shapes differ, ``axis`` is out of range, or ``base`` is invalid.

    Examples:
      >>> import jaxent as je
      >>> print(f"{je.kl_divergence([1.0, 0.0, 0.0], [0.7, 0.2, 0.1]):.4f}")
      0.3567
      >>> print(f"{je.kl_divergence([0.5, 0.5], [0.9, 0.1], base=2):.4f}")
      0.7370

    References:
      S. Kullback and R. A. Leibler, "On Information and Sufficiency", 1951.
    """
    p = _probabilities(p, "p")
    q = _probabilities(q, "q")
    checks.require_same_shape(p, q, "p", "q")
    axes = checks.normalize_axes(axis, p.ndim)
    mask = checks.normalize_where(where, p.shape, axes)
    dtype = checks.compute_dtype(p, q)
    p, q = p.astype(dtype), q.astype(dtype)
    if mask is not None:
        p, q = jnp.where(mask, p, 0), jnp.where(mask, q, 1)
    return _in_base(_reduce(rel_entr(p, q), axes, mask), base)


def binary_cross_entropy(probs: jax.typing.ArrayLike, labels: jax.typing.ArrayLike) -> jax.Array:
    r"""Binary cross-entropy of predicted probabilities against labels, elementwise.

    .. math::
        \ell(a, y) = -\left[y \log a + (1 - y) \log(1 - a)\right],
        \qquad 0 \log 0 = 0.

    +inf for a confidently wrong prediction (a = 0 with y > 0, or a = 1 with y < 1); no
    clamping (torch clamps each log at -100). Prefer ``sigmoid_binary_cross_entropy`` on
    logits, which is stable where this cannot be. The gradient in ``probs`` is
    :math:`(a - y) / (a (1 - a))`, the terms with a zero label weight contributing exactly 0.

    Args:
      probs: predicted probabilities a in [0, 1], any shape.
      labels: targets y in [0, 1], the same shape.

    Returns:
      An array of ``probs``' shape in the inputs' common float dtype, at least float32.

    Raises:
      TypeError: an input is not real-valued.
      ValueError: the shapes differ.

    Examples:
      >>> import jaxent as je
      >>> print(f"{je.binary_cross_entropy(0.7, 1.0):.4f}")
      0.3567

    References:
      I. Goodfellow, Y. Bengio and A. Courville, "Deep Learning", sec. 6.2.2.2.
    """
    a = _probabilities(probs, "probs")
    y = _probabilities(labels, "labels")
    checks.require_same_shape(a, y, "probs", "labels")
    dtype = checks.compute_dtype(a, y)
    a, y = a.astype(dtype), y.astype(dtype)
    return -(xlogy(y, a) + xlogy(1 - y, 1 - a))
