"""Classification losses (``_src/losses.py``): softmax cross-entropy with soft and integer
labels, sigmoid and multi-label binary cross-entropy on logits, binary cross-entropy on
probabilities."""

import math
from functools import partial

import chex
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
    batch_shape,
    close,
    f64,
    jfwd,
    jgrad,
    jit,
    make_mask,
    num_classes,
    out_dtype,
    tol,
)

import jaxent as je

OPTIONS = {"label_smoothing": 0.2, "z_loss": 1e-2}

# The public functions of losses.py, for the chex tests (see helpers.Public).
PUBLIC = {
    "softmax_cross_entropy": Public(
        je.softmax_cross_entropy,
        "zy",
        {"axis": -1, "label_smoothing": 0.1, "z_loss": 1e-2},
        (("class_weights", "c"),),
    ),
    "integer_labels": Public(
        je.softmax_cross_entropy_with_integer_labels,
        "zl",
        {"axis": (-1,), "label_smoothing": 0.1, "z_loss": 1e-2, "ignore_index": 4},
        (("class_weights", "c"), ("where", "m")),
    ),
    "multilabel": Public(je.multilabel_sigmoid_cross_entropy, "zy", {"axis": -1}),
    "sigmoid_binary_cross_entropy": Public(
        je.sigmoid_binary_cross_entropy, "zy", {}, (("pos_weight", "c"),)
    ),
    "binary_cross_entropy": Public(je.binary_cross_entropy, "pq", {}),
}


# Oracle tables.


@pytest.mark.parametrize("shape,axis,dtype,mask_kind", TABLE)
def test_softmax_cross_entropy_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(10)
    z = jnp.asarray(rng.normal(size=shape) * 2, dtype)
    y = jnp.asarray(ref.random_probs(rng, shape, axis, zeros=0.3) * 1.5, dtype)  # unnormalised
    where = make_mask(mask_kind, rng, shape, axis)
    w = rng.uniform(0.5, 2.0, num_classes(shape, axis))
    for kw in ({}, {**OPTIONS, "class_weights": w}):
        got = jit(je.softmax_cross_entropy, axis=axis, where=where, **kw)(z, y)
        close(got, ref.softmax_cross_entropy(f64(z), f64(y), axis, where, **kw), dtype)


@pytest.mark.parametrize("shape,axis,dtype,mask_kind", TABLE)
def test_integer_labels_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(11)
    z = jnp.asarray(rng.normal(size=shape) * 2, dtype)
    k = num_classes(shape, axis)
    labels = rng.integers(0, k, batch_shape(shape, axis))
    where = make_mask(mask_kind, rng, shape, axis)
    w = rng.uniform(0.5, 2.0, k)
    labels_ign = labels.copy()
    labels_ign.flat[-1] = -100
    for lab, kw in (
        (labels, {}),
        (labels_ign, {**OPTIONS, "class_weights": w, "ignore_index": -100}),
    ):
        got = jit(je.softmax_cross_entropy_with_integer_labels, axis=axis, where=where, **kw)(
            z, jnp.asarray(lab)
        )
        want = ref.softmax_cross_entropy_with_integer_labels(f64(z), lab, axis, where, **kw)
        close(got, want, dtype)


@pytest.mark.parametrize("shape,axis,dtype,mask_kind", TABLE)
def test_sigmoid_losses_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(13)
    z = jnp.asarray(rng.normal(size=shape) * 3, dtype)
    y = jnp.asarray(rng.choice([0.0, 1.0, 0.3], size=shape), dtype)
    pw = jnp.asarray(rng.uniform(0.5, 3.0, shape[-1:]), dtype)
    where = make_mask(mask_kind, rng, shape, axis)
    for kw in ({}, {"pos_weight": pw}):
        got = jit(je.sigmoid_binary_cross_entropy, **kw)(z, y)
        close(got, ref.sigmoid_binary_cross_entropy(f64(z), f64(y), kw.get("pos_weight")), dtype)
        got = jit(je.multilabel_sigmoid_cross_entropy, axis=axis, where=where, **kw)(z, y)
        want = ref.multilabel_sigmoid_cross_entropy(f64(z), f64(y), axis, where, **kw)
        close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_table(dtype):
    rng = np.random.default_rng(2)
    p = jnp.asarray(np.concatenate([[0.0, 1.0, 0.5], rng.random(20)]), dtype)
    y = jnp.asarray(np.concatenate([[0.0, 1.0, 1.0], rng.random(20)]), dtype)
    got = je.binary_cross_entropy(p[3:], y[3:])
    assert got.dtype == out_dtype(dtype)
    want = ref.binary_cross_entropy(f64(p[3:]), f64(y[3:]))
    np.testing.assert_allclose(got, want, rtol=tol(dtype))
    # a = 0 or 1 with matching labels is 0; confidently wrong is +inf, never clamped.
    got = je.binary_cross_entropy(jnp.array([0.0, 1.0, 0.0, 1.0], dtype), jnp.array([0, 1, 1, 0.0]))
    np.testing.assert_array_equal(got, [0.0, 0.0, np.inf, np.inf])


# The worked numbers that the documentation and examples quote.


def test_worked_numbers_logits():
    logits = jnp.log(jnp.array([0.7, 0.2, 0.1]))
    np.testing.assert_allclose(
        je.softmax_cross_entropy(logits, jnp.array([1.0, 0.0, 0.0])), -math.log(0.7), rtol=1e-14
    )
    np.testing.assert_allclose(
        je.softmax_cross_entropy_with_integer_labels(logits, jnp.array(0)),
        0.3567,
        atol=5e-5,
    )
    # multi-label: the sum of the per-class binary cross-entropies (cat + frog + mouse).
    z, y = jnp.array([2.0, -1.0, 0.5]), jnp.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(
        je.multilabel_sigmoid_cross_entropy(z, y),
        sum(je.binary_cross_entropy(jax.nn.sigmoid(z[i]), y[i]) for i in range(3)),
        rtol=1e-12,
    )
    np.testing.assert_allclose(je.multilabel_sigmoid_cross_entropy(z, y), 0.9143, atol=5e-5)
    # logistic regression: with a = sigmoid(w x + b), dL/dw = (a - y) x and dL/db = a - y,
    # with no sigmoid' factor (which vanishes for a confidently wrong unit).
    x, target = 3.0, 0.0

    def loss(w, b):
        return je.sigmoid_binary_cross_entropy(w * x + b, target)

    for w, b in ((0.5, 0.1), (5.0, 2.0)):
        a = 1 / (1 + math.exp(-(w * x + b)))
        gw, gb = jgrad(loss, (0, 1))(w, b)
        np.testing.assert_allclose([gw, gb], [(a - target) * x, a - target], rtol=1e-12)
    # softmax: dL/dz = softmax(z) sum(y) - y.
    z3 = jnp.array([0.3, -1.0, 2.0])
    y3 = jnp.array([0.5, 1.0, 0.0])
    np.testing.assert_allclose(
        jgrad(lambda v: je.softmax_cross_entropy(v, y3))(z3),
        ref.softmax(z3) * 1.5 - np.asarray(y3),
        rtol=1e-13,
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

REDUCING = {
    "softmax_cross_entropy": lambda z, y, lab, **kw: je.softmax_cross_entropy(z, y, **kw),
    "integer_labels": lambda z, y, lab, **kw: je.softmax_cross_entropy_with_integer_labels(
        z, lab, **kw
    ),
    "multilabel": lambda z, y, lab, **kw: je.multilabel_sigmoid_cross_entropy(z, y, **kw),
}


@pytest.mark.parametrize("name", list(REDUCING))
def test_masked_equals_sliced_and_axis_equals_moveaxis(name):
    helpers.check_logit_simpler_calls(REDUCING[name])


# Eager, jit and vmap agree; static options never retrace.


PublicFunctionTest = helpers.public_function_tests(PUBLIC, seed=15)


# Gradients against closed forms written out here.


def _closed_softmax_grad(z, t, w, zeta):
    """d/dz of -sum w t log softmax(z) + zeta lse(z)^2, rows on the last axis."""
    s = ref.softmax(z)
    wt = w * t
    lse = np.log(np.sum(np.exp(z), -1, keepdims=True))
    return s * wt.sum(-1, keepdims=True) - wt + 2 * zeta * lse * s


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"label_smoothing": 0.1},
        {"z_loss": 0.05},
        {"class_weights": True},
        {"label_smoothing": 0.3, "z_loss": 0.01, "class_weights": True},
    ],
)
def test_softmax_gradients_closed_form(kw):
    rng = np.random.default_rng(16)
    z = rng.normal(size=(4, 5))
    y = ref.random_probs(rng, (4, 5)) * np.array([[1.0], [0.5], [2.0], [1.0]])  # unnormalised
    labels = np.array([0, 3, 4, 1])
    w = rng.uniform(0.5, 2.0, 5) if kw.get("class_weights") else np.ones(5)
    kw = {**kw, "class_weights": w} if "class_weights" in kw else kw
    e, zeta = kw.get("label_smoothing", 0.0), kw.get("z_loss", 0.0)

    def soft(v, t):
        return je.softmax_cross_entropy(v, t, **kw).sum()

    def hard(v):
        return je.softmax_cross_entropy_with_integer_labels(v, jnp.asarray(labels), **kw).sum()

    want = _closed_softmax_grad(z, (1 - e) * y + e / 5, w, zeta)
    np.testing.assert_allclose(jgrad(soft)(z, y), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(jfwd(soft)(z, y), want, rtol=1e-12, atol=1e-15)
    onehot = np.eye(5)[labels]
    want = _closed_softmax_grad(z, (1 - e) * onehot + e / 5, w, zeta)
    np.testing.assert_allclose(jgrad(hard)(z), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(jfwd(hard)(z), want, rtol=1e-12, atol=1e-15)
    # d/dy = -(1 - e) w log softmax(z) (the label enters linearly).
    logq = z - np.log(np.sum(np.exp(z), -1, keepdims=True))
    np.testing.assert_allclose(jgrad(soft, 1)(z, y), -(1 - e) * w * logq, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("pos_weight", [None, 2.5])
def test_sigmoid_gradients_closed_form(pos_weight):
    rng = np.random.default_rng(17)
    z = rng.normal(size=(3, 4)) * 3
    y = rng.choice([0.0, 1.0, 0.25], size=(3, 4))
    pw = 1.0 if pos_weight is None else pos_weight
    s = ref.sigmoid(z)
    softplus = np.logaddexp(0, z)
    want_z = s * (pw * y + 1 - y) - pw * y  # sigmoid(z) - y for pw = 1
    want_y = pw * np.logaddexp(0, -z) - softplus
    for f in (
        lambda v, t: je.sigmoid_binary_cross_entropy(v, t, pos_weight=pos_weight).sum(),
        lambda v, t: je.multilabel_sigmoid_cross_entropy(v, t, pos_weight=pos_weight).sum(),
    ):
        grads = jgrad(f, (0, 1))(z, y)
        chex.assert_trees_all_close(grads, (want_z, want_y), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(jfwd(f)(z, y), want_z, rtol=1e-12, atol=1e-15)
    if pos_weight is None:
        np.testing.assert_allclose(want_z, s - y, rtol=1e-14, atol=1e-15)
    else:
        g = jgrad(lambda p: je.sigmoid_binary_cross_entropy(z, y, pos_weight=p).sum())(
            jnp.full((4,), pos_weight)
        )
        np.testing.assert_allclose(g, np.sum(y * np.logaddexp(0, -z), 0), rtol=1e-12)


def test_binary_cross_entropy_gradients_closed_form():
    p = jnp.array([0.1, 0.3, 0.5, 0.9])
    y = jnp.array([0.0, 1.0, 0.25, 0.7])
    pn, yn = np.asarray(p), np.asarray(y)
    grads = jgrad(lambda a, b: je.binary_cross_entropy(a, b).sum(), (0, 1))(p, y)
    want = ((pn - yn) / (pn * (1 - pn)), np.log((1 - pn) / pn))
    chex.assert_trees_all_close(grads, want, rtol=1e-13)


CHECK_GRADS = {
    "softmax": lambda z, y: je.softmax_cross_entropy(
        z, y, label_smoothing=0.1, z_loss=0.01, class_weights=jnp.array([1.0, 2.0, 0.5])
    ),
    "softmax_masked_axis0": lambda z, y: je.softmax_cross_entropy(
        z.T, y.T, axis=0, where=jnp.array([[True], [False], [True]])
    ),
    "integer": lambda z, y: je.softmax_cross_entropy_with_integer_labels(
        z, jnp.array([0, 2]), label_smoothing=0.1, z_loss=0.01, class_weights=jnp.arange(1.0, 4)
    ),
    "sigmoid": lambda z, y: je.sigmoid_binary_cross_entropy(z, y, pos_weight=jnp.array(1.5)),
    "multilabel": lambda z, y: je.multilabel_sigmoid_cross_entropy(
        z, y, where=jnp.array([[True, True, False]])
    ),
    "binary_cross_entropy": je.binary_cross_entropy,
}


@pytest.mark.parametrize("name", list(CHECK_GRADS))
def test_check_grads(name):
    probabilities = name == "binary_cross_entropy"
    helpers.check_grads_both_modes(CHECK_GRADS[name], probabilities, nargs=2)


@pytest.mark.parametrize("total", [1.0, 2.5])
def test_hessian_of_softmax_cross_entropy(total):
    z = jnp.array([0.3, -1.2, 2.0, 0.1])
    y = jnp.array([0.1, 0.2, 0.3, 0.4]) * total
    s = ref.softmax(z)
    want = total * (np.diag(s) - np.outer(s, s))
    hess = jax.jit(jax.hessian(lambda v: je.softmax_cross_entropy(v, y)))(z)
    np.testing.assert_allclose(hess, want, rtol=1e-12, atol=1e-16)
    hess = jax.jit(jax.jacrev(jax.grad(lambda v: je.softmax_cross_entropy(v, y))))(z)
    np.testing.assert_allclose(hess, want, rtol=1e-12, atol=1e-16)
    if total == 1.0:
        hess = jax.jit(
            jax.hessian(lambda v: je.softmax_cross_entropy_with_integer_labels(v, jnp.array(2)))
        )(z)
        np.testing.assert_allclose(hess, want, rtol=1e-12, atol=1e-16)


# Boundary inputs.


NEG_INF_CASES = {
    "softmax": lambda z: je.softmax_cross_entropy(z, jnp.array([[0.0, 1.0, 0.0, 0.0]] * 2)),
    "softmax_z_loss": lambda z: je.softmax_cross_entropy(
        z, jnp.array([[0.0, 1.0, 0.0, 0.0]] * 2), z_loss=0.1
    ),
    "integer": lambda z: je.softmax_cross_entropy_with_integer_labels(z, jnp.array([1, 2])),
}


@pytest.mark.parametrize("name", list(NEG_INF_CASES))
def test_neg_inf_logit_gets_zero_gradient_both_modes(name):
    helpers.check_neg_inf_logit_zero_gradient(NEG_INF_CASES[name])


def test_label_mass_on_neg_inf_logit_is_inf():
    z = jnp.array([-jnp.inf, 0.0, 1.0])
    assert je.softmax_cross_entropy(z, jnp.array([0.5, 0.5, 0.0])) == np.inf
    assert je.softmax_cross_entropy_with_integer_labels(z, jnp.array(0)) == np.inf
    # a NaN allowed logit gives NaN; +inf gives NaN or +inf, never a finite number.
    zb = z.at[2].set(np.nan)
    assert np.isnan(je.softmax_cross_entropy(zb, jnp.array([0.0, 1.0, 0.0])))
    assert np.isnan(je.softmax_cross_entropy_with_integer_labels(zb, jnp.array(1)))
    zb = z.at[2].set(np.inf)
    assert not np.isfinite(je.softmax_cross_entropy(zb, jnp.array([0.0, 1.0, 0.0])))
    assert not np.isfinite(je.softmax_cross_entropy_with_integer_labels(zb, jnp.array(1)))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_three_huge_equal_logits_give_log3(dtype):
    z = jnp.full((3,), 1e8 if dtype != jnp.float16 else 6e4, dtype)
    log3 = math.log(3)
    np.testing.assert_allclose(
        je.softmax_cross_entropy(z, jnp.array([1.0, 0, 0], dtype)), log3, rtol=1e-6
    )
    np.testing.assert_allclose(
        je.softmax_cross_entropy_with_integer_labels(z, jnp.array(2)), log3, rtol=1e-6
    )
    np.testing.assert_allclose(
        jgrad(lambda v: je.softmax_cross_entropy_with_integer_labels(v, jnp.array(2)))(z),
        [1 / 3, 1 / 3, -2 / 3],
        rtol=1e-2 if dtype != jnp.float32 else 1e-6,
    )


def test_large_float32_logits_match_float64():
    rng = np.random.default_rng(20)
    z = jnp.asarray(rng.normal(size=(4, 7)) * 1e4, jnp.float32)
    z64 = f64(z)
    y = jnp.asarray(ref.random_probs(rng, (4, 7)), jnp.float32)
    lab = np.array([0, 3, 6, 2])
    cases = [
        (je.softmax_cross_entropy(z, y), ref.softmax_cross_entropy(z64, f64(y))),
        (
            je.softmax_cross_entropy_with_integer_labels(z, jnp.asarray(lab)),
            ref.softmax_cross_entropy_with_integer_labels(z64, lab),
        ),
        (je.sigmoid_binary_cross_entropy(z, y), ref.sigmoid_binary_cross_entropy(z64, f64(y))),
        (
            je.multilabel_sigmoid_cross_entropy(z, y),
            ref.multilabel_sigmoid_cross_entropy(z64, f64(y)),
        ),
    ]
    for got, want in cases:
        assert got.dtype == jnp.float32
        # the losses are O(1e4): float32 holds them to a relative 1e-7.
        np.testing.assert_allclose(got, want, rtol=2e-6)


MASKED_CASES = {
    "softmax": lambda z, m: je.softmax_cross_entropy(
        z, jnp.full(z.shape, 0.25), where=m, label_smoothing=0.1, z_loss=0.01
    ),
    "integer": lambda z, m: je.softmax_cross_entropy_with_integer_labels(
        z, jnp.array([0, 1, 3, 0, 0, 2]), where=m, z_loss=0.01, class_weights=jnp.arange(1.0, 5)
    ),
    "multilabel": lambda z, m: je.multilabel_sigmoid_cross_entropy(
        z, jnp.full(z.shape, 0.5), where=m, pos_weight=jnp.array([1.0, 2.0, 3.0, 4.0])
    ),
}


@pytest.mark.parametrize("name", list(MASKED_CASES))
def test_masked_garbage_and_fully_masked_rows(name):
    helpers.check_masked_garbage_logits(MASKED_CASES[name])


@pytest.mark.parametrize(
    "kw",
    [{}, {"label_smoothing": 0.2}, {"z_loss": 0.1, "class_weights": jnp.array([1.0, 2, 3, 4, 5])}],
)
@pytest.mark.parametrize("mask_kind", [None, "per_class", "per_example"])
def test_integer_labels_equal_one_hot(kw, mask_kind):
    rng = np.random.default_rng(22)
    z = jnp.asarray(rng.normal(size=(6, 5)))
    labels = jnp.array([0, 4, 2, 2, 1, 3])
    where = make_mask(mask_kind, rng, (6, 5), -1)
    onehot = jax.nn.one_hot(labels, 5, dtype=z.dtype)

    def hard(x):
        return je.softmax_cross_entropy_with_integer_labels(x, labels, where=where, **kw)

    def soft(x):
        return je.softmax_cross_entropy(x, onehot, where=where, **kw)

    np.testing.assert_allclose(jax.jit(hard)(z), jax.jit(soft)(z), rtol=1e-14)
    for transform in (jgrad, jfwd):
        np.testing.assert_allclose(
            transform(lambda x: hard(x).sum())(z),
            transform(lambda x: soft(x).sum())(z),
            rtol=1e-13,
            atol=1e-16,
        )


@pytest.mark.parametrize("ignore_index", [-100, 0, 7])
def test_ignore_index(ignore_index):
    z = jnp.array([[1.2, -0.8, -0.5], [jnp.nan, jnp.inf, -jnp.inf], [0.9, -1.2, 1.1]])
    labels = jnp.array([1, ignore_index, 2])
    kw = {"label_smoothing": 0.1, "z_loss": 0.01, "class_weights": jnp.array([1.0, 2.0, 3.0])}

    def f(x):
        return je.softmax_cross_entropy_with_integer_labels(
            x, labels, ignore_index=ignore_index, **kw
        )

    v = jax.jit(f)(z)
    want = ref.softmax_cross_entropy_with_integer_labels(
        np.asarray(z), np.asarray(labels), ignore_index=ignore_index, **kw
    )
    np.testing.assert_allclose(v, want, rtol=1e-12)
    assert v[1] == 0
    grads = {transform: transform(lambda x: f(x).sum()) for transform in (jgrad, jfwd)}
    for transform in (jgrad, jfwd):
        g = grads[transform](z)
        np.testing.assert_array_equal(g[1], 0.0)
        assert np.all(np.isfinite(g))
    # the other rows are unaffected by the ignored one.
    np.testing.assert_allclose(
        grads[jgrad](z)[jnp.array([0, 2])],
        jgrad(
            lambda x: je.softmax_cross_entropy_with_integer_labels(
                x, labels[jnp.array([0, 2])], **kw
            ).sum()
        )(z[jnp.array([0, 2])]),
        rtol=1e-14,
    )


# Compiled once for every bad label (the labels an argument), one per set of options.
OUT_OF_RANGE = [
    (jax.jit(f), jgrad(lambda x, lab, f=f: f(x, lab).sum()))
    for f in (
        partial(je.softmax_cross_entropy_with_integer_labels, **kw)
        for kw in ({}, {"label_smoothing": 0.1, "z_loss": 0.1}, {"ignore_index": -7})
    )
]


@pytest.mark.parametrize("bad", [-1, 3, 4, -100])
def test_out_of_range_labels_give_nan(bad):
    """No wrap-around (-1 is not the last class) and no clamping (K is not K - 1)."""
    z = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
    labels = jnp.array([bad, 1])
    for values, grads in OUT_OF_RANGE:
        v = values(z, labels)
        assert np.isnan(v[0]) and np.isfinite(v[1])
        g = grads(z, labels)
        assert np.all(np.isnan(g[0])) and np.all(np.isfinite(g[1]))
    # unsigned and narrow integer labels are handled the same way.
    v = je.softmax_cross_entropy_with_integer_labels(z, jnp.array([3, 1], jnp.uint8))
    assert np.isnan(v[0]) and np.isfinite(v[1])
    v = je.softmax_cross_entropy_with_integer_labels(z, jnp.array([-1, 1], jnp.int8))
    assert np.isnan(v[0]) and np.isfinite(v[1])


@pytest.mark.parametrize("pos_weight", [None, 3.0])
def test_sigmoid_at_infinite_logits(pos_weight):
    z = jnp.array([jnp.inf, -jnp.inf, jnp.inf, -jnp.inf])
    y = jnp.array([1.0, 0.0, 0.0, 1.0])
    pw = None if pos_weight is None else jnp.full(4, pos_weight)
    f = partial(je.sigmoid_binary_cross_entropy, pos_weight=pw)
    np.testing.assert_array_equal(jax.jit(f)(z, y), [0.0, 0.0, np.inf, np.inf])
    pw_ = 1.0 if pos_weight is None else pos_weight
    gz, gy = jgrad(lambda a, b: f(a, b).sum(), (0, 1))(z, y)
    np.testing.assert_array_equal(gz, [0.0, 0.0, 1.0, -pw_])  # sigmoid(z)(w y + 1 - y) - w y
    assert not np.any(np.isnan(gy))
    np.testing.assert_array_equal(jfwd(lambda a: f(a, y).sum())(z), gz)
    np.testing.assert_array_equal(jax.jit(jax.jacfwd(lambda a: f(a, y)))(z), np.diag(gz))
    m = jax.jit(partial(je.multilabel_sigmoid_cross_entropy, pos_weight=pw))
    m2 = partial(je.multilabel_sigmoid_cross_entropy, pos_weight=None if pw is None else pw[:2])
    np.testing.assert_array_equal(jax.jit(m2)(z[:2], y[:2]), 0.0)
    assert m(z, y) == np.inf
    g = jgrad(lambda a: m(a, y))(z)
    np.testing.assert_array_equal(g, gz)


def test_binary_cross_entropy_at_zero_and_one():
    """At a = y in {0, 1} the value is 0 and the slope -y/a + (1-y)/(1-a) finite."""
    labels01 = jnp.array([0.0, 0.0, 1.0, 1.0])
    helpers.check_finite_and_modes_agree(
        lambda x: je.binary_cross_entropy(x, labels01).sum(), jnp.array([0.0, 0.3, 0.6, 1.0])
    )
    g = jgrad(lambda a: je.binary_cross_entropy(a, jnp.array([0.0, 1.0])).sum())(
        jnp.array([0.0, 1.0])
    )
    np.testing.assert_array_equal(g, [1.0, -1.0])


def test_binary_cross_entropy_infinite_and_invalid_values():
    assert je.binary_cross_entropy(jnp.array(0.0), jnp.array(0.5)) == np.inf
    # a prediction outside [0, 1] with a 0/1 label is NaN, not a plausible number.
    assert np.all(np.isnan(je.binary_cross_entropy(jnp.array([1.5, -0.5]), jnp.array([1.0, 0.0]))))
    assert np.isnan(je.binary_cross_entropy(jnp.array(np.nan), jnp.array(1.0)))


# Dtype contract.

DTYPE_CASES = {
    "softmax": lambda z, y: je.softmax_cross_entropy(z, y, label_smoothing=0.1, z_loss=0.01),
    "integer": lambda z, y: je.softmax_cross_entropy_with_integer_labels(
        z, jnp.array([0, 3, 2]), class_weights=jnp.array([1.0, 2, 3, 4])
    ),
    "sigmoid": je.sigmoid_binary_cross_entropy,
    "multilabel": je.multilabel_sigmoid_cross_entropy,
}


@pytest.mark.parametrize("name", list(DTYPE_CASES))
def test_dtype_contract(name):
    helpers.check_logit_dtype_contract(DTYPE_CASES[name])


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64])
def test_binary_cross_entropy_dtype_contract(dtype):
    rng = np.random.default_rng(7)
    p = jnp.asarray(ref.random_probs(rng, (3, 5)), dtype)
    q = jnp.asarray(ref.random_probs(rng, (3, 5)), dtype)
    want = ref.binary_cross_entropy(f64(p), f64(q))
    helpers.check_prob_dtype_contract(je.binary_cross_entropy, (p, q), want, dtype)


def test_labels_outside_their_range_give_nan():
    """A sigmoid label is a Bernoulli probability and a soft label a probability."""
    z = jnp.array([0.3, -1.0, 2.0])
    for y in (1.5, -0.5):
        labels = jnp.array([1.0, y, 0.0])
        for f in (je.sigmoid_binary_cross_entropy, je.binary_cross_entropy):
            out = f(jax.nn.sigmoid(z) if f is je.binary_cross_entropy else z, labels)
            np.testing.assert_array_equal(np.isnan(out), [False, True, False])
        g = jax.grad(lambda x, y=labels: je.sigmoid_binary_cross_entropy(x, y).sum())(z)
        np.testing.assert_array_equal(np.isnan(g), [False, True, False])
    soft = jnp.array([[0.5, 0.7, -0.2], [0.2, 0.3, 0.5]])
    out = je.softmax_cross_entropy(jnp.zeros((2, 3)), soft)
    np.testing.assert_array_equal(np.isnan(out), [True, False])
    # Masked out, it takes no part.
    out = je.softmax_cross_entropy(jnp.zeros((2, 3)), soft, where=jnp.array([1, 1, 0], bool))
    assert np.isfinite(out).all()
    # Unnormalised non-negative labels are used as given.
    np.testing.assert_allclose(
        je.softmax_cross_entropy(jnp.zeros(3), jnp.array([2.0, 0.0, 0.0])), 2 * np.log(3)
    )


def test_exact_zeros_are_positive_zeros():
    """No function returns -0.0 for an exact zero (it would print as -0.0)."""
    one_hot = jnp.array([1.0, 0.0])
    outs = [
        je.self_information(1.0),
        je.entropy(one_hot),
        je.binary_entropy(jnp.array([0.0, 1.0])),
        je.cross_entropy(one_hot, one_hot),
        je.kl_divergence(one_hot, one_hot),
        je.binary_cross_entropy(jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0])),
        je.entropy_from_logits(jnp.array([0.0, -jnp.inf])),
        je.softmax_cross_entropy(jnp.array([0.0, -jnp.inf]), one_hot),
        je.softmax_cross_entropy_with_integer_labels(jnp.array([0.0, -jnp.inf]), jnp.array(0)),
        je.kl_divergence_from_logits(jnp.array([0.0, 1.0]), jnp.array([0.0, 1.0])),
    ]
    for out in outs:
        arr = np.asarray(out)
        assert (arr == 0).all() and not np.signbit(arr).any(), out


def test_masked_class_weight_takes_no_part_even_nan():
    z = jnp.array([[0.0, 1.0, 2.0]])
    keep = jnp.array([True, False, True])
    # compiled once for the three bad weights (the weights an argument).
    hard = jax.jit(je.softmax_cross_entropy_with_integer_labels, static_argnames="label_smoothing")
    soft = jax.jit(je.softmax_cross_entropy)
    want = hard(z[:, ::2], jnp.array([0]))
    for bad in (jnp.nan, jnp.inf, -jnp.inf):
        cw = jnp.array([1.0, bad, 1.0])
        for kw in ({}, {"label_smoothing": 0.1}):
            got = hard(z, jnp.array([0]), class_weights=cw, where=keep, **kw)
            assert np.isfinite(got).all(), (bad, kw)
        got = hard(z, jnp.array([0]), class_weights=cw, where=keep)
        np.testing.assert_allclose(got, want, rtol=1e-14)
        got = soft(z, jnp.array([[1.0, 0, 0]]), class_weights=cw, where=keep)
        np.testing.assert_allclose(got, want, rtol=1e-14)


def test_z_loss_gradient_at_huge_finite_logits_is_finite():
    z = jnp.array([2e38, 2e38, 0.0], jnp.float32)
    g = jax.grad(
        lambda x: je.softmax_cross_entropy_with_integer_labels(x, jnp.array(1), z_loss=1e-4)
    )(z)
    np.testing.assert_allclose(g, [2e34, 2e34, 0.0], rtol=1e-5)


@pytest.mark.parametrize("f", [je.softmax_cross_entropy, je.poly1_softmax_cross_entropy])
def test_masked_row_of_nan_gives_zero_gradient_in_labels_and_weights(f):
    z = jnp.array([[0.0, jnp.nan, 1.0], [1.0, 2.0, 3.0]])
    y = jnp.full((2, 3), 1 / 3)
    keep = jnp.array([False, True])
    kw = {} if f is je.poly1_softmax_cross_entropy else {"class_weights": jnp.ones(3)}

    def loss(y, *w):
        extra = {"class_weights": w[0]} if w else {}
        return f(z, y, where=keep, **extra).sum()

    gy = jax.jit(jax.grad(loss))(y)
    assert np.isfinite(gy).all() and (gy[0] == 0).all(), gy
    if kw:
        gw = jax.jit(jax.grad(loss, argnums=1))(y, kw["class_weights"])
        assert np.isfinite(gw).all(), gw


@pytest.mark.parametrize("f", [je.softmax_cross_entropy, je.poly1_softmax_cross_entropy])
def test_logits_whose_spread_overflows_give_zero(f):
    z = jnp.array([2e38, -2e38], jnp.float32)
    y = jnp.array([1.0, 0.0])
    got = (f(z, y), jax.jit(f)(z, y))
    assert got[0] == 0 and got[1] == 0, got


@pytest.mark.parametrize("base", [None, 2.0, 0.5, 0.1])
def test_exact_zeros_are_positive_zeros_in_every_base(base):
    """An exact zero is +0 in any base, below 1 too (whose log is negative: 0 / ln b would
    be -0), for every function with a ``base``."""
    from jaxent import estimators as es

    oh = jnp.array([1.0, 0.0])
    same = (jnp.array([0.0, 1.0]), jnp.array([0.0, 1.0]))
    table = jnp.array([[1.0, 0.0], [0.0, 0.0]])
    table_logits = jnp.array([[0.0, -jnp.inf], [-jnp.inf, -jnp.inf]])
    z2 = jnp.zeros(2)
    counts = jnp.array([5, 0])
    outs = {
        "self_information": je.self_information(1.0, base=base),
        "entropy": je.entropy(oh, base=base),
        "entropy of an empty row": je.entropy(jnp.zeros((0,)), base=base),
        "binary_entropy": je.binary_entropy(jnp.array([0.0, 1.0]), base=base),
        "cross_entropy": je.cross_entropy(oh, oh, base=base),
        "kl_divergence": je.kl_divergence(oh, oh, base=base),
        "entropy_from_logits": je.entropy_from_logits(jnp.array([0.0, -jnp.inf]), base=base),
        "kl_divergence_from_logits": je.kl_divergence_from_logits(*same, base=base),
        "js_divergence": je.js_divergence(oh, oh, base=base),
        "js_divergence_from_logits": je.js_divergence_from_logits(*same, base=base),
        "renyi_divergence": je.renyi_divergence(oh, oh, 2.0, base=base),
        "renyi_divergence_from_logits": je.renyi_divergence_from_logits(*same, 2.0, base=base),
        "renyi_entropy": je.renyi_entropy(oh, 2.0, base=base),
        "joint_entropy": je.joint_entropy(table, base=base),
        "conditional_entropy": je.conditional_entropy(table, base=base),
        "mutual_information": je.mutual_information(table, base=base),
        "joint_entropy_from_logits": je.joint_entropy_from_logits(table_logits, base=base),
        "conditional_entropy_from_logits": je.conditional_entropy_from_logits(
            table_logits, base=base
        ),
        "mutual_information_from_logits": je.mutual_information_from_logits(
            table_logits, base=base
        ),
        "gaussian_kl_diag": je.gaussian_kl_diag(z2, z2, z2, z2, base=base),
        "gaussian_kl": je.gaussian_kl(z2, jnp.eye(2), z2, jnp.eye(2), base=base),
        "entropy_plugin": es.entropy_plugin(counts, base=base),
        "entropy_miller_madow": es.entropy_miller_madow(counts, base=base),
        "entropy_chao_shen": es.entropy_chao_shen(counts, base=base),
        "entropy_james_stein": es.entropy_james_stein(counts, base=base),
        "mutual_information_plugin": es.mutual_information_plugin(
            jnp.array([[5, 0], [0, 0]]), base=base
        ),
    }
    for name, out in outs.items():
        arr = np.asarray(out)
        assert (arr == 0).all() and not np.signbit(arr).any(), (name, out)


def test_subnormal_labels_count_as_zero_as_documented():
    """README, "Subnormals": the CPU backend flushes them (float64 ones where compared), so a
    subnormal label on a -inf logit adds nothing; a normal one gives +inf."""
    for dtype, tiny, normal in ((jnp.float32, 1e-40, 1e-30), (jnp.float64, 1e-310, 1e-300)):
        z = jnp.array([0.0, -jnp.inf, 1.0], dtype)
        finite = je.softmax_cross_entropy(z, jnp.array([0.5, tiny, 0.5], dtype))
        assert np.isfinite(finite), dtype
        assert je.softmax_cross_entropy(z, jnp.array([0.5, normal, 0.5], dtype)) == np.inf


@pytest.mark.parametrize("bad", [np.inf, np.nan])
@pytest.mark.parametrize(
    "name",
    ["entropy_from_logits", "kl_divergence_from_logits", "kl_q", "softmax_cross_entropy"],
)
def test_masked_entries_get_zero_gradient_even_in_a_nan_row(name, bad):
    """README: entries outside ``where`` take no part, whatever they hold: their gradient is
    0 even where an allowed +inf or NaN logit makes the row NaN. (A forward-mode tangent
    along them is NaN there all the same: the row's NaN partials times zero tangents.)"""
    w = jnp.array([True, True, True, False])
    z = jnp.array([bad, 1.0, 2.0, jnp.nan])
    q = jnp.array([0.5, 1.0, 2.0, 3.0])
    y = jnp.array([0.0, 0.5, 0.5, 0.0])
    f = {
        "entropy_from_logits": lambda a: je.entropy_from_logits(a, where=w),
        "kl_divergence_from_logits": lambda a: je.kl_divergence_from_logits(a, q, where=w),
        "kl_q": lambda a: je.kl_divergence_from_logits(q, a, where=w),
        "softmax_cross_entropy": lambda a: je.softmax_cross_entropy(a, y, where=w),
    }[name]
    assert jax.grad(f)(z)[3] == 0
    assert jax.jit(jax.grad(f))(z)[3] == 0


# An outside trial's find: an infinite class weight (1/count of a class absent from the
# data) on a class whose target is 0 made every row NaN (inf times 0) where the targets are
# built in the fused passes: a class mask, or soft labels. Such a term is 0.
@pytest.mark.parametrize("rows, k", [(1, 4), (5000, 4), (2, 70000)])
def test_infinite_class_weight_on_a_zero_target_takes_no_part(rows, k):
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.normal(size=(rows, k)), jnp.float32)
    y = jnp.asarray(rng.integers(0, k - 1, rows))
    w = jnp.ones(k, jnp.float32).at[1].set(2.0).at[k - 1].set(jnp.inf)
    lsm = jax.nn.log_softmax(z.astype(jnp.float64))
    want = -np.asarray(w, np.float64)[y] * np.take_along_axis(np.asarray(lsm), y[:, None], 1)[:, 0]
    calls = {
        "int": lambda z: je.softmax_cross_entropy_with_integer_labels(z, y, class_weights=w),
        "int, class mask": lambda z: je.softmax_cross_entropy_with_integer_labels(
            z, y, class_weights=w, where=jnp.ones((1, k), bool)
        ),
        "soft": lambda z: je.softmax_cross_entropy(z, jax.nn.one_hot(y, k), class_weights=w),
        "soft, class mask": lambda z: je.softmax_cross_entropy(
            z, jax.nn.one_hot(y, k), class_weights=w, where=jnp.ones((rows, k), bool)
        ),
    }
    g_ref = jax.grad(lambda z: calls["int"](z).sum())(z)
    for name, f in calls.items():
        np.testing.assert_allclose(f(z), want, rtol=1e-5, err_msg=name)
        g = jax.grad(lambda z, f=f: f(z).sum())(z)
        assert np.all(np.isfinite(np.asarray(g))), name
        np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-7, err_msg=name)
    # The gradient in soft labels keeps the class weight where a label is 0 (a review's
    # find: choosing t, not the weight, zeroed it): -c_j log softmax(z)_j, float64.
    cw = jnp.array([1.0, 2.0, 3.0, 4.0], jnp.float32)
    z4 = jnp.array([[1.0, 2.0, 0.5, -1.0]], jnp.float32)
    y4 = jnp.array([[1.0, 0.0, 0.0, 0.0]], jnp.float32)
    lsm4 = np.asarray(jax.nn.log_softmax(z4.astype(jnp.float64)))
    for where in (None, jnp.ones((1, 4), bool)):

        def soft(y, w=where):
            return je.softmax_cross_entropy(z4, y, class_weights=cw, where=w).sum()

        np.testing.assert_allclose(jax.grad(soft)(y4), -np.asarray(cw) * lsm4, rtol=1e-5)
        tangent = jax.jvp(soft, (y4,), (jnp.ones_like(y4),))[1]
        np.testing.assert_allclose(tangent, -(np.asarray(cw) * lsm4).sum(), rtol=1e-5)
    # A NaN class weight on a zero target takes no part, as in the integer-label loss
    # (which reads only the label's weight), with or without an all-True class mask; the
    # weights' derivatives agree in reverse and forward mode (an outside trial's finds: the
    # soft-label and masked forms gave NaN, jacfwd NaN where jacrev was finite).
    nan_w = cw.at[2].set(jnp.nan)
    want_nan_w = -lsm4[0, 0]
    y0 = jnp.array([0])
    for got in (
        je.softmax_cross_entropy(z4, y4, class_weights=nan_w),
        je.softmax_cross_entropy_with_integer_labels(z4, y0, class_weights=nan_w),
        je.softmax_cross_entropy_with_integer_labels(
            z4, y0, class_weights=nan_w, where=jnp.ones((1, 4), bool)
        ),
    ):
        np.testing.assert_allclose(got, [want_nan_w], rtol=1e-6)
    ys = jnp.array([[0.6, 0.4, 0.0, 0.0]], jnp.float32)
    h = lambda w: je.softmax_cross_entropy(z4, ys, class_weights=w).sum()  # noqa: E731
    rev, fwd = jax.jacrev(h)(nan_w), jax.jacfwd(h)(nan_w)
    assert np.all(np.isfinite(np.asarray(rev))), rev
    np.testing.assert_allclose(rev, fwd, rtol=1e-6)
    np.testing.assert_allclose(rev, -np.asarray(ys[0]) * lsm4[0], rtol=1e-5)
    # With smoothing the inf-weighted class has target mass: the loss is +inf.
    smoothed = je.softmax_cross_entropy_with_integer_labels(
        z[:1], y[:1], class_weights=w, label_smoothing=0.1
    )
    assert smoothed[0] == jnp.inf


# An eighth outside trial's finds: a term with a zero coefficient (a hard label, a zero
# pos_weight) dropped its slope in that coefficient, so mixed second derivatives at hard
# labels were wrong in one order (and jax.hessian took it). Both orders against the
# closed forms, float32 and float64.
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_mixed_second_derivatives_at_hard_labels(dtype):
    a, y = jnp.array([0.3, 0.7], dtype), jnp.array([0.0, 1.0], dtype)
    g = lambda a, y: je.binary_cross_entropy(a, y).sum()  # noqa: E731
    want = -1 / a - 1 / (1 - a)
    for h in (
        jax.jacrev(jax.grad(g, 0), 1)(a, y),
        jax.jacfwd(jax.grad(g, 0), 1)(a, y),
        jax.jacfwd(jax.grad(g, 1), 0)(a, y).T,
        jax.jacrev(jax.grad(g, 1), 0)(a, y).T,
        jax.hessian(g, (0, 1))(a, y)[0][1],
    ):
        np.testing.assert_allclose(np.diag(h), want, rtol=1e-6)
    z = jnp.array([1.5, -5.0, 0.0], dtype)
    y0, pw = jnp.zeros(3, dtype), jnp.array([2.0, 2.0, 0.0], dtype)
    sp_neg = jax.nn.softplus(-z)
    for fn in (je.sigmoid_binary_cross_entropy, je.multilabel_sigmoid_cross_entropy):
        k = lambda z, y, w, fn=fn: fn(z, y, pos_weight=w).sum()  # noqa: E731
        for h in (
            jax.jacfwd(jax.grad(k, 2), 1)(z, y0, pw),
            jax.jacrev(jax.grad(k, 2), 1)(z, y0, pw),
            jax.jacrev(jax.grad(k, 1), 2)(z, y0, pw).T,
            jax.hessian(k, (1, 2))(z, y0, pw)[1][0],
        ):
            h = np.diag(h) if h.ndim == 2 else h
            np.testing.assert_allclose(h, sp_neg, rtol=1e-6)
    # A -inf logit: the slope in the coefficient diverges and is reported as 0, not NaN.
    zi = jnp.array([-jnp.inf], dtype)
    h = jax.jacfwd(
        jax.grad(lambda y, w: je.sigmoid_binary_cross_entropy(zi, y, pos_weight=w).sum(), 1), 0
    )
    assert np.isfinite(np.asarray(h(jnp.zeros(1, dtype), jnp.ones(1, dtype)))).all()
