r"""Reweighted cross-entropies: the focal losses (sigmoid and softmax) and poly-1.

Each is a cross-entropy of ``losses`` with a factor or a term that shifts the weight from
easy examples to hard ones. They are computed from log-sigmoid and max-shifted log-softmax
forms in at least float32, with ``jax.custom_jvp`` rules written from the closed-form
derivatives: values and gradients are finite wherever the mathematics is, at infinite and
huge logits included, and for every focusing exponent :math:`\gamma \ge 0` (the slope of
:math:`(1 - p)^\gamma` diverges at :math:`p = 1` for :math:`\gamma < 1`, but the loss's
derivative in the logits has the finite limit used here). With :math:`\gamma = 0` the
focal losses are the plain cross-entropies, computed by them.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from . import arguments
from .losses import (
    _sigmoid_inputs,
    sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
    softmax_cross_entropy_with_integer_labels,
)
from .numerics import is_zero, log_or_neg_inf, times_finite
from .softmax import (
    ShiftedLogits,
    XentSpec,
    _mask_parts,
    _p,
    _prepare,
    _row_blocks,
    _rows_stats,
    _targets,
    _upcast,
    class_masks,
    skipped_as_zero,
)
from .vocab.stats import finite_or_zero


def _gamma(gamma: object) -> float:
    return arguments.static_float(gamma, "gamma", 0.0, math.inf, high_open=True)


# Sigmoid focal loss.


def _sigmoid_focal_parts(z, y, ct, gamma, alpha):
    """The cross-entropy c, log q with q = 1 - p_t, the focal factor q^gamma, and alpha_t
    (1 without ``alpha``), in the compute dtype ``ct``. A label outside [0, 1] gives
    meaningless numbers here: see ``_bad_label``."""
    z, y = _upcast(z, ct), _upcast(y, ct)
    sp_neg = jax.nn.softplus(-z)  # -log sigmoid(z)
    sp_pos = jax.nn.softplus(z)  # -log(1 - sigmoid(z))
    # A zero label coefficient times an infinite softplus is 0; elsewhere the product is
    # kept, with its slope in y (the rules' own derivatives at hard labels).
    c = times_finite(y, sp_neg) + times_finite(1 - y, sp_pos)
    log_q = _log_q(z, y, sp_neg, sp_pos)
    alpha_t = 1 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
    return y, c, log_q, jnp.exp(gamma * log_q), sp_neg, sp_pos, alpha_t


@jax.custom_jvp
def _log_q(z, y, sp_neg, sp_pos):
    """log q, q = y sigmoid(-z) + (1 - y) sigmoid(z), in log space: exact at huge and
    infinite z. Its derivatives are written out: through log(y) and log1p(-y) they meet
    0 times inf at hard labels (NaN second derivatives of the loss in the labels)."""
    return jnp.logaddexp(jnp.log(y) - sp_pos, jnp.log1p(-y) - sp_neg)


def _log_q_jvp(primals, tangents):
    z, y, sp_neg, sp_pos = primals
    dz, dy, _, _ = tangents  # sp_neg and sp_pos are functions of z: their tangents are in dz
    out = _log_q(z, y, sp_neg, sp_pos)
    p, one_minus_p = jax.nn.sigmoid(z), jax.nn.sigmoid(-z)
    inv_q = jnp.where(out == -jnp.inf, 0, jnp.exp(-out))
    # d/dy = (1 - 2p) / q; d/dz = (1 - 2y) p (1 - p) / q = (1 - 2y) / (y / p + (1 - y) / (1 - p)).
    dout = jnp.zeros_like(out)
    if not is_zero(dy):
        dout = dout + (one_minus_p - p) * inv_q * dy
    if not is_zero(dz):
        inv = jnp.where(y != 0, y / p, 0) + jnp.where(y != 1, (1 - y) / one_minus_p, 0)
        dout = dout + jnp.where(inv == jnp.inf, 0, (1 - 2 * y) / inv) * dz
    return out, dout


_log_q.defjvp(_log_q_jvp, symbolic_zeros=True)


@jax.custom_jvp
def _apart(z: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """z and y behind a barrier: what is computed from them is not merged by the compiler
    with the same computation elsewhere. Differentiable, keeping symbolic zero tangents
    (a label's zero tangent made concrete would meet log1p(-y) = -inf at y = 1)."""
    return jax.lax.optimization_barrier((z, y))


def _apart_jvp(primals, tangents):
    return _apart(*primals), tuple(tangents)


_apart.defjvp(_apart_jvp, symbolic_zeros=True)


def _bad_label(y: jax.Array, x: jax.Array) -> jax.Array:
    """x, NaN where the label is outside [0, 1]. Applied once to each result, not to the
    labels first: a checked copy of the labels, shared by the terms, would be stored."""
    return jnp.where((y < 0) | (y > 1), jnp.nan, x)


def _weighted(alpha_t, x):
    """alpha_t x, 0 where the weight alpha_t is 0 and x is not finite; elsewhere the product
    itself, so that its slope in alpha_t (in the labels) is kept where alpha_t = 0."""
    return jnp.where((alpha_t == 0) & ~jnp.isfinite(x), 0, alpha_t * x)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def _sigmoid_focal(z, y, ct, gamma, alpha):
    _, c, _, f, _, _, alpha_t = _sigmoid_focal_parts(z, y, ct, gamma, alpha)
    # f = 0 only where c = 0 (a correct prediction at an infinite logit).
    return _bad_label(y, _weighted(alpha_t, f * c))


def _sigmoid_focal_slopes(z, y, ct, gamma, alpha, wrt_z: bool):
    """The derivative of the loss in z (``wrt_z``) or in y, elementwise.

    Computed from the inputs behind a barrier: sharing the forward's exps and logs (or
    the other slope's) would make the compiler store them whole, several copies of the
    logits; apart, each slope is one elementwise pass fused into its use.
    """
    z, y = _apart(z, y)
    if wrt_z:
        # Beyond |z| = -log(tiny), sigmoid(-|z|) is below the smallest normal number and
        # the slope is its limit at infinity to rounding: (1 - y)^(gamma + 1) at +inf and
        # -y^(gamma + 1) at -inf, whose own slope in z is 0. It is computed there from
        # z = 0 and replaced, so that differentiating this rule (Hessians) meets no
        # inf times 0.
        far = jnp.abs(_upcast(z, ct)) >= -math.log(jnp.finfo(ct).tiny)
        zs = jnp.where(far, 0, z)
        y, c, _, f, _, _, alpha_t = _sigmoid_focal_parts(zs, y, ct, gamma, alpha)
        p, one_minus_p = jax.nn.sigmoid(_upcast(zs, ct)), jax.nn.sigmoid(-_upcast(zs, ct))
        # d/dz = f [gamma (1 - 2y) c rho + (p - y)] with rho = p (1 - p) / q in [0, 1]:
        # 1 / rho = y / p + (1 - y) / (1 - p), each term 0 where its label weight is.
        # (p and 1 - p are positive here: zs is finite and below -log(tiny) in size.)
        inv = y / p + (1 - y) / one_minus_p
        rho = 1 / inv
        c_rho = jnp.where(rho == 0, 0, c * rho)
        # p - y as (1 - y) p - y (1 - p): exact for a hard label as p -> 1 or 0.
        p_minus_y = (1 - y) * p - y * one_minus_p
        slope = jnp.where(f == 0, 0, f * (gamma * (1 - 2 * y) * c_rho + p_minus_y))
        limit = jnp.where(_upcast(z, ct) > 0, (1 - y) ** (gamma + 1), -(y ** (gamma + 1)))
        return _bad_label(y, _weighted(alpha_t, jnp.where(far, limit, slope)))
    _, c, log_q0, f, _, _, alpha_t = _sigmoid_focal_parts(z, y, ct, gamma, alpha)
    loss = f * c
    # Where f = 0 every derivative is 0 (at an infinite logit, only where q = 0: f
    # underflows for a tiny label, where the slope is the limit below). The slope is
    # computed there from z = 0 and then set to 0, so that differentiating this rule
    # (Hessians) meets no inf times 0.
    dead = f == 0
    z_in = z
    z = jnp.where(dead, 0, z)
    y, c, log_q, f, sp_neg, sp_pos, _ = _sigmoid_focal_parts(z, y, ct, gamma, alpha)
    p = jax.nn.sigmoid(_upcast(z, ct))
    # d/dy = f [gamma (1 - 2p) c / q + softplus(-z) - softplus(z)]; 0 where f = 0
    # (q = 0: a hard label predicted with certainty at an infinite logit). Each term is
    # scaled by f and alpha_t before the sum and before gamma: the bracket alone overflows
    # at huge logits (4e38 at 2e38 for a total of -1.5e38).
    q = jnp.exp(log_q)
    f_c_q = f * jnp.where(c == 0, 0, c / jnp.where(q == 0, 1, q))
    slope = gamma * (1 - 2 * p) * _weighted(alpha_t, f_c_q)
    slope = slope + _weighted(alpha_t, f * sp_neg) - _weighted(alpha_t, f * sp_pos)
    if alpha is not None:
        # The weight's own slope, 2 alpha - 1, times the unweighted loss.
        # (Also where alpha_t = 0: alpha_t' L, with alpha = 0 or 1 at a hard label.)
        if 2 * alpha - 1 != 0:
            slope = slope + (2 * alpha - 1) * loss
    slope = jnp.where(dead | (f == 0), 0, slope)
    if alpha is not None:
        # At an infinite logit the terms are infinities of both signs: the slope is the
        # limit K |z| with K = y^g [a_t (g + 1) + (2 a - 1) y] at -inf, and
        # (1 - y)^g [-(g + 1) a_t + (2 a - 1)(1 - y)] at +inf (0 where K = 0).
        zc = _upcast(z_in, ct)
        # (1 at finite logits: the unselected branch's slope in y, near^(g - 1), would be
        # inf at a hard label, and NaN in reverse over reverse.)
        near = jnp.where(jnp.isinf(zc), jnp.where(zc < 0, y, 1 - y), 1)
        bracket = jnp.where(zc < 0, 1, -1) * (gamma + 1) * alpha_t + (2 * alpha - 1) * near
        k = near**gamma * bracket
        # K = 0 decided from its factors: near^g underflows for a tiny nonzero near.
        limit = jnp.where(k == 0, jnp.sign(bracket), k) * jnp.abs(zc)
        limit = jnp.where((near == 0) | (bracket == 0), 0, limit)
        slope = jnp.where(jnp.isinf(zc) & (log_q0 > -jnp.inf), limit, slope)
    return _bad_label(y, slope)


def _sigmoid_focal_jvp(ct, gamma, alpha, primals, tangents):
    z, y = primals
    dz, dy = tangents
    out = _sigmoid_focal(z, y, ct, gamma, alpha)
    dout = jnp.zeros_like(out)
    if not is_zero(dz):
        dout = dout + _sigmoid_focal_slopes(z, y, ct, gamma, alpha, True) * dz.astype(out.dtype)
    if not is_zero(dy):
        dout = dout + _sigmoid_focal_slopes(z, y, ct, gamma, alpha, False) * dy.astype(out.dtype)
    return out, dout


_sigmoid_focal.defjvp(_sigmoid_focal_jvp, symbolic_zeros=True)


def sigmoid_focal_loss(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    alpha: float | None = None,
    gamma: float = 2.0,
) -> jax.Array:
    r"""Sigmoid focal loss of logits against labels in [0, 1], elementwise.

    With :math:`p = \sigma(z)`, :math:`1 - p_t = y (1 - p) + (1 - y) p` and
    :math:`\alpha_t = \alpha y + (1 - \alpha)(1 - y)` (1 without ``alpha``):

    .. math::
        \ell(z, y) = \alpha_t\, (1 - p_t)^\gamma \left[y \operatorname{softplus}(-z)
        + (1 - y) \operatorname{softplus}(z)\right],

    the bracket being ``sigmoid_binary_cross_entropy``. It is computed in log space
    (:math:`\log(1 - p_t)` from log-sigmoids), so it is exact at huge logits and never
    NaN at infinite ones: ``z = +inf`` with ``y = 1`` gives 0 and ``z = -inf`` with
    ``y = 1`` gives +inf; a term with a zero weight (:math:`\alpha_t = 0`, or a zero label
    coefficient) is 0. With :math:`\gamma = 0` the value is :math:`\alpha_t` times the
    sigmoid cross-entropy exactly. For hard labels the gradient in z is
    :math:`\alpha_t (1 - p_t)^\gamma [\gamma\, p_t \log(p_t)\, (2y - 1) + (p - y)]`,
    finite for every :math:`\gamma \ge 0` (0 at an infinite logit predicting its label
    with certainty). A label outside [0, 1] gives NaN, as in the sigmoid cross-entropy.

    ``torchvision.ops.sigmoid_focal_loss(z, y, reduction='none')`` is ``alpha=0.25``
    (its default; its negative ``alpha`` is ``alpha=None`` here);
    ``optax.sigmoid_focal_loss(z, y)`` is ``alpha=None`` (its default). Both have
    ``gamma=2`` as default.

    Memory: elementwise, so the forward pass needs no temp memory. The derivative rule
    computes its slopes from the inputs apart from the forward's exps and logs, so that
    the compiler stores none of them: value-and-grad of the sum in the logits keeps one
    float32 array of the logits' size, the per-element losses, which XLA's CPU backend
    stores before its reduction kernel sums them (float32 or bfloat16 logits; it was five
    float32 copies), and 1.1x the time of the former rule; in the logits and the labels,
    six float32 copies (was eleven). Measured with ``memory_analysis()`` and interleaved
    medians at [2048, 4096] on the CPU.

    Args:
      logits: any shape, floating dtype.
      labels: targets in [0, 1] (hard or soft), the same shape.
      alpha: the weight :math:`\alpha \in [0, 1]` of the positive term (static), or None
        for no weighting.
      gamma: the focusing exponent :math:`\gamma \ge 0` (static).

    Returns:
      ``logits``' shape, float32 for half-precision logits (float64 stays float64).

    Raises:
      TypeError: the logits are not floating, or an option is not a Python number.
      ValueError: the shapes differ, or ``alpha`` or ``gamma`` is out of range.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> z = jnp.array([2.0, -1.0, jnp.inf, -jnp.inf])
      >>> loss = je.sigmoid_focal_loss(z, jnp.array([1.0, 1.0, 1.0, 1.0]), alpha=0.25)
      >>> print(", ".join(f"{v:.4f}" for v in loss))
      0.0005, 0.1755, 0.0000, inf

    References:
      T.-Y. Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
    """
    gamma = _gamma(gamma)
    a = None if alpha is None else arguments.static_float(alpha, "alpha", 0.0, 1.0, high_open=False)
    if gamma != 0:
        z, _, _ = _sigmoid_inputs(logits, labels, None)
        # The inputs as they are: the rule upcasts and checks them apart in its value and in
        # its slopes.
        return _sigmoid_focal(jnp.asarray(logits), jnp.asarray(labels), z.dtype, gamma, a)
    loss = sigmoid_binary_cross_entropy(logits, labels)
    if a is None:
        return loss
    _, y, _ = _sigmoid_inputs(logits, labels, None)
    return _weighted(a * y + (1 - a) * (1 - y), loss)


# Softmax focal loss with integer labels.


def _softmax_focal_parts(z, c, mask, axis):
    """With a = log(sum of the other classes' exp) - z_c (the log-odds against the label):
    -log p_c = softplus(a) and log(1 - p_c) = log sigmoid(a), both exact as p_c -> 1 or 0."""
    sh = ShiftedLogits(z, mask, axis)
    idx = jnp.expand_dims(c, axis)
    d_c = jnp.squeeze(jnp.take_along_axis(sh.d, idx, axis=axis), axis)
    is_c = jax.lax.broadcasted_iota(c.dtype, z.shape, axis) == idx
    d_rest = jnp.where(is_c, -jnp.inf, sh.d)
    # log of an empty sum: -inf with derivative 0 (reverse over reverse meets no 0/0).
    log_rest = log_or_neg_inf(jnp.sum(jnp.exp(d_rest), axis=axis, keepdims=True))
    # A label on a -inf logit (an all -inf row included): p_c = 0, the loss is +inf (an empty
    # row, all masked, has weight 0). One on a +inf logit: NaN, as for the cross-entropy.
    off = d_c == -jnp.inf
    a = jnp.where(off, jnp.inf, jnp.squeeze(log_rest, axis) - jnp.where(off, 0, d_c))
    nll = jax.nn.softplus(a)  # -log p_c
    nll = jnp.where(d_c == jnp.inf, jnp.nan, nll)
    log_u = jax.nn.log_sigmoid(a)  # log(1 - p_c)
    return sh, is_c, d_c, nll, d_rest, log_rest, log_u


def _softmax_focal_stats(gamma: float, ct):
    """The per-row values of a block of rows (classes last): d_c, -log p_c and log(1 - p_c)
    of the logits, and the shift, log-sum-exp, log of the other classes' sum, -log p_c and
    log(1 - p_c) of the logits the derivative rule reads (z = 0 in a row whose focal factor
    is 0, so that differentiating the rule meets no inf times 0)."""

    def fn(fb, rb, consts):
        zb, mb = fb
        cb, skb = rb
        (mc,) = consts
        mk = mb if mc is None else mc
        if skb is not None:
            # A skipped row is read as empty, whatever its logits hold.
            mk = ~skb if mk is None else mk & ~skb
        if mk is not None:
            mk = jnp.broadcast_to(mk, zb.shape)
        c = cb[:, 0]
        _, _, d_c, nll, _, _, log_u = _softmax_focal_parts(zb, c, mk, 1)
        dead = jnp.expand_dims(jnp.exp(gamma * log_u) == 0, -1)
        sh, _, _, nll_s, _, log_rest_s, log_u_s = _softmax_focal_parts(
            jnp.where(dead, 0, zb), c, mk, 1
        )
        e = functools.partial(jnp.expand_dims, axis=-1)
        return e(d_c), e(nll), e(log_u), sh.m, sh.log_s, log_rest_s, e(nll_s), e(log_u_s)

    return fn


def _softmax_focal_rows(z, c, mask, skip, gamma):
    """``_softmax_focal_stats`` over all rows, a block at a time, each [..., 1]."""
    ct = jnp.result_type(z.dtype, jnp.float32)
    mfull, mconst = _mask_parts(mask, z.shape)
    e = functools.partial(jnp.expand_dims, axis=-1)
    rows = (e(c), None if skip is None else e(skip))
    fn = _softmax_focal_stats(gamma, ct)
    return ct, _row_blocks(fn, (z, mfull), rows, (mconst,), ct, z.shape)


@functools.partial(jax.custom_jvp, nondiff_argnums=(5,))
def _softmax_focal(z, c, w, mask, skip, gamma):
    _, (_, nll, log_u, *_) = _softmax_focal_rows(z, c, mask, skip, gamma)
    nll, log_u = nll[..., 0], log_u[..., 0]
    return jnp.where(w != 0, w * (jnp.exp(gamma * log_u) * nll), 0)


def _softmax_focal_jvp(gamma, primals, tangents):
    z, c, w, mask, skip = primals
    dz, _, dw, _, _ = tangents
    ct, stats = _softmax_focal_rows(z, c, mask, skip, gamma)
    d_c, nll, log_u, m_s, log_s, log_rest, nll_s, log_u_s = stats
    f = jnp.exp(gamma * log_u[..., 0])  # (1 - p_c)^gamma
    out = jnp.where(w != 0, w * (f * nll[..., 0]), 0)
    dout = jnp.zeros_like(out)
    if not is_zero(dz):
        # Where f = 0 (p_c is 1) the derivative is 0. It is computed there from z = 0 and
        # then set to 0, so that differentiating this rule (Hessians) meets no inf times 0.
        # Written elementwise from the logits and the per-row values: one pass.
        dead = jnp.expand_dims(f == 0, -1)
        zf = jnp.where(dead, 0, _upcast(z, ct))
        if mask is not None:
            zf = jnp.where(mask, zf, -jnp.inf)
        if skip is not None:
            zf = jnp.where(jnp.expand_dims(skip, -1), -jnp.inf, zf)
        d = zf - m_s
        is_c = jax.lax.broadcasted_iota(c.dtype, z.shape, z.ndim - 1) == jnp.expand_dims(c, -1)
        # 0 in an all -inf row; there the exponent is kept finite (0 times inf in reverse
        # over reverse otherwise), as are the other terms' below.
        p = jnp.where(log_s == -jnp.inf, 0, jnp.exp(d - finite_or_zero(log_s)))
        f_s = jnp.exp(gamma * log_u_s)
        # d/dz_j = w f [(p_j - e_cj) + gamma p_c (-log p_c) rho_j] with
        # rho_j = (p_j - e_cj) / (1 - p_c): the other classes' own softmax, and -1 at the
        # label (finite as p_c -> 1).
        r = jnp.where(log_rest == -jnp.inf, 0, jnp.exp(d - finite_or_zero(log_rest)))
        rho = jnp.where(is_c, -1, r)
        p_c = jnp.exp(-nll_s)
        p_nll = jnp.where(p_c == 0, 0, p_c * jnp.where(p_c == 0, 0, nll_s))
        we = jnp.expand_dims(w, -1)
        scale = jnp.where(we != 0, we * f_s, 0)
        # p - e_c, with 1 - p_c taken as u (exact as p_c -> 1).
        p_minus_e = jnp.where(is_c, -jnp.exp(log_u_s), p)
        coef = p_minus_e + gamma * p_nll * rho
        coef = jnp.where(we != 0, scale * coef, 0)
        coef = jnp.where(dead, 0, coef)
        dout = dout + jnp.sum(coef * dz.astype(ct), axis=-1)
    if not is_zero(dw):
        # d/dw = f (-log p_c); reported as 0 at an excluded (-inf or masked) label logit.
        dout = dout + jnp.where(d_c[..., 0] == -jnp.inf, 0, f * nll[..., 0]) * dw
    return out, dout


_softmax_focal.defjvp(_softmax_focal_jvp, symbolic_zeros=True)


def softmax_focal_loss(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    gamma: float = 2.0,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    class_weights: jax.typing.ArrayLike | None = None,
    ignore_index: int | None = None,
) -> jax.Array:
    r"""Softmax focal loss of logits against integer class labels.

    With :math:`p = \operatorname{softmax}(z)` over the classes that ``where`` allows and
    per-class weights :math:`w` (the focal paper's :math:`\alpha_t`):

    .. math::
        \ell(z, c) = -w_c\, (1 - p_c)^\gamma \log p_c.

    :math:`1 - p_c` is computed as the sum of the other classes' probabilities, so the
    factor is exact as :math:`p_c \to 1`. A label on a -inf logit gives +inf; a -inf logit
    elsewhere gets gradient exactly 0. The gradient in the logits is
    :math:`w_c (1 - p_c)^\gamma [(p - e_c) + \gamma\, p_c (-\log p_c)\, \rho]`, with
    :math:`\rho_j = p_j / (1 - p_c)` for :math:`j \ne c` (the other classes' own softmax)
    and :math:`\rho_c = -1`: finite for every :math:`\gamma \ge 0`, also at
    :math:`p_c = 1` (a row whose only finite logit is the label's has gradient 0).

    The integer labels mean what they mean in ``softmax_cross_entropy_with_integer_labels``
    (one rule for both): a label equal to ``ignore_index``, or on a masked-out example,
    gives 0 with gradient 0 whatever the logits hold; a label naming a class that
    ``where`` excludes contributes 0; any other label outside ``[0, K)`` gives NaN. Of
    that loss's options, ``axis``, ``where``, ``class_weights`` and ``ignore_index``
    apply; ``label_smoothing`` and ``z_loss`` do not: the focal factor is a function of
    the one labelled class's probability, which a smoothed target does not single out, and
    a regulariser of the log-normaliser is no part of the focal loss (add
    ``softmax_cross_entropy_with_integer_labels``' z-loss separately if wanted).
    With :math:`\gamma = 0` this is that cross-entropy exactly.

    Memory: the logits are read as they are (half precision upcast inside the pass), a
    block of rows at a time: the row maximum, the sums and the label's terms come from one
    pass and only per-row values are kept; the derivative rule writes the gradient in one
    elementwise pass. The compiler's temp memory stays under 1% of the logits (float32;
    for bfloat16, the one float32 copy of the shared row-block passes).

    Args:
      logits: unnormalised log-probabilities, shape ``[..., K, ...]``, floating dtype.
      labels: integer class indices, ``logits``' shape without ``axis``.
      gamma: the focusing exponent :math:`\gamma \ge 0` (static).
      axis: the class axis, or a tuple of axes flattened together as the classes.
      where: optional boolean mask: broadcastable to ``logits`` (per class) or of
        ``labels``' shape (whole examples).
      class_weights: optional per-class weights, shape ``[K]``.
      ignore_index: a label value marking examples to skip (static), or None.

    Returns:
      The per-example loss, ``labels``' shape, float32 for half-precision logits.

    Raises:
      TypeError: the logits are not floating, the labels not integer, ``where`` not
        boolean, or an option of the wrong type.
      ValueError: the labels' shape is not the logits' shape without ``axis``, or an
        option is out of range.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> logits = jnp.log(jnp.array([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1]]))
      >>> loss = je.softmax_focal_loss(logits, jnp.array([0, 2]), gamma=2.0)
      >>> print(", ".join(f"{v:.4f}" for v in loss))
      0.0321, 1.8651

    References:
      T.-Y. Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
    """
    gamma = _gamma(gamma)
    if gamma == 0:
        return softmax_cross_entropy_with_integer_labels(
            logits,
            labels,
            axis=axis,
            where=where,
            class_weights=class_weights,
            ignore_index=ignore_index,
        )
    logits = arguments.as_array(logits, "logits")
    labels = arguments.as_array(labels, "labels")
    arguments.require_float(logits, "logits")
    arguments.require_integer(labels, "labels")
    opts = arguments.SoftmaxOptions.validate(ignore_index=ignore_index)
    ca = arguments.ClassAxis(logits, axis, where)
    if labels.shape != ca.batch_shape:
        raise ValueError(
            f"`labels` must have the logits' shape without the class axis: logits.shape="
            f"{logits.shape} with axis={axis!r} needs labels.shape={ca.batch_shape}, got "
            f"{labels.shape}."
        )
    weights = arguments.class_weight_array(class_weights, ca.class_shape)
    dtype = arguments.compute_dtype(logits)
    row_mask = ca.row_mask
    if ca.mask is not None and row_mask is None:
        # A row with no allowed class is excluded as a whole, whatever its label holds.
        row_mask = jnp.any(ca.mask, axis=ca.axis)
    status = arguments.label_status(
        labels, ca.num_classes, ignore_index=opts.ignore_index, row_mask=row_mask
    )
    counted = status.counted
    if ca.mask is not None:
        # A label naming a masked-out class contributes nothing.
        allowed = jnp.take_along_axis(ca.mask, ca.expand(status.target), axis=ca.axis)
        counted = counted & jnp.squeeze(allowed, ca.axis)
    w = jnp.ones(labels.shape, dtype)
    if weights is not None:
        w = arguments.gather(weights.astype(dtype), status.target)
    w = jnp.where(counted, w, 0)
    w = jnp.where(status.invalid, jnp.nan, w)
    # Read as they are (half precision upcast inside the fused pass), classes last; skipped
    # rows are read as empty, whatever their logits hold.
    mask, _ = class_masks(ca, where)
    skip = None
    if row_mask is not None or opts.ignore_index is not None:
        skip = status.skipped
    _, (z,), mask = _prepare(ca.axis, (ca.z,), mask, True)
    return _softmax_focal(z, status.target, w, mask, skip, gamma)


# Poly-1.


def _poly1_term(
    z: jax.Array,
    y: jax.Array,
    *,
    mask: jax.Array | None,
    skip: jax.Array | None,
    smoothing: float,
    axis: int,
) -> jax.Array:
    r""":math:`\sum_j t_j (1 - p_j)` over the allowed classes, p = softmax(z), with the targets
    t of ``softmax.softmax_xent_targets`` (smoothed, 0 outside ``mask``, NaN for a negative
    label) built inside the fused pass; rows where ``skip`` is True give 0, derivative 0.

    Read in the inputs' dtypes, computed in at least float32: the row maximum, then one fused
    reduction of the sum, the allowed count and :math:`\sum_j t_j p_j`, a block of rows at a
    time; the derivative rule writes the gradient in one elementwise pass from the inputs
    and those per-row values.
    """
    axis2, (z, y), mask = _prepare(axis, (z, y), mask, True)
    if axis2 != axis and skip is not None:
        skip = jnp.moveaxis(skip, axis, -1)
    spec = XentSpec(axis2, float(smoothing), True, False)
    return _poly1(spec, z, y, mask, skip)


def _poly1_stats(spec: XentSpec, ct):
    def stats(axis, z, y, mask):
        t = _targets(spec, ct, z.shape, y, None, None, None, mask, axis)
        sh = ShiftedLogits(z, mask, axis)
        value = jnp.sum(jnp.where(t != 0, t * (1 - sh.p), 0), axis=axis, keepdims=True)
        tp = jnp.sum(jnp.where(sh.p != 0, t * sh.p, 0), axis=axis, keepdims=True)
        return sh.m, jnp.exp(sh.log_s), value, tp

    return stats


def _poly1_parts(spec, z, y, mask, skip):
    ct = jnp.result_type(z, y, jnp.float32)
    m, s, value, tp = _rows_stats(_poly1_stats(spec, ct), (z, y), mask, spec.axis, ct, True, skip)
    if skip is not None:
        value = jnp.where(skip, 0, value)
    return ct, m, s, value, tp


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _poly1(spec, z, y, mask, skip):
    return jnp.squeeze(_poly1_parts(spec, z, y, mask, skip)[3], spec.axis)


def _poly1_jvp(spec, primals, tangents):
    z, y, mask, skip = primals
    dz, dy = tangents[:2]
    axis = spec.axis
    ct, m, s, value, tp = _poly1_parts(spec, z, y, mask, skip)
    out = jnp.squeeze(value, axis)
    dout = jnp.zeros_like(out)
    zf = skipped_as_zero(_upcast(z, ct), skip)
    if mask is not None:
        zf = jnp.where(mask, zf, -jnp.inf)
    p = _p(zf, m, s)

    def kept(x):
        return x if skip is None else jnp.where(skip, 0, x)

    def t_of(y_):
        return _targets(spec, ct, z.shape, skipped_as_zero(y_, skip), None, None, None, mask, axis)

    if not is_zero(dz):
        # d/dz_k = p_k (sum_j t_j p_j - t_k): exactly 0 at -inf and masked logits.
        coef = jnp.where(p != 0, p * (tp - t_of(y)), 0)
        dout = dout + jnp.sum(kept(coef) * dz.astype(ct), axis=axis)
    if not is_zero(dy):
        _, dt = jax.jvp(t_of, (y,), (dy,))
        slope = 1 - p if mask is None else jnp.where(mask, 1 - p, 0)
        dout = dout + jnp.sum(kept(slope) * dt, axis=axis)
    return out, dout


_poly1.defjvp(_poly1_jvp, symbolic_zeros=True)


def poly1_softmax_cross_entropy(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    epsilon: float = 1.0,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    label_smoothing: float = 0.0,
) -> jax.Array:
    r"""Poly-1 loss: softmax cross-entropy plus :math:`\epsilon` times its first
    polynomial term, against probability labels (one-hot or soft).

    With :math:`p = \operatorname{softmax}(z)` over the classes that ``where`` allows and
    :math:`t = (1 - \epsilon_s)\,y + \epsilon_s / K` the (smoothed) targets:

    .. math::
        \ell(z, y) = -\sum_{j \in \text{where}} t_j \log p_j
        + \epsilon \sum_{j \in \text{where}} t_j (1 - p_j),

    which for one-hot labels is :math:`-\log p_c + \epsilon (1 - p_c)`. The first term
    is ``softmax_cross_entropy`` (its conventions hold: a -inf logit with zero target mass
    contributes 0 and gets gradient exactly 0; target mass on it gives +inf; a fully
    masked row gives 0 with gradient 0; a negative label gives NaN). The second term's
    gradient is :math:`p_k (\sum_j t_j p_j - t_k)`. Of that loss's options, ``axis``,
    ``where`` and ``label_smoothing`` apply, the smoothed targets entering both terms;
    class weights and the z-loss are no part of the poly-1 loss and are not offered.

    Without smoothing this equals ``optax.poly_loss_cross_entropy(z, y,
    epsilon=epsilon)`` (whose default is :math:`\epsilon = 2`, the paper's choice for
    ImageNet; it is 1 here, the paper's Poly-1 example).

    Memory: both terms read the logits and labels as they are, a block of rows at a time,
    keeping per-row values only, and write the gradients in one elementwise pass each; the
    compiler's temp memory stays under 1% of the inputs (float32; for bfloat16, the one
    float32 copy of the shared row-block passes).

    Args:
      logits: unnormalised log-probabilities, shape ``[..., K, ...]``, floating dtype.
      labels: target probabilities, the same shape as ``logits``.
      epsilon: the coefficient :math:`\epsilon` of the polynomial term, any finite
        number (static; the paper uses values from -1 to 2).
      axis: the class axis, or a tuple of axes flattened together as the classes.
      where: optional boolean mask: broadcastable to ``logits`` (per class) or of the
        per-example shape (whole rows).
      label_smoothing: :math:`\epsilon_s \in [0, 1)` (static).

    Returns:
      The per-example loss, ``logits``' shape without ``axis``, float32 for
      half-precision logits (float64 stays float64).

    Raises:
      TypeError: the logits are not floating, ``where`` is not boolean, or an option is
        not a Python number.
      ValueError: the shapes differ, ``axis`` is out of range, or an option is out of
        range.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> logits = jnp.log(jnp.array([0.7, 0.2, 0.1]))
      >>> y = jnp.array([1.0, 0.0, 0.0])
      >>> print(f"{je.poly1_softmax_cross_entropy(logits, y, epsilon=1.0):.4f}")
      0.6567

    References:
      Z. Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification
      Loss Functions", ICLR 2022.
    """
    ce = softmax_cross_entropy(
        logits, labels, axis=axis, where=where, label_smoothing=label_smoothing
    )
    eps = arguments.static_number(epsilon, "epsilon")
    if not math.isfinite(eps):
        raise ValueError(f"`epsilon` must be a finite number, got {epsilon!r}.")
    if eps == 0:
        return ce
    logits = arguments.as_array(logits, "logits")
    labels = arguments.as_array(labels, "labels")
    opts = arguments.SoftmaxOptions.validate(label_smoothing)
    ca = arguments.ClassAxis(logits, axis, where)
    # Read as they are (half precision upcast inside the fused pass), as the cross-entropy.
    mask, skip = class_masks(ca, where)
    poly = _poly1_term(
        ca.z,
        ca.layout(labels),
        mask=mask,
        skip=skip,
        smoothing=opts.label_smoothing,
        axis=ca.axis,
    )
    return ce + eps * poly
