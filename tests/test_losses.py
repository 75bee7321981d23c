"""Losses and measures on logits: softmax/sigmoid cross-entropies, entropy and KL from logits."""

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
MASKS = ref.MASKS
# Every shape/axis in float64 with a per-class mask; the other masks and dtypes on a few.
TABLE = (
    [(s, a, jnp.float64, "per_class") for s, a in SHAPES_AXES]
    + [(s, a, jnp.float64, m) for s, a in SHAPES_AXES[2:5:2] for m in (None, "per_example")]
    + [(s, a, jnp.float32, None) for s, a in SHAPES_AXES[3:5]]
    + [(*SHAPES_AXES[4], jnp.bfloat16, "per_class"), (*SHAPES_AXES[1], jnp.float16, None)]
)
OPTIONS = {"label_smoothing": 0.2, "z_loss": 1e-2}


def jit(f, **kw):
    return jax.jit(partial(f, **kw))


def jgrad(f, argnums=0):
    return jax.jit(jax.grad(f, argnums))


def jfwd(f, argnums=0):
    return jax.jit(jax.jacfwd(f, argnums))


def jvg(f, argnums=0):
    return jax.jit(jax.value_and_grad(f, argnums))


def _f64(x):
    return np.asarray(jnp.asarray(x).astype(jnp.float64))


def _tol(dtype):
    return (1e-12, 1e-300) if dtype == jnp.float64 else (2e-6, 2e-6)


def _out_dtype(dtype):
    return jnp.float64 if dtype == jnp.float64 else jnp.float32


def _batch_shape(shape, axis):
    axes = ref._axes(axis, len(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def _num_classes(shape, axis):
    return math.prod(shape[a] for a in ref._axes(axis, len(shape)))


def _make_mask(kind, rng, shape, axis):
    if kind is None:
        return None
    if kind == "per_class":
        return ref.random_mask(rng, shape, axis)
    m = rng.random(_batch_shape(shape, axis)) < 0.7
    m.flat[0] = False
    return m


def _close(got, want, dtype):
    rtol, atol = _tol(dtype)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# Oracle tables.


@pytest.mark.parametrize("shape,axis,dtype,mask_kind", TABLE)
def test_softmax_cross_entropy_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(10)
    z = jnp.asarray(rng.normal(size=shape) * 2, dtype)
    y = jnp.asarray(ref.random_probs(rng, shape, axis, zeros=0.3) * 1.5, dtype)  # unnormalised
    where = _make_mask(mask_kind, rng, shape, axis)
    w = rng.uniform(0.5, 2.0, _num_classes(shape, axis))
    for kw in ({}, {**OPTIONS, "class_weights": w}):
        got = jit(je.softmax_cross_entropy, axis=axis, where=where, **kw)(z, y)
        want = ref.softmax_cross_entropy(_f64(z), _f64(y), axis, where, **kw)
        assert got.dtype == _out_dtype(dtype)
        _close(got, want, dtype)


@pytest.mark.parametrize("shape,axis,dtype,mask_kind", TABLE)
def test_integer_labels_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(11)
    z = jnp.asarray(rng.normal(size=shape) * 2, dtype)
    k = _num_classes(shape, axis)
    labels = rng.integers(0, k, _batch_shape(shape, axis))
    where = _make_mask(mask_kind, rng, shape, axis)
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
        want = ref.softmax_cross_entropy_with_integer_labels(_f64(z), lab, axis, where, **kw)
        assert got.dtype == _out_dtype(dtype)
        _close(got, want, dtype)


@pytest.mark.parametrize("shape,axis,dtype,mask_kind", TABLE)
def test_logit_measures_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(12)
    a = jnp.asarray(rng.normal(size=shape) * 2, dtype)
    b = jnp.asarray(rng.normal(size=shape) * 2, dtype)
    where = _make_mask(mask_kind, rng, shape, axis)
    for base in (None, 2):
        got = jit(je.entropy_from_logits, axis=axis, where=where, base=base)(a)
        assert got.dtype == _out_dtype(dtype)
        _close(got, ref.entropy_from_logits(_f64(a), axis, where, base), dtype)
        got = jit(je.kl_divergence_from_logits, axis=axis, where=where, base=base)(a, b)
        assert got.dtype == _out_dtype(dtype)
        _close(got, ref.kl_divergence_from_logits(_f64(a), _f64(b), axis, where, base), dtype)


@pytest.mark.parametrize("shape,axis,dtype,mask_kind", TABLE)
def test_sigmoid_losses_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(13)
    z = jnp.asarray(rng.normal(size=shape) * 3, dtype)
    y = jnp.asarray(rng.choice([0.0, 1.0, 0.3], size=shape), dtype)
    pw = jnp.asarray(rng.uniform(0.5, 3.0, shape[-1:]), dtype)
    where = _make_mask(mask_kind, rng, shape, axis)
    for kw in ({}, {"pos_weight": pw}):
        got = jit(je.sigmoid_binary_cross_entropy, **kw)(z, y)
        assert got.dtype == _out_dtype(dtype)
        want = ref.sigmoid_binary_cross_entropy(_f64(z), _f64(y), kw.get("pos_weight"))
        _close(got, want, dtype)
        got = jit(je.multilabel_sigmoid_cross_entropy, axis=axis, where=where, **kw)(z, y)
        assert got.dtype == _out_dtype(dtype)
        want = ref.multilabel_sigmoid_cross_entropy(_f64(z), _f64(y), axis, where, **kw)
        _close(got, want, dtype)


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
    # softmax: dL/dz = softmax(z) sum(y) - y; in bits every gradient gains 1/ln 2.
    z3 = jnp.array([0.3, -1.0, 2.0])
    y3 = jnp.array([0.5, 1.0, 0.0])
    np.testing.assert_allclose(
        jgrad(lambda v: je.softmax_cross_entropy(v, y3))(z3),
        ref.softmax(z3) * 1.5 - np.asarray(y3),
        rtol=1e-13,
    )
    g_nats = jgrad(je.entropy_from_logits)(z3)
    g_bits = jgrad(lambda v: je.entropy_from_logits(v, base=2))(z3)
    np.testing.assert_allclose(g_bits, g_nats / math.log(2), rtol=1e-14)
    b3 = jnp.array([1.0, 0.0, 0.0])
    g_nats = jgrad(je.kl_divergence_from_logits, (0, 1))(z3, b3)
    g_bits = jgrad(lambda u, v: je.kl_divergence_from_logits(u, v, base=2), (0, 1))(z3, b3)
    for gn, gb in zip(g_nats, g_bits, strict=True):
        np.testing.assert_allclose(gb, gn / math.log(2), rtol=1e-14)
    np.testing.assert_allclose(
        je.kl_divergence_from_logits(
            jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([0.9, 0.1])), base=2
        ),
        0.7370,
        atol=5e-5,
    )


# Simpler equivalent calls.

REDUCING = {
    "softmax_cross_entropy": lambda z, y, lab, **kw: je.softmax_cross_entropy(z, y, **kw),
    "integer_labels": lambda z, y, lab, **kw: je.softmax_cross_entropy_with_integer_labels(
        z, lab, **kw
    ),
    "multilabel": lambda z, y, lab, **kw: je.multilabel_sigmoid_cross_entropy(z, y, **kw),
    "entropy_from_logits": lambda z, y, lab, **kw: je.entropy_from_logits(z, **kw),
    "kl_from_logits": lambda z, y, lab, **kw: je.kl_divergence_from_logits(z, 2 * y, **kw),
}


@pytest.mark.parametrize("name", list(REDUCING))
def test_masked_equals_sliced_and_axis_equals_moveaxis(name):
    f = REDUCING[name]
    rng = np.random.default_rng(14)
    z = jnp.asarray(rng.normal(size=(4, 6)))
    y = jnp.asarray(ref.random_probs(rng, (4, 6)))
    keep = np.array([True, False, True, True, False, True])
    lab = jnp.array([0, 2, 3, 5])  # allowed classes, and their index in the sliced call
    lab_sliced = jnp.array([0, 1, 2, 3])
    got = jax.jit(partial(f, where=keep[None, :]))(z, y, lab)
    np.testing.assert_allclose(got, jax.jit(f)(z[:, keep], y[:, keep], lab_sliced), rtol=1e-14)
    rows_on = np.array([True, False, True, False])
    got = jax.jit(partial(f, where=rows_on))(z, y, lab)
    np.testing.assert_array_equal(got, np.where(rows_on, jax.jit(f)(z, y, lab), 0.0))
    # axis = k equals the call on moveaxis; a tuple axis equals the flattened call.
    z3 = jnp.asarray(rng.normal(size=(3, 4, 5)))
    y3 = jnp.asarray(ref.random_probs(rng, (3, 4, 5), 1))
    lab3 = jnp.asarray(rng.integers(0, 4, (3, 5)))
    got = jax.jit(partial(f, axis=1))(z3, y3, lab3)
    moved = jax.jit(f)(jnp.moveaxis(z3, 1, -1), jnp.moveaxis(y3, 1, -1), lab3)
    np.testing.assert_allclose(got, moved, rtol=1e-14)
    y3t = jnp.asarray(ref.random_probs(rng, (3, 4, 5), (0, 2)))
    lab_flat = jnp.asarray(rng.integers(0, 15, (4,)))
    got = jax.jit(partial(f, axis=(0, 2)))(z3, y3t, lab_flat)

    def flat(x):
        return jnp.moveaxis(x, 1, 0).reshape(4, 15)

    np.testing.assert_allclose(got, jax.jit(f)(flat(z3), flat(y3t), lab_flat), rtol=1e-14)


ALL = {
    **REDUCING,
    "sigmoid_binary_cross_entropy": lambda z, y, lab: je.sigmoid_binary_cross_entropy(z, y),
}


@pytest.mark.parametrize("name", list(ALL))
def test_eager_jit_vmap(name):
    f = ALL[name]
    rng = np.random.default_rng(15)
    z = jnp.asarray(rng.normal(size=(3, 5)))
    y = jnp.asarray(ref.random_probs(rng, (3, 5)))
    lab = jnp.array([0, 4, 2])
    eager = f(z, y, lab)
    np.testing.assert_allclose(jax.jit(f)(z, y, lab), eager, rtol=1e-15)
    np.testing.assert_allclose(jax.vmap(f)(z, y, lab), eager, rtol=1e-15)
    np.testing.assert_allclose(jax.jit(jax.vmap(f))(z, y, lab), eager, rtol=1e-15)
    # vmap over a non-leading axis equals the call with that axis.
    if name in REDUCING:
        vm = jax.jit(jax.vmap(f, in_axes=(1, 1, 0)))(z.T, y.T, lab)
        np.testing.assert_allclose(vm, eager, rtol=1e-15)


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
        gz, gy = jgrad(f, (0, 1))(z, y)
        np.testing.assert_allclose(gz, want_z, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(gy, want_y, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(jfwd(f)(z, y), want_z, rtol=1e-12, atol=1e-15)
    if pos_weight is None:
        np.testing.assert_allclose(want_z, s - y, rtol=1e-14, atol=1e-15)
    else:
        g = jgrad(lambda p: je.sigmoid_binary_cross_entropy(z, y, pos_weight=p).sum())(
            jnp.full((4,), pos_weight)
        )
        np.testing.assert_allclose(g, np.sum(y * np.logaddexp(0, -z), 0), rtol=1e-12)


@pytest.mark.parametrize("base", [None, 2, 10])
def test_logit_measure_gradients_closed_form(base):
    rng = np.random.default_rng(18)
    a = rng.normal(size=(3, 5))
    b = rng.normal(size=(3, 5))
    ln_b = 1.0 if base is None else math.log(base)
    p, q = ref.softmax(a), ref.softmax(b)
    h = -np.sum(p * np.log(p), -1, keepdims=True)
    want = -p * (np.log(p) + h) / ln_b
    f = partial(je.entropy_from_logits, base=base)
    np.testing.assert_allclose(jgrad(lambda v: f(v).sum())(a), want, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(jfwd(lambda v: f(v).sum())(a), want, rtol=1e-12, atol=1e-16)
    d = np.sum(p * np.log(p / q), -1, keepdims=True)
    want_a = p * (np.log(p) - np.log(q) - d) / ln_b
    want_b = (q - p) / ln_b

    def kl(u, v):
        return je.kl_divergence_from_logits(u, v, base=base).sum()

    for g in (jgrad(kl, (0, 1))(a, b), jfwd(kl, (0, 1))(a, b)):
        np.testing.assert_allclose(g[0], want_a, rtol=1e-11, atol=1e-15)
        np.testing.assert_allclose(g[1], want_b, rtol=1e-12, atol=1e-15)


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
    "entropy_from_logits": lambda z, y: je.entropy_from_logits(z, base=2),
    "kl_from_logits": lambda z, y: je.kl_divergence_from_logits(z, 3 * y, axis=0),
}


@pytest.mark.parametrize("name", list(CHECK_GRADS))
def test_check_grads(name):
    rng = np.random.default_rng(19)
    z = jnp.asarray(rng.normal(size=(2, 3)))
    y = jnp.asarray(ref.random_probs(rng, (2, 3)))
    check_grads(
        jax.jit(CHECK_GRADS[name]),
        (z, y),
        order=2,
        modes=("fwd", "rev"),
        eps=1e-4,
        atol=1e-5,
        rtol=1e-5,
    )


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


def _fwd_rev(f, x):
    """Value, reverse-mode gradient and forward-mode Jacobian of a scalar function."""
    v, g = jvg(f)(x)
    return v, g, jfwd(f)(x)


NEG_INF_CASES = {
    "softmax": lambda z: je.softmax_cross_entropy(z, jnp.array([[0.0, 1.0, 0.0, 0.0]] * 2)),
    "softmax_z_loss": lambda z: je.softmax_cross_entropy(
        z, jnp.array([[0.0, 1.0, 0.0, 0.0]] * 2), z_loss=0.1
    ),
    "integer": lambda z: je.softmax_cross_entropy_with_integer_labels(z, jnp.array([1, 2])),
    "entropy_from_logits": je.entropy_from_logits,
    "kl_from_logits": lambda z: je.kl_divergence_from_logits(z, z + jnp.array([0, 1.0, 2, 3])),
    "kl_from_logits_q": lambda z: je.kl_divergence_from_logits(
        jnp.where(z < -100, -jnp.inf, 0.5 * jnp.arange(4.0)), z
    ),
}


@pytest.mark.parametrize("name", list(NEG_INF_CASES))
def test_neg_inf_logit_gets_zero_gradient_both_modes(name):
    f = NEG_INF_CASES[name]
    z = jnp.array([[-jnp.inf, 0.5, -1.0, 2.0], [0.3, 0.5, -1.0, -jnp.inf]])
    clean = z.at[0, 0].set(-1e3).at[1, 3].set(-1e3)  # numerically the same distribution
    v, g, fwd = _fwd_rev(lambda x: f(x).sum(), z)
    v_c, g_c, _ = _fwd_rev(lambda x: f(x).sum(), clean)
    np.testing.assert_allclose(v, v_c, rtol=1e-12)
    assert g[0, 0] == 0 and g[1, 3] == 0 and fwd[0, 0] == 0 and fwd[1, 3] == 0
    np.testing.assert_allclose(g, g_c, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(fwd, g_c, rtol=1e-10, atol=1e-300)
    # the per-row Jacobian in forward mode is finite, too (no 0 * inf).
    jac = jax.jit(jax.jacfwd(f))(z)
    assert np.all(np.isfinite(jac))
    assert np.all(np.isfinite(jax.jit(jax.hessian(lambda x: f(x).sum()))(z)))


def test_label_mass_on_neg_inf_logit_is_inf():
    z = jnp.array([-jnp.inf, 0.0, 1.0])
    assert je.softmax_cross_entropy(z, jnp.array([0.5, 0.5, 0.0])) == np.inf
    assert je.softmax_cross_entropy_with_integer_labels(z, jnp.array(0)) == np.inf
    assert je.kl_divergence_from_logits(jnp.zeros(3), z) == np.inf
    # a NaN allowed logit gives NaN; +inf gives NaN or +inf, never a finite number.
    zb = z.at[2].set(np.nan)
    assert np.isnan(je.softmax_cross_entropy(zb, jnp.array([0.0, 1.0, 0.0])))
    assert np.isnan(je.softmax_cross_entropy_with_integer_labels(zb, jnp.array(1)))
    assert np.isnan(je.entropy_from_logits(zb))
    assert np.isnan(je.kl_divergence_from_logits(zb, z))
    zb = z.at[2].set(np.inf)
    assert not np.isfinite(je.softmax_cross_entropy(zb, jnp.array([0.0, 1.0, 0.0])))
    assert not np.isfinite(je.softmax_cross_entropy_with_integer_labels(zb, jnp.array(1)))
    assert np.isnan(je.entropy_from_logits(zb))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_three_huge_equal_logits_give_log3(dtype):
    z = jnp.full((3,), 1e8 if dtype != jnp.float16 else 6e4, dtype)
    log3 = math.log(3)
    np.testing.assert_allclose(je.entropy_from_logits(z), log3, rtol=1e-6)
    np.testing.assert_allclose(
        je.softmax_cross_entropy(z, jnp.array([1.0, 0, 0], dtype)), log3, rtol=1e-6
    )
    np.testing.assert_allclose(
        je.softmax_cross_entropy_with_integer_labels(z, jnp.array(2)), log3, rtol=1e-6
    )
    np.testing.assert_allclose(je.entropy_from_logits(z, base=3), 1.0, rtol=1e-6)
    assert je.kl_divergence_from_logits(z, z) == 0
    np.testing.assert_allclose(
        jgrad(lambda v: je.softmax_cross_entropy_with_integer_labels(v, jnp.array(2)))(z),
        [1 / 3, 1 / 3, -2 / 3],
        rtol=1e-2 if dtype != jnp.float32 else 1e-6,
    )


def test_large_float32_logits_match_float64():
    rng = np.random.default_rng(20)
    z = jnp.asarray(rng.normal(size=(4, 7)) * 1e4, jnp.float32)
    b = jnp.asarray(rng.normal(size=(4, 7)) * 1e4, jnp.float32)
    z64, b64 = _f64(z), _f64(b)
    y = jnp.asarray(ref.random_probs(rng, (4, 7)), jnp.float32)
    lab = np.array([0, 3, 6, 2])
    cases = [
        (je.softmax_cross_entropy(z, y), ref.softmax_cross_entropy(z64, _f64(y))),
        (
            je.softmax_cross_entropy_with_integer_labels(z, jnp.asarray(lab)),
            ref.softmax_cross_entropy_with_integer_labels(z64, lab),
        ),
        (je.entropy_from_logits(z / 1e4 * 3), ref.entropy_from_logits(_f64(z / 1e4 * 3))),
        (je.kl_divergence_from_logits(z, b), ref.kl_divergence_from_logits(z64, b64)),
        (je.sigmoid_binary_cross_entropy(z, y), ref.sigmoid_binary_cross_entropy(z64, _f64(y))),
        (
            je.multilabel_sigmoid_cross_entropy(z, y),
            ref.multilabel_sigmoid_cross_entropy(z64, _f64(y)),
        ),
    ]
    for got, want in cases:
        assert got.dtype == jnp.float32
        # the losses are O(1e4): float32 holds them to a relative 1e-7.
        np.testing.assert_allclose(got, want, rtol=2e-6)
    # near-ties at 1e4 scale: entropy of two logits 1e4 apart from a third is finite and exact.
    z = jnp.array([1e4, 1e4, 0.0], jnp.float32)
    np.testing.assert_allclose(je.entropy_from_logits(z), math.log(2), rtol=1e-6)


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
    "entropy_from_logits": lambda z, m: je.entropy_from_logits(z, where=m),
    "kl_from_logits": lambda z, m: je.kl_divergence_from_logits(z, 0.5 * z + 1, where=m),
}


@pytest.mark.parametrize("name", list(MASKED_CASES))
def test_masked_garbage_and_fully_masked_rows(name):
    """Row i holds GARBAGE[i] in its masked-out class 2; the last row is fully masked."""
    f = MASKED_CASES[name]
    garbage = np.array([1e30, np.inf, -np.inf, np.nan, 5e-324])
    rng = np.random.default_rng(21)
    z = jnp.asarray(rng.normal(size=(6, 4)))
    mask = np.ones((6, 4), bool)
    mask[:, 2] = False
    mask[5] = False
    dirty = z.at[:5, 2].set(garbage).at[5].set(np.nan)

    def total(x):
        return f(x, mask).sum()

    vals = jax.jit(lambda x: f(x, mask))
    np.testing.assert_array_equal(vals(dirty), vals(z))
    assert vals(dirty)[5] == 0
    for transform in (jgrad, jfwd):
        g_dirty, g_clean = transform(total)(dirty), transform(total)(z)
        np.testing.assert_array_equal(g_dirty, g_clean)
        np.testing.assert_array_equal(g_dirty[~mask], 0.0)
        assert np.all(np.isfinite(g_dirty))


@pytest.mark.parametrize(
    "kw",
    [{}, {"label_smoothing": 0.2}, {"z_loss": 0.1, "class_weights": jnp.array([1.0, 2, 3, 4, 5])}],
)
@pytest.mark.parametrize("mask_kind", [None, "per_class", "per_example"])
def test_integer_labels_equal_one_hot(kw, mask_kind):
    rng = np.random.default_rng(22)
    z = jnp.asarray(rng.normal(size=(6, 5)))
    labels = jnp.array([0, 4, 2, 2, 1, 3])
    where = _make_mask(mask_kind, rng, (6, 5), -1)
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
    for transform in (jgrad, jfwd):
        g = transform(lambda x: f(x).sum())(z)
        np.testing.assert_array_equal(g[1], 0.0)
        assert np.all(np.isfinite(g))
    # the other rows are unaffected by the ignored one.
    np.testing.assert_allclose(
        jgrad(lambda x: f(x).sum())(z)[jnp.array([0, 2])],
        jgrad(
            lambda x: je.softmax_cross_entropy_with_integer_labels(
                x, labels[jnp.array([0, 2])], **kw
            ).sum()
        )(z[jnp.array([0, 2])]),
        rtol=1e-14,
    )


@pytest.mark.parametrize("bad", [-1, 3, 4, -100])
def test_out_of_range_labels_give_nan(bad):
    """No wrap-around (-1 is not the last class) and no clamping (K is not K - 1)."""
    z = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
    labels = jnp.array([bad, 1])
    for kw in ({}, {"label_smoothing": 0.1, "z_loss": 0.1}, {"ignore_index": -7}):
        f = partial(je.softmax_cross_entropy_with_integer_labels, **kw)
        v = jax.jit(f)(z, labels)
        assert np.isnan(v[0]) and np.isfinite(v[1])
        g = jgrad(lambda x, f=f: f(x, labels).sum())(z)
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


def test_entropy_from_logits_with_neg_inf_has_finite_gradients():
    z = jnp.array([[-jnp.inf, 0.0, 0.0], [-jnp.inf, -jnp.inf, 3.0]])
    v = jax.jit(je.entropy_from_logits)(z)
    np.testing.assert_allclose(v, [math.log(2), 0.0], rtol=1e-15)
    for transform in (jgrad, jfwd):
        g = transform(lambda x: je.entropy_from_logits(x).sum())(z)
        np.testing.assert_array_equal(g, 0.0)  # symmetric/certain rows are stationary


# Dtype contract.

DTYPE_CASES = {
    "softmax": lambda z, y: je.softmax_cross_entropy(z, y, label_smoothing=0.1, z_loss=0.01),
    "integer": lambda z, y: je.softmax_cross_entropy_with_integer_labels(
        z, jnp.array([0, 3, 2]), class_weights=jnp.array([1.0, 2, 3, 4])
    ),
    "sigmoid": je.sigmoid_binary_cross_entropy,
    "multilabel": je.multilabel_sigmoid_cross_entropy,
    "entropy_from_logits": lambda z, y: je.entropy_from_logits(z),
    "kl_from_logits": lambda z, y: je.kl_divergence_from_logits(z, y * 4),
}


@pytest.mark.parametrize("name", list(DTYPE_CASES))
def test_dtype_contract(name):
    f = DTYPE_CASES[name]
    rng = np.random.default_rng(23)
    z64 = rng.normal(size=(3, 4)) * 3
    y64 = ref.random_probs(rng, (3, 4))
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64):
        z, y = jnp.asarray(z64, dtype), jnp.asarray(y64, dtype)
        v = jax.jit(f)(z, y)
        assert v.dtype == _out_dtype(dtype), dtype
        # the loss on rounded inputs equals the float64 loss of the same rounded inputs.
        want = jax.jit(f)(z.astype(jnp.float64), y.astype(jnp.float64))
        np.testing.assert_allclose(v, want, rtol=1e-5 if dtype != jnp.float64 else 0)
        gz, gy = jgrad(lambda a, b: f(a, b).sum(), (0, 1))(z, y)
        assert gz.dtype == dtype and gy.dtype == dtype
        _, t = jax.jit(lambda a, b, da: jax.jvp(lambda u: f(u, b).sum(), (a,), (da,)))(
            z, y, jnp.ones_like(z)
        )
        assert t.dtype == _out_dtype(dtype)
