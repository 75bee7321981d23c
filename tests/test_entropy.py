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
