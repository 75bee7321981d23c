r"""Shared numerics: x log x terms with 0 log 0 = 0, and the masked, shifted log-sum-exp.

Derivative convention, used by every function in jaxent: a derivative that is finite is
exact. Where a term's value is finite but its derivative diverges at a zero probability
(the slope of :math:`-p \log p` at :math:`p = 0`, of :math:`p \log(p/q)` in :math:`p` at
:math:`p = 0`, of :math:`H_b` at 0 and 1), the derivative is reported as 0: such an entry
lies outside the support and behaves like a masked one. This keeps forward and reverse mode
free of NaN (a diverging slope times a zero tangent would be NaN).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero


def _is_zero(t: object) -> bool:
    return isinstance(t, SymbolicZero)


def _safe_log(x: jax.Array) -> jax.Array:
    """log(x) for x > 0, 0 elsewhere: a log whose derivative never meets 0 or a negative."""
    return jnp.where(x > 0, jnp.log(jnp.where(x > 0, x, 1)), 0)


@jax.custom_jvp
def xlogx(x: jax.Array) -> jax.Array:
    r""":math:`x \log x` with :math:`0 \log 0 = 0`; NaN for negative x."""
    return jnp.where(x == 0, jnp.zeros_like(x), x * jnp.log(x))


@xlogx.defjvp
def _xlogx_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    slope = jnp.where(x == 0, 0, jnp.log(jnp.where(x == 0, 1, x)) + 1)
    return xlogx(x), slope * dx


@jax.custom_jvp
def xlogx_to_sum(x: jax.Array) -> jax.Array:
    r"""``xlogx`` written without a select, for terms that are summed: on XLA's CPU backend
    a compare-and-select in the summand keeps the reduction from fusing, which then stores
    every term (a fresh array of x's size, 3-4x slower).

    .. math:: x \log \max(x, \text{tiny}) + \sqrt{\min(x, 0)}

    equals ``xlogx`` (0 at 0 and -0, NaN for negative or NaN x, +inf at +inf) except below
    the smallest normal number, where both are within 1e-36 of 0. Same derivative.
    """
    tiny = jnp.finfo(x.dtype).tiny
    return x * jnp.log(jnp.maximum(x, tiny)) + jnp.sqrt(jnp.minimum(x, 0))


@xlogx_to_sum.defjvp
def _xlogx_to_sum_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    slope = jnp.where(x == 0, 0, jnp.log(jnp.where(x == 0, 1, x)) + 1)
    return xlogx_to_sum(x), slope * dx


@jax.custom_jvp
def xlogy(x: jax.Array, y: jax.Array) -> jax.Array:
    r""":math:`x \log y` with :math:`0 \log y = 0` for every y >= 0, 0 included.

    A negative or NaN y gives NaN even where x = 0, and so does a negative x (a negative
    probability or weight): invalid input is never hidden behind a plausible number.
    """
    zero = jnp.where(y >= 0, jnp.zeros_like(x * y), jnp.nan)
    value = jnp.where(x < 0, jnp.nan, x * jnp.log(jnp.where(x == 0, 1, y)))
    return jnp.where(x == 0, zero, value)


def _xlogy_jvp(primals, tangents):
    (x, y), (dx, dy) = primals, tangents
    out = xlogy(x, y)
    both_zero = (x == 0) & (y == 0)
    dout = jnp.zeros_like(out)
    if not _is_zero(dx):
        # d/dx = log y: exact when finite; the divergent slope at x = y = 0 is reported as 0.
        dout = dout + jnp.where(both_zero, 0, jnp.log(jnp.where(both_zero, 1, y))) * dx
    if not _is_zero(dy):
        # d/dy = x / y, exactly 0 where x = 0 (y = 0 included).
        dout = dout + jnp.where(x == 0, 0, x / jnp.where(x == 0, 1, y)) * dy
    return out, dout


xlogy.defjvp(_xlogy_jvp, symbolic_zeros=True)


@jax.custom_jvp
def rel_entr(p: jax.Array, q: jax.Array) -> jax.Array:
    r""":math:`p \log(p / q)`: 0 where p = 0 <= q, +inf where p > 0 = q, NaN for negatives.

    A negative or NaN q gives NaN even where p = 0: invalid input is never hidden.
    """
    safe_p = jnp.where(p == 0, 1, p)
    safe_q = jnp.where(p == 0, 1, q)
    zero = jnp.where(q >= 0, 0, jnp.nan)
    return jnp.where(p == 0, zero, p * (jnp.log(safe_p) - jnp.log(safe_q)))


def _rel_entr_jvp(primals, tangents):
    (p, q), (dp, dq) = primals, tangents
    out = rel_entr(p, q)
    zero = p == 0
    dout = jnp.zeros_like(out)
    if not _is_zero(dp):
        safe_p = jnp.where(zero, 1, p)
        safe_q = jnp.where(zero, 1, q)
        dout = dout + jnp.where(zero, 0, jnp.log(safe_p) - jnp.log(safe_q) + 1) * dp
    if not _is_zero(dq):
        dout = dout - jnp.where(zero, 0, p / jnp.where(zero, 1, q)) * dq
    return out, dout


rel_entr.defjvp(_rel_entr_jvp, symbolic_zeros=True)


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
        self.log_s = jnp.log(s)
        self.p = e * jnp.where(s > 0, 1 / jnp.where(s > 0, s, 1), 0)

    @property
    def lse(self) -> jax.Array:
        return self.log_s + self.m

    def log_p(self) -> jax.Array:
        """log softmax where p > 0, 0 elsewhere (masked or -inf entries)."""
        return jnp.where(self.p > 0, self.d - self.log_s, 0)


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
    terms = jnp.where(t != 0, t * (sh.log_s - sh.d), 0)
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
    if not _is_zero(dz):
        total = jnp.sum(t, axis=axis, keepdims=True)
        dloss = dloss + jnp.sum((sh.p * total - t) * dz, axis=axis)
        dlse = dlse + jnp.sum(sh.p * dz, axis=axis)
    if not _is_zero(dt):
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


def _row_blocked(z: jax.Array, axis: int) -> bool:
    rows = math.prod(z.shape[:-1])
    return (
        z.ndim >= 2
        and axis == z.ndim - 1
        and z.shape[-1] >= _ROW_BLOCK_MIN_CLASSES
        and rows % _ROW_BLOCK == 0
        and rows >= 2 * _ROW_BLOCK
    )


def _max_and_sum_exp_blocked(z, ignored, ct):
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
    half = z.dtype == jnp.bfloat16
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


def _softmax_xent_int_parts(z, labels, ignored, axis):
    # Half-precision logits stay as they are in memory: the maximum is exact in their
    # dtype, and the upcast happens inside each fused pass, never as an f32 copy.
    ct = jnp.result_type(z, jnp.float32)
    zz = z if ignored is None else jnp.where(jnp.expand_dims(ignored, axis), -jnp.inf, z)
    if _row_blocked(z, axis) and (z.dtype == ct or z.dtype == jnp.bfloat16):
        m, s = _max_and_sum_exp_blocked(z, ignored, ct)
    else:
        m = jax.lax.stop_gradient(jnp.max(zz, axis=axis, keepdims=True))
        m = jnp.where(jnp.isfinite(m), m, 0).astype(ct)
        s = jnp.sum(jnp.exp(zz.astype(ct) - m), axis=axis, keepdims=True)
    idx = jnp.expand_dims(jnp.clip(labels, 0, z.shape[axis] - 1), axis)
    if zz.dtype == ct:
        z_c = jnp.take_along_axis(zz, idx, axis=axis, mode="promise_in_bounds")
    else:
        # Gathers the raw bits: the compiler would move an upcast of the gathered values
        # before the gather, making an f32 copy of all the logits to gather from.
        bits = jnp.dtype(f"uint{8 * zz.dtype.itemsize}")
        raw = jax.lax.bitcast_convert_type(zz, bits)
        z_c = jnp.take_along_axis(raw, idx, axis=axis, mode="promise_in_bounds")
        z_c = jax.lax.bitcast_convert_type(z_c, zz.dtype)
    return zz, m, s, jnp.log(s), idx, z_c.astype(ct) - m


def _upcast_apart(x: jax.Array, dtype) -> jax.Array:
    """``x.astype(dtype)``; for bfloat16 through its bits: exact, and not merged by the
    compiler with a plain upcast of the same values (the merged upcast would be stored)."""
    if x.dtype != jnp.bfloat16 or dtype != jnp.float32:
        return x.astype(dtype)
    bits = jax.lax.bitcast_convert_type(x, jnp.uint16).astype(jnp.uint32) << 16
    return jax.lax.bitcast_convert_type(bits, jnp.float32)


@functools.partial(jax.custom_jvp, nondiff_argnums=(4,))
def _softmax_xent_int(z, labels, weight, ignored, axis):
    _, m, _, log_s, _, d_c = _softmax_xent_int_parts(z, labels, ignored, axis)
    w = jnp.expand_dims(weight, axis)
    loss = jnp.where(w != 0, w * (log_s - d_c), 0)
    return jnp.squeeze(loss, axis), jnp.squeeze(log_s + m, axis)


def _softmax_xent_int_jvp(axis, primals, tangents):
    z, labels, weight, ignored = primals
    dz, _, dw, _ = tangents
    zz, m, s, log_s, idx, d_c = _softmax_xent_int_parts(z, labels, ignored, axis)
    w = jnp.expand_dims(weight, axis)
    loss = jnp.squeeze(jnp.where(w != 0, w * (log_s - d_c), 0), axis)
    lse = jnp.squeeze(log_s + m, axis)
    dloss = jnp.zeros_like(loss)
    dlse = jnp.zeros_like(lse)
    if not _is_zero(dz):
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
        p = jnp.exp(-((m_apart - _upcast_apart(zz, lse.dtype)) + log_s_safe))
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
    if not _is_zero(dw):
        # d loss / d w = lse - z_c; reported as 0 at an excluded (-inf) label logit.
        slope = jnp.where(d_c == -jnp.inf, 0, log_s - d_c)
        dloss = dloss + jnp.squeeze(slope, axis) * dw
    return (loss, lse), (dloss, dlse)


_softmax_xent_int.defjvp(_softmax_xent_int_jvp, symbolic_zeros=True)
