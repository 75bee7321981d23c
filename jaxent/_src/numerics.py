r"""Shared numerics: x log x, x log y and p log(p/q) with 0 log 0 = 0, and their derivatives.

Derivative convention, used by every function in jaxent: a derivative that is finite is
exact. Where a term's value is finite but its derivative diverges at a zero probability
(the slope of :math:`-p \log p` at :math:`p = 0`, of :math:`p \log(p/q)` in :math:`p` at
:math:`p = 0`, of :math:`H_b` at 0 and 1), the derivative is reported as 0: such an entry
lies outside the support and behaves like a masked one. This keeps forward and reverse mode
free of NaN (a diverging slope times a zero tangent would be NaN).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero


def is_zero(t: object) -> bool:
    """Whether a tangent is a symbolic zero (``custom_jvp(..., symbolic_zeros=True)``)."""
    return isinstance(t, SymbolicZero)


def negated(x: jax.Array) -> jax.Array:
    """-x, with an exact zero coming back as +0 rather than -0 (so that it prints as 0)."""
    return 0 - x


def held_at_zero(d: jax.Array, below: jax.Array) -> jax.Array:
    """``d`` held at 0 where ``below`` (a value that rounding left below its bound 0), its
    derivatives those of ``d``: the function is 0 there to rounding, but its slope need
    not be (the Rényi divergence's in the order, at order 0 with p of full support, is
    KL(q || p); nearly equal distributions' in p and q)."""
    return d - jax.lax.stop_gradient(jnp.where(below, d, 0))


def weighted_targets(t: jax.Array, w: jax.Array) -> jax.Array:
    """t w, with a zero target under an infinite or NaN weight giving 0 (a term with
    w t = 0 is 0, as the integer-label loss, which reads only the label's weight, gives).
    The weight, not t, is chosen, so that dt/dy stays w where the target is 0 and w finite."""
    return t * jnp.where((t == 0) & ~jnp.isfinite(w), 0, w)


def times_finite(c: jax.Array, x: jax.Array) -> jax.Array:
    """c x, 0 where c = 0 and x is infinite; elsewhere the product itself, so that its
    slope in c (x) is kept where c = 0."""
    return jnp.where((c == 0) & jnp.isinf(x), 0, c * x)


@jax.custom_jvp
def xlogx(x: jax.Array) -> jax.Array:
    r""":math:`x \log x` with :math:`0 \log 0 = 0`; NaN for negative x."""
    return jnp.where(x == 0, jnp.zeros_like(x), x * jnp.log(x))


def xlogx_slope(x: jax.Array) -> jax.Array:
    """d(x log x)/dx = log x + 1, reported as 0 at x = 0 (where it diverges)."""
    return jnp.where(x == 0, 0, jnp.log(jnp.where(x == 0, 1, x)) + 1)


@xlogx.defjvp
def _xlogx_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return xlogx(x), xlogx_slope(x) * dx


@jax.custom_jvp
def xlogx_to_sum(x: jax.Array) -> jax.Array:
    r"""``xlogx`` written without a select, for terms that are summed: on XLA's CPU backend
    a compare-and-select in the summand keeps the reduction from fusing, which then stores
    every term (a fresh array of x's size, 3-4x slower).

    .. math:: x \log \max(x, \text{tiny}) + \sqrt{\min(x, -0)}

    equals ``xlogx`` (0 at 0 and -0, NaN for negative or NaN x, +inf at +inf) except below
    the smallest normal number, where both are within 1e-36 of 0. Same derivative. (The
    bound is -0, not 0: a broadcast 0 is shared with other uses of 0 and handed to the
    CPU's reduction kernel as an array of x's size.)
    """
    tiny = jnp.finfo(x.dtype).tiny
    return x * jnp.log(jnp.maximum(x, tiny)) + jnp.sqrt(jnp.minimum(x, -0.0))


@xlogx_to_sum.defjvp
def _xlogx_to_sum_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return xlogx_to_sum(x), xlogx_slope(x) * dx


@jax.custom_jvp
def xlogy(x: jax.Array, y: jax.Array) -> jax.Array:
    r""":math:`x \log y` with :math:`0 \log y = 0` for every y >= 0, 0 included.

    A negative or NaN y gives NaN even where x = 0, and so does a negative x (a negative
    probability or weight): invalid input is never hidden behind a plausible number.
    """
    zero = jnp.where(y >= 0, jnp.zeros_like(x * y), jnp.nan)
    value = jnp.where(x < 0, jnp.nan, x * jnp.log(jnp.where(x == 0, 1, y)))
    return jnp.where(x == 0, zero, value)


def xlogy_slope_x(x: jax.Array, y: jax.Array) -> jax.Array:
    """d(x log y)/dx = log y: exact when finite; the divergent slope at x = y = 0 is 0."""
    both_zero = (x == 0) & (y == 0)
    return jnp.where(both_zero, 0, jnp.log(jnp.where(both_zero, 1, y)))


def xlogy_slope_y(x: jax.Array, y: jax.Array) -> jax.Array:
    """d(x log y)/dy = x / y, exactly 0 where x = 0 (y = 0 included). Written so that its
    own slope in x, 1 / y, is kept at x = 0 < y (mixed second derivatives at hard labels);
    only at x = y = 0 is it taken as 0."""
    both_zero = (x == 0) & (y == 0)
    return jnp.where(both_zero, 0, x / jnp.where(both_zero, 1, y))


def _xlogy_jvp(primals, tangents):
    (x, y), (dx, dy) = primals, tangents
    out = xlogy(x, y)
    dout = jnp.zeros_like(out)
    if not is_zero(dx):
        dout = dout + xlogy_slope_x(x, y) * dx
    if not is_zero(dy):
        dout = dout + xlogy_slope_y(x, y) * dy
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


def rel_entr_slope_p(p: jax.Array, q: jax.Array) -> jax.Array:
    """d(p log(p/q))/dp = log(p/q) + 1, reported as 0 at p = 0 (where it diverges).

    That 0 keeps the formula's own slope in q, -1/q (finite for q > 0), so that the mixed
    second derivative is the same in either order (``rel_entr_slope_q``'s slope in p).
    """
    zero = p == 0
    safe_p = jnp.where(zero, 1, p)
    # One log for both branches: log q, read as log 1 = 0 where p = 0 and q is not positive.
    log_q = jnp.log(jnp.where(zero & ~(q > 0), 1, q))
    return jnp.where(zero, jax.lax.stop_gradient(log_q) - log_q, jnp.log(safe_p) - log_q + 1)


def rel_entr_slope_q(p: jax.Array, q: jax.Array) -> jax.Array:
    """d(p log(p/q))/dq = -p/q, exactly 0 where p = 0; its own slope in p, -1/q, is kept at
    p = 0 < q (taken as 0 only at p = q = 0)."""
    both_zero = (p == 0) & (q == 0)
    return -jnp.where(both_zero, 0, p / jnp.where(both_zero, 1, q))


def _rel_entr_jvp(primals, tangents):
    (p, q), (dp, dq) = primals, tangents
    out = rel_entr(p, q)
    dout = jnp.zeros_like(out)
    if not is_zero(dp):
        dout = dout + rel_entr_slope_p(p, q) * dp
    if not is_zero(dq):
        dout = dout + rel_entr_slope_q(p, q) * dq
    return out, dout


rel_entr.defjvp(_rel_entr_jvp, symbolic_zeros=True)


def log_or_neg_inf(s: jax.Array) -> jax.Array:
    """log s: -inf where s = 0 (an empty row), with derivative 0 there, not 0/0 (the rules'
    values are differentiated in second derivatives); NaN stays NaN."""
    empty = s == 0
    return jnp.where(empty, -jnp.inf, jnp.log(jnp.where(empty, 1, s)))
