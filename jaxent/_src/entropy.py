r"""Entropies: self-information, Shannon and binary entropy, on probabilities and on logits.

Every function is pure and elementwise or per-distribution (no batch reduction). Inputs of
any real dtype are computed in at least float32: float16 and bfloat16 come back as float32,
float64 stays float64. Gradients follow the convention of ``numerics``: exact where finite,
0 where a finite term has a diverging slope at a zero probability.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from . import arguments
from .numerics import negated, xlogx, xlogx_to_sum
from .softmax import ShiftedLogits


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
    p = arguments.probabilities(p, "p")
    p = p.astype(arguments.compute_dtype(p))
    return arguments.in_base(negated(jnp.log(p)), base)


def entropy(
    p: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
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
    p = arguments.probabilities(p, "p")
    axes = arguments.normalize_axes(axis, p.ndim)
    mask = arguments.normalize_where(where, p.shape, axes)
    p = p.astype(arguments.compute_dtype(p))
    if mask is not None:
        p = jnp.where(mask.full, p, 0)
    return arguments.in_base(negated(arguments.masked_sum(xlogx_to_sum(p), axes, mask)), base)


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
    p = arguments.probabilities(p, "p")
    p = p.astype(arguments.compute_dtype(p))
    return arguments.in_base(_binary_entropy(p), base)


@jax.custom_jvp
def _binary_entropy(p: jax.Array) -> jax.Array:
    return negated(xlogx(p) + xlogx(1 - p))


@_binary_entropy.defjvp
def _binary_entropy_jvp(primals, tangents):
    (p,), (dp,) = primals, tangents
    edge = (p == 0) | (p == 1)
    inner = jnp.where(edge, 0.5, p)
    slope = jnp.where(edge, 0, jnp.log1p(-inner) - jnp.log(inner))
    return _binary_entropy(p), slope * dp


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _softmax_entropy(z, mask, axis):
    sh = ShiftedLogits(z, mask, axis)
    return negated(jnp.sum(sh.p * sh.log_p(), axis=axis))


def _softmax_entropy_jvp(axis, primals, tangents):
    z, mask = primals
    dz, _ = tangents
    sh = ShiftedLogits(z, mask, axis)
    h = -jnp.sum(sh.p * sh.log_p(), axis=axis, keepdims=True)
    grad = -sh.p * (sh.log_p() + h)
    return jnp.squeeze(h, axis), jnp.sum(grad * dz, axis=axis)


_softmax_entropy.defjvp(_softmax_entropy_jvp)


def entropy_from_logits(
    logits: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Entropy of softmax(logits), computed from the logits without forming log(0).

    .. math::
        H(\operatorname{softmax}(z)) = \operatorname{lse}(z) - \sum_j p_j z_j,
        \qquad \frac{\partial H}{\partial z_k} = -p_k (\log p_k + H).

    -inf logits are classes of probability 0: they contribute 0 and get gradient 0. A fully
    masked row gives 0. A +inf or NaN allowed logit gives NaN.

    Args:
      logits: shape ``[..., K, ...]``, floating dtype.
      axis: the class axis, or a tuple of axes flattened together.
      where: optional boolean mask, broadcastable to ``logits`` or per-example.
      base: logarithm base (static); None for nats.

    Returns:
      ``logits``' shape without ``axis``, float32 for half-precision logits.

    Raises:
      TypeError: the logits are not floating.
      ValueError: ``axis`` is out of range, ``where`` has the wrong shape, or ``base`` is
        invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> print(f"{je.entropy_from_logits(jnp.array([0.0, 0.0, -jnp.inf]), base=2):.4f}")
      1.0000
    """
    logits = arguments.as_array(logits, "logits")
    ca = arguments.ClassAxis(logits, axis, where)
    ln_b = arguments.log_base(base)
    z = ca.z.astype(arguments.compute_dtype(logits))
    h = _softmax_entropy(ca.clean(z, 0), ca.mask, ca.axis)
    return h if ln_b is None else h / ln_b
