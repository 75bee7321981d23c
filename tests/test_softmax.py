"""Softmax kernels: the masked, shifted log-sum-exp and the cross-entropy rules on it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

import jaxent as je
from jaxent._src import softmax


def test_shifted_logits():
    z = jnp.array([[1e8, 1e8, 1e8, 0.0], [-jnp.inf, 0.0, 1.0, 2.0], [5.0, 6.0, 7.0, 8.0]])
    mask = jnp.array([[True, True, True, False], [True] * 4, [False] * 4])
    sh = softmax.ShiftedLogits(z, mask, axis=-1)
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
        return softmax.softmax_xent(x, t, None, 1)

    def onehot(x):
        return softmax.softmax_xent_int(x, labels, w, None, 1)

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
        monkeypatch.setattr(softmax, "_ROW_BLOCK_MIN_CLASSES", 8 if blocked else 1 << 30)
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
        monkeypatch.setattr(softmax, "_ROW_BLOCK_MIN_CLASSES", 8 if blocked else 1 << 30)
        w = jnp.ones(4)
        f = lambda x: softmax.softmax_xent_int(x, labels, w, None, 1)[0].sum()  # noqa: E731
        return jax.jit(jax.hessian(f))(z)

    np.testing.assert_allclose(hess(True), hess(False), rtol=1e-12, atol=1e-15)


def test_label_mass_on_a_row_with_no_finite_logit_is_inf():
    """Every logit -inf (or masked): the label's probability is 0, so the loss is +inf."""
    import jaxent as je

    z = jnp.array([[-jnp.inf] * 3, [0.0, 1.0, -jnp.inf]])
    y = jnp.array([0, 1])
    for kw in ({}, {"label_smoothing": 0.1}, {"z_loss": 0.1}, {"class_weights": jnp.ones(3)}):
        # Smoothing puts mass on row 1's -inf class too: +inf there as well.
        second = np.inf if kw.get("label_smoothing") else None
        for loss in (
            je.softmax_cross_entropy_with_integer_labels(z, y, **kw),
            je.softmax_cross_entropy(z, jax.nn.one_hot(y, 3), **kw),
        ):
            assert loss[0] == np.inf, kw
            assert loss[1] == second if second else np.isfinite(loss[1]), kw
    where = jnp.array([[False, True, True], [True, True, True]])
    masked = jnp.array([[0.0, -jnp.inf, -jnp.inf], [0.0, 1.0, 2.0]])
    loss = je.softmax_cross_entropy_with_integer_labels(masked, jnp.array([1, 0]), where=where)
    assert loss[0] == np.inf
    loss = je.linear_softmax_cross_entropy(
        jnp.ones((2, 2)), jnp.ones((2, 3)), y, bias=jnp.full(3, -jnp.inf)
    )
    np.testing.assert_array_equal(loss, [np.inf, np.inf])
    # KL against a q with no mass anywhere.
    d = je.kl_divergence_from_logits(jnp.zeros((1, 3)), jnp.full((1, 3), -jnp.inf))
    assert d[0] == np.inf
    # No label mass on such a row: nothing to pay.
    assert je.softmax_cross_entropy(z[:1], jnp.zeros((1, 3)))[0] == 0


_Y3 = jnp.array([0.2, 0.5, 0.3])
_SECOND_ORDER_CASES = {
    "sigmoid_focal_loss": lambda a: je.sigmoid_focal_loss(a, jnp.ones(3, a.dtype)).sum(),
    "softmax_focal_loss": lambda a: je.softmax_focal_loss(a, jnp.array(0)),
    "poly1_softmax_cross_entropy": lambda a: je.poly1_softmax_cross_entropy(a, _Y3),
    "integer_labels": lambda a: je.softmax_cross_entropy_with_integer_labels(a, jnp.array(0)),
    "soft_labels": lambda a: je.softmax_cross_entropy(a, _Y3),
    "entropy_from_logits": je.entropy_from_logits,
    "kl_divergence_from_logits": lambda a: je.kl_divergence_from_logits(a, a[::-1]),
    "js_divergence_from_logits": lambda a: je.js_divergence_from_logits(a, a[::-1]),
    "renyi_divergence_from_logits": lambda a: je.renyi_divergence_from_logits(a, a[::-1], 2.0),
    "kl_divergence": lambda a: je.kl_divergence(_Y3.astype(a.dtype), a * a + 0.5),
    "entropy": lambda a: je.entropy(a * a + 0.5),
}


@pytest.mark.parametrize("name", sorted(_SECOND_ORDER_CASES))
def test_bfloat16_hessians_equal_float32(name):
    """bfloat16 inputs are read through their raw bits inside the fused passes; second
    derivatives still see their values (they were all zero, or wrong, through the bits)."""
    f = _SECOND_ORDER_CASES[name]
    z = jnp.array([2.0, -1.0, 0.0], jnp.bfloat16)
    for hessian in (jax.jacfwd(jax.jacrev(f)), jax.jacrev(jax.jacrev(f))):
        h16 = jax.jit(hessian)(z).astype(jnp.float32)
        h32 = jax.jit(hessian)(z.astype(jnp.float32))
        scale = float(np.abs(h32).max())
        assert scale > 0.01
        # bfloat16 rounding of the inputs and of the tangents: a few percent; the faults
        # this catches are zero or sign-flipped entries.
        np.testing.assert_allclose(h16, h32, rtol=0.05, atol=0.2 * scale)


def test_bfloat16_hessian_vector_products_of_long_rows_equal_float32():
    """The row-blocked integer-label pass (long rows) and the row-block loop of the other
    passes: Hessian-vector products in bfloat16 agree with float32."""
    rows, k = 2 * softmax._ROW_BLOCK, softmax._ROW_BLOCK_MIN_CLASSES
    z = jax.random.normal(jax.random.PRNGKey(0), (rows, k)) * 3
    v = jax.random.normal(jax.random.PRNGKey(1), (rows, k))
    labels = jnp.arange(rows) % k
    fns = [
        lambda a: je.softmax_cross_entropy_with_integer_labels(a, labels).sum(),
        lambda a: je.entropy_from_logits(a).sum(),
    ]
    for f in fns:

        @jax.jit
        def hvp(a, f=f):
            return jax.jvp(jax.grad(f), (a,), (v.astype(a.dtype),))[1].astype(jnp.float32)

        got, want = hvp(z.astype(jnp.bfloat16)), hvp(z)
        scale = float(jnp.abs(want).max())
        assert scale > 0
        np.testing.assert_allclose(got, want, atol=0.05 * scale)


def _zero_int(x):
    return jnp.zeros(x.shape[:-1], jnp.int32)


_EMPTY_BATCH_CASES = {
    "renyi_divergence_from_logits": lambda x: je.renyi_divergence_from_logits(x, x, 2.0),
    "kl_divergence_from_logits": lambda x: je.kl_divergence_from_logits(x, x),
    "entropy_from_logits": je.entropy_from_logits,
    "js_divergence_from_logits": lambda x: je.js_divergence_from_logits(x, x),
    "softmax_cross_entropy": lambda x: je.softmax_cross_entropy(x, x),
    "poly1_softmax_cross_entropy": lambda x: je.poly1_softmax_cross_entropy(x, x),
    "softmax_focal_loss": lambda x: je.softmax_focal_loss(x, _zero_int(x)),
    "integer_labels": lambda x: je.softmax_cross_entropy_with_integer_labels(x, _zero_int(x)),
    "sigmoid_focal_loss": lambda x: je.sigmoid_focal_loss(x, x),
    "kl_divergence": lambda x: je.kl_divergence(x, x),
    "cross_entropy": lambda x: je.cross_entropy(x, x),
    "entropy": je.entropy,
}


@pytest.mark.parametrize("shape", [(0, 4), (2, 0, 4)])
def test_an_empty_batch_gives_empty_results_and_gradients(shape):
    """No rows is a valid batch (the last one of an epoch): empty results, not an error from
    inside the row-blocked passes."""
    x = jnp.zeros(shape)
    for name, f in _EMPTY_BATCH_CASES.items():
        out = f(x)
        assert out.shape == shape[:-1] or (name == "sigmoid_focal_loss" and out.shape == shape)
        assert jax.grad(lambda a, f=f: f(a).sum())(x).shape == shape, name
