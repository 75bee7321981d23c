"""Evaluation metrics (``_src/metrics.py``): perplexity, expected and maximum calibration
error, the Brier score; against float64 oracles, torchmetrics and scikit-learn."""

import functools
import math
from functools import partial

import chex
import helpers
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from helpers import Public, batch_shape, close, f64, jfwd, jgrad, make_mask, num_classes
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxent as je


# The public functions of metrics.py that work row by row, for the chex tests (see
# helpers.Public); the calibration errors reduce over examples and have their own below.
def perplexity_rows(losses, *, where=None, base=None):
    """``perplexity`` of each row (the chex tests vmap over rows)."""
    return je.perplexity(losses, axis=-1, where=where, base=base)


PUBLIC = {
    "perplexity": Public(perplexity_rows, "w", {"base": 2}, (("where", "m"),)),
    "brier_score": Public(je.brier_score, "ql", {"axis": (-1,)}, (("where", "m"),)),
}


def random_top_probs(rng, shape, zeros=0.0):
    """Distributions on the last axis whose top probabilities spread over [1/K, 1]."""
    sharp = rng.uniform(0.2, 6.0, (*shape[:-1], 1))
    p = ref.random_probs(rng, shape, zeros=zeros) ** sharp
    return p / p.sum(-1, keepdims=True)


# Perplexity.


@pytest.mark.parametrize(
    "shape,axis,dtype,mask_kind",
    [
        ((5,), -1, jnp.float64, None),
        ((3, 4), 0, jnp.float64, "per_class"),
        ((2, 3, 4), 1, jnp.float64, "per_example"),
        ((2, 3, 4), (0, 2), jnp.float64, "per_class"),
        ((2, 3, 4), None, jnp.float64, "per_class"),
        ((3, 4), -1, jnp.float32, "per_example"),
        ((3, 4), -1, jnp.bfloat16, None),
    ],
)
def test_perplexity_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(70)
    losses = jnp.asarray(rng.exponential(2.0, shape), dtype)
    where = make_mask(mask_kind, rng, shape, -1 if axis is None else axis)
    if axis is None and mask_kind == "per_example":
        where = None
    for base in (None, 2):
        got = jax.jit(partial(je.perplexity, axis=axis, where=where, base=base))(losses)
        close(got, ref.perplexity(f64(losses), axis, where, base), dtype, atol=0)


def test_perplexity_worked_numbers():
    """A uniform model over K classes has perplexity K; a sequence's perplexity is the
    inverse geometric mean of its token probabilities; bits and nats agree."""
    for k in (2, 1000):
        losses = je.softmax_cross_entropy_with_integer_labels(jnp.zeros((7, k)), jnp.arange(7) % k)
        np.testing.assert_allclose(je.perplexity(losses), k, rtol=1e-12)
    probs = np.array([0.5, 0.25, 0.125, 0.9])
    want = np.prod(probs) ** (-1 / 4)
    np.testing.assert_allclose(je.perplexity(je.self_information(probs)), want, rtol=1e-14)
    bits = je.self_information(probs, base=2)
    np.testing.assert_allclose(je.perplexity(bits, base=2), want, rtol=1e-14)


def test_perplexity_masks_and_empty_sets():
    losses = jnp.array([[1.0, 2.0, jnp.nan], [jnp.inf, 0.5, 0.5], [jnp.nan, jnp.nan, jnp.nan]])
    keep = jnp.array([[True, True, False], [True, True, True], [False, False, False]])
    v = jax.jit(partial(je.perplexity, axis=1, where=keep))(losses)
    np.testing.assert_allclose(v[0], math.exp(1.5), rtol=1e-15)
    assert v[1] == np.inf
    assert np.isnan(v[2])  # no token left: undefined, never a perfect 1
    # masked entries, NaN included, take no part and get gradient 0.
    g = jgrad(lambda x: je.perplexity(x, axis=1, where=keep[:2]).sum())(losses[:2])
    assert np.all(g[~keep[:2]] == 0) and np.all(np.isfinite(g[0]))
    g = jgrad(lambda x: je.perplexity(x, where=keep[2]).sum())(losses[2])
    np.testing.assert_array_equal(g, 0.0)
    assert np.isnan(je.perplexity(jnp.zeros((0,))))
    # masked call == call on the kept entries.
    np.testing.assert_allclose(
        je.perplexity(losses[0], where=keep[0]), je.perplexity(losses[0, :2])
    )
    # a per-sequence mask (the shape without axis) masks whole sequences.
    v = je.perplexity(losses[:2].at[0, 2].set(1.0), axis=1, where=jnp.array([True, False]))
    np.testing.assert_allclose(v[0], math.exp(4 / 3), rtol=1e-15)
    assert np.isnan(v[1])


@pytest.mark.parametrize("base", [None, 2])
def test_perplexity_gradient_closed_form(base):
    rng = np.random.default_rng(71)
    losses = rng.exponential(1.0, (3, 5))
    keep = rng.random((3, 5)) < 0.7
    keep[:, 0] = True
    ln_b = 1.0 if base is None else math.log(base)
    n = keep.sum(1, keepdims=True)
    ppl = np.exp(np.sum(losses * keep, 1, keepdims=True) / n * ln_b)
    want = np.where(keep, ppl * ln_b / n, 0.0)

    def f(x):
        return je.perplexity(x, axis=1, where=keep, base=base).sum()

    np.testing.assert_allclose(jgrad(f)(losses), want, rtol=1e-13)
    np.testing.assert_allclose(jfwd(f)(losses), want, rtol=1e-13)
    if base == 2:
        helpers.check_grads_both_modes(lambda x: je.perplexity(x, axis=-1, base=2), True, nargs=1)


# Calibration errors.


def test_calibration_worked_example():
    """torchmetrics' documented example: ECE 0.2000, MCE 0.2333 with 3 bins."""
    probs = jnp.array(
        [[0.25, 0.20, 0.55], [0.55, 0.05, 0.40], [0.10, 0.30, 0.60], [0.90, 0.05, 0.05]]
    )
    labels = jnp.array([0, 1, 2, 0])
    np.testing.assert_allclose(je.expected_calibration_error(probs, labels, num_bins=3), 0.2)
    np.testing.assert_allclose(
        je.maximum_calibration_error(probs, labels, num_bins=3), 0.7 / 3, rtol=1e-14
    )


@pytest.mark.parametrize("num_bins", [1, 15])
def test_calibration_against_float64_oracle(num_bins):
    rng = np.random.default_rng(72)
    probs = random_top_probs(rng, (4, 50, 6))
    labels = rng.integers(0, 6, (4, 50))
    probs[0, :5] = np.eye(6)[labels[0, :5]]  # confidence exactly 1: a bin of its own
    ece = jax.jit(partial(je.expected_calibration_error, num_bins=num_bins))(probs, labels)
    mce = jax.jit(partial(je.maximum_calibration_error, num_bins=num_bins))(probs, labels)
    for i in range(4):
        want = ref.expected_calibration_error(probs[i], labels[i], num_bins)
        np.testing.assert_allclose(ece[i], want, rtol=1e-12, atol=1e-15)
        want = ref.maximum_calibration_error(probs[i], labels[i], num_bins)
        np.testing.assert_allclose(mce[i], want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("num_bins", [10, 15])
def test_calibration_equals_torchmetrics(num_bins):
    """torchmetrics computes in float32: float32 inputs, confidences on the edges k/B
    included (where torch.linspace's edges equal k/B rounded, as for these B)."""
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.functional.classification")
    rng = np.random.default_rng(73)
    k = 5
    probs = random_top_probs(rng, (120, k))
    labels = rng.integers(0, k, 120)
    edges = (np.arange(num_bins + 1) / num_bins).astype(np.float32)
    # torch.linspace may round an edge differently from k/B (how depends on the machine's
    # vector width); confidences are put on the edges where the two agree.
    same = torch.linspace(0, 1, num_bins + 1).numpy() == edges
    on_edge = edges[same & (edges >= 1 / k)]  # a top probability is at least 1/K
    assert on_edge.size >= 2
    top = np.resize(on_edge, 40)
    probs[:40] = (1 - top[:, None]) / (k - 1)
    probs[np.arange(40), labels[:40] * (np.arange(40) % 2)] = top
    probs = probs.astype(np.float32)
    assert np.isin(probs.max(-1), on_edge).sum() >= 40
    for norm, fn in (("l1", je.expected_calibration_error), ("max", je.maximum_calibration_error)):
        want = tm.multiclass_calibration_error(
            torch.from_numpy(probs), torch.from_numpy(labels), k, n_bins=num_bins, norm=norm
        )
        got = fn(jnp.asarray(probs), jnp.asarray(labels), num_bins=num_bins)
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(got, want.numpy(), rtol=2e-6, atol=1e-7)
    # the oracle follows torchmetrics' algorithm: it agrees with torchmetrics itself (off
    # the edges, which the oracle places in float64).
    want = tm.multiclass_calibration_error(
        torch.from_numpy(probs[40:]), torch.from_numpy(labels[40:]), k, n_bins=num_bins
    )
    np.testing.assert_allclose(
        ref.expected_calibration_error(probs[40:], labels[40:], num_bins), want.numpy(), rtol=2e-6
    )


class CalibrationTransformsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_batched_equals_vmap_and_loop(self):
        rng = np.random.default_rng(74)
        probs = jnp.asarray(random_top_probs(rng, (2, 3, 20, 4)))
        labels = jnp.asarray(rng.integers(0, 4, (2, 3, 20)))
        where = jnp.asarray(rng.random((2, 3, 20)) < 0.8)

        def both(p, lab, where):
            return (
                je.expected_calibration_error(p, lab, num_bins=7, where=where),
                je.maximum_calibration_error(p, lab, num_bins=7, where=where),
            )

        f = self.variant(both)
        ece, mce = f(probs, labels, where)
        assert ece.shape == mce.shape == (2, 3)
        chex.assert_trees_all_close(jax.vmap(f)(probs, labels, where), (ece, mce), rtol=1e-15)
        for i in range(2):
            for j in range(3):
                keep = np.asarray(where[i, j])
                p, lab = np.asarray(probs[i, j])[keep], np.asarray(labels[i, j])[keep]
                want = ref.expected_calibration_error(p, lab, 7)
                np.testing.assert_allclose(ece[i, j], want, rtol=1e-13)
                want = ref.maximum_calibration_error(p, lab, 7)
                np.testing.assert_allclose(mce[i, j], want, rtol=1e-13)

    def test_static_options_do_not_retrace(self):
        rng = np.random.default_rng(75)
        calls = [
            ((jnp.asarray(random_top_probs(rng, (20, 4))), jnp.asarray(rng.integers(0, 4, 20))), {})
            for _ in range(3)
        ]
        for fn in (je.expected_calibration_error, je.maximum_calibration_error):
            helpers.check_traced_once(fn, {"num_bins": 5}, calls)


def test_calibration_perfectly_calibrated_gives_zero():
    """Per bin, the share of correct predictions equals the confidence."""
    probs, labels = [], []
    for conf, n in ((0.5, 4), (0.75, 8), (0.9, 10), (1.0, 3)):
        p = np.full((n, 3), (1 - conf) / 2)
        p[:, 0] = conf
        correct = round(conf * n)
        probs.append(p)
        labels.append(np.r_[np.zeros(correct, int), np.ones(n - correct, int)])
    probs, labels = np.concatenate(probs), np.concatenate(labels)
    for fn in (je.expected_calibration_error, je.maximum_calibration_error):
        np.testing.assert_allclose(fn(probs, labels, num_bins=10), 0.0, atol=1e-15)
    # moving one correct label off makes it miscalibrated.
    labels[0] = 2
    assert je.expected_calibration_error(probs, labels, num_bins=10) > 0.01


def test_calibration_invalid_and_masked_examples():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.5, 0.5, 0.0]])
    labels = np.array([0, 2, 2, 0])
    # one problem per leading index: clean, then one bad example in each of the others.
    batch_p = np.stack([probs] * 5)
    batch_l = np.stack([labels] * 5)
    batch_l[1, 1], batch_l[2, 1] = -1, 3
    batch_p[3, 1] = [np.nan, 0.5, 0.5]
    batch_p[4, 1] = [1.2, -0.2, 0.0]
    kept = np.array([0, 2, 3])
    keep = np.zeros((5, 4), bool)
    keep[:, kept] = True
    pairs = (
        (je.expected_calibration_error, ref.expected_calibration_error),
        (je.maximum_calibration_error, ref.maximum_calibration_error),
    )
    for fn, oracle in pairs:
        f = jax.jit(partial(fn, num_bins=5))
        v = f(batch_p, batch_l)
        assert np.isfinite(v[0]) and np.all(np.isnan(v[1:]))
        # masked out, a bad example takes no part, whatever it holds; gradient 0 there.
        want = oracle(probs[kept], labels[kept], 5)
        np.testing.assert_allclose(f(batch_p, batch_l, where=keep), want, rtol=1e-15)
        g = jgrad(lambda p, f=f: f(p, batch_l, where=keep).sum())(batch_p)
        assert np.all(np.isfinite(g)) and np.all(g[:, 1] == 0)
        # no example left: NaN.
        assert np.all(np.isnan(f(batch_p, batch_l, where=np.zeros((5, 4), bool))))
    # ties go to the first class, as in torch and NumPy: row 3 predicts class 0, correct.
    np.testing.assert_allclose(
        je.maximum_calibration_error(probs[3:], labels[3:], num_bins=4), 0.5, rtol=1e-15
    )


def test_calibration_option_checks():
    p, lab = jnp.full((4, 3), 1 / 3), jnp.zeros(4, int)
    with pytest.raises(ValueError, match="num_bins"):
        je.expected_calibration_error(p, lab, num_bins=0)
    with pytest.raises(TypeError, match="num_bins"):
        je.expected_calibration_error(p, lab, num_bins=2.5)
    with pytest.raises(ValueError, match="labels"):
        je.maximum_calibration_error(p, lab[:3])
    with pytest.raises(ValueError, match="probs"):
        je.expected_calibration_error(p[0], lab[0])
    with pytest.raises(TypeError, match="labels"):
        je.expected_calibration_error(p, lab.astype(float))


@functools.cache
def _calibration_errors(num_bins):
    return jax.jit(
        lambda p, lab: (
            je.expected_calibration_error(p, lab, num_bins=num_bins),
            je.maximum_calibration_error(p, lab, num_bins=num_bins),
        )
    )


@settings(max_examples=8, deadline=None, derandomize=True, database=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from([1, 15]),
    st.sampled_from([(1, 2), (40, 5)]),
    st.sampled_from([0.0, 0.5]),
)
def test_calibration_properties(seed, num_bins, shape, extreme):
    """0 <= ECE <= MCE <= 1 whatever the data, one-hot predictions included."""
    rng = np.random.default_rng(seed)
    probs = random_top_probs(rng, shape, zeros=0.2)
    one_hot = rng.random(shape[0]) < extreme
    probs[one_hot] = np.eye(shape[1])[rng.integers(0, shape[1], one_hot.sum())]
    labels = rng.integers(0, shape[1], shape[0])
    ece, mce = _calibration_errors(num_bins)(probs, labels)
    assert 0 <= ece <= mce + 1e-15 and mce <= 1


# Brier score.


@pytest.mark.parametrize(
    "shape,axis,dtype,mask_kind", [helpers.TABLE[i] for i in (0, 4, 7, 10, 12, 13)]
)
def test_brier_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(76)
    p = jnp.asarray(ref.random_probs(rng, shape, axis, zeros=0.2), dtype)
    labels = rng.integers(0, num_classes(shape, axis), batch_shape(shape, axis))
    where = make_mask(mask_kind, rng, shape, axis)
    got = jax.jit(partial(je.brier_score, axis=axis, where=where))(p, jnp.asarray(labels))
    close(got, ref.brier_score(f64(p), labels, axis, where), dtype, atol=1e-6)


def test_brier_against_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(77)
    p = ref.random_probs(rng, (40, 4), zeros=0.2)
    labels = rng.integers(0, 4, 40)
    labels[:4] = np.arange(4)  # every class present, so that sklearn infers all four
    want = metrics.brier_score_loss(labels, p, scale_by_half=False)
    np.testing.assert_allclose(jnp.mean(je.brier_score(p, labels)), want, rtol=1e-13)
    # binary: sklearn's default on the positive probability is half the two-class score.
    p1 = rng.uniform(0, 1, 30)
    y = rng.integers(0, 2, 30)
    two = jnp.stack([1 - p1, p1], -1)
    np.testing.assert_allclose(
        jnp.mean(je.brier_score(two, y)) / 2, metrics.brier_score_loss(y, p1), rtol=1e-13
    )


def test_brier_gradient_closed_form_and_check_grads():
    rng = np.random.default_rng(78)
    p = ref.random_probs(rng, (4, 5))
    labels = np.array([0, 4, 2, 2])
    keep = np.array([True, True, False, True, True])
    # 2 (p - e_c) on the allowed classes; row 2's label names a masked-out class, so its
    # score is the sum of the other classes' p^2, with gradient 2p.
    want = np.where(keep, 2 * (p - np.eye(5)[labels] * keep), 0.0)

    def f(x):
        return je.brier_score(x, jnp.asarray(labels), where=keep).sum()

    np.testing.assert_allclose(jgrad(f)(p), want, rtol=1e-14)
    np.testing.assert_allclose(jfwd(f)(p), want, rtol=1e-14)
    helpers.check_grads_both_modes(lambda x: je.brier_score(x, jnp.array([0, 2])), True, nargs=1)


def test_brier_boundaries_and_label_meaning():
    p = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.2, 0.3, 0.5], [0.2, 0.3, 0.5]])
    v = je.brier_score(p, jnp.array([0, 0, -1, 3]))
    np.testing.assert_allclose(v[:2], [0.0, 2.0])
    assert np.isnan(v[2]) and np.isnan(v[3])
    assert not np.signbit(v[0])
    for bad in (np.nan, -0.1, 1.1):
        assert np.isnan(je.brier_score(p[2].at[0].set(bad), jnp.array(2)))
    helpers.check_masked_garbage_probabilities(
        lambda x, where: je.brier_score(x, jnp.zeros(x.shape[0], int), where=where), 1
    )
    # a masked-out example with an invalid label gives 0, not NaN.
    v = je.brier_score(p, jnp.array([0, 0, -1, 3]), where=jnp.array([True, True, False, False]))
    np.testing.assert_array_equal(v[2:], 0.0)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float64])
def test_dtype_contract(dtype):
    rng = np.random.default_rng(79)
    p = jnp.asarray(ref.random_probs(rng, (3, 5)), dtype)
    labels = np.array([0, 4, 2])
    helpers.check_prob_dtype_contract(
        lambda x: je.brier_score(x, jnp.asarray(labels)),
        (p,),
        ref.brier_score(f64(p), labels),
        dtype,
    )
    losses = jnp.asarray(rng.exponential(1.0, (3, 5)), dtype)
    helpers.check_prob_dtype_contract(
        partial(je.perplexity, axis=-1), (losses,), ref.perplexity(f64(losses), -1), dtype
    )
    probs = jnp.asarray(random_top_probs(rng, (30, 5)), dtype)
    labels = rng.integers(0, 5, 30)
    got = je.expected_calibration_error(probs, labels)
    assert got.dtype == helpers.out_dtype(dtype)
    np.testing.assert_allclose(
        got, ref.expected_calibration_error(f64(probs), labels), rtol=helpers.tol(dtype)
    )


# Eager, jit and vmap agree; static options never retrace.


PublicFunctionTest = helpers.public_function_tests(PUBLIC, seed=80)


def test_invalid_examples_have_nan_gradients_too():
    """An invalid label or probability gives NaN in the value and in that example's
    gradient (reverse and forward mode), as the cross-entropy does; the other examples
    keep their finite gradients."""
    p = jnp.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]])
    cases = (
        (p, jnp.array([3, 1, 0])),  # a label out of range
        (p, jnp.array([-2, 1, 0])),
        (p.at[0, 0].set(1.1), jnp.array([0, 1, 0])),  # a probability out of range
    )
    for x, y in cases:
        g = jgrad(lambda q, y=y: je.brier_score(q, y).sum())(x)
        assert np.all(np.isnan(g[0])) and np.all(np.isfinite(g[1:])), g
        jf = jax.jacfwd(lambda q, y=y: je.brier_score(q, y))(x)
        assert np.all(np.isnan(jf[0, 0])) and np.all(np.isfinite(jf[1:, 1:])), jf
        for fn in (je.expected_calibration_error, je.maximum_calibration_error):
            f = partial(fn, num_bins=4)
            assert np.isnan(f(x, y))
            g = jgrad(lambda q, y=y, f=f: f(q, y))(x)
            assert np.all(np.isnan(g[0])) and np.all(np.isfinite(g[1:])), (fn, g)
