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
def xlogy(x: jax.Array, y: jax.Array) -> jax.Array:
    r""":math:`x \log y` with :math:`0 \log y = 0` for every y, 0 included."""
    return jnp.where(x == 0, jnp.zeros_like(x * y), x * jnp.log(jnp.where(x == 0, 1, y)))


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
    r""":math:`p \log(p / q)`: 0 where p = 0, +inf where p > 0 = q, NaN for negatives."""
    safe_p = jnp.where(p == 0, 1, p)
    safe_q = jnp.where(p == 0, 1, q)
    return jnp.where(p == 0, 0, p * (jnp.log(safe_p) - jnp.log(safe_q)))


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
