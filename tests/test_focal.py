"""Reweighted cross-entropies (``_src/focal.py``): the sigmoid and softmax focal losses and
poly-1, against float64 oracles, optax, and torchvision's documented formula run in torch."""

import math
from functools import partial

import chex
import helpers
import jax
import jax.numpy as jnp
import numpy as np
import optax
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
)
from jax.test_util import check_grads

import jaxent as je

# The public functions of focal.py, for the chex tests (see helpers.Public).
PUBLIC = {
    "sigmoid_focal_loss": Public(je.sigmoid_focal_loss, "zy", {"alpha": 0.25, "gamma": 1.5}),
    "softmax_focal_loss": Public(
        je.softmax_focal_loss,
        "zl",
        {"gamma": 0.5, "axis": (-1,), "ignore_index": 4},
        (("class_weights", "c"), ("where", "m")),
    ),
    "poly1_softmax_cross_entropy": Public(
        je.poly1_softmax_cross_entropy, "zy", {"epsilon": 2.0, "label_smoothing": 0.1}
    ),
}


# Oracle tables: each shape/axis kind, mask kind and dtype once (the dtype contract tests
# cover the rest).

FOCAL_TABLE = [TABLE[i] for i in (0, 2, 4, 5, 7, 9, 10, 12, 13)]


@pytest.mark.parametrize("shape,axis,dtype,mask_kind", FOCAL_TABLE)
def test_softmax_focal_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(50)
    z = jnp.asarray(rng.normal(size=shape) * 2, dtype)
    k = num_classes(shape, axis)
    labels = rng.integers(0, k, batch_shape(shape, axis))
    where = make_mask(mask_kind, rng, shape, axis)
    w = rng.uniform(0.5, 2.0, k)
    labels_ign = labels.copy()
    labels_ign.flat[-1] = -100
    for lab, kw in (
        (labels, {"gamma": 2.0}),
        (labels_ign, {"gamma": 0.5, "class_weights": w, "ignore_index": -100}),
    ):
        got = jit(je.softmax_focal_loss, axis=axis, where=where, **kw)(z, jnp.asarray(lab))
        close(got, ref.softmax_focal_loss(f64(z), lab, axis=axis, where=where, **kw), dtype)


@pytest.mark.parametrize("shape,axis,dtype,mask_kind", FOCAL_TABLE)
def test_poly1_table(shape, axis, dtype, mask_kind):
    rng = np.random.default_rng(51)
    z = jnp.asarray(rng.normal(size=shape) * 2, dtype)
    y = jnp.asarray(ref.random_probs(rng, shape, axis, zeros=0.3), dtype)
    where = make_mask(mask_kind, rng, shape, axis)
    for eps, smoothing in ((1.0, 0.0), (-0.5, 0.2)):
        f = jit(
            je.poly1_softmax_cross_entropy,
            epsilon=eps,
            axis=axis,
            where=where,
            label_smoothing=smoothing,
        )
        want = ref.poly1_softmax_cross_entropy(f64(z), f64(y), eps, axis, where, smoothing)
        close(f(z, y), want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_focal_table(dtype):
    rng = np.random.default_rng(52)
    z = jnp.asarray(rng.normal(size=(4, 6)) * 3, dtype)
    y = jnp.asarray(rng.choice([0.0, 1.0, 0.3], size=(4, 6)), dtype)
    for kw in ({}, {"alpha": 0.25, "gamma": 0.5}):
        got = jit(je.sigmoid_focal_loss, **kw)(z, y)
        close(got, ref.sigmoid_focal_loss(f64(z), f64(y), **kw), dtype)


# Against optax and torchvision's formula, in float64.


@pytest.mark.parametrize("alpha,gamma", [(None, 2.0), (0.25, 0.5)])
def test_sigmoid_focal_equals_optax(alpha, gamma):
    rng = np.random.default_rng(53)
    z = jnp.asarray(rng.normal(size=(5, 4)) * 4)
    y = jnp.asarray(rng.choice([0.0, 1.0, 0.25], size=(5, 4)))
    got = jax.jit(partial(je.sigmoid_focal_loss, alpha=alpha, gamma=gamma))(z, y)
    want = optax.losses.sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    g = jgrad(lambda v: je.sigmoid_focal_loss(v, y, alpha=alpha, gamma=gamma).sum())(z)
    g_optax = jgrad(
        lambda v: optax.losses.sigmoid_focal_loss(v, y, alpha=alpha, gamma=gamma).sum()
    )(z)
    np.testing.assert_allclose(g, g_optax, rtol=1e-10, atol=1e-15)


def _torchvision_sigmoid_focal_loss(torch, inputs, targets, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss(reduction='none'), as its documentation writes it."""
    p = torch.sigmoid(inputs)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 1.0)])
def test_sigmoid_focal_equals_torchvision_formula(alpha, gamma):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(54)
    z = rng.normal(size=(6, 3)) * 3
    y = rng.choice([0.0, 1.0], size=(6, 3))
    zt = torch.from_numpy(z).requires_grad_()
    want = _torchvision_sigmoid_focal_loss(torch, zt, torch.from_numpy(y), alpha, gamma)
    want.sum().backward()
    a = None if alpha < 0 else alpha
    got = je.sigmoid_focal_loss(jnp.asarray(z), jnp.asarray(y), alpha=a, gamma=gamma)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-12)
    g = jgrad(lambda v: je.sigmoid_focal_loss(v, jnp.asarray(y), alpha=a, gamma=gamma).sum())(z)
    np.testing.assert_allclose(g, zt.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("epsilon", [2.0, -1.0])
def test_poly1_equals_optax(epsilon):
    rng = np.random.default_rng(55)
    z = jnp.asarray(rng.normal(size=(5, 6)) * 2)
    y = jnp.asarray(ref.random_probs(rng, (5, 6), zeros=0.3))
    got = je.poly1_softmax_cross_entropy(z, y, epsilon=epsilon)
    want = optax.losses.poly_loss_cross_entropy(z, y, epsilon=epsilon)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # with optax's mask of classes too.
    keep = jnp.asarray(ref.random_mask(rng, (5, 6)))
    got = je.poly1_softmax_cross_entropy(z, y * keep, epsilon=epsilon, where=keep)
    want = optax.losses.poly_loss_cross_entropy(z, y * keep, epsilon=epsilon, where=keep)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    g = jgrad(lambda v: je.poly1_softmax_cross_entropy(v, y, epsilon=epsilon).sum())(z)
    g_optax = jgrad(lambda v: optax.losses.poly_loss_cross_entropy(v, y, epsilon=epsilon).sum())(z)
    np.testing.assert_allclose(g, g_optax, rtol=1e-10, atol=1e-15)


# gamma = 0 is the plain cross-entropy, exactly; and the limit gamma -> 0 is continuous.


def test_gamma_zero_is_the_plain_cross_entropy_exactly():
    rng = np.random.default_rng(56)
    z = jnp.asarray(rng.normal(size=(4, 5)) * 3)
    y = jnp.asarray(rng.choice([0.0, 1.0, 0.4], size=(4, 5)))
    labels = jnp.array([0, 4, -100, 2])
    cw = jnp.asarray(rng.uniform(0.5, 2, 5))
    pairs = [
        (
            lambda v: je.sigmoid_focal_loss(v, y, gamma=0.0),
            lambda v: je.sigmoid_binary_cross_entropy(v, y),
        ),
        (
            lambda v: je.softmax_focal_loss(
                v, labels, gamma=0.0, class_weights=cw, ignore_index=-100
            ),
            lambda v: je.softmax_cross_entropy_with_integer_labels(
                v, labels, class_weights=cw, ignore_index=-100
            ),
        ),
        (
            lambda v: je.poly1_softmax_cross_entropy(v, y, epsilon=0.0),
            lambda v: je.softmax_cross_entropy(v, y),
        ),
    ]

    @jax.jit
    def values_and_grads(v):
        fns = [f for pair in pairs for f in pair]
        # the focal kernels themselves tend to the plain losses as gamma -> 0.
        fns += [
            lambda u: je.sigmoid_focal_loss(u, y, gamma=1e-12),
            lambda u: je.softmax_focal_loss(
                u, labels, gamma=1e-12, class_weights=cw, ignore_index=-100
            ),
            # with alpha, gamma = 0 is alpha_t times the cross-entropy.
            lambda u: je.sigmoid_focal_loss(u, y, gamma=0.0, alpha=0.3),
        ]
        return [(f(v), jax.grad(lambda u, f=f: f(u).sum())(v)) for f in fns]

    out = values_and_grads(z)
    for i in range(3):
        chex.assert_trees_all_equal(out[2 * i], out[2 * i + 1])
    chex.assert_trees_all_close(out[6], out[0], rtol=1e-10)
    chex.assert_trees_all_close(out[7], out[2], rtol=1e-10)
    np.testing.assert_allclose(out[8][0], (0.3 * y + 0.7 * (1 - y)) * out[1][0], rtol=1e-15)


# Simpler equivalent calls.

REDUCING = {
    "softmax_focal": lambda z, y, lab, **kw: je.softmax_focal_loss(z, lab, gamma=1.5, **kw),
    "poly1": lambda z, y, lab, **kw: je.poly1_softmax_cross_entropy(z, y, epsilon=2.0, **kw),
}


@pytest.mark.parametrize("name", list(REDUCING))
def test_masked_equals_sliced_and_axis_equals_moveaxis(name):
    helpers.check_logit_simpler_calls(REDUCING[name])


def test_softmax_focal_per_example_weights_are_class_weights():
    """class_weights w scale each example by w at its label (the focal paper's alpha_t)."""
    rng = np.random.default_rng(57)
    z = jnp.asarray(rng.normal(size=(6, 4)))
    labels = jnp.array([0, 1, 2, 3, 1, 0])
    cw = jnp.array([0.25, 1.0, 2.0, 0.0])
    got, plain = jax.jit(  # one compilation for both
        lambda z: (
            je.softmax_focal_loss(z, labels, class_weights=cw),
            je.softmax_focal_loss(z, labels),
        )
    )(z)
    np.testing.assert_allclose(got, cw[labels] * plain, rtol=1e-14)


# Eager, jit and vmap agree; static options never retrace.


PublicFunctionTest = helpers.public_function_tests(PUBLIC, seed=58)


# Gradients against closed forms written out here.


@pytest.mark.parametrize("gamma,alpha", [(0.25, None), (1.0, 0.3), (2.0, None)])
def test_sigmoid_focal_gradients_closed_form(gamma, alpha):
    rng = np.random.default_rng(59)
    z = rng.normal(size=(3, 4)) * 3
    y = rng.choice([0.0, 1.0, 0.25, 0.8], size=(3, 4))
    p = ref.sigmoid(z)
    c = y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z)
    q = y * (1 - p) + (1 - y) * p  # 1 - p_t
    a_t = 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
    # l = a_t q^gamma c, with dq/dz = (1 - 2y) p (1 - p), dc/dz = p - y,
    # dq/dy = 1 - 2p, dc/dy = softplus(-z) - softplus(z) = -z.
    want_z = a_t * (gamma * q ** (gamma - 1) * (1 - 2 * y) * p * (1 - p) * c + q**gamma * (p - y))
    want_y = a_t * (gamma * q ** (gamma - 1) * (1 - 2 * p) * c + q**gamma * -z)
    if alpha is not None:
        want_y = want_y + (2 * alpha - 1) * q**gamma * c
    hard = np.isin(y, (0.0, 1.0))
    p_t = np.where(y == 1, p, 1 - p)
    # hard labels: a_t q^gamma [gamma p_t log p_t (2y - 1) + (p - y)], as documented.
    documented = a_t * q**gamma * (gamma * p_t * np.log(p_t) * (2 * y - 1) + (p - y))
    np.testing.assert_allclose(want_z[hard], documented[hard], rtol=1e-12)

    def f(v, t):
        return je.sigmoid_focal_loss(v, t, alpha=alpha, gamma=gamma).sum()

    chex.assert_trees_all_close(jgrad(f, (0, 1))(z, y), (want_z, want_y), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(jfwd(f)(z, y), want_z, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("gamma", [0.25, 2.0])
def test_softmax_focal_gradients_closed_form(gamma):
    rng = np.random.default_rng(60)
    z = rng.normal(size=(4, 5)) * 2
    labels = np.array([0, 3, 4, 1])
    cw = rng.uniform(0.5, 2.0, 5)
    p = ref.softmax(z)
    onehot = np.eye(5)[labels]
    p_c = p[np.arange(4), labels][:, None]
    u = 1 - p_c
    w = cw[labels][:, None]
    # l = -w u^gamma log p_c, with dp_c/dz_j = p_c (e_cj - p_j), du = -dp_c,
    # d(-log p_c)/dz_j = p_j - e_cj.
    want = w * (
        gamma * u ** (gamma - 1) * -p_c * (onehot - p) * -np.log(p_c) + u**gamma * (p - onehot)
    )

    def f(v):
        return je.softmax_focal_loss(v, jnp.asarray(labels), gamma=gamma, class_weights=cw).sum()

    np.testing.assert_allclose(jgrad(f)(z), want, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(jfwd(f)(z), want, rtol=1e-10, atol=1e-15)
    # d/dw_c = -u^gamma log p_c, summed over the examples labelled c.
    g_w = jgrad(lambda v: je.softmax_focal_loss(z, jnp.asarray(labels), class_weights=v).sum())(cw)
    per_example = -((1 - p_c[:, 0]) ** 2) * np.log(p_c[:, 0])
    np.testing.assert_allclose(g_w, np.bincount(labels, per_example, 5), rtol=1e-12)


@pytest.mark.parametrize("epsilon", [-0.5])
def test_poly1_gradients_closed_form(epsilon):
    rng = np.random.default_rng(61)
    z = rng.normal(size=(4, 5))
    y = ref.random_probs(rng, (4, 5)) * np.array([[1.0], [0.5], [2.0], [1.0]])  # unnormalised
    p = ref.softmax(z)
    # CE: p sum(y) - y; the poly term sum_j y_j (1 - p_j): p_k (sum_j y_j p_j - y_k).
    ty = np.sum(y * p, -1, keepdims=True)
    want_z = p * y.sum(-1, keepdims=True) - y + epsilon * p * (ty - y)
    want_y = -np.log(p) + epsilon * (1 - p)

    def f(v, t):
        return je.poly1_softmax_cross_entropy(v, t, epsilon=epsilon).sum()

    chex.assert_trees_all_close(jgrad(f, (0, 1))(z, y), (want_z, want_y), rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(jfwd(f)(z, y), want_z, rtol=1e-11, atol=1e-15)


CHECK_GRADS = {
    "sigmoid_focal": lambda z, y: je.sigmoid_focal_loss(z, y, alpha=0.25, gamma=0.5),
    "softmax_focal_masked_axis0": lambda z, y: je.softmax_focal_loss(
        z.T,
        jnp.array([0, 2]),
        gamma=0.5,
        axis=0,
        where=jnp.array([[True], [False], [True]]),
        class_weights=jnp.array([1.0, 2.0, 0.5]),
    ),
    "poly1": lambda z, y: je.poly1_softmax_cross_entropy(
        z, y, epsilon=1.5, label_smoothing=0.1, where=jnp.array([True, True, False])
    ),
}


@pytest.mark.parametrize("name", list(CHECK_GRADS))
def test_check_grads(name):
    """First order in both modes (second-order rules are checked through the Hessians of
    the boundary tests)."""
    rng = np.random.default_rng(63)
    args = (jnp.asarray(rng.normal(size=(2, 3))), jnp.asarray(ref.random_probs(rng, (2, 3))))
    f = jax.jit(CHECK_GRADS[name])
    check_grads(f, args, order=1, modes=("fwd", "rev"), eps=1e-4, atol=1e-5, rtol=1e-5)


# Boundary inputs.


def test_sigmoid_focal_at_infinite_and_huge_logits():
    """Values are the limits, never NaN; gradients too: 0 for a certain correct prediction,
    the sigmoid cross-entropy's +-1 for a certain wrong one."""

    @jax.jit
    def everything(z, y):
        f = partial(je.sigmoid_focal_loss, gamma=0.5)
        g_rev = jax.grad(lambda a: f(a, y).sum())(z)
        g_fwd = jax.jacfwd(lambda a: f(a, y).sum())(z)
        g_y = jax.grad(lambda b: f(z, b).sum())(y)
        # alpha_t = 0 makes a term 0, even an infinite one.
        return f(z, y), g_rev, g_fwd, g_y, je.sigmoid_focal_loss(z, y, alpha=1.0, gamma=0.5)

    for dtype, big in ((jnp.float64, jnp.inf), (jnp.float32, jnp.inf), (jnp.float32, 1e8)):
        z = jnp.array([big, -big, big, -big], dtype)
        y = jnp.array([1.0, 0.0, 0.0, 1.0], dtype)
        v, g_rev, g_fwd, g_y, weighted = everything(z, y)
        want = [0.0, 0.0, np.inf, np.inf] if big == jnp.inf else [0.0, 0.0, 1e8, 1e8]
        np.testing.assert_allclose(v, want, rtol=1e-7)
        np.testing.assert_array_equal(g_rev, [0.0, 0.0, 1.0, -1.0])
        np.testing.assert_array_equal(g_fwd, [0.0, 0.0, 1.0, -1.0])
        assert not np.any(np.isnan(g_y))
        assert weighted[2] == 0.0


@pytest.mark.parametrize("gamma", [0.25])
def test_gamma_below_one_has_finite_gradients_as_p_tends_to_one(gamma):
    """(1 - p)^gamma has an infinite slope at p = 1 for gamma < 1; the loss's gradient in the
    logits does not, and is exact near there."""
    # sigmoid: y = 1 at z -> +inf. closed form (1 - p)^gamma [gamma p log p - (1 - p)].
    z = jnp.array([5.0, 20.0, 40.0, 700.0, jnp.inf])
    p, one_minus_p = ref.sigmoid(z), ref.sigmoid(-z)
    want = one_minus_p**gamma * (gamma * p * -np.logaddexp(0, -z) - one_minus_p)
    for transform in (jgrad, jfwd):
        g = transform(lambda v: je.sigmoid_focal_loss(v, jnp.ones(5), gamma=gamma).sum())(z)
        np.testing.assert_allclose(g, want, rtol=1e-12, atol=0)
    # softmax: the label's logit far above the others, and alone among finite logits.
    z = jnp.array([[40.0, 0.0, -1.0], [700.0, 0.0, -1.0], [0.0, -jnp.inf, -jnp.inf]])
    labels = jnp.array([0, 0, 0])
    zn = np.asarray(z)
    with np.errstate(invalid="ignore"):
        others = np.exp(zn[:, 1:] - zn[:, :1])  # p_j / p_c for j != c
    u = others.sum(-1, keepdims=True) / (1 + others.sum(-1, keepdims=True))  # 1 - p_c
    p_rest = others / (1 + others.sum(-1, keepdims=True))
    nll = np.log1p(others.sum(-1, keepdims=True))
    p_c = 1 - u
    rho = np.where(u > 0, p_rest / np.where(u > 0, u, 1), 0)
    # gradient: u^gamma [(p - e_c) + gamma p_c nll rho], rho_c = -1.
    want = np.concatenate(
        [-u + gamma * p_c * nll * -1, p_rest + gamma * p_c * nll * rho], axis=-1
    ) * (u**gamma)
    for transform in (jgrad, jfwd):
        g = transform(lambda v: je.softmax_focal_loss(v, labels, gamma=gamma).sum())(z)
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, want, rtol=1e-10, atol=0)
    np.testing.assert_array_equal(je.softmax_focal_loss(z, labels, gamma=gamma)[2], 0.0)


SOFTMAX_NEG_INF = {
    "softmax_focal": lambda z: je.softmax_focal_loss(z, jnp.array([1, 2]), gamma=0.5),
    "poly1": lambda z: je.poly1_softmax_cross_entropy(
        z, jnp.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.3, 0.7, 0.0]]), epsilon=2.0
    ),
}


@pytest.mark.parametrize("name", list(SOFTMAX_NEG_INF))
def test_neg_inf_logit_gets_zero_gradient_both_modes(name):
    helpers.check_neg_inf_logit_zero_gradient(SOFTMAX_NEG_INF[name])


def test_label_on_neg_inf_logit_is_inf_and_nan_logit_is_nan():
    @jax.jit  # one compilation for the four cases
    def values(z):
        bad = z.at[2].set(np.nan)
        return (
            je.softmax_focal_loss(z, jnp.array(0)),
            je.poly1_softmax_cross_entropy(z, jnp.array([0.5, 0.5, 0.0])),
            je.softmax_focal_loss(bad, jnp.array(1)),
            je.poly1_softmax_cross_entropy(bad, jnp.array([0, 1.0, 0])),
        )

    focal, poly1, focal_nan, poly1_nan = values(jnp.array([-jnp.inf, 0.0, 1.0]))
    assert focal == np.inf and poly1 == np.inf
    assert np.isnan(focal_nan) and np.isnan(poly1_nan)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_three_huge_equal_logits(dtype):
    z = jnp.full((3,), 1e8 if dtype != jnp.float16 else 6e4, dtype)
    y = jnp.array([1.0, 0.0, 0.0], dtype)
    focal, poly1 = jax.jit(
        lambda z, y: (je.softmax_focal_loss(z, jnp.array(2)), je.poly1_softmax_cross_entropy(z, y))
    )(z, y)
    np.testing.assert_allclose(focal, (2 / 3) ** 2 * math.log(3), rtol=1e-6)
    np.testing.assert_allclose(poly1, math.log(3) + 2 / 3, rtol=1e-6)


def test_large_float32_logits_match_float64():
    rng = np.random.default_rng(62)
    z = jnp.asarray(rng.normal(size=(4, 7)) * 1e3, jnp.float32)
    lab = np.array([0, 3, 6, 2])
    y = jnp.asarray(ref.random_probs(rng, (4, 7)), jnp.float32)
    got, poly1 = jax.jit(  # one compilation for both
        lambda z, y: (
            je.softmax_focal_loss(z, jnp.asarray(lab), gamma=0.5),
            je.poly1_softmax_cross_entropy(z, y),
        )
    )(z, y)
    want = ref.softmax_focal_loss(f64(z), lab, gamma=0.5)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(poly1, ref.poly1_softmax_cross_entropy(f64(z), f64(y)), rtol=2e-6)


MASKED_CASES = {
    "softmax_focal": lambda z, m: je.softmax_focal_loss(
        z, jnp.array([0, 1, 3, 0, 0, 2]), where=m, gamma=0.5, class_weights=jnp.arange(1.0, 5)
    ),
    "poly1": lambda z, m: je.poly1_softmax_cross_entropy(
        z, jnp.full(z.shape, 0.25), where=m, epsilon=2.0, label_smoothing=0.1
    ),
}


@pytest.mark.parametrize("name", list(MASKED_CASES))
def test_masked_garbage_and_fully_masked_rows(name):
    helpers.check_masked_garbage_logits(MASKED_CASES[name])


@pytest.mark.parametrize("ignore_index", [0])
def test_softmax_focal_label_meaning(ignore_index):
    """Counted, ignored (0, gradient 0, garbage logits allowed), invalid (NaN), label on a
    masked-out class (0), masked-out example (0 whatever its label)."""
    z = jnp.array(
        [[1.2, -0.8, -0.5], [jnp.nan, jnp.inf, -jnp.inf], [0.9, -1.2, 1.1], [0.1, 0.2, 0.3]]
    )
    labels = jnp.array([1, ignore_index, 2, -1])

    def f(x, **kw):
        return je.softmax_focal_loss(x, labels, ignore_index=ignore_index, gamma=0.5, **kw)

    v = np.asarray(jax.jit(f)(z))
    want = ref.softmax_focal_loss(np.asarray(z), np.asarray(labels), gamma=0.5)
    np.testing.assert_allclose(v[[0, 2]], want[[0, 2]], rtol=1e-12)
    assert v[1] == 0 and np.isnan(v[3])
    g = np.asarray(jgrad(lambda x: f(x).sum())(z))
    np.testing.assert_array_equal(g[1], 0.0)
    assert np.all(np.isfinite(g[[0, 2]])) and np.all(np.isnan(g[3]))
    rows_on = jnp.array([True, True, True, False])
    classes = jnp.array([True, False, True])
    two = jnp.array([0, 2])

    @jax.jit  # one compilation for the cases below
    def cases(z):
        return (
            f(z, where=rows_on),
            je.softmax_focal_loss(z[two], jnp.array([1, 2]), where=classes),
            je.softmax_focal_loss(z[2, ::2], jnp.array(1)),
            je.softmax_focal_loss(z[two], jnp.array([3, 1], jnp.uint8)),
        )

    rows, masked_class, sliced, narrow = cases(z)
    # a per-example mask skips the invalid row; a masked label class contributes 0.
    assert rows[1] == 0 and rows[3] == 0 and np.isfinite(rows).all()
    np.testing.assert_allclose(masked_class, [0.0, float(sliced)], rtol=1e-14)
    # unsigned and narrow labels are compared in their own dtype.
    assert np.isnan(narrow[0]) and np.isfinite(narrow[1])


def test_labels_outside_their_range_give_nan():
    z = jnp.array([0.3, -1.0, 2.0])
    for bad in (1.5, -0.5, np.nan):
        y = jnp.array([1.0, bad, 0.0])
        for kw in ({}, {"alpha": 0.25}, {"gamma": 0.0}):
            out = je.sigmoid_focal_loss(z, y, **kw)
            np.testing.assert_array_equal(np.isnan(out), [False, True, False])
    soft = jnp.array([[0.5, 0.7, -0.2], [0.2, 0.3, 0.5]])
    out = je.poly1_softmax_cross_entropy(jnp.zeros((2, 3)), soft)
    np.testing.assert_array_equal(np.isnan(out), [True, False])


def test_option_checks_name_the_argument():
    z, y = jnp.zeros((2, 3)), jnp.zeros((2, 3))
    lab = jnp.array([0, 1])
    with pytest.raises(ValueError, match="gamma"):
        je.sigmoid_focal_loss(z, y, gamma=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        je.sigmoid_focal_loss(z, y, alpha=1.5)
    with pytest.raises(TypeError, match="alpha"):
        je.sigmoid_focal_loss(z, y, alpha=jnp.array(0.25))
    with pytest.raises(TypeError, match="gamma"):
        jax.jit(lambda g: je.softmax_focal_loss(z, lab, gamma=g))(2.0)
    with pytest.raises(TypeError, match="labels"):
        je.softmax_focal_loss(z, y)
    with pytest.raises(ValueError, match="labels"):
        je.softmax_focal_loss(z, jnp.array([0, 1, 2]))
    with pytest.raises(ValueError, match="epsilon"):
        je.poly1_softmax_cross_entropy(z, y, epsilon=math.inf)
    with pytest.raises(TypeError, match="epsilon"):
        je.poly1_softmax_cross_entropy(z, y, epsilon="1")
    with pytest.raises(ValueError, match="no classes"):
        je.softmax_focal_loss(jnp.zeros((2, 0)), lab)


# Dtype contract.


def _all_three(z, y):
    """The three losses of one (logits, labels) pair, side by side: one dtype-contract check."""
    return jnp.concatenate(
        [
            je.sigmoid_focal_loss(z, y, alpha=0.25).ravel(),
            je.softmax_focal_loss(
                z, jnp.array([0, 3, 2]), gamma=0.5, class_weights=jnp.array([1.0, 2, 3, 4])
            ),
            je.poly1_softmax_cross_entropy(z, y, epsilon=2.0, label_smoothing=0.1),
        ]
    )


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_dtype_contract(dtype):
    """Values in float32, equal to the float64 oracle on the rounded inputs; gradients in
    the input dtype (float64 keeps float64 throughout the other tests)."""
    rng = np.random.default_rng(64)
    z = jnp.asarray(rng.normal(size=(3, 4)) * 3, dtype)
    y = jnp.asarray(ref.random_probs(rng, (3, 4)), dtype)
    v, (gz, gy) = jax.jit(jax.value_and_grad(lambda a, b: _all_three(a, b).sum(), (0, 1)))(z, y)
    values = jax.jit(_all_three)(z, y)
    assert values.dtype == jnp.float32 and v.dtype == jnp.float32
    assert gz.dtype == dtype and gy.dtype == dtype
    zn, yn = f64(z), f64(y)
    want = np.concatenate(
        [
            ref.sigmoid_focal_loss(zn, yn, alpha=0.25).ravel(),
            ref.softmax_focal_loss(zn, [0, 3, 2], gamma=0.5, class_weights=[1.0, 2, 3, 4]),
            ref.poly1_softmax_cross_entropy(zn, yn, 2.0, smoothing=0.1),
        ]
    )
    np.testing.assert_allclose(values, want, rtol=1e-5)


def test_exact_zeros_are_positive_zeros():
    outs = [
        je.sigmoid_focal_loss(jnp.array([jnp.inf, -jnp.inf]), jnp.array([1.0, 0.0])),
        je.softmax_focal_loss(jnp.array([0.0, -jnp.inf]), jnp.array(0)),
        je.poly1_softmax_cross_entropy(jnp.array([0.0, -jnp.inf]), jnp.array([1.0, 0.0])),
    ]
    for out in outs:
        arr = np.asarray(out)
        assert (arr == 0).all() and not np.signbit(arr).any(), out


def test_hessian_is_zero_where_the_label_probability_rounds_to_one():
    def soft(z):
        return je.softmax_focal_loss(z[None], jnp.array([0]), gamma=2.0)[0]

    def sig(z, y):
        return je.sigmoid_focal_loss(z, y, gamma=2.0)

    hs = jax.jit(jax.hessian(soft))
    for z in ([100.0, 0.0, 0.0], [5.0, -jnp.inf, -jnp.inf], [5.0]):
        h = hs(jnp.array(z, jnp.float32))
        assert (h == 0).all(), (z, h)
    hg = jax.jit(jax.hessian(sig))
    for z, y in ((jnp.inf, 1.0), (-jnp.inf, 0.0)):
        h = hg(jnp.array(z, jnp.float32), jnp.array(y, jnp.float32))
        assert h == 0, (z, h)


# Memory: the compiler's temp memory, compiled only (never run), from argument specs.

MEMORY_SHAPE = (1024, 32768)


def _temp_bytes(fn, specs) -> int:
    mem = jax.jit(fn).lower(*specs).compile().memory_analysis()
    if mem is None:
        pytest.skip(f"the {jax.default_backend()} backend reports no memory analysis")
    return int(mem.temp_size_in_bytes)


def _memory_cases(dtype):
    """(name, function of arrays, argument specs, the bytes of the logits-shaped ones)."""
    n, k = MEMORY_SHAPE
    logits = jax.ShapeDtypeStruct(MEMORY_SHAPE, dtype)
    labels = jax.ShapeDtypeStruct((n,), jnp.int32)
    rows, classes = jax.ShapeDtypeStruct((n,), bool), jax.ShapeDtypeStruct((k,), bool)
    weights = jax.ShapeDtypeStruct((k,), jnp.float32)
    size = n * k * jnp.dtype(dtype).itemsize
    return [
        ("softmax_focal", je.softmax_focal_loss, [logits, labels], size),
        (
            "softmax_focal gamma=0.5, weights, ignore_index, class mask",
            lambda z, c, w, m: je.softmax_focal_loss(
                z, c, gamma=0.5, class_weights=w, ignore_index=3, where=m
            ),
            [logits, labels, weights, classes],
            size,
        ),
        (
            "softmax_focal row mask",
            lambda z, c, m: je.softmax_focal_loss(z, c, where=m),
            [logits, labels, rows],
            size,
        ),
        ("poly1", je.poly1_softmax_cross_entropy, [logits, logits], 2 * size),
        (
            "poly1 smoothing, class mask",
            lambda z, y, m: je.poly1_softmax_cross_entropy(z, y, label_smoothing=0.1, where=m),
            [logits, logits, classes],
            2 * size,
        ),
    ]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_softmax_losses_temp_memory_is_under_one_percent(dtype):
    """Forward and value-and-grad (in the logits): under 1% of the logits-shaped inputs'
    bytes; bfloat16 inputs add the one float32 copy of the shared row-block passes (as in
    ``test_memory``)."""
    cases = _memory_cases(dtype)
    if dtype == jnp.bfloat16:  # the options' handling is dtype-blind: the fullest cases
        cases = [cases[1], cases[4]]
    for name, f, specs, nbytes in cases:
        bound = 0.01 * nbytes if dtype == jnp.float32 else 2 * nbytes * 1.01
        vg = jax.value_and_grad(lambda z, *rest, f=f: jnp.sum(f(z, *rest)))
        for label, fn in (("forward", f), ("value-and-grad", vg)):
            temp = _temp_bytes(fn, specs)
            assert temp <= bound, f"{name} {label}: {temp / nbytes:.2%} of the inputs"


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_sigmoid_focal_temp_memory(dtype):
    """Elementwise: the forward pass takes no temp memory. Value-and-grad of the sum in the
    logits keeps one float32 array of the logits' size, the per-element losses, which XLA's
    CPU backend stores before its reduction kernel sums them (their selects are not taken
    into that kernel); the slopes are computed apart from the forward's exps and logs,
    which are not stored (they were: five float32 copies)."""
    shape = (1024, 4096)
    spec = jax.ShapeDtypeStruct(shape, dtype)
    f32_copy = math.prod(shape) * 4

    def f(z, y):
        return je.sigmoid_focal_loss(z, y, alpha=0.25, gamma=1.5)

    assert _temp_bytes(f, [spec, spec]) <= 0.01 * f32_copy
    vg = jax.value_and_grad(lambda z, y: jnp.sum(f(z, y)))
    assert _temp_bytes(vg, [spec, spec]) <= 1.01 * f32_copy


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_sigmoid_focal_second_derivatives_forward_and_reverse(gamma):
    """Forward-over-reverse Hessians equal reverse-over-reverse ones and are finite,
    at hard labels (a label's zero tangent made concrete inside the rule met log1p(-1))
    and at infinite logits (reverse-over-reverse gave NaN at z = -inf with y = 1); 0 where
    |z| is so large that the slope is its limit."""
    z = jnp.array([2.0, -1.0, 0.3, -3.0, 5.0, 95.0, -95.0, -1e30, -jnp.inf])
    y = jnp.array([1.0, 0.0, 0.5, 1.0, 0.0, 0.3, 0.3, 0.6, 1.0])

    def f(v):
        return je.sigmoid_focal_loss(v, y, alpha=0.25, gamma=gamma).sum()

    fwd, rev = jax.jit(lambda v: (jax.jacfwd(jax.grad(f))(v), jax.jacrev(jax.grad(f))(v)))(z)
    fwd, rev = fwd.diagonal(), rev.diagonal()
    assert np.all(np.isfinite(fwd)), fwd
    np.testing.assert_allclose(fwd, rev, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fwd[-4:], 0, atol=1e-30)
    # Far out the slope is its limit: alpha_t (1 - y)^(gamma + 1) at +inf,
    # -alpha_t y^(gamma + 1) at -inf.
    alpha_t = 0.25 * y + 0.75 * (1 - y)
    want = np.array([(1 - 0.3) ** (gamma + 1), -(0.3 ** (gamma + 1)), -(0.6 ** (gamma + 1)), -1.0])
    np.testing.assert_allclose(jax.grad(f)(z)[-4:], alpha_t[-4:] * want, rtol=1e-6)


def test_softmax_focal_loss_infinite_logits_follow_the_cross_entropy():
    """A label on an all -inf row gives +inf (was NaN), and one on a +inf logit NaN (was 0),
    for every gamma, as the cross-entropy does; the gradient at the -inf row is the
    cross-entropy's."""
    ce = je.softmax_cross_entropy_with_integer_labels
    rows = [
        ([[-jnp.inf, -jnp.inf]], 0),
        ([[jnp.inf, 0.0]], 0),
        ([[jnp.inf, 0.0]], 1),
        ([[jnp.inf, -jnp.inf]], 0),
        ([[0.0, -jnp.inf]], 1),
    ]
    for z, c in rows:
        z, c = jnp.array(z), jnp.array([c])
        want = ce(z, c)
        for gamma in (0.0, 0.5, 2.0):
            np.testing.assert_array_equal(je.softmax_focal_loss(z, c, gamma=gamma), want)
    z, c = jnp.array([[-jnp.inf, -jnp.inf]]), jnp.array([0])
    g = jax.grad(lambda x: je.softmax_focal_loss(x, c).sum())(z)
    np.testing.assert_array_equal(g, jax.grad(lambda x: ce(x, c).sum())(z))


# A sixth outside trial's finds: the gradient in the label was NaN at an infinite logit
# with ``alpha`` (infinities of both signs; the limit is K |z|) and overflowed at huge ones
# (the bracket f [...] summed before its scaling). Against float64, an infinite logit read
# as +-1e300 there; a float64 value beyond float32's range is +-inf in float32.
@pytest.mark.parametrize("alpha", [None, 0.25, 0.9])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_sigmoid_focal_label_gradient_at_infinite_and_huge_logits(alpha, gamma):
    zs = [-np.inf, -2e38, -1e38, -30.0, -1.0, 0.0, 2.0, 30.0, 1e38, 2e38, np.inf]
    ys = [0.0, 0.3, 1.0]
    z32 = jnp.array([z for z in zs for _ in ys], jnp.float32)
    y32 = jnp.array([y for _ in zs for y in ys], jnp.float32)
    z64 = jnp.clip(z32.astype(jnp.float64), -1e300, 1e300)

    def slope(z, y):
        return jax.grad(lambda y: je.sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma).sum())(y)

    got = np.asarray(slope(z32, y32), np.float64)
    want = np.asarray(slope(z64, y32.astype(jnp.float64)))
    want = np.where(np.abs(want) > np.finfo(np.float32).max, np.sign(want) * np.inf, want)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    # forward mode gives the same
    jf = jax.jvp(
        lambda y: je.sigmoid_focal_loss(z32, y, alpha=alpha, gamma=gamma),
        (y32,),
        (jnp.ones_like(y32),),
    )[1]
    np.testing.assert_allclose(np.asarray(jf, np.float64), want, rtol=1e-4, atol=1e-6)


def test_sigmoid_focal_label_gradient_named_cases():
    # The trial's two cases: +inf (float64 at -1e300: 2.5e299) and -1.5e38.
    g = jax.grad(lambda y: je.sigmoid_focal_loss(jnp.float32(-jnp.inf), y, alpha=0.25))
    assert g(jnp.float32(1.0)) == jnp.inf
    g = jax.grad(lambda y: je.sigmoid_focal_loss(jnp.float32(2e38), y))(jnp.float32(0.5))
    np.testing.assert_allclose(g, -1.5e38, rtol=1e-5)


# An eighth outside trial's find: with alpha = 1 (or 0) the label gradient was 0 where
# alpha_t = 0, though d(alpha_t L)/dy = (2 alpha - 1) L there. Against autodiff of the
# formula in float64, reverse and forward mode.
@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_sigmoid_focal_label_gradient_where_alpha_t_is_zero(alpha, gamma):
    z = jnp.array([1.5, -3.0, 0.0, 20.0], jnp.float32)
    y = jnp.full(4, 0.0 if alpha == 1.0 else 1.0, jnp.float32)

    def formula(z, y):
        sp = jax.nn.softplus
        q = y * jax.nn.sigmoid(-z) + (1 - y) * jax.nn.sigmoid(z)
        return (alpha * y + (1 - alpha) * (1 - y)) * q**gamma * (y * sp(-z) + (1 - y) * sp(z))

    want = jax.grad(lambda y: formula(z.astype(jnp.float64), y).sum())(y.astype(jnp.float64))
    f = lambda y: je.sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma)  # noqa: E731
    np.testing.assert_allclose(jax.grad(lambda y: f(y).sum())(y), want, rtol=1e-5)
    np.testing.assert_allclose(jax.jvp(f, (y,), (jnp.ones_like(y),))[1], want, rtol=1e-5)
    assert np.all(np.asarray(want) != 0)


# An eighth outside trial's find: second derivatives that involve the labels were NaN at
# hard labels y = 0 or 1 at ordinary logits (log(y) and log1p(-y) inside log(1 - p_t),
# and the zero label coefficients' selects). Every composition against autodiff of the
# formula in float64, with and without alpha, gamma below and above 1.
@pytest.mark.parametrize("alpha", [None, 0.25, 1.0])
@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_sigmoid_focal_second_derivatives_at_hard_labels(alpha, gamma):
    def formula(v):
        z, y = v[0], v[1]
        sp = jax.nn.softplus
        q = y * jax.nn.sigmoid(-z) + (1 - y) * jax.nn.sigmoid(z)
        a_t = 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
        return a_t * q**gamma * (y * sp(-z) + (1 - y) * sp(z))

    def f(v):
        return je.sigmoid_focal_loss(v[0], v[1], alpha=alpha, gamma=gamma)

    for z in (-30.0, -5.0, -1.0, 0.0, 1.5, 5.0, 30.0):
        for y in (0.0, 0.3, 1.0):
            v = jnp.array([z, y], jnp.float32)
            want = np.asarray(jax.hessian(formula)(v.astype(jnp.float64)))
            for h in (jax.hessian(f)(v), jax.jacfwd(jax.grad(f))(v), jax.jacrev(jax.grad(f))(v)):
                np.testing.assert_allclose(
                    h, want, rtol=2e-3, atol=1e-5 * max(1.0, np.abs(want).max()), err_msg=f"{z} {y}"
                )


# Open: at |z| = 100, where q = 1 - p_t underflows in float32 (3.7e-44) with gamma < 1, the
# label second derivatives (about 5e23 in float64) are NaN. Strict: a fix makes this fail
# until the mark is removed.
@pytest.mark.xfail(strict=True, reason="focal label Hessian where 1 - p_t underflows (open)")
def test_sigmoid_focal_label_hessian_where_q_underflows():
    f = lambda v: je.sigmoid_focal_loss(v[0], v[1], gamma=0.5)  # noqa: E731
    assert np.isfinite(np.asarray(jax.hessian(f)(jnp.array([-100.0, 0.0], jnp.float32)))).all()


# A review's finds on the limit at infinite logits: its factor near^gamma underflows for a
# tiny label (the limit is still +-inf, not 0), and f underflows there too.
@pytest.mark.parametrize(
    "alpha, gamma, z, y, want",
    [
        (1.0, 0.25, -np.inf, 1.1754944e-38, np.inf),
        (0.0, 5.0, np.inf, 0.99999994, -np.inf),
        (0.25, 2.0, -np.inf, 1e-30, np.inf),
    ],
)
def test_sigmoid_focal_label_gradient_limit_with_tiny_factors(alpha, gamma, z, y, want):
    g = jax.grad(lambda y: je.sigmoid_focal_loss(jnp.float32(z), y, alpha=alpha, gamma=gamma))
    assert g(jnp.float32(y)) == want


# Open (a review's finds, each also in the version before the change): forward mode in the
# logits with an explicit zero label tangent is NaN where the label slope is infinite (inf
# times 0); at z = -3e38 with gamma = 5 a term overflows before the others cancel it; with
# y just below 1 and z = -1e30, (1 - y) rounds and the label gradient is 27% high. Strict:
# a fix makes these fail until the marks are removed.
@pytest.mark.xfail(strict=True, reason="focal jvp with a zero label tangent at an infinite slope")
def test_sigmoid_focal_jvp_with_a_zero_label_tangent_at_an_infinite_slope():
    out = jax.jvp(
        lambda z, y: je.sigmoid_focal_loss(z, y, alpha=0.0, gamma=2.0),
        (jnp.float32(-jnp.inf), jnp.float32(1.0)),
        (jnp.float32(1.0), jnp.float32(0.0)),
    )[1]
    assert out == 0


@pytest.mark.xfail(strict=True, reason="focal label gradient: overflow and rounding (open)")
@pytest.mark.parametrize(
    "z, y, alpha, gamma, want",
    [(-3e38, 1.0, 0.25, 5.0, 3.0e38), (-1e30, 0.99999994, 0.25, 1.0, 8.940696e22)],
)
def test_sigmoid_focal_label_gradient_overflow_and_rounding(z, y, alpha, gamma, want):
    g = jax.grad(lambda y: je.sigmoid_focal_loss(jnp.float32(z), y, alpha=alpha, gamma=gamma))
    np.testing.assert_allclose(g(jnp.float32(y)), want, rtol=1e-3)
