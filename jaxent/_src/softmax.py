r"""Softmax kernels on max-shifted logits: the masked log-sum-exp and the cross-entropy rules.

Every softmax-based function in jaxent (the cross-entropies, entropy and divergences from
logits) computes from logits minus their row maximum, so that huge logits do not overflow
and a -inf logit is a class of probability 0. The rules here are written from the
closed-form derivatives (``jax.custom_jvp``), so forward mode, reverse mode, Hessians and
``vmap`` all work. A row with no finite allowed logit has log-sum-exp -inf; target mass
on such a row, as on any -inf logit, gives +inf.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .numerics import is_zero, log_or_neg_inf, negated, weighted_targets


class ShiftedLogits:
    """The pieces of a masked log-sum-exp along ``axis`` (keepdims).

    Attributes:
      d: logits minus the row maximum; -inf at masked-out entries.
      log_s: log of the sum of exp(d); -inf for a row with no finite allowed entry.
      m: the row maximum used as shift (0 where the maximum is not finite).
      p: the softmax, 0 at masked-out entries and in empty rows.
    """

    def __init__(self, z: jax.Array, mask: jax.Array | None, axis: int):
        zm = z if mask is None else jnp.where(mask, z, -jnp.inf)
        m = jax.lax.stop_gradient(jnp.max(zm, axis=axis, keepdims=True))
        m = jnp.where(jnp.isfinite(m), m, 0)
        self.m = m
        self.d = zm - m
        e = jnp.exp(self.d)
        s = jnp.sum(e, axis=axis, keepdims=True)
        self.log_s = log_or_neg_inf(s)
        self.p = e * jnp.where(s > 0, 1 / jnp.where(s > 0, s, 1), 0)

    @property
    def lse(self) -> jax.Array:
        return self.log_s + self.m

    def log_p(self) -> jax.Array:
        """log softmax where p > 0, 0 elsewhere (masked or -inf entries)."""
        return jnp.where(self.p > 0, self.d - self.log_s, 0)

    def neg_log_p(self) -> jax.Array:
        """-log softmax: lse - z, +inf at -inf entries and in rows with no finite entry."""
        return jnp.where(self.log_s == -jnp.inf, jnp.inf, self.log_s - self.d)


def softmax_xent(
    z: jax.Array, t: jax.Array, mask: jax.Array | None, axis: int
) -> tuple[jax.Array, jax.Array]:
    r"""Cross-entropy of targets ``t`` against softmax(z), and the log-sum-exp of z.

    .. math:: \ell = \sum_{j:\,t_j \ne 0} t_j\,(\operatorname{lse}(z) - z_j)

    ``t`` must already be zero outside ``mask``. Returns (loss, lse), each reduced over
    ``axis``; lse is -inf for a row with no finite allowed logit.
    """
    return _softmax_xent(z, t, mask, axis)


def _softmax_xent_value(z, t, mask, axis):
    sh = ShiftedLogits(z, mask, axis)
    terms = jnp.where(t != 0, t * sh.neg_log_p(), 0)
    return sh, jnp.sum(terms, axis=axis), jnp.squeeze(sh.lse, axis)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _softmax_xent(z, t, mask, axis):
    _, loss, lse = _softmax_xent_value(z, t, mask, axis)
    return loss, lse


def _softmax_xent_jvp(axis, primals, tangents):
    z, t, mask = primals
    dz, dt, _ = tangents
    sh, loss, lse = _softmax_xent_value(z, t, mask, axis)
    dloss = jnp.zeros_like(loss)
    dlse = jnp.zeros_like(lse)
    if not is_zero(dz):
        total = jnp.sum(t, axis=axis, keepdims=True)
        dloss = dloss + jnp.sum((sh.p * total - t) * dz, axis=axis)
        dlse = dlse + jnp.sum(sh.p * dz, axis=axis)
    if not is_zero(dt):
        # d loss / d t_j = lse - z_j; reported as 0 at excluded (-inf or masked) classes.
        slope = jnp.where(sh.d == -jnp.inf, 0, sh.log_s - sh.d)
        dloss = dloss + jnp.sum(slope * dt, axis=axis)
    return (loss, lse), (dloss, dlse)


_softmax_xent.defjvp(_softmax_xent_jvp, symbolic_zeros=True)


def softmax_xent_int(
    z: jax.Array, labels: jax.Array, weight: jax.Array, ignored: jax.Array | None, axis: int
) -> tuple[jax.Array, jax.Array]:
    r"""``softmax_xent`` for one-hot targets, without forming the target array.

    ``z`` may be of half precision: the result is computed in at least float32 (``weight``'s
    dtype) without an upcast copy of the logits. The targets are :math:`t = w\, e_c`:
    ``labels`` (c, the logits' shape without ``axis``) holds the class of each row and
    ``weight`` (w, the same shape) the weight of its term,
    NaN for an invalid label and 0 for a row that takes no part. Rows where ``ignored`` is
    True are treated as fully masked, whatever their logits hold. Returns (loss, lse) with
    the values and derivatives of ``softmax_xent(z, t, mask, axis)``.

    Memory: the forward pass reads the logits twice (row maximum, then the sum of exp fused
    into its reduction); reverse mode saves only per-row values and writes the gradient in
    one fused pass, so no array of the logits' size is kept besides the gradient itself.
    Long rows (classes on the last axis, at least ``_ROW_BLOCK_MIN_CLASSES``, an even
    number of rows) take both reductions a block of rows at a time (same values up to
    rounding).
    """
    return _softmax_xent_int(z, labels, weight, ignored, axis)


# Rows at least this long (classes on the last axis) take the row-blocked reduction
# (measured slower than the plain one at 32768 classes, 3.5x faster at 65536).
_ROW_BLOCK_MIN_CLASSES = 65536
# Rows per block: at 131072 classes, 2 rows (1 MiB of f32) measured fastest on the CPU.
_ROW_BLOCK = 2


def _long_rows(k: int) -> bool:
    """Rows of ``k`` classes are long: XLA's CPU backend reduces them whole through stored
    buffers, so the passes take them a block of rows at a time."""
    return k >= _ROW_BLOCK_MIN_CLASSES


def _row_blocked(z: jax.Array, axis: int) -> bool:
    rows = math.prod(z.shape[:-1])
    return (
        z.ndim >= 2
        and axis == z.ndim - 1
        and _long_rows(z.shape[-1])
        and rows % _ROW_BLOCK == 0
        and rows >= 2 * _ROW_BLOCK
    )


def _max_and_sum_exp_blocked(z, ignored, ct):
    """See ``_max_and_sum_exp_blocked_impl``; higher derivatives as through the values."""
    if z.dtype != jnp.bfloat16:
        return _max_and_sum_exp_blocked_impl(z, ignored, ct, False)
    return _plain_derivatives(
        lambda z, ig: _max_and_sum_exp_blocked_impl(z, ig, ct, True),
        lambda z, ig: _max_and_sum_exp_blocked_impl(z, ig, ct, False),
    )(z, ignored)


def _max_and_sum_exp_blocked_impl(z, ignored, ct, half: bool):
    """The row maximum m (finite, 0 otherwise) and sum(exp(z - m)), a few rows at a time.

    On XLA's CPU backend a reduction of exp over long rows stores exp(z) whole (a fresh
    buffer of the logits' size in f32); over a block of rows it stays in a small scratch
    reused by each step (3-4x faster at 131072 classes). bfloat16 logits enter the loop as
    their raw bits, upcast inside each step: entered as bfloat16, the compiler upcasts all
    of them to f32 before the loop (the bits cost one copy of the logits' size instead).
    Other half-precision dtypes take the plain path.
    """
    k = z.shape[-1]
    rows = math.prod(z.shape[:-1])
    blocks = rows // _ROW_BLOCK
    x = jax.lax.bitcast_convert_type(z, jnp.uint16) if half else z
    x = x.reshape(blocks, _ROW_BLOCK, k)
    ig = None if ignored is None else ignored.reshape(blocks, _ROW_BLOCK, 1)

    def block(args):
        xb, igb = args
        if half:
            xf = jax.lax.bitcast_convert_type(xb.astype(jnp.uint32) << 16, jnp.float32)
        else:
            xf = xb.astype(ct)
        if igb is not None:
            xf = jnp.where(igb, -jnp.inf, xf)
        mb = jax.lax.stop_gradient(jnp.max(xf, axis=-1, keepdims=True))
        mb = jnp.where(jnp.isfinite(mb), mb, 0)
        return mb, jnp.sum(jnp.exp(xf - mb), axis=-1, keepdims=True)

    m, s = jax.lax.map(block, (x, ig))
    shape = (*z.shape[:-1], 1)
    return m.reshape(shape), s.reshape(shape)


def _take_bits(zz: jax.Array, idx: jax.Array, axis: int) -> jax.Array:
    """``take_along_axis`` on the raw bits of ``zz`` (the same values)."""
    bits = jnp.dtype(f"uint{8 * zz.dtype.itemsize}")
    raw = jax.lax.bitcast_convert_type(zz, bits)
    z_c = jnp.take_along_axis(raw, idx, axis=axis, mode="promise_in_bounds")
    return jax.lax.bitcast_convert_type(z_c, zz.dtype)


def _max_and_sum_exp(z, axis, ct):
    """The row maximum m (finite, 0 otherwise; no derivative) and sum(exp(z - m))."""
    m = jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    m = jnp.where(jnp.isfinite(m), m, 0).astype(ct)
    return m, jnp.sum(jnp.exp(z.astype(ct) - m), axis=axis, keepdims=True)


def _softmax_xent_int_parts(z, labels, ignored, axis):
    # Half-precision logits stay as they are in memory: the maximum is exact in their
    # dtype, and the upcast happens inside each fused pass, never as an f32 copy.
    # Ignored rows are made empty: their sum of exp is set to 0, whatever their logits hold.
    # Blocked, they are read as empty inside each block; whole, they are read as they are
    # (a select on the logits would be stored whole), and the statistics' derivatives
    # (higher orders) are those of the rows read as 0, finite whatever the rows hold.
    ct = jnp.result_type(z, jnp.float32)
    zz = z
    ig = None if ignored is None else jnp.expand_dims(ignored, axis)
    if _row_blocked(z, axis) and (z.dtype == ct or z.dtype == jnp.bfloat16):
        m, s = _max_and_sum_exp_blocked(z, ignored, ct)
    elif ig is None:
        m, s = _max_and_sum_exp(zz, axis, ct)
    else:
        m, s = _plain_derivatives(
            lambda z_, ig_: _max_and_sum_exp(z_, axis, ct),
            lambda z_, ig_: _max_and_sum_exp(skipped_as_zero(z_.astype(ct), ig_), axis, ct),
        )(zz, ig)
    if ig is not None:
        m = jnp.where(ig, 0, m)
        s = jnp.where(ig, 0, s)
    idx = jnp.expand_dims(jnp.clip(labels, 0, z.shape[axis] - 1), axis)
    if zz.dtype == ct:
        z_c = jnp.take_along_axis(zz, idx, axis=axis, mode="promise_in_bounds")
    else:
        # Gathers the raw bits: the compiler would move an upcast of the gathered values
        # before the gather, making an f32 copy of all the logits to gather from.
        z_c = _plain_derivatives(
            functools.partial(_take_bits, axis=axis),
            functools.partial(jnp.take_along_axis, axis=axis, mode="promise_in_bounds"),
        )(zz, idx)
    z_c = z_c.astype(ct)
    return zz, m, s, log_or_neg_inf(s), idx, z_c - m, z_c


def _plain_derivatives(bits_fn, plain_fn):
    """``bits_fn`` (a computation that reads half-precision inputs through their raw bits)
    with the derivatives of ``plain_fn``, the same computation on the values.

    A bit cast has no derivative: the first-order rules never differentiate through one
    (they take the inputs' tangents as they are), but higher-order derivatives differentiate
    those rules, and through the bits they would see constants (zero or wrong Hessians).
    """
    f = jax.custom_jvp(bits_fn)

    def jvp(primals, tangents):
        return bits_fn(*primals), jax.jvp(plain_fn, primals, tangents)[1]

    f.defjvp(jvp)
    return f


def own_derivatives(value, fn, *args):
    """``value``, what a derivative rule computed as ``fn(*args)``, with the derivatives of
    ``fn`` itself (its rule): higher orders differentiate the rule, and through the passes
    that computed ``value`` they are NaN where a guarded log or a clamped gap meets a zero
    (empty rows, -inf logits, in reverse over reverse)."""
    return _plain_derivatives(lambda v, *_: v, lambda _, *a: fn(*a))(value, *args)


def _bf16_to_f32_bits(x: jax.Array) -> jax.Array:
    bits = jax.lax.bitcast_convert_type(x, jnp.uint16).astype(jnp.uint32) << 16
    return jax.lax.bitcast_convert_type(bits, jnp.float32)


_bf16_to_f32 = _plain_derivatives(_bf16_to_f32_bits, lambda x: x.astype(jnp.float32))


def _upcast_apart(x: jax.Array, dtype) -> jax.Array:
    """``x.astype(dtype)``; for bfloat16 through its bits: exact, and not merged by the
    compiler with a plain upcast of the same values (the merged upcast would be stored)."""
    if x.dtype != jnp.bfloat16 or dtype != jnp.float32:
        return x.astype(dtype)
    return _bf16_to_f32(x)


@functools.partial(jax.custom_jvp, nondiff_argnums=(4,))
def _softmax_xent_int(z, labels, weight, ignored, axis):
    _, m, _, log_s, _, d_c, z_c = _softmax_xent_int_parts(z, labels, ignored, axis)
    loss = _label_term(jnp.expand_dims(weight, axis), log_s, d_c, z_c, m)
    return jnp.squeeze(loss, axis), jnp.squeeze(log_s + m, axis)


def _label_term(w, log_s, d_c, z_c, m):
    """w (lse - z_c): 0 where w = 0; +inf for label mass on a -inf logit or an empty row.

    Where z_c - m overflowed (finite logits more than the largest float apart), w (lse - z_c)
    is taken as w log s + (w m - w z_c): finite for a weight below 1.
    """
    over = (d_c == -jnp.inf) & (z_c > -jnp.inf)
    gap = jnp.where(over, w * log_s + (w * m - w * z_c), w * (log_s - d_c))
    return jnp.where(w != 0, jnp.where(log_s == -jnp.inf, jnp.inf, gap), 0)


def _softmax_xent_int_jvp(axis, primals, tangents):
    z, labels, weight, ignored = primals
    dz, _, dw, _ = tangents
    zz, m, s, log_s, idx, d_c, z_c = _softmax_xent_int_parts(z, labels, ignored, axis)
    w = jnp.expand_dims(weight, axis)
    loss, lse = own_derivatives(
        (jnp.squeeze(_label_term(w, log_s, d_c, z_c, m), axis), jnp.squeeze(log_s + m, axis)),
        lambda *args: _softmax_xent_int(*args, axis),
        *primals,
    )
    dloss = jnp.zeros_like(loss)
    dlse = jnp.zeros_like(lse)
    if not is_zero(dz):
        # p = exp(z - lse), written apart from the forward's exp(z - m) so that the compiler
        # keeps the two in separate fusions and never stores exp(z - m); 0 in empty rows.
        positive = s > 0
        # Shift by m before subtracting log s: z - (m + log s) would round log s away when
        # |m| is large (1e8 in float32).
        log_s_safe = jnp.where(positive, jnp.log(jnp.where(positive, s, 1)), jnp.inf)
        # Written as -((m - z) + log s), bit for bit the same number, so that the compiler
        # does not merge it with the forward's z - m and store that array.
        # (m is finite already: the no-op select keeps the shift of this pass a value apart,
        # else the compiler stores m broadcast to the logits' shape for half-precision z.)
        m_apart = jnp.where(jnp.abs(m) < jnp.inf, m, 0)
        # Ignored rows read as 0 (log s is +inf there: p = 0), whatever they hold, so that
        # differentiating this rule meets no NaN there.
        zin = _upcast_apart(zz, lse.dtype)
        if ignored is not None:
            zin = skipped_as_zero(zin, jnp.expand_dims(ignored, axis))
        p = jnp.exp(-((m_apart - zin) + log_s_safe))
        if z.dtype == lse.dtype:
            # The label's term as a gather: reverse mode turns it into an in-place scatter
            # of one value per row, cheaper on the CPU than a compare against an iota.
            dz_c = jnp.take_along_axis(dz, idx, axis=axis, mode="promise_in_bounds")
            dloss = dloss + jnp.sum(p * w * dz, axis=axis) - jnp.squeeze(w * dz_c, axis)
        else:
            # Half-precision logits: the whole coefficient in f32, rounded once, written in
            # the logits' dtype by the same pass (a scatter would need an f32 buffer).
            classes = jax.lax.broadcasted_iota(idx.dtype, z.shape, axis)
            coef = p * w - jnp.where(classes == idx, w, 0)
            dloss = dloss + jnp.sum(coef * dz.astype(lse.dtype), axis=axis)
        dlse = dlse + jnp.sum(p * dz.astype(lse.dtype), axis=axis)
    if not is_zero(dw):
        # d loss / d w = lse - z_c; reported as 0 at an excluded (-inf) label logit. Where
        # z_c - m overflowed, the tangent is dw log s + (dw m - dw z_c) as in the value:
        # finite for a small dw, and 0 for a zero one. Each branch's coefficients are 0
        # where the other is taken (reverse mode multiplies them by a zero cotangent).
        dwx = jnp.expand_dims(dw, axis)
        over = (d_c == -jnp.inf) & (z_c > -jnp.inf) & (s > 0)
        slope = jnp.where((z_c == -jnp.inf) | (s == 0) | over, 0, log_s - d_c)
        ls_o, m_o, zc_o = (jnp.where(over, x, 0) for x in (log_s, m, z_c))
        tangent = slope * dwx + (ls_o * dwx + (m_o * dwx - zc_o * dwx))
        dloss = dloss + jnp.squeeze(tangent, axis)
    return (loss, lse), (dloss, dlse)


_softmax_xent_int.defjvp(_softmax_xent_int_jvp, symbolic_zeros=True)


# Fused kernels: the soft-label cross-entropy, the entropy and the KL divergence from logits.
#
# Each reads its inputs as they are (half precision upcast inside the pass) and reduces them in
# two passes, the row maximum and then one fused reduction, keeping only per-row values; the
# derivative rules recompute what they need elementwise, so reverse mode writes the gradient
# in one pass and stores no array of the logits' size. On XLA's CPU backend a reduction whose
# summand holds a compare or a select is split from the fast reduction kernel and its inputs
# are stored whole, so the summands below are written select-free (clamps and the indicators
# ``_neg_inf``/``_pos_inf``); per-row masks are applied to the per-row results. Per-class
# masks and rows of at least ``_ROW_BLOCK_MIN_CLASSES`` classes take the same reductions a
# block of rows at a time (``_row_blocks``), where selects cost only a block of scratch.


def _big(dtype) -> float:
    return float(jnp.finfo(dtype).max)


def _clamp(x: jax.Array) -> jax.Array:
    """x with -inf and +inf replaced by the largest finite numbers (NaN kept)."""
    big = _big(x.dtype)
    return jnp.minimum(jnp.maximum(x, -big), big)


def _neg_inf(x: jax.Array) -> jax.Array:
    """1 where x is -inf, 0 where it is finite or +inf, NaN where NaN; without a select."""
    return jnp.minimum(jnp.maximum(-_big(x.dtype) - x, 0), 1)


def _pos_inf(x: jax.Array) -> jax.Array:
    """1 where x is +inf, 0 where it is finite or -inf, NaN where NaN; without a select."""
    return jnp.minimum(jnp.maximum(x - _big(x.dtype), 0), 1)


def _half_gap(m: jax.Array, z: jax.Array) -> jax.Array:
    """(m - z) / 2 for z at most the row maximum m, finite even where m - z overflows.

    A zero weight times it is 0; sums of weighted half gaps are doubled at the end (exact:
    halving and doubling are, away from subnormals), so a gap that overflows counts only
    where it has weight. -inf entries give +big / 2.
    """
    return 0.5 * m - 0.5 * _clamp(z)


def _upcast(x: jax.Array, dtype) -> jax.Array:
    return _upcast_apart(x, dtype)


@jax.custom_jvp
def _times_mass(p: jax.Array, x: jax.Array) -> jax.Array:
    """p x for the derivative rules' p (m - z) terms, with derivative 0 in p where p = 0.

    There x is a clamped gap (-inf logits) or a huge one; plain p x has slope x in p, and
    in reverse over reverse the cotangent times x overflows and meets p's zero slope
    (NaN). The select is in the derivative only: the first-order pass stays arithmetic
    (a select there made the compiler store the logits' size, 128 MiB at [4096, 8192],
    in a sum with the cross-entropy)."""
    return p * x


@_times_mass.defjvp
def _times_mass_jvp(primals, tangents):
    p, x = primals
    dp, dx = tangents
    return p * x, jnp.where(p == 0, 0, dp * x) + p * dx


def _shift(z: jax.Array, axis: int) -> jax.Array:
    """The row maximum, 0 where it is not finite (kept out of differentiation)."""
    m = jax.lax.stop_gradient(jnp.max(z, axis=axis, keepdims=True))
    return jnp.where(jnp.isfinite(m), m, 0)


def _safe_log(s: jax.Array) -> jax.Array:
    """log s, and 0 where s = 0 (an empty row); NaN stays NaN."""
    return jnp.log(jnp.where(s == 0, 1, s))


# The row-blocked loops take about this many steps on large inputs: a block is then about
# 1/1024 of the logits, whose float32 scratch stays under 1% of the inputs, and the loop's
# per-step cost is paid 1024 times, not once a row (4096 steps at [4096, 32768] with blocks
# of 64 KiB: 2-3x slower forward passes, measured on the CPU).
_ROW_STEPS = 1024


def _block_rows(rows: int, k: int) -> int:
    """Rows per block: about 1/``_ROW_STEPS`` of the rows, at least 64 KiB of float32 (one
    row if longer, two rows of ``_ROW_BLOCK_MIN_CLASSES`` or more where there are
    ``_ROW_STEPS`` rows or more); a divisor of ``rows``.

    One row of 131072 classes a step ran 3-7x slower than two (XLA's CPU backend reduces a
    single long row through a stored buffer): at [1024, 131072] float32, soft-label
    cross-entropy forward 876 -> 121 ms, value-and-grad 1061 -> 310 ms, KL from logits 759
    -> 179 and 946 -> 333 ms, entropy from logits 351 -> 73 and 550 -> 244 ms, temp under
    1% of the logits (5.0 MiB for 512 MiB); with fewer rows two would pass that bound.
    """
    target = max(1, (1 << 14) // max(k, 1), rows // _ROW_STEPS)
    if _long_rows(k) and rows >= _ROW_STEPS:
        target = max(target, 2)
    for r in range(min(target, rows), 0, -1):
        if rows % r == 0:
            return r
    return 1


def _row_blocks(fn, full: tuple, rows: tuple, consts: tuple, ct, shape, skip=None):
    """See ``_row_blocks_impl``. Its derivatives are those of ``fn`` on all the rows at once.

    The fused passes' derivative rules never differentiate the loop (they take the inputs'
    tangents as they are); higher-order derivatives differentiate those rules, and with
    them the loop: through the rows at once, as through the values of raw-bit reads, they
    are exact (forward over reverse through the loop was wrong at some points, e.g. the
    Rényi divergence's mixed derivative at order 1).

    Rows where ``skip`` (keepdims) holds are read as 0 in every floating array of ``full``,
    inside each block: their statistics are finite whatever they hold, so that the rules
    that differentiate them (at higher orders) meet no NaN there.
    """
    if skip is not None:
        inner = fn

        def fn(fb, rb, consts):
            *rb, sk = rb
            return inner(tuple(skipped_as_zero(x, sk) for x in fb), tuple(rb), consts)

        rows = (*rows, jnp.broadcast_to(skip, (*shape[:-1], 1)))
    return _plain_derivatives(
        lambda f, r, c: _row_blocks_impl(fn, f, r, c, ct, shape),
        lambda f, r, c: _rows_at_once(fn, f, r, c, ct, shape),
    )(full, rows, consts)


def _rows_at_once(fn, full: tuple, rows: tuple, consts: tuple, ct, shape):
    """``fn`` on all the rows at once (the value of ``_row_blocks_impl``)."""
    k = shape[-1]
    n = math.prod(shape[:-1])

    def up(x):
        if x is None:
            return None
        x = x.reshape(n, k)
        return x.astype(ct) if jnp.issubdtype(x.dtype, jnp.floating) else x

    fb = tuple(up(x) for x in full)
    rb = tuple(None if x is None else x.reshape(n, 1) for x in rows)
    return tuple(o.reshape((*shape[:-1], o.shape[-1])) for o in fn(fb, rb, consts))


def _row_blocks_impl(fn, full: tuple, rows: tuple, consts: tuple, ct, shape):
    """``fn(full, rows, consts)`` computed a block of rows at a time.

    ``full`` holds arrays of the logits' ``shape`` (classes last; None allowed), ``rows``
    per-row arrays (the shape with the last axis 1; None allowed), ``consts`` arrays that
    broadcast along the rows (passed whole). ``fn`` returns a tuple of per-row arrays of
    shape ``[R, c]`` (c values a row, 1 for most); the result is the tuple reshaped to
    ``shape[:-1] + (c,)``.

    On XLA's CPU backend a reduction of exp over whole rows is split from its select-holding
    neighbours, and their operands are stored whole (several copies of the logits); a block
    of rows stays in a small scratch reused by each step. Each step slices its block out of
    the inputs as they are (half precision upcast inside the step), so that no copy of the
    inputs is made before the loop.
    """
    k = shape[-1]
    n = math.prod(shape[:-1])
    if n == 0:
        # No rows: nothing to loop over; ``fn`` on the empty block gives the empty results.
        return _rows_at_once(fn, full, rows, consts, ct, shape)
    r = _block_rows(n, k)
    # bfloat16 inputs enter the loop as their raw bits: entered as bfloat16, they are upcast
    # whole to one float32 copy before the loop.
    half = [x is not None and x.dtype == jnp.bfloat16 and ct == jnp.float32 for x in full]
    xs_full = [
        None
        if x is None
        else (jax.lax.bitcast_convert_type(x, jnp.uint16) if h else x).reshape(n, k)
        for x, h in zip(full, half, strict=True)
    ]
    xs_rows = [None if x is None else x.reshape(n, 1) for x in rows]

    def cut(x, start):
        return None if x is None else jax.lax.dynamic_slice_in_dim(x, start, r, axis=0)

    def up(x, h):
        if h:
            return jax.lax.bitcast_convert_type(x.astype(jnp.uint32) << 16, jnp.float32)
        if x is None or not jnp.issubdtype(x.dtype, jnp.floating):
            return x
        return _upcast_apart(x, ct)

    def step(i):
        # The barrier keeps the upcast after the slice: moved before it, the upcast of the
        # whole input would be hoisted out of the loop and stored.
        fb = jax.lax.optimization_barrier(tuple(cut(x, i * r) for x in xs_full))
        fb = tuple(up(x, h) for x, h in zip(fb, half, strict=True))
        return fn(fb, tuple(cut(x, i * r) for x in xs_rows), consts)

    out = jax.lax.map(step, jnp.arange(n // r, dtype=jnp.int32))
    return tuple(o.reshape((*shape[:-1], o.shape[-1])) for o in out)


def skipped_as_zero(x: jax.Array | None, skip: jax.Array | None) -> jax.Array | None:
    """``x`` with the rows where ``skip`` (keepdims) holds set to 0, floating ``x`` only.

    A skipped row gives 0 with every derivative 0 whatever it holds; a derivative rule that
    computed on its NaN or infinities would make reverse over reverse NaN there (and in the
    other rows' Hessian entries toward it): 0 times a NaN slope is NaN."""
    if x is None or skip is None or not jnp.issubdtype(x.dtype, jnp.floating):
        return x
    return jnp.where(skip, jnp.zeros((), x.dtype), x)


def _sum(x: jax.Array, axis: int) -> jax.Array:
    return jnp.sum(x, axis=axis, keepdims=True)


def _prepare(axis: int, full: tuple, mask: jax.Array | None, blocked_needed: bool):
    """Moves the class axis last where the blocked path needs it (a copy of the inputs)."""
    ndim = full[0].ndim
    if not blocked_needed or axis == ndim - 1:
        return axis, full, mask
    move = [None if x is None else jnp.moveaxis(x, axis, -1) for x in full]
    if mask is not None:
        mask = jnp.moveaxis(jnp.broadcast_to(mask, full[0].shape), axis, -1)
    return ndim - 1, tuple(move), mask


def _mask_parts(mask: jax.Array | None, shape):
    """A per-class mask as (full, const): the whole array, or one row shared by every row."""
    if mask is None:
        return None, None
    if mask.size == shape[-1]:
        return None, mask.reshape(1, shape[-1])
    return jnp.broadcast_to(mask, shape), None


class XentSpec(NamedTuple):
    """The static part of a soft-target cross-entropy: see ``softmax_xent_targets``."""

    axis: int
    smoothing: float
    blocked: bool
    from_labels: bool


def softmax_xent_targets(
    z: jax.Array,
    y: jax.Array | None,
    *,
    labels: jax.Array | None = None,
    label_weight: jax.Array | None = None,
    class_weights: jax.Array | None = None,
    mask: jax.Array | None = None,
    skip: jax.Array | None = None,
    smoothing: float = 0.0,
    axis: int,
) -> tuple[jax.Array, jax.Array]:
    r"""Cross-entropy of softmax(z) against targets built inside the fused passes.

    The targets are :math:`t_j = c_j\,((1 - \epsilon) Y_j + \epsilon / K_a)` on the classes
    that ``mask`` allows (0 elsewhere), with :math:`Y = y` (a negative label gives NaN) or,
    when ``y`` is None, :math:`Y = w\,e_{\text{label}}` from the integer ``labels`` and the
    per-row ``label_weight`` w (keepdims along ``axis``); :math:`c` are the ``class_weights``
    (broadcast along ``axis``) and :math:`K_a` the allowed classes. Rows where ``skip`` is
    True (keepdims) give 0 with derivative 0 whatever they hold. ``z`` and ``y`` are read in
    their own dtypes and computed in at least float32. Returns (loss, lse) reduced over
    ``axis``, with the values and derivatives of ``softmax_xent(z, t, mask, axis)``
    (lse is -inf in skipped and empty rows). Plain soft targets (no mask, class or label
    weights) take the whole-array route for the forward value from ``_FAST_MIN_ROWS`` rows
    (``_fast_or_exact``).
    """
    from_labels = y is None
    blocked = True
    full = (z, y)
    axis2, (z, y), mask = _prepare(axis, full, mask, blocked)
    if axis2 != axis:
        move = functools.partial(jnp.moveaxis, source=axis, destination=-1)
        labels = None if labels is None else move(labels)
        label_weight = None if label_weight is None else move(label_weight)
        class_weights = None if class_weights is None else move(class_weights)
        skip = None if skip is None else move(skip)
    spec = XentSpec(axis2, float(smoothing), blocked, from_labels)
    return _xent(spec, z, y, class_weights, label_weight, labels, mask, skip)


def _targets(spec: XentSpec, ct, shape, y, cw, lw, labels, mask, axis: int):
    """The targets t, elementwise (a per-row count of the allowed classes aside)."""
    if spec.from_labels:
        classes = jax.lax.broadcasted_iota(jnp.int32, shape, axis)
        big_y = jnp.where(classes == labels, lw.astype(ct), 0)
    else:
        big_y = y.astype(ct)
        # A negative label gives NaN (no derivative: its slope would be inf times 0).
        big_y = big_y + jnp.sqrt(jnp.minimum(jax.lax.stop_gradient(big_y), 0))
    if mask is not None:
        big_y = jnp.where(mask, big_y, 0)
    t = big_y
    if spec.smoothing:
        count = shape[axis] if mask is None else jnp.maximum(_sum(mask, axis), 1)
        t = (1 - spec.smoothing) * big_y + spec.smoothing / count
    if cw is not None:
        t = weighted_targets(t, cw.astype(ct))
    if mask is not None and (spec.smoothing or cw is not None):
        t = jnp.where(mask, t, 0)
    return t


def _xent_stats(axis, z, t, mask):
    """Per-row (m, s, T, V, B, P): the shift, sum exp(z - m), sum t, sum t (m - z), and the
    target mass on -inf and on +inf logits; one reduction pass after the maximum."""
    if mask is not None:
        z = jnp.where(mask, z, -jnp.inf)
    m = _shift(z, axis)
    s = _sum(jnp.exp(z - m), axis)
    return (
        m,
        s,
        _sum(t, axis),
        2 * _sum(t * _half_gap(m, z), axis),
        _sum(t * _neg_inf(z), axis),
        _sum(t * _pos_inf(z), axis),
    )


# XLA's CPU backend (jax 0.10) hands a chain of reductions and elementwise operations to
# one YNNPACK kernel, which reads each block of rows once, only where its per-row operations
# (the log of the row sums) have at least 4096 elements; with fewer rows the chain is split
# and the shifted logits are stored whole (as by optax's form). So the whole-array forms are
# taken from this many rows on.
_FAST_MIN_ROWS = 4096


def _fast_rows(arrays: tuple, axis: int) -> bool:
    """Whether a row-wise reduction over ``axis`` of ``arrays`` (of one shape) takes the
    whole-array form: enough rows, not the long rows' loop; half precision only in two
    dimensions (flattening more, the backend stored float32 and bfloat16 copies: 300% of
    the inputs at [64, 64, 1024] against 102% on the exact route)."""
    shape = arrays[0].shape
    k = shape[axis]
    rows = math.prod(shape) // k if k else 0
    wide = all(x.dtype == jnp.result_type(x.dtype, jnp.float32) for x in arrays)
    return (
        all(x.shape == shape for x in arrays)
        and rows >= _FAST_MIN_ROWS
        and not _long_rows(k)
        and (wide or len(shape) == 2)
    )


def _fast_or_exact(fast, exact, args: tuple):
    """``fast(*args)`` where its first output is finite, ``exact(*args)`` in the other rows.

    Both return a tuple of per-row arrays, the first of them the result. ``fast`` is a
    whole-array form that XLA's CPU backend runs as one fused kernel (the form of the naive
    code, without selects or compares); it is exact wherever its result is finite, and
    gives NaN or inf where the careful form is needed (-inf, +inf or NaN logits, empty
    rows, logits whose spread overflows). ``exact`` runs only when some row needs it. Under
    ``vmap`` the batch is folded into the rows (every argument is laid out like the
    logits, classes last), so that the choice stays one branch and not a select of both.
    """

    @jax.custom_batching.custom_vmap
    def run(*xs):
        # Each call's fused chain reads its own view of the inputs: two such chains on the
        # same logits (a cross-entropy and an entropy bonus) would otherwise share their
        # common terms, which the compiler then stores whole (256 MiB at [4096, 8192]).
        outs = fast(*jax.lax.optimization_barrier(xs))
        bad = ~jnp.isfinite(outs[0])

        def mend():
            return tuple(jnp.where(bad, e, o) for e, o in zip(exact(*xs), outs, strict=True))

        return jax.lax.cond(jnp.any(bad), mend, lambda: outs)

    @run.def_vmap
    def _batched(axis_size, in_batched, *xs):
        xs = tuple(
            x if b else jnp.broadcast_to(x, (axis_size, *x.shape))
            for x, b in zip(xs, in_batched, strict=True)
        )
        outs = run(*xs)
        return outs, tuple(True for _ in outs)

    # Rows flattened: per-row operations of higher rank are split off the fused kernel.
    shape = args[0].shape
    outs = run(*(x.reshape(-1, shape[-1]) for x in args))
    return tuple(o.reshape((*shape[:-1], 1)) for o in outs)


def _xent_fast(spec, ct, z, y):
    """The soft-target loss and lse as one fused pass after the maximum (see
    ``_fast_or_exact``): sum t (lse - z)."""
    axis = spec.axis
    zf = z.astype(ct)
    t = _smoothed(spec, ct, y, z.shape[axis])
    m = jnp.max(zf, axis=axis, keepdims=True)
    d = zf - m
    log_s = jnp.log(_sum(jnp.exp(d), axis))
    # A negative label makes the row NaN, so that the exact form answers it (NaN).
    neg = jnp.sqrt(jnp.minimum(jnp.min(y, axis=axis, keepdims=True).astype(ct), 0))
    # log s - (z - m), not lse - z: with huge logits lse - z cancels.
    return _sum(t * (log_s - d), axis) + neg, _lse_apart(zf, axis)


def _lse_apart(zf, axis: int):
    """The row log-sum-exp as its own chain: shift by -min(-z), not by max(z), so that the
    compiler does not share z - max(z) with the loss's chain (shared, it stores it whole;
    128 MiB at [4096, 8192] float32 with the z-loss)."""
    m = negated(jnp.min(negated(zf), axis=axis, keepdims=True))
    return jnp.log(_sum(jnp.exp(zf - m), axis)) + m


def _xent_fast_eligible(spec, z, y, cw, lw, labels, mask) -> bool:
    """Plain soft targets (smoothing allowed), where ``_fast_rows`` holds."""
    return (
        not spec.from_labels
        and cw is None
        and lw is None
        and labels is None
        and mask is None
        and y is not None
        and _fast_rows((z, y), spec.axis)
    )


def _xent_parts(spec, z, y, cw, lw, labels, mask, skip):
    ct = jnp.result_type(z.dtype, jnp.float32) if y is None else jnp.result_type(z, y, jnp.float32)
    axis = spec.axis
    if spec.blocked:
        mfull, mconst = _mask_parts(mask, z.shape)

        def fn(fb, rb, consts):
            zb, yb, mb = fb
            lab, lwb = rb
            cwb, mc = consts
            mk = mb if mc is None else mc
            if mk is not None:
                mk = jnp.broadcast_to(mk, zb.shape)
            t = _targets(spec, ct, zb.shape, yb, cwb, lwb, lab, mk, zb.ndim - 1)
            return _xent_stats(-1, zb, t, mk)

        cw2 = None if cw is None else cw.reshape(1, -1)
        stats = _row_blocks(fn, (z, y, mfull), (labels, lw), (cw2, mconst), ct, z.shape, skip)
    else:
        t = _targets(spec, ct, z.shape, skipped_as_zero(y, skip), cw, lw, labels, mask, axis)
        stats = _xent_stats(axis, skipped_as_zero(_upcast(z, ct), skip), t, None)
    m, s, total, v, neg, pos = stats
    log_s = log_or_neg_inf(s)
    loss = jnp.where(total == 0, 0, total * log_s + v)
    loss = jnp.where(neg > 0, jnp.inf, loss)
    loss = jnp.where(pos > 0, jnp.nan, loss)
    lse = log_s + m
    if skip is not None:
        loss = jnp.where(skip, 0, loss)
        lse = jnp.where(skip, -jnp.inf, lse)
    return ct, m, s, total, loss, lse


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _xent(spec, z, y, cw, lw, labels, mask, skip):
    if _xent_fast_eligible(spec, z, y, cw, lw, labels, mask):
        ct = jnp.result_type(z, y, jnp.float32)

        # The class axis is last (``_prepare``); -1 stays so with a batch folded in front.
        last = spec._replace(axis=-1)

        def exact(z_, y_):
            out = _xent_parts(last, z_, y_, None, None, None, None, None)
            return out[-2], out[-1]

        loss, lse = _fast_or_exact(functools.partial(_xent_fast, last, ct), exact, (z, y))
        if skip is not None:
            loss = jnp.where(skip, 0, loss)
            lse = jnp.where(skip, -jnp.inf, lse)
    else:
        _, _, _, _, loss, lse = _xent_parts(spec, z, y, cw, lw, labels, mask, skip)
    return jnp.squeeze(loss, spec.axis), jnp.squeeze(lse, spec.axis)


def _xent_fast_jvp(spec, primals, dz):
    """``_xent_jvp`` of plain soft targets on the fast route's rows (``_xent_fast_eligible``,
    float32 or float64, no smoothing, no skipped rows, labels not differentiated; in half
    precision the compiler stored an upcast copy of the logits, and with smoothing, summed
    with another loss's gradient, the targets or the shifted logits).

    The per-row statistics come from ``_fast_or_exact`` (their derivatives, for higher
    orders, from the exact route); being outputs of its conditional, they stay apart from
    the gradient's pass, which then holds only arithmetic and runs as one fused kernel
    (value-and-grad at [4096, 32768] float32 0.73x-0.82x the exact route's time, measured
    side by side)."""
    z, y = primals[:2]
    ct = jnp.result_type(z, y, jnp.float32)
    last = spec._replace(axis=-1)

    def exact(z_, y_):
        _, m, s, total, loss, lse = _xent_parts(last, z_, y_, None, None, None, None, None)
        positive = s != 0
        log_s = jnp.where(positive, jnp.log(jnp.where(positive, s, 1)), jnp.inf)
        return loss, lse, jnp.where(jnp.abs(m) < jnp.inf, m, 0), log_s, total

    def fast(z_, y_):
        # Three chains that share no array of the logits' size (shared, z - m was stored
        # whole): the loss, the shift and log-sum of the logits, the label total.
        loss = _xent_fast(last, ct, z_, y_)[0]
        zf = z_.astype(ct)
        m = negated(jnp.min(negated(zf), axis=-1, keepdims=True))
        log_s = jnp.log(_sum(jnp.exp(zf - m), -1))
        return loss, log_s + m, m, log_s, _sum(y_.astype(ct), -1)

    stats = _plain_derivatives(lambda a, b: _fast_or_exact(fast, exact, (a, b)), exact)(z, y)
    loss, lse, m, log_s, total = stats
    loss, lse = _rule_derivatives(spec, loss, lse, primals)
    sq = functools.partial(jnp.squeeze, axis=spec.axis)
    if is_zero(dz):
        return (sq(loss), sq(lse)), (jnp.zeros(sq(loss).shape, ct), jnp.zeros(sq(lse).shape, ct))
    # The gradient's pass: p = exp((z - m) - log s), 0 at -inf logits and in empty rows
    # (log s = +inf there); a row with a negative label has total NaN, as on the exact route.
    p = jnp.exp(-((m - z.astype(ct)) + log_s))
    dzf = dz.astype(ct)
    t, total = _labels_off_neg_inf(y.astype(ct), total, z.astype(ct), spec.axis)
    dloss = _sum((p * total - t) * dzf, spec.axis)
    dlse = _sum(p * dzf, spec.axis)
    return (sq(loss), sq(lse)), (sq(dloss), sq(dlse))


def _labels_off_neg_inf(t, total, zf, axis: int):
    """The targets ``t`` and their row sum ``total`` as they are, for the gradient in the
    logits, with derivatives (higher orders) that leave out the classes of -inf logits.

    The labels' slope there, lse - z = +inf, is reported as 0, so its derivative in the
    logits is 0; the logits' gradient T p - t would move with those labels (through t and
    T): the mixed second derivatives in the logits and labels would differ by order. (The
    values are unchanged: the select of t with itself is folded by the compiler.)"""
    off = zf == -jnp.inf
    t_z = jnp.where(off, jax.lax.stop_gradient(t), t)
    total_z = _plain_derivatives(
        lambda tot, t_, off_: tot,
        lambda tot, t_, off_: tot - _sum(jnp.where(off_, t_, 0), axis),
    )(total, t, off)
    return t_z, total_z


def _smoothed(spec, ct, y, k: int):
    t = y.astype(ct)
    return (1 - spec.smoothing) * t + spec.smoothing / k if spec.smoothing else t


def _xent_jvp(spec, primals, tangents):
    z, y, cw, lw, labels, mask, skip = primals
    dz, dy, dcw, dlw, _, _, _ = tangents
    if (
        _xent_fast_eligible(spec, z, y, cw, lw, labels, mask)
        and skip is None
        and not spec.smoothing
        and is_zero(dy)
        and all(x.dtype == jnp.result_type(x.dtype, jnp.float32) for x in (z, y))
    ):
        return _xent_fast_jvp(spec, primals, dz)
    axis = spec.axis
    ct, m, s, total, loss, lse = _xent_parts(spec, z, y, cw, lw, labels, mask, skip)
    loss, lse = _rule_derivatives(spec, loss, lse, primals)
    dloss = jnp.zeros(loss.shape, ct)
    dlse = jnp.zeros(lse.shape, ct)
    zf = skipped_as_zero(_upcast(z, ct), skip)
    if mask is not None:
        zf = jnp.where(mask, zf, -jnp.inf)
    positive = s != 0
    log_s_safe = jnp.where(positive, jnp.log(jnp.where(positive, s, 1)), jnp.inf)
    keep = None if skip is None else ~skip

    def kept(x):
        # Masked-out entries take no part: derivative 0 even in a NaN row.
        if mask is not None:
            x = jnp.where(mask, x, 0)
        return x if keep is None else jnp.where(keep, x, 0)

    def t_of(y_, cw_, lw_):
        return _targets(spec, ct, z.shape, skipped_as_zero(y_, skip), cw_, lw_, labels, mask, axis)

    if not is_zero(dz):
        # Written apart from the forward's exp(z - m), so that the two stay in separate
        # fusions and exp(z - m) is never stored (see ``_softmax_xent_int_jvp``).
        m_apart = jnp.where(jnp.abs(m) < jnp.inf, m, 0)
        p = jnp.exp(-((m_apart - zf) + log_s_safe))
        dzf = dz.astype(ct)
        t, total_z = _labels_off_neg_inf(t_of(y, cw, lw), total, zf, axis)
        coef = kept(p * total_z - t)
        dloss = dloss + _sum(coef * dzf, axis)
        dlse = dlse + _sum(kept(p) * dzf, axis)
    diffs = [(y, dy), (cw, dcw), (lw, dlw)]
    if any(x is not None and not is_zero(dx) for x, dx in diffs):
        tans = [
            None if x is None else (jnp.zeros_like(x) if is_zero(dx) else dx) for x, dx in diffs
        ]
        _, dt = jax.jvp(t_of, (y, cw, lw), tuple(tans))
        # d loss / d t_j = lse - z_j; reported as 0 at excluded (-inf or masked) classes.
        slope = jnp.where(zf == -jnp.inf, 0, log_s_safe + (m - zf))
        slope = jnp.where(positive, slope, 0)
        # The mask applies to the slope itself: a skipped row's slope may be NaN.
        dloss = dloss + _sum(kept(slope) * dt, axis)
    sq = functools.partial(jnp.squeeze, axis=axis)
    return (sq(loss), sq(lse)), (sq(dloss), sq(dlse))


def _rule_derivatives(spec, loss, lse, primals):
    """``_xent``'s (loss, lse) as its rule computed them (keepdims), with ``_xent``'s
    derivatives (``own_derivatives``)."""

    def again(*args):
        return tuple(jnp.expand_dims(o, spec.axis) for o in _xent(spec, *args))

    return own_derivatives((loss, lse), again, *primals)


_xent.defjvp(_xent_jvp, symbolic_zeros=True)


def _rows_stats(stats_fn, full: tuple, mask, axis: int, ct, blocked: bool, skip=None, still=None):
    """``stats_fn(axis, *full_upcast, mask)`` directly, or a block of rows at a time; rows
    where ``skip`` holds read as 0 (see ``_row_blocks``).

    ``still(*full, mask)``, if given, marks rows (keepdims) whose derivatives are all 0
    whatever they hold (a divergence of +inf): their statistics take their values as read,
    and their derivatives (higher orders) those of the rows read as 0, so that
    differentiating a rule that zeroes them meets no 0 times inf. It is evaluated in the
    derivatives' pass only."""
    if still is not None:
        # The mask and skipped rows are passed, not closed over: a traced one closed over by
        # the custom derivative would escape its trace (a jitted function's Hessian).
        def read(full_, mask_, skip_):
            return _rows_stats(stats_fn, full_, mask_, axis, ct, blocked, skip_)

        def flat(full_, mask_, skip_):
            st = still(*full_, mask_)
            st = st if skip_ is None else skip_ | st
            return _rows_stats(stats_fn, full_, mask_, axis, ct, blocked, st)

        return _plain_derivatives(read, flat)(full, mask, skip)
    if not blocked:
        return stats_fn(axis, *(skipped_as_zero(_upcast(x, ct), skip) for x in full), mask)
    mfull, mconst = _mask_parts(mask, full[0].shape)

    def fn(fb, rb, consts):
        (mc,) = consts
        mk = fb[-1] if mc is None else mc
        if mk is not None:
            mk = jnp.broadcast_to(mk, fb[0].shape)
        return stats_fn(fb[0].ndim - 1, *fb[:-1], mk)

    return _row_blocks(fn, (*full, mfull), (), (mconst,), ct, full[0].shape, skip)


def _p(zf, m, s):
    """softmax written apart from the forward's exp(z - m) (see ``_xent_jvp``); 0 in empty
    rows and at -inf (or masked) entries."""
    positive = s != 0
    log_s = jnp.where(positive, jnp.log(jnp.where(positive, s, 1)), jnp.inf)
    m_apart = jnp.where(jnp.abs(m) < jnp.inf, m, 0)
    return jnp.exp(-((m_apart - zf) + log_s))


class RowSpec(NamedTuple):
    axis: int
    blocked: bool


def _row_spec(z: jax.Array, mask, axis: int, full: tuple):
    blocked = True
    axis2, full, mask = _prepare(axis, full, mask, blocked)
    return RowSpec(axis2, blocked), full, mask, axis2 != axis


def softmax_entropy(
    z: jax.Array, *, mask: jax.Array | None = None, skip: jax.Array | None = None, axis: int
) -> jax.Array:
    r"""Entropy of softmax(z) along ``axis``: :math:`\operatorname{lse}(z) - \sum_j p_j z_j`.

    Read in ``z``'s dtype, computed in at least float32, in two passes (row maximum, then
    one fused reduction; unmasked float32/float64 rows shorter than
    ``_ROW_BLOCK_MIN_CLASSES``: three whole-array passes, see ``_entropy_whole``; the
    forward value from ``_FAST_MIN_ROWS`` rows: ``_fast_or_exact``); the derivative rule
    stores only per-row values. ``mask``: allowed
    classes (broadcastable); ``skip``: rows (keepdims) that give 0, whatever they hold.
    Empty rows give 0; a +inf or NaN allowed logit gives NaN.
    """
    whole = z.dtype == jnp.result_type(z.dtype, jnp.float32)
    last = axis % z.ndim == z.ndim - 1
    if whole and mask is None and (skip is None or last) and not _long_rows(z.shape[axis]):
        # Unmasked rows of float32 or float64: whole-array passes with select-free summands
        # (see ``_entropy_whole``; half precision read that way stores an upcast copy).
        # With skipped rows, the derivative rule takes the blocked passes, which read them
        # as 0 (see ``_entropy_jvp``); the value, never differentiated, keeps these.
        return _entropy(RowSpec(axis, False), z, None, skip)
    spec, (z,), mask, moved = _row_spec(z, mask, axis, (z,))
    if moved and skip is not None:
        skip = jnp.moveaxis(skip, axis, -1)
    return _entropy(spec, z, mask, skip)


def _entropy_stats(axis, z, mask):
    if mask is not None:
        z = jnp.where(mask, z, -jnp.inf)
    m = _shift(z, axis)
    e = jnp.exp(z - m)
    s = _sum(e, axis)
    # sum p (m - z) as sum e (m - z) / s: one exponential per entry.
    u = 2 * _sum(e * _half_gap(m, z), axis) / jnp.where(s == 0, 1, s)
    return m, s, u


def _entropy_whole(z, axis, ct):
    """Row maximum m, sum s of exp(z - m) and entropy h of unmasked rows, each in one
    whole-array reduction that XLA's CPU backend runs on every core and fuses with its
    summand: h = -sum p log p, with log p = (z - m) - log s clamped to the finite range, so
    that -inf logits give 0 without a select. A select or compare in a summand, or two sums
    sharing a term (z - m, or one upcast of half-precision logits), made the backend store a
    float32 copy of the logits; so the last pass reads its own copy of m. For float32 and
    float64 logits (half precision stored an upcast copy)."""
    m = _shift(z, axis)
    s = _sum(jnp.exp(z - m), axis)
    log_s = _safe_log(s)
    m_apart = jax.lax.optimization_barrier(m)
    log_p = jnp.maximum((z - m_apart) - log_s, -_big(ct))
    h = negated(_sum(jnp.exp(log_p) * log_p, axis))
    # From 4096 rows on the backend's fused kernel takes max(NaN, x) as x, so the clamp
    # above turns a NaN log p into a finite one; a NaN or +inf logit makes s NaN or +inf.
    h = jnp.where(jnp.isfinite(s), h, jnp.nan)
    return m, s, log_s, jnp.where(s == 0, 0, h)


def _entropy_parts(spec, z, mask, skip):
    ct = jnp.result_type(z.dtype, jnp.float32)
    if spec.blocked:
        m, s, u = _rows_stats(_entropy_stats, (z,), mask, spec.axis, ct, spec.blocked, skip)
        log_s = _safe_log(s)
        h = jnp.where(s == 0, 0, log_s + u)
    else:
        m, s, log_s, h = _entropy_whole(z, spec.axis, ct)
    if skip is not None:
        h = jnp.where(skip, 0, h)
    return ct, m, s, log_s, h


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _entropy(spec, z, mask, skip):
    if mask is None and _fast_rows((z,), spec.axis):
        ct = jnp.result_type(z.dtype, jnp.float32)
        return _fast_row_value(
            spec, functools.partial(_entropy_fast, ct), _entropy_parts, (z,), skip
        )
    return jnp.squeeze(_entropy_parts(spec, z, mask, skip)[-1], spec.axis)


def _fast_row_value(spec, fast, parts, arrays: tuple, skip):
    """The value of a row reduction over ``spec.axis`` on the fast route: ``fast`` on the
    arrays with classes last, ``parts(spec, *arrays, mask, skip)[-1]`` (unmasked) as the
    exact route (see ``_fast_or_exact``); rows where ``skip`` holds give 0."""
    last = RowSpec(-1, spec.blocked)

    def exact(*xs):
        return (parts(last, *xs, None, None)[-1],)

    xs = tuple(jnp.moveaxis(x, spec.axis, -1) for x in arrays)
    (v,) = _fast_or_exact(fast, exact, xs)
    v = jnp.moveaxis(v, -1, spec.axis)
    if skip is not None:
        v = jnp.where(skip, 0, v)
    return jnp.squeeze(v, spec.axis)


def _entropy_fast(ct, z):
    """sum p (log s - (z - m)) as one fused pass after the maximum (see ``_fast_or_exact``)."""
    zf = z.astype(ct)
    d = zf - jnp.max(zf, axis=-1, keepdims=True)
    e = jnp.exp(d)
    s = _sum(e, -1)
    return (_sum((e / s) * (jnp.log(s) - d), -1),)


def _entropy_jvp(spec, primals, tangents):
    z, mask, skip = primals
    dz = tangents[0]
    # Skipped rows may hold NaN or inf: the rule's statistics read them as 0, a block of
    # rows at a time (classes last, see ``softmax_entropy``), so that its own derivatives
    # meet no NaN there.
    rule = spec if skip is None else RowSpec(spec.axis, True)
    ct, m, s, log_s, h = _entropy_parts(rule, z, mask, skip)
    h = own_derivatives(
        h, lambda *args: jnp.expand_dims(_entropy(spec, *args), spec.axis), z, mask, skip
    )
    out = jnp.squeeze(h, spec.axis)
    if is_zero(dz):
        return out, jnp.zeros_like(out)
    zf = skipped_as_zero(_upcast(z, ct), skip)
    if mask is not None:
        zf = jnp.where(mask, zf, -jnp.inf)
    # dH/dz_k = -p_k (log p_k + H), with log p_k = (z_k - m) - log s.
    p = _p(zf, m, s)
    grad = 2 * _times_mass(p, _half_gap(m, zf)) + p * (log_s - h)
    if mask is not None:
        grad = jnp.where(mask, grad, 0)  # masked-out entries: 0 even in a NaN row
    if skip is not None:
        grad = jnp.where(skip, 0, grad)
    return out, jnp.sum(grad * dz.astype(ct), axis=spec.axis)


_entropy.defjvp(_entropy_jvp, symbolic_zeros=True)


def softmax_kl(
    a: jax.Array,
    b: jax.Array,
    *,
    mask: jax.Array | None = None,
    skip: jax.Array | None = None,
    axis: int,
) -> jax.Array:
    r""":math:`D(\operatorname{softmax}(a) \,\|\, \operatorname{softmax}(b))` along ``axis``.

    Read in the inputs' dtypes, computed in at least float32, in two passes over each (row
    maxima, then one fused reduction; the forward value from ``_FAST_MIN_ROWS`` rows:
    ``_fast_or_exact``); the derivative rule stores only per-row values.
    ``mask`` and ``skip`` as in ``softmax_entropy``. Entries with p = 0 contribute 0; mass
    of p where q has none gives +inf; an empty p row gives 0.
    """
    spec, (a, b), mask, moved = _row_spec(a, mask, axis, (a, b))
    if moved and skip is not None:
        skip = jnp.moveaxis(skip, axis, -1)
    return _kl(spec, a, b, mask, skip)


def _kl_stats(axis, a, b, mask, support: bool = True):
    if mask is not None:
        a = jnp.where(mask, a, -jnp.inf)
        b = jnp.where(mask, b, -jnp.inf)
    ma, mb = _shift(a, axis), _shift(b, axis)
    # c: q's logit at p's mode (the largest there, for ties). The gaps b - c are then small
    # where p has its mass: measured from b's maximum instead, a logit of q far above
    # those (1e6, also where p is tiny but not 0) made them all huge, and the gradient in
    # a, p (log p - log q - D), lost every digit to the cancellation with D. The value
    # alone (``support`` false) takes c = m_b: D is as exact either way, and the extra
    # reduction would cost the row-block loop one more block of scratch.
    c = _shift(jnp.where(a == ma, b, -jnp.inf), axis) if support else mb
    ea = jnp.exp(a - ma)
    sa, sb = _sum(ea, axis), _sum(jnp.exp(b - mb), axis)
    # v = sum p ((a - m_a) - (b - c)) from e_a = s_a p: two exponentials per entry pair, not
    # three; D = v + (m_b - c) + log s_b - log s_a. The derivative rule differentiates v (at
    # higher orders): a -inf logit of a has a huge clamped gap and e_a = 0 (``_times_mass``).
    gap = _half_gap(c, b) - _half_gap(ma, a)
    v = 2 * _sum(_times_mass(ea, gap), axis) / jnp.where(sa == 0, 1, sa)
    # > 0 exactly where p has mass on a -inf of b: a finite logit of a is mass of p, even
    # where exp(a - m_a) underflows to 0.
    neg = _sum((1 - _neg_inf(a)) * _neg_inf(b), axis)
    return ma, mb, c, sa, sb, v, neg


def _pos_inf_q(axis: int):
    """Rows where q has a +inf allowed logit (D = +inf where p's logits are finite)."""

    def still(a, b, mask):
        inf = b == jnp.inf
        return _sum(inf if mask is None else inf & mask, axis) > 0

    return still


def _kl_parts(spec, a, b, mask, skip, support: bool = False):
    """The KL's statistics and value; ``support``: c at p's mode (``_kl_stats``), for the
    rule."""
    ct = jnp.result_type(a.dtype, b.dtype, jnp.float32)
    stats = functools.partial(_kl_stats, support=support)
    ma, mb, c, sa, sb, v, neg = _rows_stats(
        stats, (a, b), mask, spec.axis, ct, spec.blocked, skip, _pos_inf_q(spec.axis)
    )
    la, lb = _safe_log(sa), _safe_log(sb)
    d = jnp.where(neg > 0, jnp.inf, v + (mb - c) + (lb - la))
    # A +inf logit of b: +inf (as vocabulary-parallel), not -inf + inf where the clamped
    # gaps' sum v overflows (which depends on how p's mass is spread).
    d = jnp.where((lb == jnp.inf) & (jnp.abs(la) < jnp.inf), jnp.inf, d)
    d = jnp.where(sa == 0, 0, d)
    if skip is not None:
        d = jnp.where(skip, 0, d)
    return ct, ma, mb, c, sa, sb, v, la, lb, d


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _kl(spec, a, b, mask, skip):
    if mask is None and _fast_rows((a, b), spec.axis):
        ct = jnp.result_type(a.dtype, b.dtype, jnp.float32)
        return _fast_row_value(spec, functools.partial(_kl_fast, ct), _kl_parts, (a, b), skip)
    return jnp.squeeze(_kl_parts(spec, a, b, mask, skip)[-1], spec.axis)


def _kl_fast(ct, a, b):
    """sum p (log p - log q) as one fused pass after the maxima (see ``_fast_or_exact``)."""

    def log_softmax(x):
        x = x.astype(ct)
        d = x - jnp.max(x, axis=-1, keepdims=True)
        return d - jnp.log(_sum(jnp.exp(d), -1))

    la, lb = log_softmax(a), log_softmax(b)
    return (_sum(jnp.exp(la) * (la - lb), -1),)


def _kl_jvp(spec, primals, tangents):
    a, b, mask, skip = primals
    da, db = tangents[:2]
    ct, ma, mb, c, sa, sb, v, _, _, d = _kl_parts(spec, a, b, mask, skip, support=True)
    d = own_derivatives(
        d, lambda *args: jnp.expand_dims(_kl(spec, *args), spec.axis), a, b, mask, skip
    )
    out = jnp.squeeze(d, spec.axis)
    dout = jnp.zeros_like(out)
    # Rows of D = +inf (every derivative 0) are read as 0, with the statistics of a row of
    # zeros, so that differentiating this rule meets no 0 times inf there.
    gone = d == jnp.inf
    if skip is not None:
        gone = gone | skip
    af, bf = skipped_as_zero(_upcast(a, ct), gone), skipped_as_zero(_upcast(b, ct), gone)
    k = a.shape[spec.axis] if mask is None else jnp.maximum(_sum(mask, spec.axis), 1)
    k = jnp.asarray(k, ct)
    ma, mb, c, v = (jnp.where(gone, 0, x) for x in (ma, mb, c, v))
    sa, sb = jnp.where(gone, k, sa), jnp.where(gone, k, sb)
    if mask is not None:
        af = jnp.where(mask, af, -jnp.inf)
        bf = jnp.where(mask, bf, -jnp.inf)
    p = _p(af, ma, sa)

    def kept(x):
        # Everything is 0 where the divergence is +inf (as the Renyi divergence's rule), and
        # at masked-out entries even in a NaN row.
        x = jnp.where(d == jnp.inf, 0, x)
        if mask is not None:
            x = jnp.where(mask, x, 0)
        return x if skip is None else jnp.where(skip, 0, x)

    if not is_zero(da):
        # dD/da_k = p_k (log p_k - log q_k - D) = p_k ((a_k - m_a) - (b_k - c) - v): log s_a,
        # log s_b and m_b - c cancel exactly, so no huge gap enters (see ``_kl_stats``).
        half = _half_gap(c, bf) - _half_gap(ma, af)
        coef = 2 * _times_mass(p, half) - p * v
        dout = dout + jnp.sum(kept(coef) * da.astype(ct), axis=spec.axis)
    if not is_zero(db):
        # dD/db_k = q_k sum(p) - p_k
        q = jnp.where(sa == 0, 0, _p(bf, mb, sb))
        dout = dout + jnp.sum(kept(q - p) * db.astype(ct), axis=spec.axis)
    return out, dout


_kl.defjvp(_kl_jvp, symbolic_zeros=True)


def class_masks(ca, where) -> tuple[jax.Array | None, jax.Array | None]:
    """A ``ClassAxis``'s mask as the kernels take it: (per-class mask, skipped rows).

    A per-example mask becomes the skipped rows (keepdims); a per-class mask is passed as
    given when it is shared by every row (no array of the logits' size is formed), else
    laid out like the logits.
    """
    if ca.mask is None:
        return None, None
    if ca.row_mask is not None:
        return None, ca.expand(~ca.row_mask)
    w = jnp.asarray(where)
    if not ca.flat and w.ndim <= ca.z.ndim:
        padded = (1,) * (ca.z.ndim - w.ndim) + w.shape
        if all(n == 1 for i, n in enumerate(padded) if i != ca.axis):
            return w.reshape(padded), None
    return ca.mask, None
