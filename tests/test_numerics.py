"""Shared numerics: x log x, x log y, p log(p/q) with their derivative convention."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import special

from jaxent._src import numerics

X = np.array([0.0, 1e-300, 5e-324, 0.3, 1.0, 2.5, np.inf, -0.5, np.nan])
Y = np.array([0.0, 0.0, 0.5, 0.2, 0.0, 3.0, 1.0, 0.3, 0.4])


def test_values_against_scipy():
    with np.errstate(all="ignore"):
        # scipy's entr is -inf for negatives where x log x is NaN; the CPU may flush the
        # denormal x log x of 5e-324 to zero.
        np.testing.assert_allclose(
            jax.jit(numerics.xlogx)(X)[:-2], -special.entr(X)[:-2], rtol=1e-15, atol=1e-300
        )
        assert np.all(np.isnan(jax.jit(numerics.xlogx)(X)[-2:]))
        want = special.xlogy(X, Y)
        want[X < 0] = np.nan  # a negative weight is invalid input in jaxent, not in scipy
        np.testing.assert_allclose(jax.jit(numerics.xlogy)(X, Y), want, rtol=1e-15, atol=1e-300)
        want = special.rel_entr(X, Y)
        want[X < 0] = np.nan  # scipy gives +inf for a negative p; jaxent gives NaN
        np.testing.assert_allclose(jax.jit(numerics.rel_entr)(X, Y), want, rtol=1e-15, atol=1e-300)


def test_zero_weight_never_hides_invalid_values():
    x = jnp.zeros(4)
    y = jnp.array([0.0, np.inf, -1.0, np.nan])
    np.testing.assert_array_equal(numerics.xlogy(x, y), [0.0, 0.0, np.nan, np.nan])
    np.testing.assert_array_equal(numerics.rel_entr(x, y), [0.0, 0.0, np.nan, np.nan])
    assert numerics.rel_entr(jnp.array(0.5), jnp.array(0.0)) == np.inf


def test_derivative_convention_at_zero():
    """Finite derivatives are exact; diverging slopes at a zero probability are 0."""
    x = jnp.array([0.0, 0.0, 0.5, 0.25])
    y = jnp.array([0.0, 0.4, 0.5, 0.5])
    ones = jnp.ones(4)
    g = jax.jit(jax.grad(lambda a: numerics.xlogx(a).sum()))(x)
    np.testing.assert_allclose(g, [0.0, 0.0, np.log(0.5) + 1, np.log(0.25) + 1], rtol=1e-15)
    gx, gy = jax.jit(jax.grad(lambda a, b: numerics.xlogy(a, b).sum(), (0, 1)))(x, y)
    np.testing.assert_allclose(gx, [0.0, np.log(0.4), np.log(0.5), np.log(0.5)], rtol=1e-15)
    np.testing.assert_allclose(gy, [0.0, 0.0, 1.0, 0.5], rtol=1e-15)
    gp, gq = jax.jit(jax.grad(lambda a, b: numerics.rel_entr(a, b).sum(), (0, 1)))(x, y)
    np.testing.assert_allclose(gp, [0.0, 0.0, 1.0, np.log(0.5) + 1], rtol=1e-15)
    np.testing.assert_allclose(gq, [0.0, 0.0, -1.0, -0.5], rtol=1e-15)
    for f in (
        lambda a, b: numerics.xlogx(a).sum(),
        lambda a, b: numerics.xlogy(a, b).sum(),
        lambda a, b: numerics.rel_entr(a, b).sum(),
    ):
        v, t = jax.jit(lambda a, b, f=f: jax.jvp(f, (a, b), (ones, ones)))(x, y)
        assert np.isfinite(v) and np.isfinite(t)
        gs = jax.grad(f, (0, 1))(x, y)
        np.testing.assert_allclose(t, sum(jnp.sum(gi) for gi in gs), rtol=1e-14)


@pytest.mark.parametrize("name", ["xlogx", "xlogy", "rel_entr"])
def test_check_grads(name):
    rng = np.random.default_rng(30)
    x, y = rng.uniform(0.2, 2.0, (2, 5))
    f = {
        "xlogx": lambda a, b: numerics.xlogx(a),
        "xlogy": numerics.xlogy,
        "rel_entr": numerics.rel_entr,
    }[name]
    check_grads(jax.jit(f), (x, y), order=2, modes=("fwd", "rev"), eps=1e-4, atol=1e-6, rtol=1e-6)


def test_negated_gives_positive_zero():
    out = jax.jit(numerics.negated)(jnp.array([0.0, -0.0, 1.5]))
    assert not np.signbit(np.asarray(out)[:2]).any()
    np.testing.assert_array_equal(out, [0.0, 0.0, -1.5])
