"""Measures on probabilities: self-information, entropies, cross-entropy, KL divergence."""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from jax.test_util import check_grads

import jaxent as je

SHAPES_AXES = ref.SHAPES_AXES
DTYPES = [jnp.float64, jnp.float32, jnp.bfloat16, jnp.float16]
MASKS = ref.MASKS


# Transforms are compiled: op-by-op eager differentiation is far slower to run.
def jgrad(f, argnums=0):
    return jax.jit(jax.grad(f, argnums))


def jfwd(f, argnums=0):
    return jax.jit(jax.jacfwd(f, argnums))


def jhess(f):
    return jax.jit(jax.hessian(f))


def jvg(f, argnums=0):
    return jax.jit(jax.value_and_grad(f, argnums))


def jjvp(f, primals, tangents):
    return jax.jit(lambda p, t: jax.jvp(f, p, t))(primals, tangents)


def _f64(x):
    return np.asarray(jnp.asarray(x).astype(jnp.float64))


def _tol(dtype):
    """Inputs are rounded to ``dtype`` first; the computation runs in >= float32."""
    return 1e-12 if dtype == jnp.float64 else 2e-6


def _atol(dtype):
    """Float32 arithmetic on O(1) terms: absolute error of a few ulps of 1."""
    return 1e-300 if dtype == jnp.float64 else 5e-7


def _make_mask(kind, rng, shape, axis):
    if kind is None:
        return None
    if kind == "per_class":
        return ref.random_mask(rng, shape, axis)
    axes = ref._axes(axis, len(shape))
    batch = tuple(s for i, s in enumerate(shape) if i not in axes)
    m = rng.random(batch) < 0.7
    m.flat[0] = False  # one fully masked distribution
    return m


def _out_dtype(dtype):
    return jnp.float64 if dtype == jnp.float64 else jnp.float32


# Oracle tables.


# Every shape/axis with every mask kind in float64; float32 and half precision on fewer cases
# (the dtype contract tests cover the rest).
TABLE = (
    [(s, a, jnp.float64, "per_class") for s, a in SHAPES_AXES]
    + [(s, a, jnp.float64, m) for s, a in SHAPES_AXES[2:5:2] for m in (None, "per_example")]
    + [(s, a, jnp.float32, None) for s, a in SHAPES_AXES[3:5]]
    + [(*SHAPES_AXES[4], jnp.bfloat16, "per_class"), (*SHAPES_AXES[1], jnp.float16, None)]
)


@pytest.mark.parametrize("shape,axis,dtype,mask_kind", TABLE)
def test_entropy_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(0)
    p = jnp.asarray(ref.random_probs(rng, shape, axis, zeros=0.2), dtype)
    where = _make_mask(mask_kind, rng, shape, axis)
    for base in (None, 2):
        got = jax.jit(partial(je.entropy, axis=axis, where=where, base=base))(p)
        want = ref.entropy(_f64(p), axis, where, base)
        assert got.dtype == _out_dtype(dtype)
        np.testing.assert_allclose(got, want, rtol=_tol(dtype), atol=_atol(dtype))


@pytest.mark.parametrize("fn", ["cross_entropy", "kl_divergence"])
@pytest.mark.parametrize("shape,axis,dtype,mask_kind", TABLE)
def test_cross_entropy_and_kl_table(fn, shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(1)
    p = jnp.asarray(ref.random_probs(rng, shape, axis, zeros=0.2), dtype)
    q = jnp.asarray(ref.random_probs(rng, shape, axis), dtype)
    where = _make_mask(mask_kind, rng, shape, axis)
    for base in (None, 10):
        got = jax.jit(partial(getattr(je, fn), axis=axis, where=where, base=base))(p, q)
        want = getattr(ref, fn)(_f64(p), _f64(q), axis, where, base)
        assert got.dtype == _out_dtype(dtype)
        np.testing.assert_allclose(got, want, rtol=_tol(dtype), atol=_atol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_table(dtype):
    rng = np.random.default_rng(2)
    p = jnp.asarray(np.concatenate([[0.0, 1.0, 0.5], rng.random(20)]).reshape(23), dtype)
    y = jnp.asarray(np.concatenate([[0.0, 1.0, 1.0], rng.random(20)]), dtype)
    tol = _tol(dtype)
    for base in (None, 2, 10, 0.5):
        got = je.self_information(p, base=base)
        assert got.dtype == _out_dtype(dtype)
        np.testing.assert_allclose(got, ref.self_information(_f64(p), base), rtol=tol)
        got = je.binary_entropy(p, base=base)
        assert got.dtype == _out_dtype(dtype)
        np.testing.assert_allclose(got, ref.binary_entropy(_f64(p), base), rtol=tol, atol=1e-300)
    got = je.binary_cross_entropy(p[3:], y[3:])
    assert got.dtype == _out_dtype(dtype)
    np.testing.assert_allclose(got, ref.binary_cross_entropy(_f64(p[3:]), _f64(y[3:])), rtol=tol)
    # a = 0 or 1 with matching labels is 0; confidently wrong is +inf, never clamped.
    got = je.binary_cross_entropy(jnp.array([0.0, 1.0, 0.0, 1.0], dtype), jnp.array([0, 1, 1, 0.0]))
    np.testing.assert_array_equal(got, [0.0, 0.0, np.inf, np.inf])


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


def test_worked_numbers_maximum_likelihood_coin():
    flips = jnp.array([1.0] * 7 + [0.0] * 3)

    def mean_bce(theta):
        return jnp.mean(je.binary_cross_entropy(jnp.full(10, theta), flips))

    grid = jnp.linspace(0.01, 0.99, 99)
    best = grid[jnp.argmin(jax.vmap(mean_bce)(grid))]
    np.testing.assert_allclose(best, 0.7, atol=1e-12)
    np.testing.assert_allclose(jgrad(mean_bce)(0.7), 0.0, atol=1e-12)
    # the likelihood theta^7 (1 - theta)^3 is exp(-10 * mean_bce).
    np.testing.assert_allclose(jnp.exp(-10 * mean_bce(0.6)), 0.6**7 * 0.4**3, rtol=1e-12)


# Simpler equivalent calls.


@pytest.mark.parametrize("fn", ["entropy", "cross_entropy", "kl_divergence"])
def test_masked_equals_sliced(fn):
    rng = np.random.default_rng(3)
    p = jnp.asarray(ref.random_probs(rng, (4, 6)))
    q = jnp.asarray(ref.random_probs(rng, (4, 6)))
    keep = np.array([True, False, True, True, False, True])
    args = (p,) if fn == "entropy" else (p, q)
    sliced = (a[:, keep] for a in args)
    got = getattr(je, fn)(*args, where=keep[None, :])
    np.testing.assert_allclose(got, getattr(je, fn)(*sliced), rtol=1e-14)
    # a per-example mask: masked-out examples give 0.
    rows_on = np.array([True, False, True, False])
    got = getattr(je, fn)(*args, where=rows_on)
    full = getattr(je, fn)(*args)
    np.testing.assert_array_equal(got, np.where(rows_on, full, 0.0))


@pytest.mark.parametrize("fn", ["entropy", "cross_entropy", "kl_divergence"])
@pytest.mark.parametrize("axis", [0, 1, -3])
def test_axis_equals_moveaxis(fn, axis):
    rng = np.random.default_rng(4)
    p = jnp.asarray(ref.random_probs(rng, (3, 4, 5), axis))
    q = jnp.asarray(ref.random_probs(rng, (3, 4, 5), axis))
    args = (p,) if fn == "entropy" else (p, q)
    got = getattr(je, fn)(*args, axis=axis)
    moved = getattr(je, fn)(*(jnp.moveaxis(a, axis, -1) for a in args))
    np.testing.assert_allclose(got, moved, rtol=1e-14)
    # a tuple axis equals the call on the flattened classes.
    got = getattr(je, fn)(*args, axis=(0, 2))
    flat = getattr(je, fn)(*(jnp.moveaxis(a, 1, 0).reshape(4, 15) for a in args))
    np.testing.assert_allclose(got, flat, rtol=1e-14)


@pytest.mark.parametrize(
    "fn,nargs",
    [
        (je.self_information, 1),
        (je.entropy, 1),
        (je.binary_entropy, 1),
        (je.cross_entropy, 2),
        (je.kl_divergence, 2),
        (je.binary_cross_entropy, 2),
    ],
)
def test_eager_jit_vmap(fn, nargs):
    rng = np.random.default_rng(5)
    args = [jnp.asarray(ref.random_probs(rng, (3, 4), zeros=0.2)) for _ in range(nargs)]
    eager = fn(*args)
    np.testing.assert_array_equal(jax.jit(fn)(*args), eager)
    np.testing.assert_allclose(jax.vmap(fn)(*args), eager, rtol=1e-15)
    np.testing.assert_allclose(jax.jit(jax.vmap(fn))(*args), eager, rtol=1e-15)


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


@pytest.mark.parametrize("base", [None, 2])
def test_cross_entropy_and_kl_gradients_closed_form(base):
    p = jnp.array([[0.5, 0.3, 0.2, 0.0], [0.1, 0.0, 0.6, 0.3]])
    q = jnp.array([[0.25, 0.25, 0.4, 0.1], [0.2, 0.3, 0.3, 0.2]])
    pn, qn = np.asarray(p), np.asarray(q)
    ln_b = 1.0 if base is None else math.log(base)
    ce_p, ce_q = jgrad(lambda a, b: je.cross_entropy(a, b, base=base).sum(), (0, 1))(p, q)
    np.testing.assert_allclose(ce_p, -np.log(qn) / ln_b, rtol=1e-14)
    np.testing.assert_allclose(ce_q, -pn / qn / ln_b, rtol=1e-14)
    kl_p, kl_q = jgrad(lambda a, b: je.kl_divergence(a, b, base=base).sum(), (0, 1))(p, q)
    with np.errstate(divide="ignore"):
        want_p = np.where(pn > 0, (np.log(pn / qn) + 1) / ln_b, 0.0)
    np.testing.assert_allclose(kl_p, want_p, rtol=1e-14)
    np.testing.assert_allclose(kl_q, -pn / qn / ln_b, rtol=1e-14)
    # forward mode agrees.
    fwd_p, fwd_q = jfwd(lambda a, b: je.kl_divergence(a, b, base=base).sum(), (0, 1))(p, q)
    np.testing.assert_allclose(fwd_p, want_p, rtol=1e-14)
    np.testing.assert_allclose(fwd_q, -pn / qn / ln_b, rtol=1e-14)


def test_elementwise_gradients_closed_form():
    p = jnp.array([0.1, 0.3, 0.5, 0.9])
    y = jnp.array([0.0, 1.0, 0.25, 0.7])
    pn, yn = np.asarray(p), np.asarray(y)
    for base in (None, 2):
        ln_b = 1.0 if base is None else math.log(base)
        g = jgrad(lambda x, b=base: je.self_information(x, base=b).sum())(p)
        np.testing.assert_allclose(g, -1 / pn / ln_b, rtol=1e-14)
        g = jgrad(lambda x, b=base: je.binary_entropy(x, base=b).sum())(p)
        np.testing.assert_allclose(g, np.log((1 - pn) / pn) / ln_b, rtol=1e-13)
    ga, gy = jgrad(lambda a, b: je.binary_cross_entropy(a, b).sum(), (0, 1))(p, y)
    np.testing.assert_allclose(ga, (pn - yn) / (pn * (1 - pn)), rtol=1e-13)
    np.testing.assert_allclose(gy, np.log((1 - pn) / pn), rtol=1e-13)


@pytest.mark.parametrize(
    "fn,nargs",
    [
        (lambda p: je.self_information(p, base=2), 1),
        (lambda p: je.entropy(p, base=2), 1),
        (je.binary_entropy, 1),
        (lambda p, q: je.cross_entropy(p, q, axis=0), 2),
        (lambda p, q: je.kl_divergence(p, q, where=jnp.array([[True, False, True]])), 2),
        (je.binary_cross_entropy, 2),
    ],
)
def test_check_grads(fn, nargs):
    # well-conditioned: probabilities away from 0 and 1, where finite differences are exact.
    rng = np.random.default_rng(6)
    args = tuple(jnp.asarray(rng.uniform(0.2, 0.8, (2, 3))) for _ in range(nargs))
    check_grads(jax.jit(fn), args, order=2, modes=("fwd", "rev"), eps=1e-4, atol=1e-5, rtol=1e-5)


# Boundary inputs.


def test_zero_probabilities_value_and_gradient():
    """0 log 0 = 0; the slope diverging at p = 0 is reported as 0 (the documented rule)."""
    p = jnp.array([0.0, 0.4, 0.6, 0.0])
    q = jnp.array([0.0, 0.5, 0.3, 0.2])
    np.testing.assert_allclose(je.entropy(p), ref.entropy(np.asarray(p)), rtol=1e-14)
    np.testing.assert_allclose(
        je.kl_divergence(p, q), ref.kl_divergence(np.asarray(p), np.asarray(q)), rtol=1e-14
    )
    assert je.binary_entropy(0.0) == 0.0 and je.binary_entropy(1.0) == 0.0
    ones = jnp.ones(4)
    labels01 = jnp.array([0.0, 0.0, 1.0, 1.0])
    for f, arg in (
        (je.entropy, p),
        (lambda x: je.kl_divergence(x, q), p),
        (lambda x: je.kl_divergence(p, x), q),
        (lambda x: je.kl_divergence(x, x), p),
        (lambda x: je.cross_entropy(x, q), p),
        (lambda x: je.cross_entropy(p, x), q),
        (lambda x: je.cross_entropy(x, x), p),
        (lambda x: je.binary_entropy(x).sum(), p),
        (lambda x: je.binary_cross_entropy(x, labels01).sum(), jnp.array([0.0, 0.3, 0.6, 1.0])),
    ):
        g = jgrad(f)(arg)
        _, t = jjvp(f, (arg,), (ones,))
        assert np.all(np.isfinite(g)) and np.isfinite(t)
        # forward and reverse mode agree (a NaN tangent would show here).
        np.testing.assert_allclose(t, jnp.sum(g), rtol=1e-14)
    g = jgrad(je.entropy)(p)
    assert g[0] == 0 and g[3] == 0
    g_p, g_q = jgrad(je.kl_divergence, (0, 1))(p, q)
    assert g_p[0] == 0 and g_p[3] == 0 and g_q[0] == 0 and g_q[3] == 0
    g = jgrad(lambda x: je.binary_entropy(x).sum())(jnp.array([0.0, 1.0]))
    np.testing.assert_array_equal(g, [0.0, 0.0])
    # binary cross-entropy at a = y in {0, 1} has value 0 and the finite slope -y/a+(1-y)/(1-a).
    g = jgrad(lambda a: je.binary_cross_entropy(a, jnp.array([0.0, 1.0])).sum())(
        jnp.array([0.0, 1.0])
    )
    np.testing.assert_array_equal(g, [1.0, -1.0])
    # second order at zeros stays finite too.
    assert np.all(np.isfinite(jhess(je.entropy)(p)))
    assert np.all(np.isfinite(jhess(lambda x: je.kl_divergence(x, q))(p)))


def test_infinite_values():
    assert je.self_information(0.0) == np.inf
    p = jnp.array([0.5, 0.5])
    q = jnp.array([1.0, 0.0])
    assert je.cross_entropy(p, q) == np.inf
    assert je.kl_divergence(p, q) == np.inf
    assert je.binary_cross_entropy(jnp.array(0.0), jnp.array(0.5)) == np.inf


GARBAGE = np.array([1e30, np.inf, -np.inf, np.nan, -3.0, 5e-324])


@pytest.mark.parametrize("fn", ["entropy", "cross_entropy", "kl_divergence"])
def test_masked_garbage_changes_nothing(fn):
    """Row i holds GARBAGE[i] in its masked-out entry; the last row is fully masked."""
    n = len(GARBAGE)
    rng = np.random.default_rng(8)
    p = jnp.asarray(ref.random_probs(rng, (n + 1, 4)))
    q = jnp.asarray(ref.random_probs(rng, (n + 1, 4)))
    mask = np.ones((n + 1, 4), bool)
    mask[:, 2] = False
    mask[n] = False
    fill = np.full(n + 1, 0.25)
    fill[:n] = GARBAGE
    dirty_p, dirty_q = p.at[:, 2].set(fill), q.at[:, 2].set(fill)
    f = getattr(je, fn)

    def call(a, b):
        args = (a,) if fn == "entropy" else (a, b)
        return f(*args, where=mask)

    def total(a, b):
        return call(a, b).sum()

    vals = jax.jit(call)
    grads = jax.jit(jax.grad(total, (0, 1)))
    np.testing.assert_array_equal(vals(dirty_p, dirty_q), vals(p, q))
    assert vals(dirty_p, dirty_q)[n] == 0
    for a, b in zip(grads(dirty_p, dirty_q), grads(p, q), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a[~mask], 0.0)
    _, t = jjvp(total, (dirty_p, dirty_q), (jnp.ones_like(p), jnp.ones_like(q)))
    _, t_clean = jjvp(total, (p, q), (jnp.ones_like(p), jnp.ones_like(q)))
    np.testing.assert_array_equal(t, t_clean)


def test_invalid_values_give_nan_never_hidden():
    """Negative or NaN entries inside the mask give NaN, even where p = 0."""
    p = jnp.array([0.5, 0.5, 0.0])
    for bad in (np.nan, -0.25):
        q = jnp.array([0.5, 0.5, bad])
        assert np.isnan(je.cross_entropy(p, q)), bad
        assert np.isnan(je.kl_divergence(p, q)), bad
        assert np.isnan(je.entropy(jnp.array([0.5, 0.5, bad]))), bad
        assert np.isnan(je.kl_divergence(jnp.array([0.5, 0.5, bad]), jnp.full(3, 1 / 3)))
        assert np.isnan(je.binary_entropy(bad))
        assert np.isnan(je.self_information(bad))
    assert np.isnan(je.binary_entropy(1.5))
    # a prediction outside [0, 1] with a 0/1 label is NaN, not a plausible number.
    assert np.all(np.isnan(je.binary_cross_entropy(jnp.array([1.5, -0.5]), jnp.array([1.0, 0.0]))))
    assert np.isnan(je.binary_cross_entropy(jnp.array(np.nan), jnp.array(1.0)))


# Dtype contract.


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
def test_dtype_contract(dtype):
    rng = np.random.default_rng(7)
    p = jnp.asarray(ref.random_probs(rng, (3, 5)), dtype)
    q = jnp.asarray(ref.random_probs(rng, (3, 5)), dtype)
    out = _out_dtype(dtype)
    for f, args, want in (
        (je.entropy, (p,), ref.entropy(_f64(p))),
        (je.cross_entropy, (p, q), ref.cross_entropy(_f64(p), _f64(q))),
        (je.kl_divergence, (p, q), ref.kl_divergence(_f64(p), _f64(q))),
        (je.binary_cross_entropy, (p, q), ref.binary_cross_entropy(_f64(p), _f64(q))),
        (je.binary_entropy, (p,), ref.binary_entropy(_f64(p))),
        (je.self_information, (p,), ref.self_information(_f64(p))),
    ):
        v = f(*args)
        assert v.dtype == out, f
        # the half-precision inputs are exact in float32: the result is float32-accurate.
        np.testing.assert_allclose(v, want, rtol=_tol(dtype))
        grads = jgrad(lambda *a, f=f: f(*a).sum(), tuple(range(len(args))))(*args)
        for g in grads:
            assert g.dtype == dtype
    # mixed precision promotes to the wider float, at least float32.
    assert je.kl_divergence(p.astype(jnp.bfloat16), q.astype(jnp.float64)).dtype == jnp.float64
    assert je.cross_entropy(p.astype(jnp.float16), q.astype(jnp.bfloat16)).dtype == jnp.float32
    # integer or boolean probabilities are accepted and computed in float.
    v = je.entropy(jnp.array([1, 0]))
    assert v == 0 and jnp.issubdtype(v.dtype, jnp.floating) and v.dtype.itemsize >= 4
