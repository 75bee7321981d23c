"""Estimators from histograms of counts (``_src/estimators/``): entropy (plug-in,
Miller-Madow, Grassberger, Chao-Shen, James-Stein, NSB) and plug-in mutual information."""

import math
from functools import partial

import chex
import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from absl.testing import parameterized
from helpers import f64, jfwd, jgrad, out_dtype
from jax.test_util import check_grads
from scipy import special

import jaxent
from jaxent import estimators

# The public functions, and jitted versions for the value tests (compiled once per shape:
# far cheaper than op-by-op dispatch of every primitive).
RAW = {
    "plugin": estimators.entropy_plugin,
    "miller_madow": estimators.entropy_miller_madow,
    "grassberger": estimators.entropy_grassberger,
    "chao_shen": estimators.entropy_chao_shen,
    "james_stein": estimators.entropy_james_stein,
    "nsb": estimators.entropy_nsb,
}
ORACLES = {
    "plugin": ref.entropy_plugin,
    "miller_madow": ref.entropy_miller_madow,
    "grassberger": ref.entropy_grassberger,
    "chao_shen": ref.entropy_chao_shen,
    "james_stein": ref.entropy_james_stein,
    "nsb": ref.entropy_nsb,
}
# name: (jitted function, float64 oracle)
ENTROPY = {
    name: (jax.jit(fn, static_argnames=("axis", "base")), ORACLES[name]) for name, fn in RAW.items()
}
CLOSED_FORM = [name for name in ENTROPY if name != "nsb"]  # NSB's oracle integrates: slow
# Estimators that sum over the occupied bins only: empty bins change nothing.
OCCUPIED_ONLY = ["plugin", "miller_madow", "grassberger", "chao_shen"]
MI_RAW = estimators.mutual_information_plugin
MI = jax.jit(MI_RAW, static_argnames=("axes", "base", "miller_madow"))


def counts_with_edges(rng, shape):
    """Multinomial histograms of assorted sizes, plus the edge cases along the batch: a single
    observation, all singletons, all in one bin, and uniform counts."""
    k = shape[-1]
    flat = ref.random_counts(rng, (math.prod(shape[:-1]), k), 0).astype(np.float64)
    totals = rng.choice([1, 2, 3, 7, 20, 150, 4000], size=flat.shape[0])
    for i, t in enumerate(totals):
        flat[i] = rng.multinomial(t, rng.dirichlet(np.full(k, 0.5)))
    edges = [np.eye(k)[0], np.minimum(1, np.arange(k) % 2 + 1), 9 * np.eye(k)[-1], np.full(k, 4)]
    for i, e in enumerate(edges[: flat.shape[0]]):
        flat[i] = e
    return flat.reshape(shape)


# Oracle tables.

TABLE = [((5, 6), -1), ((2, 3, 4), (0, 2))]  # other axes: test_axis_equals_moveaxis


@pytest.mark.parametrize("name", CLOSED_FORM)
@pytest.mark.parametrize("shape,axis", TABLE)
def test_entropy_table(name, shape, axis):
    fn, oracle = ENTROPY[name]
    rng = np.random.default_rng(0)
    c = ref.rows(counts_with_edges(rng, ref.rows(np.empty(shape), axis).shape), -1)
    c = ref._unrows(c, shape, axis)
    # eager calls (jit is tested below); float32 and half precision in the dtype tests.
    for dtype, base in ((jnp.float64, None), (jnp.int32, 2)):
        got = fn(jnp.asarray(c, dtype), axis=axis, base=base)
        assert got.dtype == out_dtype(dtype)
        want = oracle(c, axis, base)
        rtol = 1e-12 if dtype == jnp.float64 else 2e-5
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-300 if rtol < 1e-6 else 1e-6)


NSB_CASES = [  # K = 4, 30, 200 and 20; N = 4, 12, 60 and 10^4
    np.array([3.0, 1.0, 0.0, 0.0]),
    np.bincount(np.random.default_rng(1).integers(0, 30, 12), minlength=30).astype(float),
    np.bincount(np.random.default_rng(2).zipf(1.5, 60).clip(max=200) - 1, minlength=200)[
        :200
    ].astype(float),
    np.random.default_rng(3).multinomial(10_000, np.random.default_rng(4).dirichlet(np.ones(20))),
]


@pytest.mark.parametrize("case", range(len(NSB_CASES)))
def test_nsb_against_adaptive_quadrature(case):
    """The fixed 128-node grid against scipy.integrate.quad in float64 (1e-6 relative, the
    accuracy the docstring states), and float32 within 3e-5."""
    c = np.asarray(NSB_CASES[case], np.float64)
    want = ref.entropy_nsb(c)
    got = ENTROPY["nsb"][0](jnp.asarray(c))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    if case == 0:  # float32 once: every K compiles anew
        got32 = ENTROPY["nsb"][0](jnp.asarray(c, jnp.float32))
        assert got32.dtype == jnp.float32
        np.testing.assert_allclose(got32, want, rtol=3e-5)


# Open (an eighth outside trial's find): histograms with all their counts in one bin put
# the posterior's mass in a sliver of xi near 0 that the fixed grid does not resolve: the
# relative error is 8e-6 at K = 100, N = 1000 (3e-4 at K = 1000, N = 1e5; 3e-3 with a
# count of 1e-4 beside 50), above the 1e-6 stated for the other histograms. Strict: a fix
# makes this fail until the mark is removed.
@pytest.mark.xfail(strict=True, reason="NSB on a concentrated histogram (open)")
def test_nsb_on_a_concentrated_histogram():
    c = np.zeros(100)
    c[-1] = 1000.0
    np.testing.assert_allclose(ENTROPY["nsb"][0](jnp.asarray(c)), ref.entropy_nsb(c), rtol=1e-6)


def test_mutual_information_table():
    rng = np.random.default_rng(5)
    tables = ref.random_counts(rng, (6, 12), 40).reshape(6, 3, 4)
    tables[0] = 0
    tables[1] = np.diag([5.0, 2.0, 1.0, 0.0])[:3]
    for miller_madow in (False, True):
        for base in (None, 2):
            got = MI(jnp.asarray(tables), base=base, miller_madow=miller_madow)
            want = ref.mutual_information_plugin(tables, base=base, miller_madow=miller_madow)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    moved = np.moveaxis(tables, 0, 2)  # (3, 4, 6): X on axis 0, Y on axis 1
    np.testing.assert_allclose(
        MI(jnp.asarray(moved), axes=(0, 1)), ref.mutual_information_plugin(tables), rtol=1e-12
    )


# Cross-check with pyitlib, on samples built from the counts.


@pytest.mark.parametrize("estimator", ["ML", "JAMES-STEIN"])
def test_pyitlib_agrees(estimator):
    drv = pytest.importorskip("pyitlib.discrete_random_variable")
    fn = ENTROPY["plugin" if estimator == "ML" else "james_stein"][0]
    rng = np.random.default_rng(6)
    for total, k in [(5, 8), (40, 10), (300, 30), (2, 3)]:
        c = rng.multinomial(total, rng.dirichlet(np.full(k, 0.7))).astype(np.float64)
        samples = np.repeat(np.arange(k), c.astype(int))
        rng.shuffle(samples)
        want = drv.entropy(samples, estimator=estimator, base=2, Alphabet_X=np.arange(k))
        np.testing.assert_allclose(fn(jnp.asarray(c), base=2), want, rtol=1e-12)


# Known values and limits.


def test_known_values():
    k = 6
    uniform = jnp.full(k, 5.0)
    for name in ("plugin", "miller_madow", "james_stein"):  # no small-count correction
        h = ENTROPY[name][0](uniform)
        extra = (k - 1) / 60 if name == "miller_madow" else 0.0
        np.testing.assert_allclose(h, math.log(k) + extra, rtol=1e-14, err_msg=name)
    single = jnp.eye(k)[2]
    np.testing.assert_allclose(
        ENTROPY["grassberger"][0](single), np.euler_gamma + math.log(2), rtol=1e-14
    )
    # NSB of one observation is the prior mean entropy, log K / 2 (exchangeability).
    np.testing.assert_allclose(ENTROPY["nsb"][0](single), math.log(k) / 2, rtol=1e-12)
    # James-Stein with one observation (lambda undefined) is the uniform distribution.
    np.testing.assert_allclose(ENTROPY["james_stein"][0](single), math.log(k), rtol=1e-14)
    # Chao-Shen with N singletons: f1 = N - 1, C = 1/N, p = 1/N^2 per occupied bin.
    n = 4
    p = 1 / n**2
    want = -n * p * math.log(p) / (1 - (1 - p) ** n)
    got = ENTROPY["chao_shen"][0](jnp.array([1.0, 1.0, 0.0, 1.0, 1.0]))
    np.testing.assert_allclose(got, want, rtol=1e-14)
    # one bin: no entropy (NSB's grid is empty there, and special-cased).
    for name in ("plugin", "nsb"):
        assert ENTROPY[name][0](jnp.array([[9.0]]))[0] == 0.0, name
    # mutual information: a copy carries the entropy of X, independence none.
    np.testing.assert_allclose(MI(jnp.eye(3) * 7, base=3), 1.0, rtol=1e-14)
    np.testing.assert_allclose(
        MI(jnp.outer(jnp.arange(1.0, 4), jnp.arange(2.0, 6))), 0.0, atol=1e-15
    )


@pytest.mark.parametrize("name", list(ENTROPY))
def test_large_samples_agree_with_plugin_and_truth(name):
    """With every count large, the corrections vanish: each estimate equals the plug-in one
    to O(K/N), and all approach the true entropy."""
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(12), size=3)
    truth = ref.entropy(p)
    c = jnp.asarray(np.round(p * 1e8))
    plugin = ENTROPY["plugin"][0](c)
    got = ENTROPY[name][0](c)
    np.testing.assert_allclose(got, plugin, atol=2e-7)
    np.testing.assert_allclose(got, truth, atol=2e-7)


def test_bias_corrections_reduce_bias_when_undersampled():
    """Averaged over many samples of 20 draws from 50 bins, the plug-in estimate is biased
    low; Miller-Madow is closer to the truth, and Grassberger, Chao-Shen and NSB have less
    than half its bias."""
    rng = np.random.default_rng(8)
    p = rng.dirichlet(np.ones(50))
    truth = ref.entropy(p)
    c = jnp.asarray(rng.multinomial(20, p, size=400).astype(np.float64))
    bias = {name: float(jnp.mean(jax.jit(fn)(c))) - truth for name, (fn, _) in ENTROPY.items()}
    assert bias["plugin"] < -0.3
    assert bias["plugin"] < bias["miller_madow"] < 0
    for name in ("grassberger", "chao_shen", "nsb"):
        assert abs(bias[name]) < abs(bias["plugin"]) / 2, (name, bias)


# Simpler equivalent calls.


@pytest.mark.parametrize("name", list(ENTROPY))
def test_axis_equals_moveaxis_and_batch_equals_loop(name):
    """A tuple axis (moved to the end and flattened: the path every axis takes) equals the
    call on the flattened classes; a batch equals the loop over its histograms."""
    fn = ENTROPY[name][0]
    c = jnp.asarray(counts_with_edges(np.random.default_rng(9), (3, 4, 5)))
    flat = jnp.moveaxis(c, 1, 0).reshape(4, 15)
    np.testing.assert_allclose(fn(c, axis=(0, 2)), fn(flat), rtol=1e-14)
    rows = jnp.stack([fn(c[i, j]) for i in range(3) for j in range(4)]).reshape(3, 4)
    np.testing.assert_allclose(fn(c), rows, rtol=1e-14)


@pytest.mark.parametrize("name", OCCUPIED_ONLY)
def test_empty_bins_change_nothing(name):
    fn = ENTROPY[name][0]
    c = jnp.array([[4.0, 1.0, 2.0], [1.0, 1.0, 3.0]])
    padded = jnp.concatenate([c, jnp.zeros((2, 4))], axis=1)[:, [3, 0, 4, 1, 5, 2, 6]]
    np.testing.assert_allclose(fn(padded), fn(c), rtol=1e-15)
    np.testing.assert_array_equal(jgrad(lambda x: fn(x).sum())(padded)[:, [0, 2, 4, 6]], 0.0)


def test_mutual_information_symmetry_and_entropy_identity():
    rng = np.random.default_rng(10)
    t = jnp.asarray(ref.random_counts(rng, (4, 15), 30).reshape(4, 3, 5))
    np.testing.assert_allclose(MI(t), MI(jnp.swapaxes(t, 1, 2)), rtol=1e-13)
    np.testing.assert_allclose(MI(t, axes=(2, 1)), MI(t), rtol=1e-13)
    h = ENTROPY["plugin"][0]
    want = h(t.sum(2)) + h(t.sum(1)) - h(t.reshape(4, 15))
    np.testing.assert_allclose(MI(t), want, rtol=1e-12, atol=1e-15)
    mm = ENTROPY["miller_madow"][0]
    want = mm(t.sum(2)) + mm(t.sum(1)) - mm(t.reshape(4, 15))
    np.testing.assert_allclose(MI(t, miller_madow=True), want, rtol=1e-12, atol=1e-15)


# Eager, jit and vmap agree; static options never retrace.

PUBLIC = {
    **{name: (fn, {"axis": (-1,), "base": 2}) for name, fn in RAW.items()},
    "mutual_information": (MI_RAW, {"axes": (-2, -1), "base": 2, "miller_madow": True}),
}


def _counts(name, seed):
    rng = np.random.default_rng(seed)
    shape = (3, 4, 5) if name == "mutual_information" else (3, 6)
    flat = ref.random_counts(rng, (shape[0], math.prod(shape[1:])), 12)
    return (jnp.asarray(flat.reshape(shape)),)


class PublicFunctionTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*[(name, name) for name in PUBLIC])
    def test_matches_eager(self, name):
        fn, static = PUBLIC[name]
        (c,) = _counts(name, 11)
        eager = fn(c, **static)
        f = partial(self.variant(fn, static_argnames=tuple(static)), **static)
        np.testing.assert_allclose(f(c), eager, rtol=1e-14, atol=0)
        np.testing.assert_allclose(jax.vmap(f)(c), eager, rtol=1e-14, atol=0)
        np.testing.assert_allclose(
            jax.vmap(f, in_axes=1, out_axes=0)(jnp.moveaxis(c, 0, 1)), eager, rtol=1e-14, atol=0
        )

    @parameterized.named_parameters(*[(name, name) for name in PUBLIC])
    def test_static_options_do_not_retrace(self, name):
        fn, static = PUBLIC[name]
        helpers.check_traced_once(fn, static, [(_counts(name, s), {}) for s in range(3)])


# Gradients against closed forms.


def test_plugin_and_miller_madow_gradients_closed_form():
    c = jnp.array([[4.0, 0.0, 1.0, 3.0], [2.0, 2.0, 0.0, 0.0]])
    cn = np.asarray(c)
    total = cn.sum(1, keepdims=True)
    p = cn / total
    h = ref.entropy_plugin(cn)[:, None]
    m = (cn > 0).sum(1, keepdims=True)
    with np.errstate(divide="ignore"):
        plugin = np.where(cn > 0, -(np.log(p) + h) / total, 0.0)
    mm = np.where(cn > 0, plugin - (m - 1) / (2 * total**2), 0.0)
    for fn, want in ((estimators.entropy_plugin, plugin), (estimators.entropy_miller_madow, mm)):
        for base in (None, 2):
            ln_b = 1.0 if base is None else math.log(base)

            def total_h(x, fn=fn, base=base):
                return fn(x, base=base).sum()

            np.testing.assert_allclose(jgrad(total_h)(c), want / ln_b, rtol=1e-13)
            np.testing.assert_allclose(jfwd(total_h)(c), want / ln_b, rtol=1e-13)


def test_grassberger_gradient_closed_form():
    c = jnp.array([3.0, 1.0, 0.0, 6.0, 2.0])
    n = np.asarray(c)
    total = n.sum()
    sign = np.where(n % 2 == 0, 1.0, -1.0)
    occ = n > 0
    safe = np.where(occ, n, 1)
    g = special.digamma(safe) + 0.5 * sign * (
        special.digamma((safe + 1) / 2) - special.digamma(safe / 2)
    )
    dg = special.polygamma(1, safe) + 0.25 * sign * (
        special.polygamma(1, (safe + 1) / 2) - special.polygamma(1, safe / 2)
    )
    s = np.sum(np.where(occ, n * g, 0))
    want = np.where(occ, 1 / total - (g + n * dg) / total + s / total**2, 0.0)
    np.testing.assert_allclose(jgrad(estimators.entropy_grassberger)(c), want, rtol=1e-12)
    np.testing.assert_allclose(jfwd(estimators.entropy_grassberger)(c), want, rtol=1e-12)


def test_mutual_information_gradient_closed_form():
    t = jnp.array([[4.0, 1.0, 0.0], [2.0, 0.0, 5.0]])
    tn = np.asarray(t)
    total = tn.sum()
    p = tn / total
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    info = ref.mutual_information_plugin(tn)
    with np.errstate(divide="ignore"):
        want = np.where(tn > 0, (np.log(p / (px * py)) - info) / total, 0.0)
    np.testing.assert_allclose(jgrad(MI)(t), want, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(jfwd(MI)(t), want, rtol=1e-12, atol=1e-16)


def test_chao_shen_all_singletons_gradient():
    """Every observation a singleton: f1 = N - 1 is piecewise constant, as f1 is (near
    [1, 1, 1] a perturbed count is no singleton, and f1 = 2 on either side); the derivative
    matches central differences (-1.2413 for the first count, measured with step 1e-6).
    At [1, 0, 0] the estimate is 0 in a neighbourhood (one bin of probability 1): gradient
    0."""
    c = jnp.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    g = jgrad(lambda x: estimators.entropy_chao_shen(x).sum())(c)

    def cs(n):  # the estimate with f1 = 2, N = sum(n), for counts near [1, 1, 1]
        total = n.sum()
        p = (1 - 2 / total) * n / total
        return -np.sum(p * np.log(p) / (1 - (1 - p) ** total))

    h = 1e-6
    e = np.eye(3)
    want = [(cs(np.ones(3) + h * e[i]) - cs(np.ones(3) - h * e[i])) / (2 * h) for i in range(3)]
    np.testing.assert_allclose(g[0], want, rtol=1e-6)
    np.testing.assert_array_equal(g[1], 0.0)


def test_mutual_information_plugin_is_never_negative():
    """Outer products of integer marginals (independent counts) in float32: the plug-in sum
    rounds to either side of 0; the estimate is held at 0 (never below), with gradient 0
    where held."""
    rng = np.random.default_rng(9)
    t = jnp.asarray(
        np.stack([np.outer(rng.integers(1, 100, 7), rng.integers(1, 100, 9)) for _ in range(8)]),
        jnp.float32,
    )
    v, g = jax.jit(jax.vmap(jax.value_and_grad(MI)))(t)
    assert np.all(v >= 0) and not np.any(np.signbit(v))
    held = np.asarray(v) == 0
    assert held.any()
    np.testing.assert_array_equal(np.asarray(g)[held], 0.0)


@pytest.mark.parametrize("name", [*ENTROPY, "mutual_information"])
def test_check_grads(name):
    """Both modes, at float counts away from 0 and 1 (where Chao-Shen's singleton count
    jumps)."""
    rng = np.random.default_rng(12)
    if name == "mutual_information":
        fn, c = MI, jnp.asarray(rng.uniform(1.5, 6.0, (2, 3)))
    else:
        fn, c = ENTROPY[name][0], jnp.asarray(rng.uniform(1.5, 6.0, (5,)))
    check_grads(jax.jit(fn), (c,), order=1, modes=("fwd", "rev"), eps=1e-5, rtol=1e-5)


def test_james_stein_and_nsb_differentiate_empty_bins():
    """Their formulas depend smoothly on every bin's count: the gradient at an empty bin is
    finite, nonzero, and agrees with a one-sided finite difference."""
    c = jnp.array([5.0, 0.0, 2.0, 1.0, 0.0])
    for fn in (ENTROPY["james_stein"][0], ENTROPY["nsb"][0]):
        g = jgrad(fn)(c)
        assert np.all(np.isfinite(g)) and g[1] != 0, fn
        eps = 1e-6
        fd = (fn(c.at[1].add(eps)) - fn(c)) / eps
        np.testing.assert_allclose(g[1], fd, rtol=1e-4)


# Boundary inputs.


@pytest.mark.parametrize("name", [*ENTROPY, "mutual_information"])
def test_empty_histograms_give_zero_with_zero_gradient(name):
    fn = MI if name == "mutual_information" else ENTROPY[name][0]
    c = jnp.zeros((2, 2, 2) if fn is MI else (2, 4))  # the shapes of test_dtype_contract
    np.testing.assert_array_equal(fn(c), 0.0)
    for transform in (jgrad,) if name == "nsb" else (jgrad, jfwd):  # NSB: fwd in check_grads
        g = transform(lambda x, f=fn: f(x).sum())(c)
        np.testing.assert_array_equal(g, 0.0)
    # no bins at all: an empty sample too.
    no_bins = fn(jnp.zeros((3, 0, 0) if fn is MI else (3, 0)))
    assert no_bins.shape == (3,)
    np.testing.assert_array_equal(no_bins, 0.0)


@pytest.mark.parametrize("name", [*ENTROPY, "mutual_information"])
def test_invalid_counts_give_nan_for_their_histogram_only(name):
    fn = MI if name == "mutual_information" else ENTROPY[name][0]
    good = jnp.array([3.0, 1.0, 0.0, 2.0])
    c = jnp.stack([good, good.at[2].set(-1.0), good.at[2].set(np.nan), good.at[2].set(np.inf)])
    got = fn(c.reshape(4, 2, 2) if fn is MI else c)
    assert np.isfinite(got[0]) and np.all(np.isnan(got[1:])), name


@pytest.mark.parametrize("name", list(ENTROPY))
def test_huge_counts_in_float32(name):
    """Counts of 1e9 stay finite in float32, with finite gradients; every correction is
    O(K/N) there, so each estimate equals the plug-in oracle's value."""
    fn = ENTROPY[name][0]
    c32 = jnp.asarray([[1e9, 3e8, 1.0, 0.0, 5e7]], jnp.float32)
    np.testing.assert_allclose(fn(c32), ref.entropy_plugin(f64(c32)), rtol=2e-5)
    assert np.all(np.isfinite(jgrad(lambda x: fn(x).sum())(c32)))


# Dtype contract.


@pytest.mark.parametrize("name", [*ENTROPY, "mutual_information"])
def test_dtype_contract(name):
    """Integer and half-precision counts (exact in their dtype) compute in float32, float64
    stays float64; gradients come back in the counts' float dtype."""
    fn = MI if name == "mutual_information" else ENTROPY[name][0]
    c = np.array([[7, 0, 2, 1], [3, 3, 1, 12]], np.float64)
    if fn is MI:
        c = c.reshape(2, 2, 2)
    want = fn(jnp.asarray(c))
    assert want.dtype == jnp.float64
    dtypes = (jnp.bfloat16,) if name == "nsb" else (jnp.uint8, jnp.float16, jnp.bfloat16)
    for dtype in dtypes:  # NSB: one dtype (each compiles its quadrature anew)
        got = fn(jnp.asarray(c, dtype))
        assert got.dtype == jnp.float32, dtype
        np.testing.assert_allclose(got, want, rtol=2e-5)
    g = jax.grad(lambda x: fn(x).sum())(jnp.asarray(c, jnp.bfloat16))
    assert g.dtype == jnp.bfloat16


# Static checks and the public namespace.


def test_static_checks_name_the_argument():
    f = estimators.entropy_plugin
    with pytest.raises(TypeError, match="counts"):
        f("abc")
    with pytest.raises(TypeError, match="counts"):
        f(jnp.array([1 + 2j]))
    with pytest.raises(ValueError, match="axis"):
        f(jnp.ones((2, 3)), axis=2)
    with pytest.raises(ValueError, match="base"):
        estimators.entropy_nsb(jnp.ones(3), base=1)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        MI_RAW(jnp.ones(3))
    with pytest.raises(TypeError, match="axes"):
        MI_RAW(jnp.ones((2, 2)), axes=-1)
    with pytest.raises(ValueError, match="axes"):
        MI_RAW(jnp.ones((2, 2)), axes=(0, 0))
    with pytest.raises(ValueError, match="axes"):
        MI_RAW(jnp.ones((2, 2)), axes=(0, 2))
    with pytest.raises(TypeError, match="miller_madow"):
        MI_RAW(jnp.ones((2, 2)), miller_madow=1)


def test_public_namespace():
    assert jaxent.estimators is estimators
    assert sorted(estimators.__all__) == estimators.__all__
    for name in estimators.__all__:
        assert callable(getattr(estimators, name))
        assert not hasattr(jaxent, name), name  # not in the flat namespace
    assert f64(RAW["plugin"](jnp.array([1, 1]))) == pytest.approx(math.log(2))
