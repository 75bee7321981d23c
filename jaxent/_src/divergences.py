r"""Divergences between two distributions: cross-entropy and KL, on probabilities and logits.

The reference (target) distribution comes first: ``kl_divergence(p, q)`` is
:math:`D(p \,\|\, q)`. Computed in at least float32; gradients follow the convention of
``numerics``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from . import arguments
from .numerics import (
    held_at_zero,
    is_zero,
    negated,
    rel_entr,
    rel_entr_slope_p,
    rel_entr_slope_q,
    xlogx_slope,
    xlogx_to_sum,
    xlogy,
    xlogy_slope_x,
    xlogy_slope_y,
)
from .softmax import (
    RowSpec,
    _long_rows,
    _row_spec,
    _rows_stats,
    _sum,
    _upcast,
    class_masks,
    softmax_kl,
)


def _pair(p, q, axis, where):
    """Two distributions validated, in their common compute dtype, masked entries neutral."""
    p = arguments.probabilities(p, "p")
    q = arguments.probabilities(q, "q")
    arguments.require_same_shape(p, q, "p", "q")
    axes = arguments.normalize_axes(axis, p.ndim)
    mask = arguments.normalize_where(where, p.shape, axes)
    dtype = arguments.compute_dtype(p, q)
    p, q = p.astype(dtype), q.astype(dtype)
    if mask is not None:
        p, q = jnp.where(mask.full, p, 0), jnp.where(mask.full, q, 1)
    return p, q, axes, mask


# The sums over probabilities, fused: each row's terms are summed a block of rows at a time
# (``_rows_stats``), the inputs read as they are (half precision upcast inside the pass), and
# the derivative rule writes each slope elementwise from the inputs, so neither the forward nor
# the value-and-grad stores an array of the inputs' size (``jnp.sum`` of the terms stores them
# on XLA's CPU backend, whose fast reduction kernel takes no selects).

# Each kind's terms, summed then negated where the kind says (a negation per term would be a
# subtraction from a broadcast 0 inside the summand, which the CPU's reduction kernel stores).
_TERMS = {
    "kl": rel_entr,
    "xent": xlogy,
    "entropy": lambda p, q: xlogx_to_sum(p),
}
_NEGATED = {"kl": False, "xent": True, "entropy": True}
_SLOPES = {
    "kl": (rel_entr_slope_p, rel_entr_slope_q),
    "xent": (lambda p, q: -xlogy_slope_x(p, q), lambda p, q: -xlogy_slope_y(p, q)),
    "entropy": (lambda p, q: -xlogx_slope(p), None),
}


def pair_sum(kind, p, q, axis, where, base):
    """``sum_i term(p_i, q_i)`` over ``axis`` in ``base``, for ``kind`` "kl", "xent" or
    "entropy" (``q`` None)."""
    p = arguments.probabilities(p, "p")
    pair = (p,) if q is None else (p, arguments.probabilities(q, "q"))
    if q is not None:
        arguments.require_same_shape(p, pair[1], "p", "q")
    axes = arguments.normalize_axes(axis, p.ndim)
    ct = arguments.compute_dtype(*pair)
    if p.size == 0:
        # Nothing to read: the sums are empty (or there are no rows).
        mask = arguments.normalize_where(where, p.shape, axes)
        terms = _TERMS[kind](p.astype(ct), None if q is None else pair[1].astype(ct))
        return arguments.in_base(arguments.masked_sum(terms, axes, mask), base)
    # Integer (or boolean) probabilities become floats; floats are read as they are.
    pair = tuple(x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(ct) for x in pair)
    ca = arguments.ClassAxis(pair[0], axis, where, name="p")
    ln_b = arguments.log_base(base)
    mask, skip = class_masks(ca, where)
    full = tuple(ca.layout(x) for x in pair)
    classes = math.prod(p.shape[a] for a in axes)
    if kind == "entropy" and mask is None and not _long_rows(classes):
        # The entropy's summand is select-free (``xlogx_to_sum``): one whole-array reduction,
        # which XLA's CPU backend runs on every core, stores nothing. Longer rows take the
        # row blocks: reducing them whole, the backend writes the terms to fresh buffers
        # (at [1024, 131072] float32: 3.4x the naive form's forward time, 2 buffers per call).
        spec, moved = RowSpec(ca.axis, False), False
    else:
        spec, full, mask, moved = _row_spec(full[0], mask, ca.axis, full)
    if moved and skip is not None:
        skip = jnp.moveaxis(skip, ca.axis, -1)
    a, b = full if q is not None else (full[0], None)
    out = _pair_terms_sum(spec, kind, a, b, mask, skip)
    return arguments.in_units(out, ln_b)


def _pair_stats(kind):
    def stats(axis, *args):
        *pair, mask = args
        t = _TERMS[kind](*pair) if len(pair) == 2 else _TERMS[kind](pair[0], None)
        if mask is not None:
            t = jnp.where(mask, t, 0)
        return (_sum(t, axis),)

    return stats


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _pair_terms_sum(spec, kind, p, q, mask, skip):
    full = (p,) if q is None else (p, q)
    ct = jnp.result_type(*(x.dtype for x in full), jnp.float32)
    if spec.blocked:
        (s,) = _rows_stats(_pair_stats(kind), full, mask, spec.axis, ct, True)
    else:
        (s,) = _pair_stats(kind)(spec.axis, *(x.astype(ct) for x in full), mask)
    if _NEGATED[kind]:
        s = negated(s)
    if skip is not None:
        s = jnp.where(skip, 0, s)
    return jnp.squeeze(s, spec.axis)


def _pair_terms_sum_jvp(spec, kind, primals, tangents):
    p, q, mask, skip = primals
    out = _pair_terms_sum(spec, kind, p, q, mask, skip)
    ct = out.dtype
    # Upcast apart from the forward's upcast (see ``softmax._upcast_apart``).
    up = functools.partial(_upcast, dtype=ct)
    pf = up(p)
    qf = None if q is None else up(q)
    dout = jnp.zeros_like(out)
    for slope_fn, t in zip(_SLOPES[kind], tangents[:2], strict=True):
        if slope_fn is None or t is None or is_zero(t):
            continue
        slope = slope_fn(pf, qf)
        # Masked entries and skipped rows have slope 0, whatever they hold (NaN included).
        if mask is not None:
            slope = jnp.where(mask, slope, 0)
        if skip is not None:
            slope = jnp.where(skip, 0, slope)
        dout = dout + jnp.sum(slope * t.astype(ct), axis=spec.axis)
    return out, dout


_pair_terms_sum.defjvp(_pair_terms_sum_jvp, symbolic_zeros=True)


def cross_entropy(
    p: jax.typing.ArrayLike,
    q: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
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

    Memory: the inputs are read as they are (half precision upcast inside the pass) and
    summed a block of rows at a time; the derivative rule writes each slope elementwise, so
    no array of the inputs' size is stored (float32; for bfloat16, one copy of the inputs'
    bits, as in ``kl_divergence_from_logits``).

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
    return pair_sum("xent", p, q, axis, where, base)


def kl_divergence(
    p: jax.typing.ArrayLike,
    q: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
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

    Memory: the inputs are read as they are (half precision upcast inside the pass) and
    summed a block of rows at a time; the derivative rule writes each slope elementwise, so
    no array of the inputs' size is stored (float32; for bfloat16, one copy of the inputs'
    bits, as in ``kl_divergence_from_logits``).

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
    return pair_sum("kl", p, q, axis, where, base)


def kl_divergence_from_logits(
    p_logits: jax.typing.ArrayLike,
    q_logits: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""KL divergence :math:`D(\operatorname{softmax}(a) \,\|\, \operatorname{softmax}(b))`.

    .. math::
        D = \sum_{j:\,p_j > 0} p_j (\log p_j - \log q_j), \qquad
        \frac{\partial D}{\partial a_k} = p_k (\log p_k - \log q_k - D), \qquad
        \frac{\partial D}{\partial b_k} = q_k - p_k.

    The reference distribution's logits come first. Classes with a -inf logit in ``a``
    contribute 0 and get gradient 0; a -inf logit in ``b`` where ``a``'s is finite gives
    +inf, and there every derivative is 0 (in both arguments, forward and reverse mode,
    as for ``renyi_divergence_from_logits``, which agrees at order 1). A fully masked row
    gives 0. A value that rounding leaves below 0 (nearly equal rows, D about 1e-7 in
    float32) is returned as 0, with the derivatives above.

    Args:
      p_logits: logits of the reference distribution p, shape ``[..., K, ...]``.
      q_logits: logits of the approximating distribution q, the same shape.
      axis: the class axis, or a tuple of axes flattened together.
      where: optional boolean mask, broadcastable or per-example.
      base: logarithm base (static); None for nats.

    Returns:
      The per-example divergence, float32 for half-precision logits.

    Raises:
      TypeError: the logits are not floating.
      ValueError: the shapes differ, ``axis`` is out of range, or ``base`` is invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> a, b = jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.9, 0.1]))
      >>> print(f"{je.kl_divergence_from_logits(a, b, base=2):.4f}")
      0.7370
    """
    p_logits = arguments.as_array(p_logits, "p_logits")
    q_logits = arguments.as_array(q_logits, "q_logits")
    arguments.require_float(q_logits, "q_logits")
    arguments.require_same_shape(p_logits, q_logits, "p_logits", "q_logits")
    ca = arguments.ClassAxis(p_logits, axis, where, name="p_logits")
    ln_b = arguments.log_base(base)
    # Read as they are (half precision upcast inside the fused pass); see ``softmax``.
    mask, skip = class_masks(ca, where)
    d = softmax_kl(ca.z, ca.layout(q_logits), mask=mask, skip=skip, axis=ca.axis)
    # Two distributions: D >= 0, and a value below 0 is rounding (nearly equal rows).
    return arguments.in_units(held_at_zero(d, d < 0), ln_b)
