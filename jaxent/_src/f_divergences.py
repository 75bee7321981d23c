r"""Divergences beyond KL: Jensen-Shannon, Rényi, total variation and Hellinger.

Each measure here is an f-divergence :math:`\sum_i q_i f(p_i / q_i)` or a monotone function
of one: the Rényi divergence of the power sum :math:`\sum_i p_i^\alpha q_i^{1-\alpha}`, the
Hellinger distance of the Bhattacharyya coefficient. The Rényi power mean
(``log_power_mean``) is written once here and also gives ``renyi_entropy``.

The reference distribution comes first, as in ``kl_divergence(p, q)``. Computed in at least
float32; gradients follow the convention of ``numerics``: exact where finite, 0 where the
slope diverges (at a zero probability, and at the cusp of the Hellinger distance).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import arguments
from .divergences import _pair
from .numerics import held_at_zero, is_zero
from .softmax import (
    ShiftedLogits,
    _mask_parts,
    _p,
    _row_blocks,
    _row_spec,
    _rows_stats,
    _upcast,
    class_masks,
    skipped_as_zero,
)

# |alpha - 1| up to which the Rényi power mean takes its form without cancellation near 1.
# (Wider, it would give 0 at p = q for alpha up to 2, where the far form's log-sum-exp
# rounds to 6e-8; but its slope in beta squares v - G, which overflows at |v| of about
# 2e19: a logit of -1e30 used as a mask made d/dalpha NaN at orders 0 and 0.5.)
_NEAR = 0.25


def _two(
    p: jax.typing.ArrayLike, q: jax.typing.ArrayLike, axis: arguments.Axis, where
) -> tuple[jax.Array, jax.Array, tuple[int, ...], arguments.Mask | None]:
    """``divergences._pair``: two distributions validated, masked entries neutral."""
    return _pair(p, q, axis, where)


def order(value: jax.typing.ArrayLike, name: str, batch: tuple[int, ...]) -> jax.Array:
    """An order (Rényi's alpha, Tsallis' q): a number or a real array that broadcasts against
    the per-example shape ``batch``. Known values (not traced) must be >= 0 or inf."""
    x = arguments.as_array(value, name)
    if x.dtype == jnp.bool_ or not (
        jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)
    ):
        raise TypeError(f"`{name}` must be a real number or array, got dtype {x.dtype}.")
    try:
        np.broadcast_shapes(x.shape, batch)
    except ValueError:
        raise ValueError(
            f"`{name}` has shape {x.shape}, which does not broadcast against the per-example "
            f"shape {batch}."
        ) from None
    if not arguments.is_traced(x):
        v = np.asarray(x, np.float64)
        if np.any(np.isnan(v) | (v < 0)):
            raise ValueError(
                f"`{name}` must be >= 0 (inf allowed), got {value!r}; a traced negative or "
                "NaN order gives NaN."
            )
    return x


def per_example_order(x: jax.Array, dtype) -> jax.Array:
    """An order laid out to broadcast against ``[..., K]`` rows: a trailing axis of 1."""
    return jnp.expand_dims(x.astype(dtype), -1)


# Taylor coefficients about 0, highest first, used for |x| below _SERIES_RADIUS, where the
# first omitted term is below 2e-16 of the value.
_SERIES_RADIUS = 0.1
# d/dx (e^x - 1)/x: (k - 1) / k! for k = 2..12.
_EXPM1_SLOPE_SERIES = tuple((k - 1) / math.factorial(k) for k in range(12, 1, -1))
# d/ds log(1 + s)/s: (-1)^k k / (k + 1) for k = 1..16.
_LOG1P_SLOPE_SERIES = tuple((-1) ** k * k / (k + 1) for k in range(16, 0, -1))


def _series(coefficients, x, closed):
    """A Taylor series near 0 and ``closed(x)`` elsewhere, neither evaluated where unused."""
    small = jnp.abs(x) < _SERIES_RADIUS
    xs = jnp.where(small, x, 0)
    out = jnp.zeros_like(x)
    for c in coefficients:
        out = out * xs + c
    return jnp.where(small, out, closed(jnp.where(small, 1, x)))


def expm1_over_x_slope(x: jax.Array) -> jax.Array:
    r""":math:`\frac{d}{dx}\frac{e^x - 1}{x} = \frac{x e^x - e^x + 1}{x^2}`, 1/2 at 0."""
    return _series(_EXPM1_SLOPE_SERIES, x, lambda u: (u * jnp.exp(u) - jnp.expm1(u)) / (u * u))


@jax.custom_jvp
def expm1_over_x(x: jax.Array) -> jax.Array:
    r""":math:`(e^x - 1)/x`, 1 at 0 (accurate everywhere: ``expm1``)."""
    safe = jnp.where(x == 0, 1, x)
    return jnp.where(x == 0, 1, jnp.expm1(safe) / safe)


expm1_over_x.defjvp(lambda p, t: (expm1_over_x(p[0]), expm1_over_x_slope(p[0]) * t[0]))


def _log1p_over_x_slope(s: jax.Array) -> jax.Array:
    r""":math:`\frac{d}{ds}\frac{\log(1 + s)}{s} = \frac{s/(1+s) - \log(1+s)}{s^2}`, -1/2 at 0."""
    return _series(_LOG1P_SLOPE_SERIES, s, lambda u: (u / (1 + u) - jnp.log1p(u)) / (u * u))


@jax.custom_jvp
def _log1p_over_x(s: jax.Array) -> jax.Array:
    safe = jnp.where(s == 0, 1, s)
    return jnp.where(s == 0, 1, jnp.log1p(safe) / safe)


_log1p_over_x.defjvp(lambda p, t: (_log1p_over_x(p[0]), _log1p_over_x_slope(p[0]) * t[0]))


class _LpmRows(NamedTuple):
    """Per-row values of the Rényi power mean (see ``_lpm_parts``): the result ``g`` and its
    slope ``db`` in beta, and what the elementwise slopes (``_lpm_cells``) are written from."""

    g: jax.Array
    db: jax.Array
    total: jax.Array  # sum of p, 1 in an empty row
    near: jax.Array  # beta near 0: the series forms
    top: jax.Array  # beta = inf: the maximum
    bn: jax.Array  # beta where near, else 0
    bf: jax.Array  # beta where neither near nor top, else 1
    g_fin: jax.Array  # g, 0 where infinite or empty
    k: jax.Array  # the log of the normaliser of the escort weights
    dead: jax.Array  # g infinite or the row empty: every slope 0
    lse: jax.Array  # the log-sum-exp of the far form
    v_max: jax.Array  # the largest v on the support
    key_max: jax.Array  # the largest tie key on the support (see ``_lpm_rows``)
    n_ties: jax.Array  # how many support entries reach it


def _log_weights(p, lp):
    """log p on the support (p > 0), -inf off it and at NaN; ``lp`` itself when given (from
    logits it is exact where p underflows, and such an entry stays on the support)."""
    if lp is not None:
        return lp
    pos = p > 0
    return jnp.where(pos, jnp.log(jnp.where(pos, p, 1)), -jnp.inf)


def _w_expm1(lw, x):
    """w (e^x - 1) with w = e^lw: finite wherever w e^x is, though w may underflow and e^x
    overflow (above x = 1 from e^(lw + x) - w, below without cancellation)."""
    big = x > 1
    xb = jnp.where(big, x, 0)
    return jnp.where(big, jnp.exp(lw + xb) - jnp.exp(lw), jnp.exp(lw) * jnp.expm1(x - xb))


def _w_expm1_over_x(lw, x):
    """w (e^x - 1) / x (w at x = 0), as ``_w_expm1``."""
    big = x > 1
    return jnp.where(
        big, _w_expm1(lw, x) / jnp.where(big, x, 1), jnp.exp(lw) * expm1_over_x(x * ~big)
    )


def _w_expm1_over_x_slope(lw, x):
    """w d/dx[(e^x - 1)/x], as ``_w_expm1``."""
    big = x > 1
    xb = jnp.where(big, x, 1)
    far = (xb * jnp.exp(lw + xb * big) - _w_expm1(lw, x)) / (xb * xb)
    return jnp.where(big, far, jnp.exp(lw) * expm1_over_x_slope(x * ~big))


def _lpm_rows(p, v, beta, axis, lp=None, key=None) -> _LpmRows:
    r"""The Rényi power mean G of ``v`` under the weights ``p``, per row, with the per-row
    values its slopes are written from.

    With :math:`w = p / \sum p` over the support (``lp`` > -inf; ``lp`` = log p, given
    when known more exactly than p),

    .. math:: G = \frac{1}{\beta} \log \sum_i w_i e^{\beta v_i}, \qquad
        G(0) = \sum_i w_i v_i, \qquad G(\infty) = \max_i v_i,

    0 for a row without support. ``v`` may be +inf on the support (a zero of q under p):
    G = +inf for :math:`\beta \ge 0`, and those terms are 0 for :math:`\beta < 0`. By
    log-sum-exp, except where that cancels: near :math:`\beta = 0` while
    :math:`k = \beta G` is small (:math:`|k| \le 1/2`), where it is computed as
    :math:`\log(1 + S)/S \cdot S/\beta` with :math:`S = \sum w\,\mathrm{expm1}(\beta v)`,
    free of 0/0. (Where :math:`|k| > 1/2` the log-sum-exp is exact, and S could overflow
    or cancel against -1.)

    At :math:`\beta = \infty` the slopes share 1 among the entries where ``key`` (v when
    not given) is largest: a key computed alike in every pass (v itself may be computed
    from different roundings of log p in the passes that write the slopes).
    """
    key = v if key is None else key
    lp = _log_weights(p, lp)
    sup = lp > -jnp.inf
    inf_v = sup & (v == jnp.inf)
    total = jnp.sum(p, axis, keepdims=True)
    empty = total == 0
    nan_row = jnp.isnan(total)
    hit = jnp.any(inf_v, axis, keepdims=True)
    # A dead row (no support, or G = +inf: a zero of q under p with beta >= 0, or on the
    # whole support) is read from here on as a uniform p with v = 0: its G is set below and
    # all its slopes are 0, and computed on its zeros and infinities, differentiating the
    # slopes (second derivatives, in reverse over reverse) would meet 0 times inf.
    all_inf = hit & ~jnp.any(sup & ~inf_v, axis, keepdims=True)
    gone = empty | (hit & (beta >= 0)) | all_inf
    p, lp, v = jnp.where(gone, 1, p), jnp.where(gone, 0, lp), jnp.where(gone, 0, v)
    sup = lp > -jnp.inf
    inf_v = sup & (v == jnp.inf)
    fin = sup & ~inf_v
    total = jnp.where(gone, p.shape[axis], total)
    log_total = jnp.log(total)
    lw = jnp.where(fin, lp - log_total, -jnp.inf)
    m_inf = jnp.sum(jnp.where(inf_v, p / total, 0), axis, keepdims=True)
    t = jnp.where(fin, v, 0)
    top = beta == jnp.inf
    # The log-sum-exp of log p + beta v over the finite terms.
    b_far = jnp.where(top | (beta == 0), 1, beta)
    a = jnp.where(fin, lp + b_far * t, -jnp.inf)
    a_max = jax.lax.stop_gradient(jnp.max(a, axis, keepdims=True))
    a_max = jnp.where(jnp.isfinite(a_max), a_max, 0)
    lse = jnp.log(jnp.sum(jnp.exp(a - a_max), axis, keepdims=True)) + a_max
    k_far = lse - log_total
    g_far = k_far / b_far
    near = (jnp.abs(beta) <= _NEAR) & ((jnp.abs(k_far) <= 0.5) | (beta == 0))
    bn = jnp.where(near, beta, 0)
    bf = jnp.where(near | top, 1, beta)
    neg = bn < 0
    bn_neg = jnp.where(neg, bn, -1)
    # Near 1: G = log1p(S)/S * M with M = S / beta, both free of 0/0.
    xn = bn * t
    s = jnp.sum(_w_expm1(lw, xn), axis, keepdims=True) - m_inf
    m = jnp.sum(t * _w_expm1_over_x(lw, xn), axis, keepdims=True)
    m = m - jnp.where(neg, m_inf / bn_neg, 0)
    g_near = _log1p_over_x(s) * m
    k_near = jnp.log1p(s)
    # alpha = inf: the largest value on the support.
    v_max = jnp.max(jnp.where(sup, v, -jnp.inf), axis, keepdims=True)
    g = jnp.where(top, v_max, jnp.where(near, g_near, g_far))
    infinite = (hit & (beta >= 0)) | all_inf | (g == jnp.inf)
    g = jnp.where((hit & (beta >= 0)) | all_inf, jnp.inf, g)
    g = jnp.where(empty, 0, jnp.where(nan_row, jnp.nan, g))
    dead = empty | infinite
    g_fin = jnp.where(dead, 0, g)
    k = jnp.where(near, k_near, k_far)
    k = jnp.where(dead | top, 0, k)
    key_max = jnp.max(jnp.where(sup, key, -jnp.inf), axis, keepdims=True)
    n_ties = jnp.sum(sup & (key == key_max), axis, keepdims=True)
    rows = _LpmRows(g, g, total, near, top, bn, bf, g_fin, k, dead, lse, v_max, key_max, n_ties)
    # dG/dbeta.
    x = _lpm_exponent(t, fin, rows)
    dx = (t - g_fin) ** 2 * _w_expm1_over_x_slope(lw, x)
    db_near = jnp.sum(jnp.where(fin, dx, 0), axis, keepdims=True)
    db_near = db_near + jnp.where(neg, m_inf / (bn_neg * bn_neg), 0)
    db_far = (jnp.sum(_lpm_r_far(lp, t, fin, rows) * t, axis, keepdims=True) - g_fin) / bf
    db = jnp.where(top | dead, 0, jnp.where(near, db_near, db_far))
    return rows._replace(db=db)


def _lpm_exponent(t, fin, rows: _LpmRows) -> jax.Array:
    """x = beta v - k on the finite support of a live row (0 elsewhere): the escort weight
    is w e^x."""
    x = jnp.where(rows.near, rows.bn, rows.bf) * t - rows.k
    return jnp.where(fin & ~rows.dead & ~rows.top, x, 0)


def _lpm_r_far(lp, t, fin, rows: _LpmRows) -> jax.Array:
    """The escort weights of the far form, exp(log p + beta v - lse); 0 in the rows that
    take the near form (there ``bf`` is 1, not the beta of ``lse``: e^(log p + v - lse)
    could overflow, and its derivatives, though unselected, be NaN)."""
    use = fin & ~rows.near
    a = jnp.where(use, lp + rows.bf * t, -jnp.inf)
    return jnp.where(use, jnp.exp(a - jnp.where(jnp.isfinite(rows.lse), rows.lse, 0)), 0)


def _lpm_cells(p, v, beta, rows: _LpmRows, lp=None, key=None):
    """The slopes of G in each ``p`` (holding v), ``dp``, and each ``v`` (the escort weights
    r), elementwise from the entries and their row's values, with ``p dp`` (finite where p
    underflows); 0 where G is infinite or the row empty."""
    lp = _log_weights(p, lp)
    sup = lp > -jnp.inf
    fin = sup & (v != jnp.inf)
    lw = jnp.where(fin, lp - jnp.log(rows.total), -jnp.inf)
    t = jnp.where(fin, v, 0)
    x = _lpm_exponent(t, fin, rows)
    top, near, dead = rows.top, rows.near, rows.dead
    # Escort weights r = w e^x = dG/dv; at alpha = inf the argmax, ties shared.
    r_near = jnp.exp(lw + x)
    r_far = _lpm_r_far(lp, t, fin, rows)
    ties = sup & ((v if key is None else key) == rows.key_max)
    r_top = ties / jnp.maximum(rows.n_ties, 1).astype(t.dtype)
    r = jnp.where(top, r_top, jnp.where(near, r_near, r_far))
    r = jnp.where(dead, 0, r)
    # dG/dp_i holding v: (e^x - 1) / (beta W) on the finite support; off it, -1/(beta W)
    # where the one-sided slope is finite (v_i = -inf with beta > 0, or +inf with beta < 0),
    # else 0 (it diverges).
    dp_near = expm1_over_x(x) * (t - rows.g_fin) / rows.total
    dp_far = jnp.expm1(x) / (rows.bf * rows.total)
    dp_fin = jnp.where(near, dp_near, dp_far)
    b_safe = jnp.where((beta == 0) | top, 1, beta)
    finite_off = ((beta > 0) & (v == -jnp.inf)) | ((beta < 0) & (v == jnp.inf))
    dp_off = jnp.where(finite_off & ~top, -1 / (b_safe * rows.total), 0)
    dp = jnp.where(fin, jnp.where(top, 0, dp_fin), dp_off)
    dp = jnp.where(dead, 0, dp)
    # p dp: on the finite support from the log-weights (p may underflow there, and dp
    # overflow), elsewhere p times the one-sided slope (0 off the support). That branch
    # reads dp_off, not dp: a product with an infinite dp, though unselected, would make
    # the second derivatives NaN.
    pdp_near = _w_expm1_over_x(lw, x) * (t - rows.g_fin)
    pdp_far = _w_expm1(lw, x) / rows.bf
    live = fin & ~top & ~dead
    pdp_rest = jnp.where(fin | dead, 0, p) * dp_off
    pdp = jnp.where(live, jnp.where(near, pdp_near, pdp_far), pdp_rest)
    return dp, r, pdp


def _lpm_parts(p, v, beta, lp, axis):
    """The Rényi power mean G of ``v`` under the weights ``p`` and the pieces of its JVP: G,
    its derivatives in ``p`` (holding v), ``v`` (the escort weights r) and beta, each 0
    where G is infinite or the row is empty (see ``_lpm_rows``)."""
    rows = _lpm_rows(p, v, beta, axis, lp)
    dp, r, _ = _lpm_cells(p, v, beta, rows, lp)
    return rows.g, dp, r, rows.db


@functools.partial(jax.custom_jvp, nondiff_argnums=(4,))
def _log_power_mean(p, v, beta, lp, axis):
    return _lpm_parts(p, v, beta, lp, axis)[0]


def _log_power_mean_jvp(axis, primals, tangents):
    p, v, beta, lp = primals  # lp (log p where known exactly) only locates the support
    dp, dv, dbeta, _ = tangents
    _, slope_p, r, slope_b = _lpm_parts(p, v, beta, lp, axis)
    g = _log_power_mean(p, v, beta, lp, axis)  # so that second derivatives take this rule too
    dg = jnp.zeros_like(g)
    if not is_zero(dp):
        dg = dg + jnp.sum(slope_p * dp, axis, keepdims=True)
    if not is_zero(dv):
        dg = dg + jnp.sum(jnp.where(r > 0, r * dv, 0), axis, keepdims=True)
    if not is_zero(dbeta):
        dg = dg + slope_b * dbeta
    return g, dg


_log_power_mean.defjvp(_log_power_mean_jvp, symbolic_zeros=True)
# One compilation for eager calls: op by op, the first would compile each of ~200 operations.
_log_power_mean_compiled = jax.jit(_log_power_mean, static_argnums=4)


def log_power_mean(
    p: jax.Array, v: jax.Array, beta: jax.Array, lp: jax.Array | None = None
) -> jax.Array:
    r"""The Rényi power mean :math:`\frac{1}{\beta}\log\sum_i \frac{p_i}{\sum_j p_j}
    e^{\beta v_i}` over the support of ``p`` along the last axis (see ``_lpm_parts``), with
    its JVP rule. ``p`` >= 0 (masked entries 0); ``v`` = -inf or +inf where ``p`` = 0 (that
    sets the one-sided slope in p there); ``beta`` with a trailing axis of 1; ``lp``, when
    given, log p (exact where p underflows: such an entry stays on the support). An empty
    last axis gives 0, as an all-zero ``p`` does."""
    if p.shape[-1] == 0:
        shape = jnp.broadcast_shapes(p.shape[:-1], v.shape[:-1], beta.shape[:-1])
        return jnp.zeros(shape, jnp.result_type(p, v, beta))
    return plus_zero(jnp.squeeze(_log_power_mean_compiled(p, v, beta, lp, -1), -1))


def plus_zero(x: jax.Array) -> jax.Array:
    """``x`` with -0 returned as +0; the derivative stays 1 (also at 0)."""
    return x - jax.lax.stop_gradient(jnp.where(x == 0, x, 0))


def _invalid(*xs: jax.Array) -> jax.Array:
    """Rows holding a negative, NaN or +inf entry, along the last axis."""
    return jnp.any(functools.reduce(jnp.logical_or, [~(x >= 0) | (x == jnp.inf) for x in xs]), -1)


def renyi_divergence(
    p: jax.typing.ArrayLike,
    q: jax.typing.ArrayLike,
    alpha: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Rényi divergence of order :math:`\alpha` of ``q`` from the reference ``p``.

    .. math::
        D_\alpha(p \,\|\, q) = \frac{1}{\alpha - 1}
            \log_b \frac{\sum_i p_i^\alpha q_i^{1-\alpha}}{\sum_i p_i},

    the sums over the entries in ``where`` with :math:`p_i > 0`; and its limits:
    :math:`D_1 = \sum_i p_i \log_b(p_i/q_i) / \sum_i p_i` (KL),
    :math:`D_0 = -\log_b \big(q(\operatorname{supp} p) / \sum_i p_i\big)`,
    :math:`D_\infty = \log_b \max_{p_i > 0} p_i / q_i`.

    For distributions (:math:`\sum p = 1`) this is the usual definition; the division by
    :math:`\sum p` (Rényi's, for incomplete distributions) keeps the value continuous at
    :math:`\alpha = 1` when rounding leaves :math:`\sum p \ne 1`. It is continuous and
    differentiable in ``p``, ``q`` and :math:`\alpha` at :math:`\alpha = 1` (computed there
    without 0/0) and non-decreasing in :math:`\alpha`. +inf where some
    :math:`q_i = 0 < p_i` and :math:`\alpha \ge 1`; for :math:`\alpha < 1` such terms are 0
    (+inf if q is 0 on the whole support of p). A fully masked or all-zero ``p`` gives 0.
    Negative, NaN or +inf entries inside the mask give NaN; so does a traced negative or
    NaN :math:`\alpha`. Where q's mass on the support of p is at most p's, the divergence
    is at least :math:`D_0 \ge 0`, and a value that rounding leaves below 0 (identical
    inputs give a few ulps below) is returned as 0, its derivatives those of the value
    computed (the function is 0 there to rounding, its slope need not be: in the order at
    order 0, :math:`\mathrm{KL}(q \| p)`); incomplete distributions with more mass in q
    keep their negative values.

    Gradients: exact where finite. In :math:`p_i = 0`, where the one-sided slope
    :math:`-1/((\alpha - 1) \sum p)` is finite (:math:`\alpha > 1`, :math:`q_i > 0`), that
    slope, else 0; in :math:`q_i = 0`, 0; everything 0 where the value is +inf. At
    :math:`\alpha = 1` they are those of :math:`\sum p \log(p/q) / \sum p`, which differ
    from ``kl_divergence``'s by :math:`D / \sum p` in every :math:`p_i` (the same along the
    simplex, where :math:`\sum_i dp_i = 0`).

    Args:
      p: reference probabilities, shape ``[..., n, ...]``.
      q: approximating probabilities, the same shape as ``p``.
      alpha: the order, >= 0 or inf: a number or an array broadcasting against the
        per-example shape (the result takes the broadcast shape); differentiable.
      axis: the distribution axis or axes.
      where: optional boolean mask broadcastable to ``p``, or per-distribution.
      base: logarithm base (static); None for nats.

    Returns:
      The per-example divergence, in the common float dtype of ``p``, ``q`` and ``alpha``,
      at least float32.

    Raises:
      TypeError: an input is not real-valued or ``where`` is not boolean.
      ValueError: the shapes differ, ``alpha`` does not broadcast or is known to be negative
        or NaN, ``axis`` is out of range, or ``base`` is invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> p, q = jnp.array([0.5, 0.5, 0.0]), jnp.array([0.25, 0.25, 0.5])
      >>> for a in (0.0, 0.5, 1.0, 2.0, jnp.inf):
      ...     print(f"{je.renyi_divergence(p, q, a, base=2):.4f}")
      1.0000
      1.0000
      1.0000
      1.0000
      1.0000
      >>> d = je.renyi_divergence(jnp.array([0.9, 0.1]), jnp.array([0.5, 0.5]),
      ...                         jnp.array([0.5, 1.0, 2.0]))
      >>> print([f"{x:.4f}" for x in d])
      ['0.2231', '0.3681', '0.4947']

    References:
      A. Rényi, "On Measures of Entropy and Information", 1961.
      T. van Erven and P. Harremoës, "Rényi Divergence and Kullback-Leibler Divergence",
      IEEE Trans. Inf. Theory 60(7), 2014.
    """
    x, y, axes, _ = _two(p, q, axis, where)
    a = order(alpha, "alpha", arguments.batch_shape(x.shape, axes))
    dtype = arguments.compute_dtype(x, y, weights=(a,))
    x, y = (arguments.flatten_axes(z.astype(dtype), axes) for z in (x, y))
    beta = per_example_order(a, dtype) - 1
    both = (x > 0) & (y > 0)
    log_ratio = jnp.log(jnp.where(both, x, 1)) - jnp.log(jnp.where(both, y, 1))
    v = jnp.where(both, log_ratio, jnp.where(y > 0, -jnp.inf, jnp.inf))
    w = jnp.where(x >= 0, x, 0)
    d = log_power_mean(w, v, beta)
    # D >= D_0 = -log(Q / P) >= 0 where q's mass Q on the support of p is at most p's mass
    # P: a value below 0 there is rounding, held at 0 (its slope kept). Elsewhere (incomplete
    # distributions, Q > P) the divergence can be truly negative and is left as computed.
    mass_q = jnp.sum(jnp.where(w > 0, y, 0), -1)
    d = held_at_zero(d, (d < 0) & (mass_q <= jnp.sum(w, -1)))
    d = jnp.where(_invalid(x, y) | ~(a >= 0), jnp.nan, d)
    return arguments.in_base(d, base)


def renyi_divergence_from_logits(
    p_logits: jax.typing.ArrayLike,
    q_logits: jax.typing.ArrayLike,
    alpha: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Rényi divergence :math:`D_\alpha(\operatorname{softmax}(a) \,\|\,
    \operatorname{softmax}(b))`, from the logits.

    .. math::
        D_\alpha = \frac{1}{\alpha - 1} \log_b \sum_{j:\,p_j > 0} p_j
            e^{(\alpha - 1)(\log p_j - \log q_j)},

    with the limits of ``renyi_divergence`` at :math:`\alpha = 0, 1, \infty` (at 1 it equals
    ``kl_divergence_from_logits``). Computed from max-shifted log-softmaxes; near
    :math:`\alpha = 1` without 0/0. Classes with a -inf logit in ``a`` take no part and get
    gradient 0; a -inf logit in ``b`` where ``a``'s is finite gives +inf for
    :math:`\alpha \ge 1` and takes no part below 1. A fully masked row gives 0; a +inf or
    NaN allowed logit gives NaN. A value that rounding leaves below 0 (identical inputs) is
    returned as 0, with the derivatives of the value computed (see ``renyi_divergence``).

    Memory: the logits are read as they are (half precision upcast inside the pass), a
    block of rows at a time: the row maxima and sums, the power mean in its form for each
    row's order (a series near 1, a log-sum-exp away from it, a maximum at infinity) and
    the row sums its slopes need come from one pass, and the derivative rule writes each
    gradient in one elementwise pass from the logits and those per-row values. Measured
    with ``memory_analysis()`` at [1024, 32768] with a traced order per example, forward
    and value-and-grad: 0.26% and 0.54% of the two logit arrays in float32 (it was up to
    six float32 copies), masks and ``base`` included; bfloat16 adds the one
    bfloat16-sized copy of the shared row-block passes. At [2048, 4096] float32, order 2
    (interleaved medians on the CPU): forward 0.98x the time of the naive
    ``log(sum(p * p / q))`` on whole softmaxes, value-and-grad 1.66x (it stores
    0.5 MiB of temp where the naive form stores 128 MiB). An order array that spreads a
    per-example axis of size 1 takes the whole-array form.

    Args:
      p_logits: logits of the reference distribution p, shape ``[..., K, ...]``.
      q_logits: logits of the approximating distribution q, the same shape.
      alpha: the order, >= 0 or inf, a number or an array broadcasting against the
        per-example shape; differentiable.
      axis: the class axis, or a tuple of axes flattened together.
      where: optional boolean mask, broadcastable or per-example.
      base: logarithm base (static); None for nats.

    Returns:
      The per-example divergence, float32 for half-precision logits.

    Raises:
      TypeError: the logits are not floating.
      ValueError: the shapes differ, ``alpha`` does not broadcast or is known to be negative,
        ``axis`` is out of range, or ``base`` is invalid.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxent as je
      >>> a, b = jnp.log(jnp.array([0.9, 0.1])), jnp.array([0.0, 0.0])
      >>> print(f"{je.renyi_divergence_from_logits(a, b, 2.0):.4f}")
      0.4947

    References:
      T. van Erven and P. Harremoës, "Rényi Divergence and Kullback-Leibler Divergence", 2014.
    """
    p_logits = arguments.as_array(p_logits, "p_logits")
    q_logits = arguments.as_array(q_logits, "q_logits")
    arguments.require_float(q_logits, "q_logits")
    arguments.require_same_shape(p_logits, q_logits, "p_logits", "q_logits")
    ca = arguments.ClassAxis(p_logits, axis, where, name="p_logits")
    batch = ca.batch_shape
    order_ = order(alpha, "alpha", batch)
    dtype = arguments.compute_dtype(p_logits, q_logits, weights=(order_,))
    shape = np.broadcast_shapes(order_.shape, batch)
    extra = shape[: len(shape) - len(batch)]
    if shape[len(extra) :] != batch:
        # An order that spreads a per-example axis of size 1: the logits broadcast along it.
        d = _renyi_unfused(p_logits, q_logits, order_, dtype, axis, where)
    else:
        # Read as they are (half precision upcast inside the fused pass); see ``softmax``.
        mask, skip = class_masks(ca, where)
        spec, (a, b), mask, moved = _row_spec(ca.z, mask, ca.axis, (ca.z, ca.layout(q_logits)))
        if moved and skip is not None:
            skip = jnp.moveaxis(skip, ca.axis, -1)
        beta = jnp.broadcast_to(per_example_order(order_, dtype) - 1, (*shape, 1))
        ct = jnp.result_type(a.dtype, b.dtype, dtype)
        beta = beta.astype(ct).reshape((math.prod(extra), *batch, 1))

        def one(bt):
            return _renyi_logits_compiled(spec, a, b, bt, mask, skip)

        # Orders on axes before the per-example ones: one fused pass per order.
        d = jax.vmap(one)(beta).reshape(shape) if extra else one(beta[0])
    # Two distributions: D >= 0, and a value below 0 is rounding, held at 0 (slope kept).
    d = plus_zero(held_at_zero(d, d < 0))
    d = jnp.where(~(order_ >= 0), jnp.nan, d)
    return arguments.in_base(d, base)


def _renyi_unfused(p_logits, q_logits, order_, dtype, axis, where):
    """The Rényi divergence from whole softmax arrays (see ``log_power_mean``)."""
    a, b, mask, _ = _logit_pair(p_logits, q_logits, axis, where)
    beta = per_example_order(order_, dtype) - 1
    a, b = a.astype(dtype), b.astype(dtype)
    sa, sb = ShiftedLogits(a, mask, -1), ShiftedLogits(b, mask, -1)
    lp, p, v, _, offset = _renyi_v(a, b, beta, mask, sa, sb)
    d = log_power_mean(p, v, beta, jax.lax.stop_gradient(lp))
    d = d + jnp.squeeze(offset, -1)
    sup = lp > -jnp.inf
    key_max = jnp.max(jnp.where(sup, a - b, -jnp.inf), -1, keepdims=True)
    use = (beta == jnp.inf) & jnp.any(sup, -1, keepdims=True)
    d = jnp.where(
        jnp.squeeze(use, -1) & jnp.isfinite(d), jnp.squeeze(_renyi_top(key_max, sa, sb), -1), d
    )
    q_bad = _q_bad(b, mask)
    return jnp.where(jnp.squeeze(q_bad, -1), jnp.nan, d)


def _q_bad(b, mask):
    """Rows where an allowed logit of q is +inf or NaN (keepdims)."""
    bb = jnp.where(jnp.isnan(b), jnp.inf, b)
    if mask is not None:
        bb = jnp.where(mask, bb, -jnp.inf)
    return jnp.max(bb, -1, keepdims=True) == jnp.inf


def _renyi_stats(a, b, beta, mask):
    """Per-row (m_a, s_a, m_b, s_b, c, peak, the power mean's row values, sum p dG/dp,
    sum r) of a block of rows; G is that of v measured as ``_escort_peak`` sets, and its
    value g is the divergence."""
    sa, sb = ShiftedLogits(a, mask, -1), ShiftedLogits(b, mask, -1)
    lp, p, v, (c, peak), offset = _renyi_v(a, b, beta, mask, sa, sb)
    # Ties at alpha = inf by a - b (the largest log p - log q), as the slopes' passes read it.
    rows = _lpm_rows(p, v, beta, -1, lp, a - b)
    _, r, pdp = _lpm_cells(p, v, beta, rows, lp, a - b)
    big_p = jnp.sum(pdp, -1, keepdims=True)
    big_r = jnp.sum(r, -1, keepdims=True)
    g = rows.g + offset
    g = jnp.where(rows.top & ~rows.dead & jnp.isfinite(g), _renyi_top(rows.key_max, sa, sb), g)
    # A +inf (or NaN) allowed logit of q gives NaN, as one of p does.
    rows = rows._replace(g=jnp.where(_q_bad(b, mask), jnp.nan, g))
    return sa.m, jnp.exp(sa.log_s), sb.m, jnp.exp(sb.log_s), c, peak, *rows, big_p, big_r


def _renyi_v(a, b, beta, mask, sa, sb):
    """log p, p and v of each entry, v measured as ``_escort_peak`` sets; (c, peak); and
    the offset the value adds back (``_renyi_offset``)."""
    bm = b if mask is None else jnp.where(mask, b, -jnp.inf)
    lp = _renyi_lp(sa.d, sa.log_s)
    c, peak = _escort_peak(lp, bm, beta, sb.m, sb.log_s)
    lp, p, v = _renyi_lp_p_v(lp, sa.p, _neg_log_q(c, peak, bm, sb.m, sb.log_s))
    return lp, p, v, (c, peak), _renyi_offset(lp, c, peak, sb.m, sb.log_s)


def _renyi_top(key_max, sa, sb):
    """At alpha = inf, D = max(a - b) - lse(a) + lse(b) over p's support (``key_max`` the
    largest a - b there): exactly 0 at p = q."""
    return key_max + (sb.m - sa.m) + (sb.log_s - sa.log_s)


def _renyi_lp(d, log_s):
    """log p from the shifted logits and their log-sum (exact where p underflows); -inf
    off the support and in rows without one."""
    return jnp.where(log_s == -jnp.inf, -jnp.inf, d - log_s)


# How far (in nats) q's logit where the escort weights peak may lie below lse(q) before v
# is measured from that logit rather than from lse(q).
_FRAME_SHIFT = 16.0


def _escort_peak(lp, bm, beta, mb, log_sb):
    r"""Where v = log p - log q is measured from, per row (keepdims): (c, peak).

    c is the logit of q where the escort weights :math:`p^\alpha q^{1-\alpha}` peak on
    p's support (the largest :math:`\alpha \log p - \beta b`; at :math:`\alpha =
    \infty` the largest :math:`\log p - b`; the largest such logit at ties). Where it lies
    more than ``_FRAME_SHIFT`` below lse(q) (``peak``), the power mean is taken of
    v - (lse(b) - c) = log p - (b - c), whose dominant entries are of the order of log p
    whatever q's logits elsewhere: log p - log q would carry lse(b) into them and lose
    them under a huge logit of q (1e8 in float32). G shifts with v, so the value adds
    lse(b) - c back (``_renyi_offset``). Elsewhere v is log p - log q as it is, exactly 0
    where p = q."""
    top = beta == jnp.inf
    bt = jnp.where(top, 1, beta)
    on = (lp > -jnp.inf) & jnp.isfinite(bm)
    # (Off ``on`` the product may be NaN; unselected, and c takes no gradient.)
    score = jnp.where(on, (bt + 1) * lp - bt * bm, -jnp.inf)
    best = jnp.max(score, -1, keepdims=True)
    c = jnp.max(jnp.where(on & (score == best), bm, -jnp.inf), -1, keepdims=True)
    c = jax.lax.stop_gradient(jnp.where(jnp.isfinite(c), c, mb))
    peak = jax.lax.stop_gradient((mb - c) + log_sb > _FRAME_SHIFT)
    return c, peak


def _neg_log_q(c, peak, bm, mb, log_sb):
    """-log q = log s_b - (b - m_b), or c - b = 0 - (b - c) where v is measured from c
    (``peak``): one form, with its row values chosen; +inf where q is 0."""
    v_q = jnp.where(peak, 0, log_sb) - (bm - jnp.where(peak, c, mb))
    return jnp.where(log_sb == -jnp.inf, jnp.inf, v_q)


def _renyi_offset(lp, c, peak, mb, log_sb):
    """lse(b) - c where v is measured from c, added to its power mean; 0 elsewhere and in
    rows without support or without a finite logit of q (there the value is set apart)."""
    ok = jnp.any(lp > -jnp.inf, -1, keepdims=True) & (log_sb > -jnp.inf) & peak
    return jnp.where(ok, (mb - c) + jnp.where(ok, log_sb, 0), 0)


def _renyi_lp_p_v(lp, p, neg_log_q):
    """log p, p and v = log p - log q (measured as ``neg_log_q`` is) of each entry; the
    support is every finite logit of p (NaN included, so that a NaN logit gives NaN)."""
    positive = lp != -jnp.inf
    v = jnp.where(positive, lp + neg_log_q, -jnp.inf)
    return jnp.where(positive, lp, -jnp.inf), jnp.where(positive, p, 0), v


def _renyi_parts(spec, a, b, beta, mask, skip):
    ct = beta.dtype
    mfull, mconst = _mask_parts(mask, a.shape)

    def fn(fb, rb, consts):
        (mc,) = consts
        mk = fb[2] if mc is None else mc
        if mk is not None:
            mk = jnp.broadcast_to(mk, fb[0].shape)
        return _renyi_stats(fb[0], fb[1], rb[0], mk)

    out = _row_blocks(fn, (a, b, mfull), (beta,), (mconst,), ct, a.shape, skip)
    ma, sa, mb, sb, c, peak = out[:6]
    rows = _LpmRows(*out[6:-2])
    big_p, big_r = out[-2:]
    return ct, ma, sa, mb, sb, (c, peak), rows, big_p, big_r


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _renyi_logits(spec, a, b, beta, mask, skip):
    g = _renyi_parts(spec, a, b, beta, mask, skip)[6].g
    if skip is not None:
        g = jnp.where(skip, 0, g)
    return jnp.squeeze(g, -1)


def _renyi_cells(af, bf, beta, ma, sa, mb, sb, frame, rows, p_of):
    """p and v of each entry from the per-row shifts and sums (``p_of``: ``softmax._p`` or
    ``_p_apart``, so that the two gradients' passes do not share them), and the slopes of
    the power mean there: (p, dG/dp, r, p dG/dp)."""
    p = p_of(af, ma, sa)
    log_sa = jnp.where(sa > 0, jnp.log(jnp.where(sa > 0, sa, 1)), -jnp.inf)
    log_sb = jnp.where(sb > 0, jnp.log(jnp.where(sb > 0, sb, 1)), -jnp.inf)
    # log p and its support written apart, too (the same value; shared, they would be stored).
    d, log_s = (af - ma, log_sa) if p_of is _p else (af, log_sa + ma)
    lp, p, v = _renyi_lp_p_v(_renyi_lp(d, log_s), p, _neg_log_q(*frame, bf, mb, log_sb))
    dp, r, pdp = _lpm_cells(p, v, beta, rows, lp, af - bf)
    return p, dp, r, pdp


def _renyi_logits_jvp(spec, primals, tangents):
    a, b, beta, mask, skip = primals
    da, db, dbeta = tangents[:3]
    ct, ma, sa, mb, sb, frame, rows, big_p, big_r = _renyi_parts(spec, a, b, beta, mask, skip)

    def kept(x):
        return x if skip is None else jnp.where(skip, 0, x)

    out = jnp.squeeze(kept(rows.g), -1)
    dout = jnp.zeros_like(out)
    af, bf = skipped_as_zero(_upcast(a, ct), skip), skipped_as_zero(_upcast(b, ct), skip)
    if mask is not None:
        af = jnp.where(mask, af, -jnp.inf)
        bf = jnp.where(mask, bf, -jnp.inf)
    # With r the escort weights and R, P their row sums and that of p dG/dp:
    # dD/da = p (dG/dp - P) + r - p R, and dD/db = q R - r. Each gradient's pass writes
    # what it needs elementwise from the logits and the per-row values.
    if not is_zero(da):
        p, _, r, pdp = _renyi_cells(af, bf, beta, ma, sa, mb, sb, frame, rows, _p)
        coef = kept(pdp - p * big_p + r - p * big_r)
        dout = dout + jnp.sum(coef * da.astype(ct), axis=-1)
    if not is_zero(db):
        _, _, r, _ = _renyi_cells(af, bf, beta, ma, sa, mb, sb, frame, rows, _p_apart)
        coef = kept(_p(bf, mb, sb) * big_r - r)
        dout = dout + jnp.sum(coef * db.astype(ct), axis=-1)
    if not is_zero(dbeta):
        dout = dout + jnp.squeeze(kept(rows.db) * dbeta, -1)
    return out, dout


_renyi_logits.defjvp(_renyi_logits_jvp, symbolic_zeros=True)
# One compilation for eager calls (as ``_log_power_mean_compiled``).
_renyi_logits_compiled = jax.jit(_renyi_logits, static_argnums=0)


def _logit_pair(p_logits, q_logits, axis, where):
    """Two logit arrays validated, classes on the last axis, masked entries 0; the mask laid
    out alike, and the per-example shape."""
    p_logits = arguments.as_array(p_logits, "p_logits")
    q_logits = arguments.as_array(q_logits, "q_logits")
    arguments.require_float(q_logits, "q_logits")
    arguments.require_same_shape(p_logits, q_logits, "p_logits", "q_logits")
    ca = arguments.ClassAxis(p_logits, axis, where, name="p_logits")

    def last(x):
        return None if x is None else jnp.moveaxis(x, ca.axis, -1)

    a, b = ca.clean(ca.z, 0), ca.clean(ca.layout(q_logits), 0)
    return last(a), last(b), last(ca.mask), ca.batch_shape


# Jensen-Shannon.

# 1 / (k (2k - 1)) for k = 14..1: the Taylor coefficients of _js_bracket in d^2.
_JS_SERIES = tuple(1 / (k * (2 * k - 1)) for k in range(14, 0, -1))


def _js_bracket(d: jax.Array) -> jax.Array:
    r""":math:`(1 + d)\log(1 + d) + (1 - d)\log(1 - d)` on [-1, 1], 2 log 2 at the ends.

    A series in :math:`d^2` for :math:`|d| < 1/4`, where the closed form cancels.
    """
    small = jnp.abs(d) < 0.25
    d2 = jnp.where(small, d * d, 0)
    series = jnp.zeros_like(d)
    for c in _JS_SERIES:
        series = series * d2 + c
    series = series * d2

    def xlog(u):  # (1 + u) log1p(u), 0 at u = -1
        end = u == -1
        return jnp.where(end, 0, (1 + u) * jnp.log1p(jnp.where(end, 0, u)))

    dl = jnp.where(small, 0.5, d)
    return jnp.where(small, series, xlog(dl) + xlog(-dl))


def _half_sum_and_gap_ratio(x: jax.Array, y: jax.Array, ok: jax.Array):
    """(x + y) / 2 and (x - y) / (x + y) (0 where not ``ok``), from halves where x + y
    overflows (two numbers near the largest float), as they are everywhere else."""
    s = x + y
    big = jnp.isinf(s)
    hx, hy = 0.5 * x, 0.5 * y
    half = jnp.where(big, hx + hy, 0.5 * s)
    gap = jnp.where(big, hx - hy, x - y)
    return half, jnp.where(ok, gap / jnp.where(ok, jnp.where(big, half, s), 1), 0)


def _js_slope(x: jax.Array, y: jax.Array) -> jax.Array:
    """d/dx of a Jensen-Shannon term: log(2x/(x + y)) / 2 = log1p(d) / 2; reported as 0 at
    x = 0, where it diverges."""
    ok = x > 0
    half, d = _half_sum_and_gap_ratio(x, y, ok)
    # 1 + d = x / half, taken as that ratio where x is well below y: there 1 + d rounds to 0
    # once x / y is under the float's epsilon (log1p(d) = -inf where the slope is finite,
    # log(2 x / (x + y))). Both branches are kept finite under their selects.
    far = d < -0.5
    ratio = x / jnp.where(far, half, 1)
    slope = jnp.where(far, jnp.log(jnp.where(far, ratio, 1)), jnp.log1p(jnp.where(far, 0, d)))
    return jnp.where(ok, 0.5 * slope, 0)


@jax.custom_jvp
def _js_terms(p: jax.Array, q: jax.Array) -> jax.Array:
    r"""The Jensen-Shannon terms :math:`\tfrac12[p \log(p/m) + q \log(q/m)]`, m = (p+q)/2.

    Written as :math:`\tfrac{m}{2}[(1+d)\log(1+d) + (1-d)\log(1-d)]` with
    d = (p - q)/(p + q): accurate where p and q nearly agree. 0 where p = q = 0.
    """
    pos = p + q > 0
    half, d = _half_sum_and_gap_ratio(p, q, pos)
    value = jnp.where(pos, 0.5 * half * _js_bracket(d), 0)
    return jnp.where((p >= 0) & (q >= 0), value, jnp.nan)


@_js_terms.defjvp
def _js_terms_jvp(primals, tangents):
    (p, q), (dp, dq) = primals, tangents
    return _js_terms(p, q), _js_slope(p, q) * dp + _js_slope(q, p) * dq


_js_terms_compiled = jax.jit(_js_terms)  # one compilation for eager calls, not one per op


def js_divergence(
    p: jax.typing.ArrayLike,
    q: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Jensen-Shannon divergence of ``p`` and ``q``: the mean KL divergence from their mixture.

    .. math::
        \mathrm{JS}(p, q) = \tfrac12 D(p \,\|\, m) + \tfrac12 D(q \,\|\, m)
            = \tfrac12 \sum_{i \in \text{where}} \Big[p_i \log_b \frac{2 p_i}{p_i + q_i}
            + q_i \log_b \frac{2 q_i}{p_i + q_i}\Big],
        \qquad m = \tfrac12 (p + q),

    terms with :math:`p_i = 0` (or :math:`q_i = 0`) are 0. Symmetric, finite, and for
    distributions between 0 and :math:`\log_b 2` (1 bit, :math:`\ln 2` nats), 0 iff p = q.
    This is the divergence itself: SciPy's ``scipy.spatial.distance.jensenshannon`` returns
    its square root (a metric), so ``jensenshannon(p, q) ** 2`` equals this in nats. Computed
    without cancellation where p and q nearly agree. Negative or NaN entries inside the mask
    give NaN. Gradient :math:`\tfrac12 \log_b(2 p_i / (p_i + q_i))` in :math:`p_i`
    (reported as 0 at :math:`p_i = 0`, where it diverges), and likewise in :math:`q_i`.

    Args:
      p: probabilities, shape ``[..., n, ...]``.
      q: probabilities, the same shape as ``p``.
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
      >>> print(f"{je.js_divergence([1.0, 0.0], [0.0, 1.0], base=2):.4f}")
      1.0000
      >>> print(f"{je.js_divergence([0.5, 0.5], [0.9, 0.1]):.4f}")
      0.1017

    References:
      J. Lin, "Divergence Measures Based on the Shannon Entropy", IEEE Trans. Inf. Theory
      37(1), 1991.
    """
    x, y, axes, mask = _two(p, q, axis, where)
    return arguments.in_base(arguments.masked_sum(_js_terms_compiled(x, y), axes, mask), base)


def js_divergence_from_logits(
    p_logits: jax.typing.ArrayLike,
    q_logits: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
    base: float | None = None,
) -> jax.Array:
    r"""Jensen-Shannon divergence of :math:`\operatorname{softmax}(a)` and
    :math:`\operatorname{softmax}(b)`, from the logits.

    .. math::
        \mathrm{JS} = \tfrac12 \sum_j \Big[p_j \log_b \frac{2 p_j}{p_j + q_j}
            + q_j \log_b \frac{2 q_j}{p_j + q_j}\Big],
        \qquad \frac{\partial\,\mathrm{JS}}{\partial a_k}
            = p_k \big(g_k - \textstyle\sum_j p_j g_j\big),
        \quad g_k = \tfrac12 \log_b \frac{2 p_k}{p_k + q_k},

    and symmetrically in b. The softmaxes come from max-shifted logits, so huge logits do
    not overflow. A -inf logit is a class of probability 0: it contributes only through the
    other distribution and gets gradient 0. A fully masked row, or two all -inf rows, give 0;
    a +inf or NaN allowed logit gives NaN.

    Memory: the logits are read as they are (half precision upcast inside the pass), a
    block of rows at a time: the row maxima, sums and the divergence with the per-row sums
    of its slopes come from one pass, and the derivative rule writes each gradient in one
    elementwise pass from the logits and those per-row values. The compiler's temp memory
    stays under 1% of the logits (float32; for bfloat16, the one float32 copy that the
    shared row-block passes make, as in ``kl_divergence_from_logits``).

    Args:
      p_logits: logits of p, shape ``[..., K, ...]``.
      q_logits: logits of q, the same shape.
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
      >>> a, b = jnp.array([0.0, -jnp.inf]), jnp.array([-jnp.inf, 0.0])
      >>> print(f"{je.js_divergence_from_logits(a, b, base=2):.4f}")
      1.0000
    """
    p_logits = arguments.as_array(p_logits, "p_logits")
    q_logits = arguments.as_array(q_logits, "q_logits")
    arguments.require_float(q_logits, "q_logits")
    arguments.require_same_shape(p_logits, q_logits, "p_logits", "q_logits")
    ca = arguments.ClassAxis(p_logits, axis, where, name="p_logits")
    ln_b = arguments.log_base(base)
    # Read as they are (half precision upcast inside the fused pass); see ``softmax``.
    mask, skip = class_masks(ca, where)
    spec, (a, b), mask, moved = _row_spec(ca.z, mask, ca.axis, (ca.z, ca.layout(q_logits)))
    if moved and skip is not None:
        skip = jnp.moveaxis(skip, ca.axis, -1)
    js = _js_logits(spec, a, b, mask, skip)
    return arguments.in_units(js, ln_b)


def _p_apart(zf: jax.Array, m: jax.Array, s: jax.Array) -> jax.Array:
    """``softmax._p`` (the softmax from the row shift m and sum s) written differently, so
    that the compiler does not merge the two; the same value up to rounding."""
    m_apart = jnp.where(jnp.abs(m) < jnp.inf, m, 0)
    log_s = jnp.where(s != 0, jnp.log(jnp.where(s != 0, s, 1)), jnp.inf)
    return jnp.exp((zf - m_apart) - log_s)


def _js_stats(axis, a, b, mask):
    """Per-row (m_a, s_a, m_b, s_b, JS, sum p g_a, sum q g_b) of a block of rows."""
    sa, sb = ShiftedLogits(a, mask, axis), ShiftedLogits(b, mask, axis)
    js = jnp.sum(_js_terms(sa.p, sb.p), axis, keepdims=True)
    ga = jnp.sum(sa.p * _js_slope(sa.p, sb.p), axis, keepdims=True)
    gb = jnp.sum(sb.p * _js_slope(sb.p, sa.p), axis, keepdims=True)
    return sa.m, jnp.exp(sa.log_s), sb.m, jnp.exp(sb.log_s), js, ga, gb


def _js_parts(spec, a, b, mask, skip):
    ct = jnp.result_type(a.dtype, b.dtype, jnp.float32)
    stats = _rows_stats(_js_stats, (a, b), mask, spec.axis, ct, spec.blocked, skip)
    js = stats[4]
    if skip is not None:
        js = jnp.where(skip, 0, js)
    return (ct, *stats[:4], js, *stats[5:])


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _js_logits(spec, a, b, mask, skip):
    return jnp.squeeze(_js_parts(spec, a, b, mask, skip)[5], spec.axis)


def _js_logits_jvp(spec, primals, tangents):
    a, b, mask, skip = primals
    da, db = tangents[:2]
    ct, ma, sa, mb, sb, js, ga, gb = _js_parts(spec, a, b, mask, skip)
    out = jnp.squeeze(js, spec.axis)
    dout = jnp.zeros_like(out)
    af, bf = skipped_as_zero(_upcast(a, ct), skip), skipped_as_zero(_upcast(b, ct), skip)
    if mask is not None:
        af = jnp.where(mask, af, -jnp.inf)
        bf = jnp.where(mask, bf, -jnp.inf)

    def kept(x):
        return x if skip is None else jnp.where(skip, 0, x)

    # dJS/da_k = p_k (g_k - sum_j p_j g_j), g_k = log(2 p_k / (p_k + q_k)) / 2; alike in b.
    # Each softmax is written elementwise from the per-row shift and sum, and written
    # differently for the two gradients, so that each gradient's pass computes both itself
    # rather than sharing them through a stored copy.
    if not is_zero(da):
        p, q = _p(af, ma, sa), _p_apart(bf, mb, sb)
        coef = kept(p * (_js_slope(p, q) - ga))
        dout = dout + jnp.sum(coef * da.astype(ct), axis=spec.axis)
    if not is_zero(db):
        p, q = _p_apart(af, ma, sa), _p(bf, mb, sb)
        coef = kept(q * (_js_slope(q, p) - gb))
        dout = dout + jnp.sum(coef * db.astype(ct), axis=spec.axis)
    return out, dout


_js_logits.defjvp(_js_logits_jvp, symbolic_zeros=True)


# Total variation and Hellinger.


def total_variation(
    p: jax.typing.ArrayLike,
    q: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Total variation distance between ``p`` and ``q``.

    .. math::
        \delta(p, q) = \tfrac12 \sum_{i \in \text{where}} |p_i - q_i|,

    between 0 and 1 for distributions (the largest difference of the probabilities they
    give one event). Gradient :math:`\tfrac12 \operatorname{sign}(p_i - q_i)` in
    :math:`p_i`, 0 where :math:`p_i = q_i` (a subgradient: the kink's midpoint). NaN entries
    inside the mask give NaN; values are used as given (no check of the sign).

    Args:
      p: probabilities, shape ``[..., n, ...]``.
      q: probabilities, the same shape as ``p``.
      axis: the distribution axis or axes.
      where: optional boolean mask broadcastable to ``p``, or per-distribution.

    Returns:
      ``p``'s shape without ``axis``, in the inputs' common float dtype, at least float32.

    Raises:
      TypeError: an input is not real-valued or ``where`` is not boolean.
      ValueError: the shapes differ or ``axis`` is out of range.

    Examples:
      >>> import jaxent as je
      >>> print(f"{je.total_variation([0.5, 0.3, 0.2], [0.2, 0.2, 0.6]):.4f}")
      0.4000

    References:
      A. B. Tsybakov, "Introduction to Nonparametric Estimation", 2009, sec. 2.4.
    """
    x, y, axes, mask = _two(p, q, axis, where)
    # Halves first: |p - q| of two numbers near the largest float may overflow where its
    # half does not. |d| as d sign(d): its derivative sign(d) is 0 at d = 0 (jnp.abs's
    # would be 1).
    d = 0.5 * x - 0.5 * y
    return arguments.masked_sum(d * jnp.sign(d), axes, mask)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _hellinger(p, q, axis):
    return _hellinger_parts(p, q, axis)[0]


def _sqrt(x):
    """sqrt(x), its derivative 0 instead of inf at 0 (NaN-free at any order); NaN below 0."""
    return jnp.where(x == 0, 0, jnp.sqrt(jnp.where(x == 0, 1, x)))


def _root_gap(p, q, rp, rq):
    """sqrt(p) - sqrt(q), as (p - q) / (sqrt(p) + sqrt(q)) where both are positive (no
    cancellation when p and q are close)."""
    both = (p > 0) & (q > 0)
    return jnp.where(both, (p - q) / jnp.where(both, rp + rq, 1), rp - rq)


def _hellinger_parts(p, q, axis):
    rp, rq = _sqrt(p), _sqrt(q)
    h = _sqrt(0.5 * jnp.sum(_root_gap(p, q, rp, rq) ** 2, axis, keepdims=True))
    return jnp.squeeze(h, axis), h, rp, rq


def _hellinger_jvp(axis, primals, tangents):
    p, q = primals
    dp, dq = tangents
    _, h, rp, rq = _hellinger_parts(p, q, axis)
    out = _hellinger(p, q, axis)  # so that second derivatives take this rule too
    scale = jnp.where(h > 0, 0.25 / jnp.where(h > 0, h, 1), 0)

    def slope(x, y, rx, ry):
        # d/dx = (1 - sqrt(y/x)) / (4H); reported as 0 at x = 0 and at H = 0 (it diverges
        # or has no limit there).
        ok = x > 0
        return jnp.where(ok, scale * (_root_gap(x, y, rx, ry) / jnp.where(ok, rx, 1)), 0)

    dout = jnp.zeros_like(out)
    if not is_zero(dp):
        dout = dout + jnp.sum(slope(p, q, rp, rq) * dp, axis)
    if not is_zero(dq):
        dout = dout + jnp.sum(slope(q, p, rq, rp) * dq, axis)
    return out, dout


_hellinger.defjvp(_hellinger_jvp, symbolic_zeros=True)
_hellinger_compiled = jax.jit(_hellinger, static_argnums=2)  # one compilation for eager calls


def hellinger(
    p: jax.typing.ArrayLike,
    q: jax.typing.ArrayLike,
    *,
    axis: arguments.Axis = -1,
    where: jax.typing.ArrayLike | None = None,
) -> jax.Array:
    r"""Hellinger distance between ``p`` and ``q``, normalised to lie in [0, 1].

    .. math::
        H(p, q) = \sqrt{\tfrac12 \sum_{i \in \text{where}} \big(\sqrt{p_i} - \sqrt{q_i}\big)^2}
            = \sqrt{1 - \textstyle\sum_i \sqrt{p_i q_i}}
        \quad \text{for distributions},

    so 0 iff p = q and 1 iff their supports are disjoint (some authors leave out the
    :math:`\tfrac12`, bounding it by :math:`\sqrt 2`). Computed from the squared
    differences, never a negative number under the root. A metric. Negative or NaN entries
    inside the mask give NaN.

    Gradients: :math:`(1 - \sqrt{q_i/p_i}) / (4 H)` in :math:`p_i`, likewise in
    :math:`q_i`. Where they diverge or have no limit they are reported as 0: at
    :math:`p_i = 0` (slope :math:`-\infty`) and at p = q (H = 0, the cusp of a distance,
    where 0 is a subgradient), so they are never NaN.

    Args:
      p: probabilities, shape ``[..., n, ...]``.
      q: probabilities, the same shape as ``p``.
      axis: the distribution axis or axes.
      where: optional boolean mask broadcastable to ``p``, or per-distribution.

    Returns:
      ``p``'s shape without ``axis``, in the inputs' common float dtype, at least float32.

    Raises:
      TypeError: an input is not real-valued or ``where`` is not boolean.
      ValueError: the shapes differ or ``axis`` is out of range.

    Examples:
      >>> import jaxent as je
      >>> print(f"{je.hellinger([0.5, 0.3, 0.2], [0.2, 0.2, 0.6]):.4f}")
      0.3040
      >>> print(f"{je.hellinger([1.0, 0.0], [0.0, 1.0]):.4f}")
      1.0000

    References:
      E. Hellinger, "Neue Begründung der Theorie quadratischer Formen von unendlichvielen
      Veränderlichen", 1909; L. Le Cam and G. L. Yang, "Asymptotics in Statistics", 2000.
    """
    x, y, axes, mask = _two(p, q, axis, where)
    if mask is not None:
        y = jnp.where(mask.full, y, 0)
    x, y = arguments.flatten_axes(x, axes), arguments.flatten_axes(y, axes)
    return _hellinger_compiled(x, y, x.ndim - 1)
