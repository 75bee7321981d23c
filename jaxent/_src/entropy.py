r"""Entropies: self-information, Shannon and binary entropy, on probabilities and on logits.

Every function is pure and elementwise or per-distribution (no batch reduction). Inputs of
any real dtype are computed in at least float32: float16 and bfloat16 come back as float32,
float64 stays float64. Gradients follow the convention of ``numerics``: exact where finite,
0 where a finite term has a diverging slope at a zero probability.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import arguments
from .divergences import pair_sum
from .f_divergences import (
    expm1_over_x,
    expm1_over_x_slope,
    log_power_mean,
    order,
    per_example_order,
)
from .numerics import is_zero, negated, xlogx
from .softmax import class_masks, softmax_entropy


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

    Memory: ``p`` is read as it is (half precision upcast inside the pass), and neither the
    forward pass nor value-and-grad stores an array of its size (float32 and bfloat16;
    with a per-class mask or rows of 65536 entries or more, bfloat16 keeps one copy of the
    input's bits).

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
    return pair_sum("entropy", p, None, axis, where, base)


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


def _softmax_entropy(z, mask, axis):
    """Entropy of softmax(z) along ``axis``, ``mask`` the allowed classes (or None)."""
    return softmax_entropy(z, mask=mask, axis=axis)


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
    # Read as they are (half precision upcast inside the fused pass); see ``softmax``.
    mask, skip = class_masks(ca, where)
    h = softmax_entropy(ca.z, mask=mask, skip=skip, axis=ca.axis)
    return arguments.in_units(h, ln_b)


def renyi_entropy(
    p: jax.typing.ArrayLike,
    alpha: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Rényi entropy of order :math:`\alpha` of the distributions ``p`` along ``axis``.

    .. math::
        H_\alpha(p) = \frac{1}{1 - \alpha} \log_b \frac{\sum_i p_i^\alpha}{\sum_i p_i},

    the sums over the entries in ``where`` with :math:`p_i > 0`; and its limits:
    :math:`H_1 = -\sum_i p_i \log_b p_i / \sum_i p_i` (Shannon),
    :math:`H_0 = \log_b(|\operatorname{supp} p| / \sum_i p_i)` (Hartley: zero and masked
    entries are not counted), :math:`H_\infty = -\log_b \max_i p_i` (min-entropy).

    For distributions (:math:`\sum p = 1`) this is the usual definition; the division by
    :math:`\sum p` (Rényi's, for incomplete distributions) keeps the value continuous at
    :math:`\alpha = 1` when rounding leaves :math:`\sum p \ne 1`. It is continuous and
    differentiable in ``p`` and :math:`\alpha` at :math:`\alpha = 1`, computed there
    without 0/0, and non-increasing in :math:`\alpha`. :math:`0^\alpha = 0` for every
    :math:`\alpha`. A fully masked or all-zero distribution gives 0. Negative, NaN or +inf
    entries inside the mask give NaN; so does a traced negative or NaN :math:`\alpha`.

    Gradients: exact where finite. At :math:`p_i = 0` the one-sided slope
    :math:`1/((\alpha - 1) \sum p)` for :math:`\alpha > 1`; 0 for :math:`\alpha \le 1`,
    where it diverges. In :math:`\alpha` at 1:
    :math:`-\tfrac12 \operatorname{Var}_p(\log p)`. At :math:`\alpha = 1` the gradient in
    p is that of :math:`-\sum p \log p / \sum p`, which differs from ``entropy``'s by
    :math:`H / \sum p` in every :math:`p_i` (the same along the simplex).

    Args:
      p: probabilities, shape ``[..., n, ...]``.
      alpha: the order, >= 0 or inf: a number or an array broadcasting against the
        per-distribution shape (the result takes the broadcast shape); differentiable.
      axis: the distribution axis or axes.
      where: optional boolean mask broadcastable to ``p``, or per-distribution.
      base: logarithm base (static); None for nats.

    Returns:
      ``p``'s shape without ``axis`` broadcast with ``alpha``'s, in the common float dtype
      of ``p`` and ``alpha``, at least float32.

    Raises:
      TypeError: ``p`` or ``alpha`` is not real-valued, or ``where`` is not boolean.
      ValueError: ``alpha`` does not broadcast or is known to be negative or NaN, ``axis``
        is out of range, ``where`` has the wrong shape, or ``base`` is invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> p = jnp.array([0.5, 0.25, 0.25, 0.0])
      >>> h = je.renyi_entropy(p, jnp.array([0.0, 1.0, 2.0, jnp.inf]), base=2)
      >>> print([f"{x:.4f}" for x in h])
      ['1.5850', '1.5000', '1.4150', '1.0000']

    References:
      A. Rényi, "On Measures of Entropy and Information", Proc. Fourth Berkeley Symp.
      Math. Statist. Prob. 1, 1961.
    """
    p = arguments.probabilities(p, "p")
    axes = arguments.normalize_axes(axis, p.ndim)
    mask = arguments.normalize_where(where, p.shape, axes)
    a = order(alpha, "alpha", arguments.batch_shape(p.shape, axes))
    dtype = arguments.compute_dtype(p, weights=(a,))
    p = p.astype(dtype)
    if mask is not None:
        p = jnp.where(mask.full, p, 0)
    p = arguments.flatten_axes(p, axes)
    beta = per_example_order(a, dtype) - 1
    sup = p > 0
    v = jnp.where(sup, jnp.log(jnp.where(sup, p, 1)), -jnp.inf)
    h = negated(log_power_mean(jnp.where(p >= 0, p, 0), v, beta))
    bad = jnp.any(~(p >= 0) | (p == jnp.inf), -1) | ~(a >= 0)
    return arguments.in_base(jnp.where(bad, jnp.nan, h), base)


def _tsallis_parts(p, beta):
    """Per entry: the term (p - p^q)/(q - 1) and the pieces of its derivatives."""
    sup = p > 0
    top = beta == jnp.inf
    log_p = jnp.log(jnp.where(sup, p, 1))
    bf = jnp.where(top, 0, beta)
    x = bf * log_p
    near = jnp.abs(x) <= 1
    xn = jnp.where(near, x, 0)
    bs = jnp.where(near | top, 1, beta)  # nonzero where used: |x| > 1 needs beta != 0
    e = jnp.exp(jnp.where(near, xn, x))  # p^(q - 1): finite, |x| <= 709 on the support
    value_near = negated(p * log_p * expm1_over_x(xn))
    value_far = (p - p * e) / bs
    value = jnp.where(sup & ~top, jnp.where(near, value_near, value_far), 0)
    # d/dp = (1 - q p^(q-1)) / (q - 1); off the support 1/(q - 1) for q > 1, else 0.
    q_e = jnp.where(beta == -1, 0, (1 + bf) * e)
    dp_on = jnp.where(near, negated(log_p * expm1_over_x(xn) + e), (1 - q_e) / bs)
    dp_off = jnp.where((beta > 0) & ~top, 1 / jnp.where(beta > 0, bf, 1), 0)
    dp = jnp.where(top, 0, jnp.where(sup, dp_on, dp_off))
    # d/dq = -p log(p)^2 chi(x) = (p e (1 - x) - p) / beta^2.
    dq_near = negated(p * log_p * log_p * expm1_over_x_slope(xn))
    dq_far = (p * e * (1 - x) - p) / (bs * bs)
    dq = jnp.where(sup & ~top, jnp.where(near, dq_near, dq_far), 0)
    return value, dp, dq


@jax.custom_jvp
def _tsallis_terms(p: jax.Array, beta: jax.Array) -> jax.Array:
    return _tsallis_parts(p, beta)[0]


def _tsallis_terms_jvp(primals, tangents):
    (p, beta), (dp, dbeta) = primals, tangents
    _, slope_p, slope_b = _tsallis_parts(p, beta)
    value = _tsallis_terms(p, beta)  # so that second derivatives take this rule too
    out = jnp.zeros_like(value)
    if not is_zero(dp):
        out = out + slope_p * dp
    if not is_zero(dbeta):
        out = out + slope_b * dbeta
    return value, out


_tsallis_terms.defjvp(_tsallis_terms_jvp, symbolic_zeros=True)
_tsallis_terms_compiled = jax.jit(_tsallis_terms)  # one compilation for eager calls


def tsallis_entropy(
    p: jax.typing.ArrayLike,
    q: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Tsallis entropy of index :math:`q` of the distributions ``p`` along ``axis``.

    .. math::
        S_q(p) = \frac{1 - \sum_i p_i^q}{q - 1}
            = \sum_{i \in \text{where}} \frac{p_i - p_i^q}{q - 1}
        \quad \text{for } \textstyle\sum p = 1,

    the sum over the entries with :math:`p_i > 0` (:math:`0^q = 0`, also for q = 0). The
    right-hand form, the one computed, uses ``p`` as given; its limits are
    :math:`S_1 = -\sum_i p_i \ln p_i` (Shannon, in nats, equal to ``entropy``),
    :math:`S_0 = |\operatorname{supp} p| - \sum_i p_i` and :math:`S_\infty = 0`. It is
    continuous and differentiable in ``p`` and q at q = 1, computed there without 0/0
    (``expm1``). Not a logarithm: there is no ``base``. A fully masked distribution gives 0.
    Negative or NaN entries inside the mask give NaN; so does a traced negative or NaN q.

    Gradients: :math:`(1 - q p_i^{q-1})/(q - 1)` in :math:`p_i`; at :math:`p_i = 0` the
    one-sided slope :math:`1/(q - 1)` for q > 1, 0 for q <= 1 (it diverges). In q at 1:
    :math:`-\tfrac12 \sum_i p_i (\ln p_i)^2`.

    Args:
      p: probabilities, shape ``[..., n, ...]``.
      q: the entropic index, >= 0 or inf: a number or an array broadcasting against the
        per-distribution shape (the result takes the broadcast shape); differentiable.
      axis: the distribution axis or axes.
      where: optional boolean mask broadcastable to ``p``, or per-distribution.

    Returns:
      ``p``'s shape without ``axis`` broadcast with ``q``'s, in the common float dtype of
      ``p`` and ``q``, at least float32.

    Raises:
      TypeError: ``p`` or ``q`` is not real-valued, or ``where`` is not boolean.
      ValueError: ``q`` does not broadcast or is known to be negative or NaN, ``axis`` is
        out of range, or ``where`` has the wrong shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> p = jnp.array([0.5, 0.25, 0.25])
      >>> print([f"{x:.4f}" for x in je.tsallis_entropy(p, jnp.array([0.0, 1.0, 2.0]))])
      ['2.0000', '1.0397', '0.6250']

    References:
      C. Tsallis, "Possible Generalization of Boltzmann-Gibbs Statistics", J. Stat. Phys.
      52, 1988.
    """
    p = arguments.probabilities(p, "p")
    axes = arguments.normalize_axes(axis, p.ndim)
    mask = arguments.normalize_where(where, p.shape, axes)
    a = order(q, "q", arguments.batch_shape(p.shape, axes))
    dtype = arguments.compute_dtype(p, weights=(a,))
    p = p.astype(dtype)
    if mask is not None:
        p = jnp.where(mask.full, p, 0)
    p = arguments.flatten_axes(p, axes)
    terms = _tsallis_terms_compiled(jnp.where(p >= 0, p, 0), per_example_order(a, dtype) - 1)
    s = jnp.sum(terms, -1)
    bad = jnp.any(~(p >= 0), -1) | ~(a >= 0)
    return jnp.where(bad, jnp.nan, s)
