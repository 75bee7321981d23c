"""Property-based tests over random shapes, axes, masks and dtypes, and an adversarial sweep."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from helpers import jgrad, tol
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxent as je

# Few examples, dimensions from a small set: each new shape costs compilations.
SETTINGS = settings(max_examples=8, deadline=None, derandomize=True, database=None)
# Fewer for a property whose every term the example tests pin against float64 oracles and
# closed forms (the identities then hold by those): a sweep over random layouts.
PINNED = settings(max_examples=4, deadline=None, derandomize=True, database=None)


@st.composite
def cases(draw):
    """A seeded problem: shape, class axis (int or tuple), mask, dtype and data."""
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.sampled_from([1, 3]), min_size=ndim, max_size=ndim)))
    if ndim == 3 and draw(st.booleans()):
        axis = tuple(sorted(draw(st.sets(st.integers(0, 2), min_size=2, max_size=2))))
    else:
        axis = draw(st.integers(-ndim, ndim - 1))
    dtype = draw(st.sampled_from([jnp.float32, jnp.float64]))
    masked = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    where = ref.random_mask(rng, shape, axis) if masked else None
    return shape, axis, dtype, where, rng


def _tol(dtype):
    """Sums over random shapes and masks: a looser float32 tolerance than the oracle tables'."""
    return tol(dtype, low=2e-5)


@PINNED  # each measure: the oracle tables of test_entropy.py and test_divergences.py
@given(cases())
def test_gibbs_and_cross_entropy_decomposition(case):
    shape, _, dtype, _, rng = case
    # Distributions over the allowed entries (Gibbs' inequality needs both to sum to 1 there).
    p, _, kw = _normalised(case, 0.3)
    q, _, _ = _normalised(case, 0.0)
    a = jnp.asarray(rng.normal(size=shape), dtype)
    b = jnp.asarray(rng.normal(size=shape), dtype)

    @jax.jit  # every measure in one compiled call
    def measures(p, q, a, b):
        return (
            je.kl_divergence(p, q, **kw),
            je.kl_divergence(p, p, **kw),
            je.cross_entropy(p, q, **kw),
            je.entropy(p, **kw),
            je.kl_divergence_from_logits(a, b, **kw),
        )

    d, d_self, cross, h, d_logits = measures(p, q, a, b)
    assert np.all(np.asarray(d) >= -_tol(dtype))
    np.testing.assert_allclose(d_self, 0.0, atol=_tol(dtype))
    np.testing.assert_allclose(cross, h + d, rtol=_tol(dtype), atol=_tol(dtype))
    assert np.all(np.asarray(d_logits) >= -_tol(dtype))


@SETTINGS
@given(cases(), st.floats(-1e3, 1e3))
def test_shift_invariance(case, shift):
    shape, axis, dtype, where, rng = case
    z = jnp.asarray(rng.normal(size=shape) * 3, dtype)
    zs = z + jnp.asarray(shift, dtype)
    y = jnp.asarray(ref.random_probs(rng, shape, axis), dtype)
    kw = {"axis": axis, "where": where}
    k = int(np.prod([shape[a] for a in ref._axes(axis, len(shape))]))
    labels = jnp.asarray(rng.integers(0, k, np.asarray(je.entropy_from_logits(z, axis=axis)).shape))
    # a shift of s in float32 moves the logits by up to ulp(s).
    tol = _tol(dtype) * (1 + abs(shift)) * 4
    fns = (
        lambda x: je.softmax_cross_entropy(x, y, label_smoothing=0.1, **kw),
        lambda x: je.softmax_cross_entropy_with_integer_labels(x, labels, **kw),
        lambda x: je.entropy_from_logits(x, **kw),
        lambda x: je.kl_divergence_from_logits(x, 2 * z, **kw),
    )
    # both inputs through every function in one compiled call
    got = jax.jit(lambda z, zs: [(f(zs), f(z)) for f in fns])(z, zs)
    for shifted, plain in got:
        np.testing.assert_allclose(shifted, plain, rtol=tol, atol=tol)


@PINNED  # each gradient: the closed forms of test_losses.py, test_entropy.py, ...
@given(cases())
def test_gradients_sum_to_zero_and_integer_equals_one_hot(case):
    shape, axis, dtype, where, rng = case
    z = jnp.asarray(rng.normal(size=shape), dtype)
    y = jnp.asarray(ref.random_probs(rng, shape, axis), dtype)
    axes = ref._axes(axis, len(shape))
    batch = [s for i, s in enumerate(shape) if i not in axes]
    k = int(np.prod([shape[a] for a in axes]))
    labels = rng.integers(0, k, batch)
    onehot = jnp.asarray(ref.one_hot(labels, shape, axis), dtype)
    kw = {"axis": axis, "where": where}
    if where is not None:  # normalised over the allowed classes
        y = jnp.where(where, y, 0)
        y = y / jnp.sum(y, axis=axes, keepdims=True)
    tol = _tol(dtype)
    labels = jnp.asarray(labels)
    fns = (
        lambda x: je.softmax_cross_entropy(x, y, label_smoothing=0.2, **kw),
        lambda x: je.entropy_from_logits(x, **kw),
        lambda x: je.kl_divergence_from_logits(x, jnp.flip(z), **kw),
        lambda x: je.kl_divergence_from_logits(jnp.flip(z), x, **kw),
    )
    hard = lambda x: je.softmax_cross_entropy_with_integer_labels(x, labels, **kw)  # noqa: E731
    soft = lambda x: je.softmax_cross_entropy(x, onehot, **kw)  # noqa: E731

    @jax.jit  # every value and gradient in one compiled call
    def run(x):
        grads = [jax.grad(lambda x, f=f: f(x).sum())(x) for f in (*fns, hard, soft)]
        return grads, hard(x), soft(x)

    grads, v_hard, v_soft = run(z)
    for g in grads[:-2]:
        np.testing.assert_allclose(jnp.sum(g, axis=axes), 0.0, atol=tol * 10)
    np.testing.assert_allclose(v_hard, v_soft, rtol=tol, atol=tol)
    np.testing.assert_allclose(grads[-2], grads[-1], rtol=tol, atol=tol)


@pytest.mark.parametrize(("n", "k"), [(1, 1), (1, 4), (3, 1), (3, 4)])
def test_vmap_equals_batched_equals_jit(n, k):
    # Every shape the property draws once (8 draws covered at most these 4).
    rng = np.random.default_rng(10 * n + k)
    z = jnp.asarray(rng.normal(size=(n, k)))
    y = jnp.asarray(ref.random_probs(rng, (n, k)))
    labels = jnp.asarray(rng.integers(0, k, n))
    for f, args in (
        (je.softmax_cross_entropy, (z, y)),
        (je.softmax_cross_entropy_with_integer_labels, (z, labels)),
        (je.multilabel_sigmoid_cross_entropy, (z, y)),
        (je.entropy_from_logits, (z,)),
        (je.kl_divergence_from_logits, (z, 2 * z)),
        (je.entropy, (y,)),
        (je.kl_divergence, (y, jnp.flip(y, -1))),
    ):
        batched = f(*args)
        np.testing.assert_allclose(jax.vmap(f)(*args), batched, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(jax.jit(f)(*args), batched, rtol=1e-14, atol=1e-15)


# The adversarial sweep: each row holds one special value at class 1, inside or outside the
# mask. Masked: nothing changes. Allowed: NaN propagates; otherwise no NaN where the
# mathematics is finite (and no NaN gradient for valid input).

# -1e-300, not a negative denormal: the CPU may flush denormal inputs to zero.
SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, 1e30, -1e30, 5e-324, -1e-300, 1e-30])
# Elementwise functions have no mask: the sweep sums them under jnp.where, whose gradient
# is NaN-free only for clean inputs, so only their allowed entries are swept.
ELEMENTWISE = {"sigmoid", "binary_entropy", "bce"}
N = len(SPECIALS)

LOGIT_FNS = {
    "softmax": lambda z, m: je.softmax_cross_entropy(
        z, jnp.tile(jnp.array([0.7, 0.0, 0.3, 0.0]), (N, 1)), where=m, z_loss=0.01
    ),
    "integer": lambda z, m: je.softmax_cross_entropy_with_integer_labels(
        z, jnp.zeros(N, int), where=m, label_smoothing=0.0
    ),
    "entropy_from_logits": lambda z, m: je.entropy_from_logits(z, where=m),
    "kl_p": lambda z, m: je.kl_divergence_from_logits(z, jnp.zeros_like(z), where=m),
    "kl_q": lambda z, m: je.kl_divergence_from_logits(
        jnp.where(jnp.arange(4) == 1, -jnp.inf, 0.0) * jnp.ones_like(z), z, where=m
    ),
    "multilabel": lambda z, m: je.multilabel_sigmoid_cross_entropy(
        z, jnp.tile(jnp.array([1.0, 0.0, 1.0, 0.0]), (N, 1)), where=m
    ),
    "sigmoid": lambda z, m: jnp.sum(
        jnp.where(m, je.sigmoid_binary_cross_entropy(z, jnp.zeros_like(z).at[:, 1].set(1.0)), 0),
        -1,
    ),
}


@pytest.mark.parametrize("name", list(LOGIT_FNS))
def test_adversarial_sweep_logits(name):
    f = LOGIT_FNS[name]
    base = jnp.tile(jnp.array([0.3, -0.4, -0.2, 1.0]), (N, 1))
    z = base.at[:, 1].set(SPECIALS)
    on = jnp.ones((N, 4), bool)
    off = on.at[:, 1].set(False)

    def both(x, m):
        return f(x, m), jgrad(lambda u: f(u, m).sum())(x)

    run = jax.jit(both)
    if name not in ELEMENTWISE:
        v_off, g_off = run(z, off)
        v_clean, g_clean = run(base, off)
        np.testing.assert_array_equal(v_off, v_clean)
        np.testing.assert_array_equal(g_off, g_clean)
    v_on, g_on = run(z, on)
    for i, s in enumerate(SPECIALS):
        if np.isnan(s):
            assert np.isnan(v_on[i]), (name, s)
        elif np.isfinite(s) or s == -np.inf:
            # +inf or 1e30 label mass on an excluded class is +inf, never NaN.
            assert not np.isnan(v_on[i]), (name, s)
            assert not np.any(np.isnan(g_on[i])), (name, s)
        elif name in ("sigmoid", "multilabel"):  # +inf is a valid sigmoid logit
            assert not np.isnan(v_on[i]) and not np.any(np.isnan(g_on[i])), (name, s)


PROB_FNS = {
    "entropy": lambda p, q, m: je.entropy(p, where=m),
    "cross_entropy_p": lambda p, q, m: je.cross_entropy(p, q, where=m),
    "cross_entropy_q": lambda p, q, m: je.cross_entropy(q, p, where=m),
    "kl_p": lambda p, q, m: je.kl_divergence(p, q, where=m),
    "kl_q": lambda p, q, m: je.kl_divergence(q, p, where=m),
    "binary_entropy": lambda p, q, m: jnp.sum(jnp.where(m, je.binary_entropy(p), 0), -1),
    "bce": lambda p, q, m: jnp.sum(jnp.where(m, je.binary_cross_entropy(p, q), 0), -1),
}


@pytest.mark.parametrize("name", list(PROB_FNS))
def test_adversarial_sweep_probabilities(name):
    f = PROB_FNS[name]
    base = jnp.tile(jnp.array([0.2, 0.3, 0.4, 0.1]), (N, 1))
    q = jnp.tile(jnp.array([0.25, 0.25, 0.25, 0.25]), (N, 1))
    p = base.at[:, 1].set(SPECIALS)
    on = jnp.ones((N, 4), bool)
    off = on.at[:, 1].set(False)

    def both(x, m):
        return f(x, q, m), jgrad(lambda u: f(u, q, m).sum())(x)

    run = jax.jit(both)
    if name not in ELEMENTWISE:
        v_off, g_off = run(p, off)
        v_clean, g_clean = run(base, off)
        np.testing.assert_array_equal(v_off, v_clean)
        np.testing.assert_array_equal(g_off, g_clean)
    v_on, g_on = run(p, on)
    for i, s in enumerate(SPECIALS):
        invalid = np.isnan(s) or s < 0 or (name in ("binary_entropy", "bce") and s > 1)
        if invalid:
            assert np.isnan(v_on[i]), (name, s)  # never a plausible number
        else:
            assert not np.isnan(v_on[i]), (name, s)
            assert not np.any(np.isnan(g_on[i])), (name, s)


# Rényi, Tsallis and Jensen-Shannon: orders on a leading axis, one call per example.
ORDERS = jnp.array([0.0, 0.2, 0.5, 1 - 1e-6, 1.0, 1 + 1e-6, 2.0, 5.0, jnp.inf])


def _normalised(case, zeros):
    """Distributions that sum to 1 over the allowed entries, and the orders laid out for
    them."""
    shape, axis, dtype, where, rng = case
    axes = ref._axes(axis, len(shape))
    p = jnp.asarray(ref.random_probs(rng, shape, axis, zeros=zeros), dtype)
    if where is not None:  # (no all-zero distribution under the mask)
        p = jnp.where(where, p + 1e-3, 0)
        p = p / jnp.sum(p, axis=axes, keepdims=True)
    orders = ORDERS.astype(dtype).reshape((-1,) + (1,) * (len(shape) - len(axes)))
    return p, orders, {"axis": axis, "where": where}


@SETTINGS
@given(cases())
def test_js_symmetric_and_bounded(case):
    p, _, kw = _normalised(case, 0.3)
    q, _, _ = _normalised(case, 0.0)
    dtype = case[2]
    js, js_swapped = jax.jit(
        lambda p, q: (je.js_divergence(p, q, **kw), je.js_divergence(q, p, **kw))
    )(p, q)
    np.testing.assert_allclose(js, js_swapped, rtol=_tol(dtype), atol=1e-7)
    assert np.all(np.asarray(js) >= 0)
    assert np.all(np.asarray(js) <= np.log(2) * (1 + _tol(dtype)))
    assert np.all(np.asarray(je.js_divergence(p, q, base=2, **kw)) <= 1 + _tol(dtype))


@settings(max_examples=4, deadline=None, derandomize=True, database=None)
@given(cases())
def test_renyi_monotone_in_the_order_and_shannon_at_one(case):
    p, orders, kw = _normalised(case, 0.3)
    q, _, _ = _normalised(case, 0.0)
    dtype = case[2]
    tol = _tol(dtype) * 10

    @jax.jit  # every measure in one compiled call
    def measures(p, q):
        return (
            je.renyi_entropy(p, orders, **kw),
            je.renyi_divergence(p, q, orders, **kw),
            je.entropy(p, **kw),
            je.tsallis_entropy(p, 1.0, **kw),
            je.kl_divergence(p, q, **kw),
        )

    h, d, shannon, tsallis, kl = (np.asarray(x) for x in measures(p, q))
    assert np.all(np.diff(h, axis=0) <= tol * (1 + np.abs(h[1:])))  # non-increasing
    assert np.all(np.diff(d, axis=0) >= -tol * (1 + np.abs(d[1:])))  # non-decreasing
    np.testing.assert_allclose(h[4], shannon, rtol=tol, atol=tol)
    np.testing.assert_allclose(tsallis, shannon, rtol=tol, atol=tol)
    np.testing.assert_allclose(d[4], kl, rtol=tol, atol=tol)


# Joint measures and Gaussian closed forms: identities and bounds on random inputs.


@st.composite
def joint_cases(draw):
    """Seeded tables [2, X, 4] (X = 1 makes H(X) = 0) with zero cells, and a dtype."""
    nx = draw(st.sampled_from([1, 3]))
    dtype = draw(st.sampled_from([jnp.float32, jnp.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return jnp.asarray(ref.random_probs(rng, (2, nx, 4), (-2, -1), zeros=0.3), dtype)


@jax.jit
def _joint_measures(p):
    z = jnp.log(p)
    return {
        "h_xy": je.joint_entropy(p),
        "h_y_x": je.conditional_entropy(p),
        "mi": je.mutual_information(p),
        "nmi": je.normalized_mutual_information(p),
        "h_x": je.entropy(p.sum(-1)),
        "h_y": je.entropy(p.sum(-2)),
        "logits": (
            je.joint_entropy_from_logits(z),
            je.conditional_entropy_from_logits(z),
            je.mutual_information_from_logits(z),
        ),
    }


@SETTINGS
@given(joint_cases())
def test_joint_measure_identities(p):
    m = _joint_measures(p)
    t = _tol(p.dtype)
    # I = H(X) + H(Y) - H(X, Y) >= 0, computed apart (no cancellation in I itself).
    assert np.all(np.asarray(m["mi"]) >= 0)
    np.testing.assert_allclose(m["mi"], m["h_x"] + m["h_y"] - m["h_xy"], rtol=t, atol=t)
    # H(Y | X) = H(X, Y) - H(X) <= H(Y).
    np.testing.assert_allclose(m["h_y_x"], m["h_xy"] - m["h_x"], rtol=t, atol=t)
    assert np.all(np.asarray(m["h_y_x"]) >= 0)
    assert np.all(np.asarray(m["h_y_x"]) <= np.asarray(m["h_y"]) + t)
    # 0 <= NMI <= 1.
    nmi = np.asarray(m["nmi"])
    assert np.all((nmi >= 0) & (nmi <= 1 + t))
    # the logit forms give the same values.
    for got, want in zip(m["logits"], (m["h_xy"], m["h_y_x"], m["mi"]), strict=True):
        np.testing.assert_allclose(got, want, rtol=t, atol=t)


@st.composite
def gaussian_cases(draw):
    """Two seeded Gaussians in D dimensions (full and diagonal covariances), and a dtype."""
    d = draw(st.sampled_from([1, 3]))
    dtype = draw(st.sampled_from([jnp.float32, jnp.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.normal(size=(2, 2, d, d))
    cov = a @ np.swapaxes(a, -1, -2) / d + 0.1 * np.eye(d)
    x = (rng.normal(size=(2, 2, d)), cov, rng.normal(size=(2, 2, d)) * 2)
    return tuple(jnp.asarray(v, dtype) for v in x)


@jax.jit
def _gaussian_measures(mean, cov, log_var):
    (mp, mq), (cp, cq), (lp, lq) = mean, cov, log_var
    diag = jnp.log(jnp.diagonal(cp, axis1=-2, axis2=-1))
    return {
        "kl": je.gaussian_kl(mp, cp, mq, cq),
        "kl_same": je.gaussian_kl(mp, cp, mp, cp),
        "kl_diag": je.gaussian_kl_diag(mp, lp, mq, lq),
        "kl_diag_same": je.gaussian_kl_diag(mp, lp, mp, lp),
        "h": je.gaussian_entropy(cp),
        "h_of_diagonal": je.gaussian_entropy_diag(diag),
    }


@SETTINGS
@given(gaussian_cases())
def test_gaussian_kl_nonnegative_and_hadamard(case):
    m = _gaussian_measures(*case)
    eps = float(jnp.finfo(case[0].dtype).eps)
    # KL >= 0, and 0 at equality (to within the rounding of L^-1 L).
    assert np.all(np.asarray(m["kl"]) >= 0) and np.all(np.asarray(m["kl_diag"]) >= 0)
    assert np.all(np.asarray(m["kl_same"]) <= 16 * eps**2)
    assert np.all(np.asarray(m["kl_diag_same"]) == 0)
    # Hadamard: det(Sigma) <= prod(Sigma_ii), so h(Sigma) <= h(diag(Sigma)).
    assert np.all(np.asarray(m["h"]) <= np.asarray(m["h_of_diagonal"]) + 10 * eps)
