"""Entropies (``_src/entropy.py``): self-information, entropy and binary entropy on
probabilities, and the entropy of a softmax distribution from its logits."""

import math
from functools import partial

import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from helpers import (
    DTYPES,
    TABLE,
    Public,
    close,
    f64,
    jfwd,
    jgrad,
    jhess,
    jit,
    make_mask,
    out_dtype,
    tol,
)
from jax.test_util import check_grads

import jaxent as je

# The public functions of entropy.py, for the chex tests (see helpers.Public).
PUBLIC = {
    "self_information": Public(je.self_information, "p", {"base": 2}),
    "entropy": Public(je.entropy, "p", {"axis": (-1,), "base": 2}, (("where", "m"),)),
    "binary_entropy": Public(je.binary_entropy, "p", {"base": 10}),
    "entropy_from_logits": Public(je.entropy_from_logits, "z", {"axis": -1, "base": 2}),
}
PROBABILITY_FNS = ("self_information", "entropy", "binary_entropy")


# Oracle tables.


@pytest.mark.parametrize("shape,axis,dtype,mask_kind", TABLE)
def test_entropy_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(0)
    p = jnp.asarray(ref.random_probs(rng, shape, axis, zeros=0.2), dtype)
    where = make_mask(mask_kind, rng, shape, axis)
    for base in (None, 2):
        got = jit(je.entropy, axis=axis, where=where, base=base)(p)
        close(got, ref.entropy(f64(p), axis, where, base), dtype, atol=5e-7)


@pytest.mark.parametrize("shape,axis,dtype,mask_kind", TABLE)
def test_entropy_from_logits_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(12)
    a = jnp.asarray(rng.normal(size=shape) * 2, dtype)
    where = make_mask(mask_kind, rng, shape, axis)
    for base in (None, 2):
        got = jit(je.entropy_from_logits, axis=axis, where=where, base=base)(a)
        close(got, ref.entropy_from_logits(f64(a), axis, where, base), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_table(dtype):
    rng = np.random.default_rng(2)
    p = jnp.asarray(np.concatenate([[0.0, 1.0, 0.5], rng.random(20)]), dtype)
    for base in (None, 2, 10, 0.5):
        got = je.self_information(p, base=base)
        assert got.dtype == out_dtype(dtype)
        np.testing.assert_allclose(got, ref.self_information(f64(p), base), rtol=tol(dtype))
        got = je.binary_entropy(p, base=base)
        assert got.dtype == out_dtype(dtype)
        want = ref.binary_entropy(f64(p), base)
        np.testing.assert_allclose(got, want, rtol=tol(dtype), atol=1e-300)


# The worked numbers that the documentation and examples quote.


def test_worked_numbers_self_information():
    np.testing.assert_allclose(je.self_information(0.01, base=2), 6.643856189774724, rtol=1e-6)
    np.testing.assert_allclose(je.self_information(0.99, base=2), 0.014499569695115089, rtol=1e-6)
    # additivity: 1/4 then 1/2 is 2 + 1 = 3 bits, as 1/8.
    two = je.self_information(0.25, base=2) + je.self_information(0.5, base=2)
    np.testing.assert_allclose(two, 3.0, rtol=1e-6)
    np.testing.assert_allclose(je.self_information(1 / 8, base=2), 3.0, rtol=1e-6)
    np.testing.assert_allclose(je.self_information(2.0**-16, base=2), 16.0, rtol=1e-12)
    np.testing.assert_allclose(je.entropy(jnp.full(2**16, 2.0**-16), base=2), 16.0, rtol=1e-12)


def test_worked_numbers_entropy():
    np.testing.assert_allclose(je.entropy(jnp.array([0.5, 0.5]), base=2), 1.0, rtol=1e-12)
    np.testing.assert_allclose(je.entropy(jnp.array([0.99, 0.01]), base=2), 0.0808, atol=5e-5)
    np.testing.assert_allclose(je.binary_entropy(0.01, base=2), 0.0808, atol=5e-5)
    np.testing.assert_allclose(
        je.entropy(jnp.array([0.99, 0.01]), base=2),
        0.99 * 0.0145 + 0.01 * 6.6439,
        atol=1e-4,
    )
    assert je.entropy(jnp.array([1.0, 0.0, 0.0])) == 0.0
    for n in (2, 6, 10):
        np.testing.assert_allclose(je.entropy(jnp.full(n, 1 / n)), math.log(n), rtol=1e-12)
    # six outcomes: log2 6 = 2.585 bits bounds the Huffman code's 2.667 bits on uniform
    # outcomes, and 2.2 bits when the two short words carry 80% of the probability.
    lengths = np.array([2, 2, 3, 3, 3, 3])
    uniform = jnp.full(6, 1 / 6)
    h = je.entropy(uniform, base=2)
    np.testing.assert_allclose(h, 2.585, atol=5e-4)
    assert h <= np.dot(uniform, lengths) < h + 1
    np.testing.assert_allclose(np.dot(uniform, lengths), 2.667, atol=5e-4)
    skewed = jnp.array([0.4, 0.4, 0.05, 0.05, 0.05, 0.05])
    np.testing.assert_allclose(np.dot(skewed, lengths), 2.2, rtol=1e-12)
    assert je.entropy(skewed, base=2) <= 2.2
    assert np.sum(2.0**-lengths) <= 1  # Kraft
    # changing the base rescales by ln b.
    p = jnp.array([0.2, 0.3, 0.5])
    np.testing.assert_allclose(je.entropy(p, base=10), je.entropy(p) / math.log(10), rtol=1e-14)


def test_worked_numbers_entropy_from_logits():
    # in bits every gradient gains 1/ln 2.
    z3 = jnp.array([0.3, -1.0, 2.0])
    g_nats = jgrad(je.entropy_from_logits)(z3)
    g_bits = jgrad(lambda v: je.entropy_from_logits(v, base=2))(z3)
    np.testing.assert_allclose(g_bits, g_nats / math.log(2), rtol=1e-14)


# Simpler equivalent calls.


def test_masked_equals_sliced():
    helpers.check_masked_equals_sliced(je.entropy, 1)


@pytest.mark.parametrize("axis", [0, 1, -3])
def test_axis_equals_moveaxis(axis):
    helpers.check_axis_equals_moveaxis(je.entropy, 1, axis)


def test_logits_masked_equals_sliced_and_axis_equals_moveaxis():
    helpers.check_logit_simpler_calls(lambda z, y, lab, **kw: je.entropy_from_logits(z, **kw))


# Eager, jit and vmap agree; static options never retrace.


PublicFunctionTest = helpers.public_function_tests(PUBLIC, seed=5)


# Gradients against closed forms.


@pytest.mark.parametrize("base", [None, 2, 10])
def test_entropy_gradient_closed_form(base):
    p = jnp.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.0, 0.6, 0.3]])
    ln_b = 1.0 if base is None else math.log(base)
    pn = np.asarray(p)
    with np.errstate(divide="ignore"):
        want = np.where(pn > 0, -(np.log(pn) + 1) / ln_b, 0.0)

    def f(x):
        return je.entropy(x, base=base).sum()

    np.testing.assert_allclose(jgrad(f)(p), want, rtol=1e-14)
    np.testing.assert_allclose(jfwd(f)(p), want, rtol=1e-14)
    # masked entries get 0, the others are unchanged.
    mask = np.array([[True, True, False, True]])
    np.testing.assert_allclose(
        jgrad(lambda x: je.entropy(x, where=mask, base=base).sum())(p),
        np.where(mask, want, 0.0),
        rtol=1e-14,
    )


def test_elementwise_gradients_closed_form():
    p = jnp.array([0.1, 0.3, 0.5, 0.9])
    pn = np.asarray(p)
    for base in (None, 2):
        ln_b = 1.0 if base is None else math.log(base)
        g = jgrad(lambda x, b=base: je.self_information(x, base=b).sum())(p)
        np.testing.assert_allclose(g, -1 / pn / ln_b, rtol=1e-14)
        g = jgrad(lambda x, b=base: je.binary_entropy(x, base=b).sum())(p)
        np.testing.assert_allclose(g, np.log((1 - pn) / pn) / ln_b, rtol=1e-13)


@pytest.mark.parametrize("base", [None, 2, 10])
def test_entropy_from_logits_gradient_closed_form(base):
    rng = np.random.default_rng(18)
    a = rng.normal(size=(3, 5))
    ln_b = 1.0 if base is None else math.log(base)
    p = ref.softmax(a)
    h = -np.sum(p * np.log(p), -1, keepdims=True)
    want = -p * (np.log(p) + h) / ln_b
    f = partial(je.entropy_from_logits, base=base)
    np.testing.assert_allclose(jgrad(lambda v: f(v).sum())(a), want, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(jfwd(lambda v: f(v).sum())(a), want, rtol=1e-12, atol=1e-16)


# name: (function, whether it takes probabilities).
CHECK_GRADS = {
    "self_information": (lambda p: je.self_information(p, base=2), True),
    "entropy": (lambda p: je.entropy(p, base=2), True),
    "binary_entropy": (je.binary_entropy, True),
    "entropy_from_logits": (lambda z: je.entropy_from_logits(z, base=2), False),
}


@pytest.mark.parametrize("name", list(CHECK_GRADS))
def test_check_grads(name):
    helpers.check_grads_both_modes(*CHECK_GRADS[name], nargs=1)


# Boundary inputs.


def test_zero_probabilities_value_and_gradient():
    """0 log 0 = 0; the slope -(log p + 1), diverging at p = 0, is reported as 0 there."""
    p = jnp.array([0.0, 0.4, 0.6, 0.0])
    np.testing.assert_allclose(je.entropy(p), ref.entropy(np.asarray(p)), rtol=1e-14)
    assert je.binary_entropy(0.0) == 0.0 and je.binary_entropy(1.0) == 0.0
    helpers.check_finite_and_modes_agree(je.entropy, p)
    helpers.check_finite_and_modes_agree(lambda x: je.binary_entropy(x).sum(), p)
    g = jgrad(je.entropy)(p)
    assert g[0] == 0 and g[3] == 0
    g = jgrad(lambda x: je.binary_entropy(x).sum())(jnp.array([0.0, 1.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0])
    # second order at zeros stays finite too.
    assert np.all(np.isfinite(jhess(je.entropy)(p)))


def test_infinite_values():
    assert je.self_information(0.0) == np.inf


def test_masked_garbage_changes_nothing():
    helpers.check_masked_garbage_probabilities(je.entropy, 1)


def test_invalid_values_give_nan_never_hidden():
    """Negative or NaN entries inside the mask give NaN, even where p = 0."""
    for bad in (np.nan, -0.25):
        assert np.isnan(je.entropy(jnp.array([0.5, 0.5, bad]))), bad
        assert np.isnan(je.binary_entropy(bad))
        assert np.isnan(je.self_information(bad))
    assert np.isnan(je.binary_entropy(1.5))


def test_logits_neg_inf_gets_zero_gradient_both_modes():
    helpers.check_neg_inf_logit_zero_gradient(je.entropy_from_logits)


def test_entropy_from_logits_with_neg_inf_has_finite_gradients():
    z = jnp.array([[-jnp.inf, 0.0, 0.0], [-jnp.inf, -jnp.inf, 3.0]])
    v = jax.jit(je.entropy_from_logits)(z)
    np.testing.assert_allclose(v, [math.log(2), 0.0], rtol=1e-15)
    for transform in (jgrad, jfwd):
        g = transform(lambda x: je.entropy_from_logits(x).sum())(z)
        np.testing.assert_array_equal(g, 0.0)  # symmetric/certain rows are stationary


def test_nan_or_inf_logit_gives_nan():
    z = jnp.array([-jnp.inf, 0.0, 1.0])
    assert np.isnan(je.entropy_from_logits(z.at[2].set(np.nan)))
    assert np.isnan(je.entropy_from_logits(z.at[2].set(np.inf)))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_three_huge_equal_logits_give_log3(dtype):
    z = jnp.full((3,), 1e8 if dtype != jnp.float16 else 6e4, dtype)
    np.testing.assert_allclose(je.entropy_from_logits(z), math.log(3), rtol=1e-6)
    np.testing.assert_allclose(je.entropy_from_logits(z, base=3), 1.0, rtol=1e-6)


def test_large_float32_logits_match_float64():
    rng = np.random.default_rng(20)
    z = jnp.asarray(rng.normal(size=(4, 7)) * 1e4, jnp.float32) / 1e4 * 3
    got = je.entropy_from_logits(z)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref.entropy_from_logits(f64(z)), rtol=2e-6)
    # near-ties at 1e4 scale: entropy of two logits 1e4 apart from a third is finite and exact.
    z = jnp.array([1e4, 1e4, 0.0], jnp.float32)
    np.testing.assert_allclose(je.entropy_from_logits(z), math.log(2), rtol=1e-6)


def test_logits_masked_garbage_and_fully_masked_rows():
    helpers.check_masked_garbage_logits(lambda z, m: je.entropy_from_logits(z, where=m))


# Dtype contract.


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
def test_dtype_contract(dtype):
    rng = np.random.default_rng(7)
    p = jnp.asarray(ref.random_probs(rng, (3, 5)), dtype)
    helpers.check_prob_dtype_contract(je.entropy, (p,), ref.entropy(f64(p)), dtype)
    helpers.check_prob_dtype_contract(je.binary_entropy, (p,), ref.binary_entropy(f64(p)), dtype)
    helpers.check_prob_dtype_contract(
        je.self_information, (p,), ref.self_information(f64(p)), dtype
    )
    # integer or boolean probabilities are accepted and computed in float.
    v = je.entropy(jnp.array([1, 0]))
    assert v == 0 and jnp.issubdtype(v.dtype, jnp.floating) and v.dtype.itemsize >= 4


def test_logits_dtype_contract():
    helpers.check_logit_dtype_contract(lambda z, y: je.entropy_from_logits(z))


# Rényi and Tsallis entropies.

# Orders swept by the tables: the special orders 0, 1 and inf, and both sides of 1 closely.
ORDERS = [0.0, 0.3, 1 - 1e-3, 1 - 1e-8, 1.0, 1 + 1e-8, 1 + 1e-3, 2.0, 7.5, np.inf]
# One call per case: the orders ride on a leading axis of alpha.
GENERALISED_TABLE = [c for c in TABLE if c[3] != "per_example"][::2] + [
    c for c in TABLE if c[3] == "per_example"
][:1]


def _orders(batch_ndim, dtype):
    """The orders in the result dtype (a float64 order would widen the computation)."""
    return jnp.asarray(ORDERS, out_dtype(dtype)).reshape((-1,) + (1,) * batch_ndim)


@pytest.mark.parametrize("shape,axis,dtype,mask_kind", GENERALISED_TABLE)
def test_renyi_and_tsallis_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(30)
    p = jnp.asarray(ref.random_probs(rng, shape, axis, zeros=0.2), dtype)
    where = make_mask(mask_kind, rng, shape, axis)
    alphas = _orders(len(helpers.batch_shape(shape, axis)), dtype)
    renyi = jit(je.renyi_entropy, axis=axis, where=where, base=2)(p, alphas)
    tsallis = jit(je.tsallis_entropy, axis=axis, where=where)(p, alphas)
    for i, a in enumerate(f64(alphas).ravel()):  # the orders as rounded
        close(renyi[i], ref.renyi_entropy(f64(p), a, axis, where, 2), dtype, atol=2e-6)
        close(tsallis[i], ref.tsallis_entropy(f64(p), a, axis, where), dtype, atol=2e-6)


def test_renyi_and_tsallis_match_dit():
    from dit import Distribution
    from dit.other import renyi_entropy, tsallis_entropy

    rng = np.random.default_rng(31)
    p = ref.random_probs(rng, (3, 6), zeros=0.3)
    for a in (0.0, 0.5, 1.0, 2.0, 3.5, np.inf):
        got_r = je.renyi_entropy(p, a, base=2)
        got_t = je.tsallis_entropy(p, a)
        for i, row in enumerate(p):
            d = Distribution([str(j) for j in range(6)], row.tolist())
            np.testing.assert_allclose(got_r[i], renyi_entropy(d, a), rtol=1e-12, atol=1e-14)
            if np.isfinite(a):  # dit has no index inf
                np.testing.assert_allclose(got_t[i], tsallis_entropy(d, a), rtol=1e-12, atol=1e-14)


def test_worked_numbers_renyi_and_tsallis():
    p = jnp.array([0.5, 0.25, 0.25, 0.0])
    # Hartley: log2 of the support (3, the zero not counted); Shannon 1.5 bits; collision
    # entropy -log2(0.375); min-entropy -log2(0.5) = 1 bit.
    want = [math.log2(3), 1.5, -math.log2(0.375), 1.0]
    got = je.renyi_entropy(p, jnp.array([0.0, 1.0, 2.0, np.inf]), base=2)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    # Tsallis: support size - 1, Shannon in nats, 1 - sum p^2.
    got = je.tsallis_entropy(p, jnp.array([0.0, 1.0, 2.0, np.inf]))
    np.testing.assert_allclose(got, [2.0, float(je.entropy(p)), 0.625, 0.0], rtol=1e-14)
    # every order of a uniform distribution gives log n; a certain outcome gives 0.
    for a in ORDERS:
        np.testing.assert_allclose(je.renyi_entropy(jnp.full(6, 1 / 6), a), math.log(6), rtol=1e-14)
        assert je.renyi_entropy(jnp.array([0.0, 1.0, 0.0]), a) == 0.0
        assert je.tsallis_entropy(jnp.array([0.0, 1.0, 0.0]), a) == 0.0


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_renyi_and_tsallis_at_one_are_shannon_in_value_and_gradient(dtype):
    """Continuous and differentiable at order 1: values within |alpha - 1| Var/2 of Shannon,
    gradients in p and in the order against their closed forms at 1."""
    p = jnp.array([[0.5, 0.3, 0.2, 0.0], [0.05, 0.15, 0.3, 0.5]], dtype)
    pn = f64(p)
    h = ref.entropy(pn)
    with np.errstate(divide="ignore"):
        lp = np.where(pn > 0, np.log(pn), 0.0)
    var = np.sum(pn * (lp + h[:, None]) ** 2, -1)
    second = np.sum(pn * lp**2, -1)
    eps = 1e-14 if dtype == jnp.float64 else 2e-6
    for f in (je.renyi_entropy, je.tsallis_entropy):
        grad_p = jgrad(lambda x, a, f=f: f(x, a).sum())
        grad_a = jgrad(lambda a, x, f=f: f(x, a).sum())
        for d in (0.0, 1e-8, -1e-8, 1e-3, -1e-3):
            a = jnp.asarray(1 + d, dtype)
            # H(1 + d) = H - d Var/2 + O(d^2) (Rényi); S(1 + d) = H - d sum p log^2 p / 2 + O(d^2).
            slope = var if f is je.renyi_entropy else second
            np.testing.assert_allclose(f(p, a), h - d * slope / 2, rtol=eps + d * d * 10)
            np.testing.assert_allclose(grad_a(a, p), -np.sum(slope) / 2, rtol=eps + abs(d) * 10)
        # the gradient in p at 1: Rényi's that of -sum p log p / sum p, Tsallis' -(log p + 1);
        # 0 at the zero, where both diverge.
        g = grad_p(p, jnp.asarray(1.0, dtype))
        extra = h[:, None] if f is je.renyi_entropy else 0.0
        want = np.where(pn > 0, -(lp + 1 + extra), 0.0)
        np.testing.assert_allclose(g, want, rtol=eps * 10, atol=eps)
        # continuity of the gradient through 1, off the zero.
        g_near = grad_p(p, jnp.asarray(1 + 1e-8, dtype))
        np.testing.assert_allclose(g_near[:, :3], want[:, :3], rtol=1e-6, atol=eps)
    # along the simplex the Rényi gradient at 1 equals entropy's.
    dp = jnp.array([[0.1, -0.3, 0.2, 0.0], [0.2, -0.1, 0.1, -0.2]], dtype)
    _, t_renyi = jax.jvp(lambda x: je.renyi_entropy(x, 1.0), (p,), (dp,))
    _, t_shannon = jax.jvp(je.entropy, (p,), (dp,))
    np.testing.assert_allclose(t_renyi, t_shannon, rtol=eps * 10)


# Compiled once, the order an argument: new orders do not recompile.
RENYI_GRADS = jax.jit(jax.grad(lambda x, a: je.renyi_entropy(x, a).sum(), (0, 1)))
RENYI_FWD = jax.jit(jax.jacfwd(lambda x, a: je.renyi_entropy(x, a).sum()))
TSALLIS_GRADS = jax.jit(jax.grad(lambda x, a: je.tsallis_entropy(x, a).sum(), (0, 1)))


def test_renyi_and_tsallis_gradients_closed_form():
    p = jnp.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.0, 0.6, 0.25]])  # the second sums to 0.95
    pn = np.asarray(p)
    w = pn.sum(-1, keepdims=True)
    on = pn > 0
    s = np.where(on, pn, 1.0)
    lp = np.where(on, np.log(s), 0.0)
    for alpha in (0.0, 0.5, 2.0, 5.0, np.inf):
        g_p, g_a = RENYI_GRADS(p, jnp.asarray(alpha))
        g_p_fwd = RENYI_FWD(p, jnp.asarray(alpha))
        if np.isinf(alpha):  # -log max p
            want_p = np.where(pn == pn.max(-1, keepdims=True), -1 / s, 0.0)
            want_a = 0.0
        else:
            sa = np.sum(np.where(on, s**alpha, 0), -1, keepdims=True)
            b = alpha - 1
            # d/dp log(sum p^a / W)/(1 - a); off the support the one-sided slope
            # 1/((a-1) W) for a > 1, else 0.
            want_p = np.where(on, -(alpha * s ** (alpha - 1) / sa - 1 / w) / b, 0.0)
            if alpha > 1:
                want_p = np.where(on, want_p, 1 / (b * w))
            # d/da by the quotient rule.
            num = np.log(sa / w)
            dnum = np.sum(np.where(on, s**alpha * lp, 0), -1, keepdims=True) / sa
            want_a = np.sum((dnum * (1 - alpha) + num) / (1 - alpha) ** 2)
        np.testing.assert_allclose(g_p, want_p, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(g_p_fwd, want_p, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(g_a, want_a, rtol=1e-13, atol=1e-15)
        # Tsallis: d/dp (p - p^q)/(q - 1) = (1 - q p^(q-1))/(q - 1), off the support
        # 1/(q - 1) for q > 1 else 0; d/dq by the quotient rule.
        q = alpha
        g_p, g_q = TSALLIS_GRADS(p, jnp.asarray(q))
        if np.isinf(q):
            want_p, want_q = np.zeros_like(pn), 0.0
        else:
            b = q - 1
            want_p = np.where(on, (1 - q * s**b) / b, 1 / b if q > 1 else 0.0)
            terms = np.where(on, s - s**q, 0)
            dterms = np.where(on, -(s**q) * lp, 0)
            want_q = np.sum((dterms * b - terms) / b**2)
        np.testing.assert_allclose(g_p, want_p, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(g_q, want_q, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("f", [je.renyi_entropy, je.tsallis_entropy])
def test_renyi_and_tsallis_check_grads(f):
    """Second order in p and the order jointly, both modes, at 1 and far from it."""
    p = jnp.asarray(np.random.default_rng(32).uniform(0.2, 0.8, (2, 3)))
    g = jax.jit(f)
    check_grads(g, (p, jnp.array([0.5, 1.0])), order=2, eps=1e-4, atol=1e-5, rtol=1e-5)


def test_renyi_and_tsallis_simpler_calls():
    orders = jnp.array([0.0, 1.0, 2.0, np.inf])
    for f in (je.renyi_entropy, je.tsallis_entropy):
        # all orders at once: (orders, examples) summed over the orders.
        g = lambda *x, f=f, **kw: f(*x, orders[:, None], **kw).sum(0)  # noqa: E731
        helpers.check_masked_equals_sliced(g, 1)
        g = lambda *x, f=f, **kw: f(*x, orders.reshape(4, 1, 1), **kw).sum(0)  # noqa: E731
        helpers.check_axis_equals_moveaxis(g, 1, 1)
    # an array of orders equals one call per order, and is broadcast with the examples.
    rng = np.random.default_rng(33)
    p = jnp.asarray(ref.random_probs(rng, (4, 5), zeros=0.2))
    alphas = jnp.array([[0.5], [1.0], [3.0]])
    got = jax.jit(je.renyi_entropy)(p, alphas)
    assert got.shape == (3, 4)
    for i, a in enumerate(alphas[:, 0]):
        np.testing.assert_allclose(got[i], je.renyi_entropy(p, float(a)), rtol=1e-14)
    per_row = jnp.array([0.0, 1.0, 2.0, np.inf])
    np.testing.assert_allclose(
        je.tsallis_entropy(p, per_row),
        [je.tsallis_entropy(p[i], float(per_row[i])) for i in range(4)],
        rtol=1e-14,
    )


def _renyi_1(p, **kw):
    return je.renyi_entropy(p, 1.0, **kw)


def _renyi_2(p, **kw):
    return je.renyi_entropy(p, 2.0, **kw)


def _tsallis_3_2(p, **kw):
    return je.tsallis_entropy(p, 1.5, **kw)


RENYI_PUBLIC = {
    "renyi_entropy": Public(_renyi_1, "p", {"axis": -1, "base": 2}, (("where", "m"),)),
    "renyi_entropy_order_2": Public(_renyi_2, "p", {"base": 10}),
    "tsallis_entropy": Public(_tsallis_3_2, "p", {"axis": (-1,)}),
}
RenyiPublicFunctionTest = helpers.public_function_tests(RENYI_PUBLIC, seed=34)


def test_renyi_and_tsallis_vmap_over_orders():
    p = jnp.asarray(ref.random_probs(np.random.default_rng(35), (5,)))
    alphas = jnp.array([0.0, 0.5, 1.0, 2.0, np.inf])
    for f in (je.renyi_entropy, je.tsallis_entropy):
        batched = f(p, alphas)
        np.testing.assert_allclose(jax.vmap(f, (None, 0))(p, alphas), batched, rtol=1e-15)
        np.testing.assert_allclose(jax.jit(f)(p, alphas), batched, rtol=1e-15)


def test_renyi_and_tsallis_boundaries():
    """Zeros and masked entries are not counted at order 0; empty rows give 0; garbage under
    the mask changes nothing; invalid values and traced invalid orders give NaN."""
    p = jnp.array([0.5, 0.0, 0.5, 0.25])
    m = jnp.array([True, True, True, False])
    np.testing.assert_allclose(je.renyi_entropy(p, 0.0, where=m), math.log(2), rtol=1e-15)
    np.testing.assert_allclose(je.tsallis_entropy(p, 0.0, where=m), 1.0, rtol=1e-15)
    orders = jnp.array([0.0, 1.0, 2.0, np.inf])
    np.testing.assert_array_equal(je.renyi_entropy(jnp.zeros(3), orders), 0.0)
    np.testing.assert_array_equal(je.renyi_entropy(p, orders, where=jnp.zeros(4, bool)), 0.0)
    np.testing.assert_array_equal(je.tsallis_entropy(p, orders, where=jnp.zeros(4, bool)), 0.0)
    for f in (je.renyi_entropy, je.tsallis_entropy):
        # the garbage check on all orders at once: (rows, orders) values summed per row.
        helpers.check_masked_garbage_probabilities(
            lambda x, where, f=f: f(x, orders[:, None], where=where).sum(0), 1
        )
        for bad in (np.nan, -0.25, np.inf):
            if f is je.tsallis_entropy and bad == np.inf:
                continue
            assert np.all(np.isnan(f(jnp.array([0.5, 0.5, bad]), orders))), (f, bad)
    # gradients at zeros stay finite in both modes, Hessians too, at every order.
    orders = jnp.array([0.0, 0.5, 1.0, 1.5, np.inf])
    for f in (je.renyi_entropy, je.tsallis_entropy):
        helpers.check_finite_and_modes_agree(lambda x, f=f: f(x, orders).sum(), p)
    assert np.all(np.isfinite(jhess(lambda x: je.renyi_entropy(x, orders).sum())(p)))
    # float32 tiny probabilities at large and small orders: no overflow, no NaN.
    tiny = jnp.array([1e-37, 1e-30, 1.0 - 1e-30], jnp.float32)
    orders = [0.0, 0.01, 0.8, 1.0, 1.2, 60.0, 1e4]
    got = je.renyi_entropy(tiny, jnp.asarray(orders, jnp.float32))
    want = [ref.renyi_entropy(f64(tiny), a) for a in orders]
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
    assert np.all(np.isfinite(je.tsallis_entropy(tiny, jnp.asarray(orders, jnp.float32))))


@pytest.mark.parametrize("f", [je.renyi_entropy, je.tsallis_entropy])
def test_order_checks(f):
    p = jnp.array([0.5, 0.5])
    for bad in (-0.5, np.nan, jnp.array([1.0, -1.0])):
        with pytest.raises(ValueError, match="must be >= 0"):
            f(p, bad)
    with pytest.raises(ValueError, match="does not broadcast"):
        f(jnp.ones((3, 2)) / 2, jnp.ones(2))
    for bad in (True, "2", jnp.array([1j])):
        with pytest.raises(TypeError):
            f(p, bad)
    # traced, they cannot raise: NaN.
    assert np.isnan(jax.jit(f)(p, -0.5))
    assert np.isnan(jax.jit(f)(p, np.nan))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
def test_renyi_and_tsallis_dtype_contract(dtype):
    rng = np.random.default_rng(36)
    p = jnp.asarray(ref.random_probs(rng, (3, 5)), dtype)
    for a in (0.5, 1.0, 2.0):
        want = ref.renyi_entropy(f64(p), a)
        helpers.check_prob_dtype_contract(partial(je.renyi_entropy, alpha=a), (p,), want, dtype)
        want = ref.tsallis_entropy(f64(p), a)
        helpers.check_prob_dtype_contract(partial(je.tsallis_entropy, q=a), (p,), want, dtype)
    # the order takes part in the dtype unless it is a Python number.
    p32 = p.astype(jnp.float32)
    assert je.renyi_entropy(p32, 2.0).dtype == jnp.float32
    assert je.renyi_entropy(p32, jnp.float64(2.0)).dtype == jnp.float64
    assert je.tsallis_entropy(p32, jnp.asarray(2.0, jnp.bfloat16)).dtype == jnp.float32


def test_logits_whose_spread_overflows_give_zero_with_zero_gradient():
    z = jnp.array([2e38, -2e38], jnp.float32)
    h, g = jax.jit(jax.value_and_grad(je.entropy_from_logits))(z)
    assert h == 0 and (g == 0).all(), (h, g)


def test_renyi_entropy_of_an_empty_class_axis_is_zero():
    got = jax.jit(lambda p: je.renyi_entropy(p, 2.0))(jnp.zeros((2, 0)))
    np.testing.assert_array_equal(got, [0.0, 0.0])


def test_entropy_temp_memory_float32():
    """Forward and value-and-grad of the entropy of probabilities keep no array of the
    input's size in float32 (compile only). Its select-free terms fuse into the CPU's
    reduction kernel; with a bound of +0 in them, the broadcast 0 was handed to that kernel
    as a whole array (100% of the input in value-and-grad)."""
    spec = jax.ShapeDtypeStruct((1024, 32768), jnp.float32)
    nbytes = 1024 * 32768 * 4
    for fn in (je.entropy, jax.value_and_grad(lambda p: je.entropy(p).sum())):
        mem = jax.jit(fn).lower(spec).compile().memory_analysis()
        if mem is None:
            pytest.skip("no memory analysis on this backend")
        assert mem.temp_size_in_bytes <= 0.01 * nbytes


def test_entropy_of_long_rows_takes_the_row_blocks(monkeypatch):
    """Rows of at least ``_ROW_BLOCK_MIN_CLASSES`` classes are summed a block of rows at a
    time (reduced whole, XLA's CPU backend writes their terms to fresh buffers: 3.4x the
    naive form's time at [1024, 131072]); both routes give the same values and gradients,
    zeros included."""
    from jaxent._src import softmax

    def has_loop(shape):
        jaxpr = str(jax.make_jaxpr(je.entropy)(jax.ShapeDtypeStruct(shape, jnp.float32)))
        return "while" in jaxpr or "scan" in jaxpr

    k = softmax._ROW_BLOCK_MIN_CLASSES
    assert has_loop((2, k)) and not has_loop((2, k // 2))
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.full(k, 0.3), size=4)
    p[0, :3] = 0
    p = jnp.asarray(p / p.sum(-1, keepdims=True))

    def run(blocked):
        if not blocked:
            monkeypatch.setattr(softmax, "_ROW_BLOCK_MIN_CLASSES", 1 << 30)
            jax.clear_caches()  # the public functions are jitted: trace them again
        assert has_loop(p.shape) == blocked
        f = jax.jit(je.entropy)
        g = jax.jit(jax.grad(lambda x: je.entropy(x, base=2).sum()))
        return f(p), g(p)

    blocked, plain = run(True), run(False)
    monkeypatch.undo()
    jax.clear_caches()  # no trace with the patched threshold outlives the test
    expected = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), -1)
    np.testing.assert_allclose(blocked[0], expected, rtol=1e-13)
    for a, b in zip(plain, blocked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["float32", "float64"])
def test_entropy_from_logits_whole_array_and_row_blocks_agree(monkeypatch, dtype):
    """Unmasked float32/float64 rows take whole-array passes (no loop: 2-3x faster forward
    on the CPU, see benchmarks); masked, half-precision and long rows the row blocks. Both
    give the same values, gradients and tangents, at -inf, +inf, NaN and huge logits."""
    from jaxent._src import softmax

    rng = np.random.default_rng(5)
    z = rng.normal(size=(8, 6)) * 3
    z[0, :2] = -np.inf
    z[1] = -np.inf  # empty row: 0
    z[2, 3] = np.inf
    z[3, 1] = np.nan
    z[4] = [3e38, 3e38, 3e38, -np.inf, 0.0, -3e38]
    z[5] = [1e4, 1e4 - 1, 1e4 - 2, 0.0, -np.inf, 1e4]
    z = jnp.asarray(z, dtype)
    tangent = jnp.asarray(rng.normal(size=z.shape), dtype)

    def has_loop():
        jaxpr = str(jax.make_jaxpr(je.entropy_from_logits)(z))
        return "while" in jaxpr or "scan" in jaxpr

    def run():
        f = jax.jit(je.entropy_from_logits)
        g = jax.jit(jax.grad(lambda x: jnp.nansum(je.entropy_from_logits(x)[np.r_[0:2, 4:8]])))
        t = jax.jit(lambda x: jax.jvp(je.entropy_from_logits, (x,), (tangent,))[1])
        return f(z), g(z), t(z)

    assert not has_loop()
    whole = run()
    monkeypatch.setattr(softmax, "_ROW_BLOCK_MIN_CLASSES", 1)
    jax.clear_caches()
    assert has_loop()
    blocked = run()
    monkeypatch.undo()
    jax.clear_caches()
    np.testing.assert_allclose(np.asarray(whole[0])[[1, 4]], [0, np.log(3)], rtol=1e-6)
    assert np.isnan(whole[0][2]) and np.isnan(whole[0][3])
    tol = 2e-6 if dtype == jnp.float32 else 1e-13
    for a, b in zip(whole, blocked, strict=True):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
