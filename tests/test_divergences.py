"""Divergences (``_src/divergences.py``): cross-entropy and KL divergence on probabilities,
and the KL divergence between two softmax distributions from their logits."""

import math

import chex
import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from helpers import TABLE, Public, close, f64, jfwd, jgrad, jhess, jit, make_mask

import jaxent as je

# The public functions of divergences.py, for the chex tests (see helpers.Public).
PUBLIC = {
    "cross_entropy": Public(je.cross_entropy, "pq", {"axis": -1, "base": 2}),
    "kl_divergence": Public(je.kl_divergence, "pq", {"axis": (-1,), "base": 10}),
    "kl_divergence_from_logits": Public(
        je.kl_divergence_from_logits, "zw", {"axis": -1, "base": 2}, (("where", "m"),)
    ),
}
PROBABILITY_FNS = ("cross_entropy", "kl_divergence")


# Oracle tables.


@pytest.mark.parametrize("fn", PROBABILITY_FNS)
@pytest.mark.parametrize("shape,axis,dtype,mask_kind", TABLE)
def test_cross_entropy_and_kl_table(fn, shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(1)
    p = jnp.asarray(ref.random_probs(rng, shape, axis, zeros=0.2), dtype)
    q = jnp.asarray(ref.random_probs(rng, shape, axis), dtype)
    where = make_mask(mask_kind, rng, shape, axis)
    for base in (None, 10):
        got = jit(getattr(je, fn), axis=axis, where=where, base=base)(p, q)
        want = getattr(ref, fn)(f64(p), f64(q), axis, where, base)
        close(got, want, dtype, atol=5e-7)


@pytest.mark.parametrize("shape,axis,dtype,mask_kind", TABLE)
def test_kl_divergence_from_logits_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(12)
    a = jnp.asarray(rng.normal(size=shape) * 2, dtype)
    b = jnp.asarray(rng.normal(size=shape) * 2, dtype)
    where = make_mask(mask_kind, rng, shape, axis)
    for base in (None, 2):
        got = jit(je.kl_divergence_from_logits, axis=axis, where=where, base=base)(a, b)
        close(got, ref.kl_divergence_from_logits(f64(a), f64(b), axis, where, base), dtype)


# The worked numbers that the documentation and examples quote.


def test_worked_numbers_cross_entropy_and_kl():
    p, q = jnp.array([1.0, 0.0, 0.0]), jnp.array([0.7, 0.2, 0.1])
    np.testing.assert_allclose(je.cross_entropy(p, q), 0.3567, atol=5e-5)
    np.testing.assert_allclose(je.cross_entropy(p, q), -math.log(0.7), rtol=1e-14)
    np.testing.assert_allclose(je.kl_divergence(p, q), -math.log(0.7), rtol=1e-14)
    # H(p, q) = H(p) + D(p||q), D not symmetric, infinite where q = 0 < p.
    p2 = jnp.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(
        je.cross_entropy(p2, q), je.entropy(p2) + je.kl_divergence(p2, q), rtol=1e-14
    )
    assert je.kl_divergence(p2, q) != je.kl_divergence(q, p2)
    assert je.kl_divergence(p2, jnp.array([0.5, 0.5, 0.0])) == np.inf
    assert je.cross_entropy(p2, jnp.array([0.5, 0.5, 0.0])) == np.inf
    assert je.kl_divergence(jnp.array([0.5, 0.5, 0.0]), p2) < np.inf
    np.testing.assert_allclose(
        je.kl_divergence(jnp.array([0.5, 0.5]), jnp.array([0.9, 0.1]), base=2), 0.7370, atol=5e-5
    )


def test_worked_numbers_kl_divergence_from_logits():
    # in bits every gradient gains 1/ln 2.
    z3, b3 = jnp.array([0.3, -1.0, 2.0]), jnp.array([1.0, 0.0, 0.0])
    g_nats = jgrad(je.kl_divergence_from_logits, (0, 1))(z3, b3)
    g_bits = jgrad(lambda u, v: je.kl_divergence_from_logits(u, v, base=2), (0, 1))(z3, b3)
    chex.assert_trees_all_close(g_bits, jax.tree.map(lambda g: g / math.log(2), g_nats), rtol=1e-14)
    np.testing.assert_allclose(
        je.kl_divergence_from_logits(
            jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.9, 0.1])), base=2
        ),
        0.7370,
        atol=5e-5,
    )


# Simpler equivalent calls.


@pytest.mark.parametrize("fn", PROBABILITY_FNS)
def test_masked_equals_sliced(fn):
    helpers.check_masked_equals_sliced(getattr(je, fn), 2)


@pytest.mark.parametrize("fn", PROBABILITY_FNS)
@pytest.mark.parametrize("axis", [0, 1, -3])
def test_axis_equals_moveaxis(fn, axis):
    helpers.check_axis_equals_moveaxis(getattr(je, fn), 2, axis)


def test_logits_masked_equals_sliced_and_axis_equals_moveaxis():
    helpers.check_logit_simpler_calls(
        lambda z, y, lab, **kw: je.kl_divergence_from_logits(z, 2 * y, **kw)
    )


# Eager, jit and vmap agree; static options never retrace.


PublicFunctionTest = helpers.public_function_tests(PUBLIC, seed=5)


# Gradients against closed forms.


@pytest.mark.parametrize("base", [None, 2])
def test_cross_entropy_and_kl_gradients_closed_form(base):
    p = jnp.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.0, 0.6, 0.3]])
    q = jnp.array([[0.25, 0.25, 0.4, 0.1], [0.2, 0.3, 0.3, 0.2]])
    pn, qn = np.asarray(p), np.asarray(q)
    ln_b = 1.0 if base is None else math.log(base)
    ce = jgrad(lambda a, b: je.cross_entropy(a, b, base=base).sum(), (0, 1))(p, q)
    chex.assert_trees_all_close(ce, (-np.log(qn) / ln_b, -pn / qn / ln_b), rtol=1e-14)
    with np.errstate(divide="ignore"):
        want_p = np.where(pn > 0, (np.log(pn / qn) + 1) / ln_b, 0.0)
    want = (want_p, -pn / qn / ln_b)

    def kl(a, b):
        return je.kl_divergence(a, b, base=base).sum()

    chex.assert_trees_all_close(jgrad(kl, (0, 1))(p, q), want, rtol=1e-14)
    # forward mode agrees.
    chex.assert_trees_all_close(jfwd(kl, (0, 1))(p, q), want, rtol=1e-14)


@pytest.mark.parametrize("base", [None, 2, 10])
def test_kl_divergence_from_logits_gradients_closed_form(base):
    rng = np.random.default_rng(18)
    a = rng.normal(size=(3, 5))
    b = rng.normal(size=(3, 5))
    ln_b = 1.0 if base is None else math.log(base)
    p, q = ref.softmax(a), ref.softmax(b)
    d = np.sum(p * np.log(p / q), -1, keepdims=True)
    want_a = p * (np.log(p) - np.log(q) - d) / ln_b
    want_b = (q - p) / ln_b

    def kl(u, v):
        return je.kl_divergence_from_logits(u, v, base=base).sum()

    for g in (jgrad(kl, (0, 1))(a, b), jfwd(kl, (0, 1))(a, b)):
        np.testing.assert_allclose(g[0], want_a, rtol=1e-11, atol=1e-15)
        np.testing.assert_allclose(g[1], want_b, rtol=1e-12, atol=1e-15)


# name: (function, whether it takes probabilities).
CHECK_GRADS = {
    "cross_entropy": (lambda p, q: je.cross_entropy(p, q, axis=0), True),
    "kl_divergence": (
        lambda p, q: je.kl_divergence(p, q, where=jnp.array([[True, False, True]])),
        True,
    ),
    "kl_from_logits": (lambda z, y: je.kl_divergence_from_logits(z, 3 * y, axis=0), False),
}


@pytest.mark.parametrize("name", list(CHECK_GRADS))
def test_check_grads(name):
    helpers.check_grads_both_modes(*CHECK_GRADS[name], nargs=2)


# Boundary inputs.


def test_zero_probabilities_value_and_gradient():
    """Terms with p = 0 are 0, also where q = 0; their slopes are 0 (the documented rule)."""
    p = jnp.array([0.0, 0.4, 0.6, 0.0])
    q = jnp.array([0.0, 0.5, 0.3, 0.2])
    np.testing.assert_allclose(
        je.kl_divergence(p, q), ref.kl_divergence(np.asarray(p), np.asarray(q)), rtol=1e-14
    )
    for f, arg in (
        (lambda x: je.kl_divergence(x, q), p),
        (lambda x: je.kl_divergence(p, x), q),
        (lambda x: je.kl_divergence(x, x), p),
        (lambda x: je.cross_entropy(x, q), p),
        (lambda x: je.cross_entropy(p, x), q),
        (lambda x: je.cross_entropy(x, x), p),
    ):
        helpers.check_finite_and_modes_agree(f, arg)
    g_p, g_q = jgrad(je.kl_divergence, (0, 1))(p, q)
    assert g_p[0] == 0 and g_p[3] == 0 and g_q[0] == 0 and g_q[3] == 0
    # second order at zeros stays finite too.
    assert np.all(np.isfinite(jhess(lambda x: je.kl_divergence(x, q))(p)))


def test_infinite_values():
    p = jnp.array([0.5, 0.5])
    q = jnp.array([1.0, 0.0])
    assert je.cross_entropy(p, q) == np.inf
    assert je.kl_divergence(p, q) == np.inf


@pytest.mark.parametrize("fn", PROBABILITY_FNS)
def test_masked_garbage_changes_nothing(fn):
    helpers.check_masked_garbage_probabilities(getattr(je, fn), 2)


def test_invalid_values_give_nan_never_hidden():
    """Negative or NaN entries inside the mask give NaN, even where p = 0."""
    p = jnp.array([0.5, 0.5, 0.0])
    for bad in (np.nan, -0.25):
        q = jnp.array([0.5, 0.5, bad])
        assert np.isnan(je.cross_entropy(p, q)), bad
        assert np.isnan(je.kl_divergence(p, q)), bad
        assert np.isnan(je.kl_divergence(jnp.array([0.5, 0.5, bad]), jnp.full(3, 1 / 3)))


LOGITS_NEG_INF = {
    "kl_from_logits": lambda z: je.kl_divergence_from_logits(z, z + jnp.array([0, 1.0, 2, 3])),
    "kl_from_logits_q": lambda z: je.kl_divergence_from_logits(
        jnp.where(z < -100, -jnp.inf, 0.5 * jnp.arange(4.0)), z
    ),
}


@pytest.mark.parametrize("name", list(LOGITS_NEG_INF))
def test_logits_neg_inf_gets_zero_gradient_both_modes(name):
    helpers.check_neg_inf_logit_zero_gradient(LOGITS_NEG_INF[name])


def test_mass_on_neg_inf_logit_is_inf_and_nan_logit_is_nan():
    z = jnp.array([-jnp.inf, 0.0, 1.0])
    assert je.kl_divergence_from_logits(jnp.zeros(3), z) == np.inf
    assert np.isnan(je.kl_divergence_from_logits(z.at[2].set(np.nan), z))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_three_huge_equal_logits_give_zero(dtype):
    z = jnp.full((3,), 1e8 if dtype != jnp.float16 else 6e4, dtype)
    assert je.kl_divergence_from_logits(z, z) == 0


def test_large_float32_logits_match_float64():
    rng = np.random.default_rng(20)
    z = jnp.asarray(rng.normal(size=(4, 7)) * 1e4, jnp.float32)
    b = jnp.asarray(rng.normal(size=(4, 7)) * 1e4, jnp.float32)
    got = je.kl_divergence_from_logits(z, b)
    assert got.dtype == jnp.float32
    # O(1e4): float32 holds it to a relative 1e-7.
    np.testing.assert_allclose(got, ref.kl_divergence_from_logits(f64(z), f64(b)), rtol=2e-6)


def test_logits_masked_garbage_and_fully_masked_rows():
    helpers.check_masked_garbage_logits(
        lambda z, m: je.kl_divergence_from_logits(z, 0.5 * z + 1, where=m)
    )


# Dtype contract.


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
def test_dtype_contract(dtype):
    rng = np.random.default_rng(7)
    p = jnp.asarray(ref.random_probs(rng, (3, 5)), dtype)
    q = jnp.asarray(ref.random_probs(rng, (3, 5)), dtype)
    helpers.check_prob_dtype_contract(
        je.cross_entropy, (p, q), ref.cross_entropy(f64(p), f64(q)), dtype
    )
    helpers.check_prob_dtype_contract(
        je.kl_divergence, (p, q), ref.kl_divergence(f64(p), f64(q)), dtype
    )
    # mixed precision promotes to the wider float, at least float32.
    assert je.kl_divergence(p.astype(jnp.bfloat16), q.astype(jnp.float64)).dtype == jnp.float64
    assert je.cross_entropy(p.astype(jnp.float16), q.astype(jnp.bfloat16)).dtype == jnp.float32


def test_logits_dtype_contract():
    helpers.check_logit_dtype_contract(lambda z, y: je.kl_divergence_from_logits(z, y * 4))


def test_logits_whose_spread_overflows_give_zero_with_zero_gradient():
    z = jnp.array([2e38, -2e38], jnp.float32)
    d, g = jax.jit(jax.value_and_grad(je.kl_divergence_from_logits, argnums=(0, 1)))(z, z)
    assert d == 0 and all((x == 0).all() for x in g), (d, g)


def test_logits_infinite_divergence_has_zero_derivatives_as_renyi_at_order_one():
    a, b = jnp.zeros(3), jnp.array([2.0, 0.5, -jnp.inf])
    f = je.kl_divergence_from_logits
    d, g = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(a, b)
    _, t = jax.jit(lambda a, b: jax.jvp(f, (a, b), (jnp.array([1.0, 0, 0]), jnp.ones(3))))(a, b)
    assert d == jnp.inf and t == 0 and all((x == 0).all() for x in g), (d, g, t)


@pytest.mark.parametrize("rows", [1, 4200])
@pytest.mark.parametrize("gap", [50.0, 90.0, 200.0, 1e38])
def test_mass_of_p_however_small_on_a_neg_inf_of_q_is_inf(rows, gap):
    """A finite logit of p is mass of p (softmax(a) > 0), even where its float32 probability
    underflows: against a -inf logit of q the divergence is +inf, in a small batch and on
    the whole-array route, with every derivative 0 there."""
    a = jnp.tile(jnp.array([0.0, -gap, 1.0, 0.5], jnp.float32), (rows, 1))
    b = jnp.tile(jnp.array([0.0, -jnp.inf, 1.0, 0.5], jnp.float32), (rows, 1))
    for f in (je.kl_divergence_from_logits, jax.jit(je.kl_divergence_from_logits)):
        got = f(a, b)
        assert np.all(np.asarray(got) == np.inf), got[:2]
    g = jax.jit(jax.grad(lambda x, y: jnp.sum(je.kl_divergence_from_logits(x, y)), (0, 1)))
    for part in g(a, b):
        assert np.all(np.asarray(part) == 0)


def test_kl_from_logits_with_pos_inf_q_logits_is_inf_whatever_the_spread_of_p():
    # q's mass on its +inf logits, p's on every class: +inf. The clamped gaps' sum
    # overflowed to -inf once p's shifted sum passed 2, and the result was NaN (-inf + inf).
    q = jnp.zeros(16).at[3].set(jnp.inf).at[11].set(jnp.inf)
    for spread in (0.1, 1.0):
        a = jnp.linspace(-spread, spread, 16)
        assert je.kl_divergence_from_logits(a, q) == jnp.inf
        g = jax.grad(je.kl_divergence_from_logits)(a, q)
        np.testing.assert_array_equal(np.asarray(g), 0.0)


# An eighth outside trial's find: d/dp of the q-gradient at p_i = 0 was 0; it is -1/q_i
# (the cross-entropy is linear in p), in both orders of the mixed derivative and in
# jax.hessian; the same slope -p/q of the KL keeps it. Units scale it by 1/log(base).
@pytest.mark.parametrize("name", ["cross_entropy", "kl_divergence"])
@pytest.mark.parametrize("base", [None, 2.0])
def test_mixed_second_derivative_where_p_is_zero(name, base):
    fn = getattr(je, name)
    p, q = jnp.array([0.5, 0.5, 0.0]), jnp.array([0.2, 0.3, 0.5])
    h = lambda p, q: fn(p, q, base=base)  # noqa: E731
    want = -1 / np.asarray(q, np.float64) / (1.0 if base is None else math.log(base))
    for got in (
        jax.jacfwd(jax.grad(h, 1), 0)(p, q),
        jax.jacrev(jax.grad(h, 1), 0)(p, q),
        jax.jacfwd(jax.grad(h, 0), 1)(p, q).T,
        jax.hessian(h, (0, 1))(p, q)[1][0],
    ):
        np.testing.assert_allclose(np.diag(np.asarray(got)), want, rtol=1e-6)
