"""Direct comparison with torch, optax and SciPy in float64 (1e-12 relative)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import references as ref
from scipy import special, stats

import jaxent as je

torch = pytest.importorskip("torch")
F = torch.nn.functional
RTOL = 1e-12


def _t(x):
    return torch.from_numpy(np.asarray(x, np.float64))


@pytest.mark.parametrize("smoothing", [0.0, 0.15])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_torch_cross_entropy_integer_labels(smoothing, weighted, ignore_index):
    rng = np.random.default_rng(40)
    z = rng.normal(size=(8, 5)) * 2
    labels = rng.integers(0, 5, 8)
    labels[[1, 5]] = ignore_index
    w = rng.uniform(0.2, 3.0, 5) if weighted else None
    want = F.cross_entropy(
        _t(z),
        torch.from_numpy(labels),
        weight=None if w is None else _t(w),
        label_smoothing=smoothing,
        ignore_index=ignore_index,
        reduction="none",
    ).numpy()
    got = je.softmax_cross_entropy_with_integer_labels(
        jnp.asarray(z),
        jnp.asarray(labels),
        label_smoothing=smoothing,
        class_weights=w,
        ignore_index=ignore_index,
    )
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-300)
    # the torch-semantics oracle agrees with torch itself.
    np.testing.assert_allclose(
        ref.torch_cross_entropy(z, labels, w, smoothing, ignore_index), want, rtol=RTOL
    )
    # and torch's gradient with reduction='sum' equals ours.
    zt = _t(z).requires_grad_()
    F.cross_entropy(
        zt,
        torch.from_numpy(labels),
        weight=None if w is None else _t(w),
        label_smoothing=smoothing,
        ignore_index=ignore_index,
        reduction="sum",
    ).backward()
    g = jax.jit(
        jax.grad(
            lambda x: je.softmax_cross_entropy_with_integer_labels(
                x,
                jnp.asarray(labels),
                label_smoothing=smoothing,
                class_weights=w,
                ignore_index=ignore_index,
            ).sum()
        )
    )(jnp.asarray(z))
    np.testing.assert_allclose(g, zt.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_torch_cross_entropy_probability_targets(smoothing, weighted):
    rng = np.random.default_rng(41)
    z = rng.normal(size=(2, 6, 3)) * 2  # torch's class axis is 1
    y = ref.random_probs(rng, (2, 6, 3), axis=1, zeros=0.3)
    w = rng.uniform(0.2, 3.0, 6) if weighted else None
    want = F.cross_entropy(
        _t(z),
        _t(y),
        weight=None if w is None else _t(w),
        label_smoothing=smoothing,
        reduction="none",
    ).numpy()
    got = je.softmax_cross_entropy(
        jnp.asarray(z), jnp.asarray(y), axis=1, label_smoothing=smoothing, class_weights=w
    )
    np.testing.assert_allclose(got, want, rtol=RTOL)
    zz, yy = np.moveaxis(z, 1, -1).reshape(-1, 6), np.moveaxis(y, 1, -1).reshape(-1, 6)
    np.testing.assert_allclose(
        ref.torch_soft_cross_entropy(zz, yy, w, smoothing), want.reshape(-1), rtol=RTOL
    )


@pytest.mark.parametrize("pos_weight", [None, "vector"])
def test_torch_binary_cross_entropy_with_logits(pos_weight):
    rng = np.random.default_rng(42)
    z = np.concatenate([rng.normal(size=(5, 4)) * 4, [[40.0, -40.0, 1e-3, 0.0]]])
    y = np.concatenate([rng.choice([0.0, 1.0, 0.3], size=(5, 4)), [[0.0, 1.0, 0.5, 1.0]]])
    pw = rng.uniform(0.5, 3.0, 4) if pos_weight else None
    want = F.binary_cross_entropy_with_logits(
        _t(z), _t(y), pos_weight=None if pw is None else _t(pw), reduction="none"
    ).numpy()
    got = je.sigmoid_binary_cross_entropy(jnp.asarray(z), jnp.asarray(y), pos_weight=pw)
    np.testing.assert_allclose(got, want, rtol=RTOL)
    got = je.multilabel_sigmoid_cross_entropy(jnp.asarray(z), jnp.asarray(y), pos_weight=pw)
    np.testing.assert_allclose(got, want.sum(-1), rtol=RTOL)
    zt = _t(z).requires_grad_()
    F.binary_cross_entropy_with_logits(
        zt, _t(y), pos_weight=None if pw is None else _t(pw), reduction="sum"
    ).backward()
    g = jax.jit(
        jax.grad(lambda x: je.sigmoid_binary_cross_entropy(x, jnp.asarray(y), pos_weight=pw).sum())
    )(jnp.asarray(z))
    np.testing.assert_allclose(g, zt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_torch_binary_cross_entropy_on_probabilities():
    rng = np.random.default_rng(43)
    a, y = rng.uniform(0.01, 0.99, (2, 10))
    want = F.binary_cross_entropy(_t(a), _t(y), reduction="none").numpy()
    np.testing.assert_allclose(je.binary_cross_entropy(a, y), want, rtol=RTOL)


@pytest.mark.parametrize("axis", [-1, 0, (0, 2)])
@pytest.mark.parametrize("masked", [False, True])
def test_optax_softmax_cross_entropies(axis, masked):
    rng = np.random.default_rng(44)
    shape = (3, 4, 5)
    z = jnp.asarray(rng.normal(size=shape) * 2)
    y = jnp.asarray(ref.random_probs(rng, shape, axis))
    where = jnp.asarray(ref.random_mask(rng, shape, axis)) if masked else None
    want = optax.losses.softmax_cross_entropy(z, y, axis=axis, where=where)
    got = je.softmax_cross_entropy(z, y, axis=axis, where=where)
    np.testing.assert_allclose(got, want, rtol=RTOL)
    axes = ref._axes(axis, 3)
    k = int(np.prod([shape[a] for a in axes]))
    labels = jnp.asarray(rng.integers(0, k, [s for i, s in enumerate(shape) if i not in axes]))
    if masked:  # optax needs the label's class to be allowed to give a finite loss
        onehot = ref.one_hot(np.asarray(labels), shape, axis).astype(bool)
        where = where | jnp.asarray(onehot)
    want = optax.losses.softmax_cross_entropy_with_integer_labels(z, labels, axis=axis, where=where)
    got = je.softmax_cross_entropy_with_integer_labels(z, labels, axis=axis, where=where)
    np.testing.assert_allclose(got, want, rtol=RTOL)
    # a per-example mask, optax's other convention.
    rows = jnp.asarray(rng.random(labels.shape) < 0.6)
    want = optax.losses.softmax_cross_entropy(z, y, axis=axis, where=rows)
    np.testing.assert_allclose(
        je.softmax_cross_entropy(z, y, axis=axis, where=rows), want, rtol=RTOL
    )


def test_optax_sigmoid_binary_cross_entropy():
    rng = np.random.default_rng(45)
    z = jnp.asarray(rng.normal(size=(4, 6)) * 5)
    y = jnp.asarray(rng.choice([0.0, 1.0, 0.4], size=(4, 6)))
    want = optax.losses.sigmoid_binary_cross_entropy(z, y)
    np.testing.assert_allclose(je.sigmoid_binary_cross_entropy(z, y), want, rtol=RTOL)


def test_where_optax_differs():
    """Cases the issue names: optax wraps label -1 to the last class and gives NaN at -inf."""
    z = jnp.array([[0.5, -1.0, 2.0]])
    wrapped = optax.losses.softmax_cross_entropy_with_integer_labels(z, jnp.array([-1]))
    last = optax.losses.softmax_cross_entropy_with_integer_labels(z, jnp.array([2]))
    np.testing.assert_allclose(wrapped, last)  # optax's plausible wrong number
    assert np.isnan(je.softmax_cross_entropy_with_integer_labels(z, jnp.array([-1]))[0])
    zi = jnp.array([[0.5, -jnp.inf, 2.0]])
    y = jnp.array([[1.0, 0.0, 0.0]])
    g = jax.grad(lambda x: je.softmax_cross_entropy(x, y).sum())(zi)
    assert np.all(np.isfinite(g)) and g[0, 1] == 0


@pytest.mark.parametrize("base", [None, 2, 10])
def test_scipy_entropy_and_rel_entr(base):
    rng = np.random.default_rng(46)
    p = ref.random_probs(rng, (4, 7), zeros=0.3)
    q = ref.random_probs(rng, (4, 7))
    np.testing.assert_allclose(
        je.entropy(p, base=base), stats.entropy(p, base=base, axis=-1), rtol=RTOL
    )
    np.testing.assert_allclose(
        je.kl_divergence(p, q, base=base), stats.entropy(p, q, base=base, axis=-1), rtol=RTOL
    )
    np.testing.assert_allclose(
        je.entropy(p.T, axis=0, base=base), stats.entropy(p.T, base=base, axis=0), rtol=RTOL
    )
    unit = 1.0 if base is None else np.log(base)
    np.testing.assert_allclose(
        je.kl_divergence(p, q, base=base), special.rel_entr(p, q).sum(-1) / unit, rtol=RTOL
    )
    np.testing.assert_allclose(
        je.cross_entropy(p, q, base=base), -special.xlogy(p, q).sum(-1) / unit, rtol=RTOL
    )
    np.testing.assert_allclose(
        je.binary_entropy(p), special.entr(p) + special.entr(1 - p), rtol=RTOL
    )
    # zero q under positive p: +inf, as SciPy.
    q0 = q.copy()
    q0[p > 0] = 0
    assert np.all(je.kl_divergence(p, q0) == stats.entropy(p, q0, axis=-1))
