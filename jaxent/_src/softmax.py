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

import jax
import jax.numpy as jnp

from .numerics import is_zero


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
    loss = _label_term(jnp.expand_dims(weight, axis), log_s, d_c)
    return jnp.squeeze(loss, axis), jnp.squeeze(log_s + m, axis)


def _label_term(w, log_s, d_c):
    """w (lse - z_c): 0 where w = 0; +inf for label mass on a -inf logit or an empty row."""
    return jnp.where(w != 0, w * jnp.where(log_s == -jnp.inf, jnp.inf, log_s - d_c), 0)


def _softmax_xent_int_jvp(axis, primals, tangents):
    z, labels, weight, ignored = primals
    dz, _, dw, _ = tangents
    zz, m, s, log_s, idx, d_c = _softmax_xent_int_parts(z, labels, ignored, axis)
    w = jnp.expand_dims(weight, axis)
    loss = jnp.squeeze(_label_term(w, log_s, d_c), axis)
    lse = jnp.squeeze(log_s + m, axis)
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
    if not is_zero(dw):
        # d loss / d w = lse - z_c; reported as 0 at an excluded (-inf) label logit.
        slope = jnp.where(d_c == -jnp.inf, 0, log_s - d_c)
        dloss = dloss + jnp.squeeze(slope, axis) * dw
    return (loss, lse), (dloss, dlse)


_softmax_xent_int.defjvp(_softmax_xent_int_jvp, symbolic_zeros=True)
