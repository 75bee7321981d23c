"""Shared numerics: x log x, x log y, p log(p/q) with their derivative convention, and the
masked, shifted log-sum-exp behind every softmax loss."""

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


def test_shifted_logits():
    z = jnp.array([[1e8, 1e8, 1e8, 0.0], [-jnp.inf, 0.0, 1.0, 2.0], [5.0, 6.0, 7.0, 8.0]])
    mask = jnp.array([[True, True, True, False], [True] * 4, [False] * 4])
    sh = numerics.ShiftedLogits(z, mask, axis=-1)
    np.testing.assert_allclose(sh.lse[0, 0], 1e8 + np.log(3), rtol=1e-15)
    np.testing.assert_allclose(sh.p[0], [1 / 3, 1 / 3, 1 / 3, 0.0], rtol=1e-15)
    np.testing.assert_allclose(sh.p[1], special.softmax([-np.inf, 0, 1, 2]), rtol=1e-15)
    np.testing.assert_array_equal(sh.p[2], 0.0)  # an empty row
    assert sh.lse[2, 0] == -np.inf
    log_p = sh.log_p()
    assert log_p[1, 0] == 0 and np.all(log_p[2] == 0) and log_p[0, 3] == 0
    np.testing.assert_allclose(log_p[1, 1:], special.log_softmax([-np.inf, 0, 1, 2])[1:])


def test_softmax_xent_kernels_agree():
    """The one-hot kernel equals the general one, in value, lse and both derivative modes."""
    rng = np.random.default_rng(31)
    z = jnp.asarray(rng.normal(size=(5, 6)))
    labels = jnp.array([0, 5, 2, 3, 1])
    w = jnp.array([1.0, 2.0, 0.0, 0.5, 1.0])
    t = jax.nn.one_hot(labels, 6) * w[:, None]

    def general(x):
        return numerics.softmax_xent(x, t, None, 1)

    def onehot(x):
        return numerics.softmax_xent_int(x, labels, w, None, 1)

    for a, b in zip(jax.jit(general)(z), jax.jit(onehot)(z), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14)

    def total(f):
        return lambda x: f(x)[0].sum() + 0.1 * (f(x)[1] ** 2).sum()

    for transform in (jax.grad, jax.jacfwd):
        np.testing.assert_allclose(
            jax.jit(transform(total(general)))(z),
            jax.jit(transform(total(onehot)))(z),
            rtol=1e-13,
            atol=1e-16,
        )


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
def test_row_blocked_reduction_matches_plain(monkeypatch, dtype):
    """Long rows take a row-blocked max and sum of exp: same values and derivatives, in
    forward and reverse mode, with -inf and NaN logits, ignored rows and bad labels."""
    import jaxent as je

    rng = np.random.default_rng(7)
    z = rng.normal(size=(3, 4, 16)) * 3
    z[0, 1, :5] = -np.inf  # some -inf classes, the label's among them
    z[0, 2, :] = -np.inf  # an all -inf row, ignored
    z[1, 0, 3] = np.nan  # a NaN logit, ignored row
    z[2, 3, :] = -np.inf  # an all -inf row, not ignored
    z = jnp.asarray(z, dtype)
    labels = jnp.asarray(rng.integers(0, 16, size=(3, 4)))
    labels = labels.at[0, 1].set(2).at[0, 2].set(-100).at[1, 0].set(-100)
    labels = labels.at[1, 3].set(16).at[2, 0].set(-1)  # bad labels: NaN
    cw = jnp.asarray(rng.uniform(0.5, 2.0, size=16))

    def loss(x):
        out = je.softmax_cross_entropy_with_integer_labels(
            x, labels, ignore_index=-100, class_weights=cw, z_loss=1e-2
        )
        return jnp.where(jnp.isfinite(out), out, 0).sum(), out

    def run(blocked):
        monkeypatch.setattr(numerics, "_ROW_BLOCK_MIN_CLASSES", 8 if blocked else 1 << 30)
        jaxpr = str(jax.make_jaxpr(lambda x: loss(x)[1])(z))
        assert ("while" in jaxpr or "scan" in jaxpr) == blocked
        value = jax.jit(lambda x: loss(x)[1])(z)
        grad = jax.jit(jax.grad(lambda x: loss(x)[0]))(z)
        tangent = jnp.asarray(rng.normal(size=z.shape), z.dtype)
        jvp = jax.jit(lambda x: jax.jvp(lambda y: loss(y)[0], (x,), (tangent,))[1])(z)
        batched = jax.jit(jax.vmap(lambda x: loss(x)[1]))(z[None].repeat(2, 0))
        return value, grad, jvp, batched, tangent

    rng_state = rng.bit_generator.state
    plain = run(False)
    rng.bit_generator.state = rng_state
    blocked = run(True)
    tol = {"float32": 2e-6, "bfloat16": 2e-6, "float64": 1e-13}[dtype]
    for a, b in zip(plain, blocked, strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    value = np.asarray(blocked[0])
    assert np.isnan(value[1, 3]) and np.isnan(value[2, 0])
    assert value[0, 2] == 0 and value[1, 0] == 0
    assert value[0, 1] == np.inf  # the label's logit is -inf


def test_row_blocked_reduction_hessian(monkeypatch):
    z = jnp.asarray(np.random.default_rng(8).normal(size=(4, 16)))
    labels = jnp.array([0, 3, 15, 7])

    def hess(blocked):
        monkeypatch.setattr(numerics, "_ROW_BLOCK_MIN_CLASSES", 8 if blocked else 1 << 30)
        w = jnp.ones(4)
        f = lambda x: numerics.softmax_xent_int(x, labels, w, None, 1)[0].sum()  # noqa: E731
        return jax.jit(jax.hessian(f))(z)

    np.testing.assert_allclose(hess(True), hess(False), rtol=1e-12, atol=1e-15)
