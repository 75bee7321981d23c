"""Joint measures (``_src/joint.py``): joint and conditional entropy, mutual information and
its normalised form on probability tables, and the first three from joint logits."""

import math
from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from absl.testing import parameterized
from helpers import GARBAGE, check_traced_once, close, f64, jfwd, jgrad, jhess, jjvp, out_dtype
from jax.test_util import check_grads

import jaxent as je

PROBABILITY_FNS = {
    "joint_entropy": (je.joint_entropy, ref.joint_entropy),
    "conditional_entropy": (je.conditional_entropy, ref.conditional_entropy),
    "mutual_information": (je.mutual_information, ref.mutual_information),
    "normalized_mutual_information": (
        je.normalized_mutual_information,
        ref.normalized_mutual_information,
    ),
}
LOGIT_FNS = {
    "joint_entropy_from_logits": (je.joint_entropy_from_logits, ref.joint_entropy_from_logits),
    "conditional_entropy_from_logits": (
        je.conditional_entropy_from_logits,
        ref.conditional_entropy_from_logits,
    ),
    "mutual_information_from_logits": (
        je.mutual_information_from_logits,
        ref.mutual_information_from_logits,
    ),
}
ALL_FNS = {**PROBABILITY_FNS, **LOGIT_FNS}


def _kw(name, base):
    """NMI is a ratio and takes no base."""
    return {} if name == "normalized_mutual_information" else {"base": base}


def random_tables(rng, shape, axes=(-2, -1), zeros=0.0):
    """Joint distributions over ``axes`` (each table sums to 1); a fraction ``zeros`` of
    cells exactly 0."""
    return ref.random_probs(rng, shape, axes, zeros=zeros)


def make_where(kind, rng, shape, axes):
    """No mask, a mask of cells, a mask of whole X rows (a broadcast (X, 1) mask), or a
    per-table mask with the first table masked out."""
    if kind is None:
        return None
    ax = ref._axes(axes, len(shape))
    if kind == "cells":
        return rng.random(shape) < 0.7
    if kind == "rows":
        m = np.ones((1,) * len(shape), bool).repeat(shape[ax[0]], ax[0])
        m[(slice(None),) * ax[0] + (0,)] = False
        return m
    batch = tuple(s for i, s in enumerate(shape) if i not in ax)
    m = rng.random(batch) < 0.7
    m.flat[0] = False
    return m


# Oracle tables: shapes with their (X, Y) axes.
SHAPES_AXES = [
    ((3, 4), (-2, -1)),
    ((4, 3), (-1, -2)),
    ((2, 3, 4), (0, 2)),
    ((2, 3, 4), (-2, -1)),
    ((3, 2, 4, 2), (3, 1)),
]
TABLE = (
    [(s, a, jnp.float64, "cells") for s, a in SHAPES_AXES[::2]]
    + [(*SHAPES_AXES[2], jnp.float64, m) for m in (None, "rows", "per_table")]
    + [(*SHAPES_AXES[3], jnp.float32, None), (*SHAPES_AXES[4], jnp.float32, "cells")]
    + [(*SHAPES_AXES[2], jnp.bfloat16, "per_table"), (*SHAPES_AXES[1], jnp.float16, None)]
)


BASES = (None, 2)


def _all(fns, x, axes, where):
    """Every function of ``fns`` on ``x`` in nats and in bits, in one compiled call."""

    @jax.jit
    def run(x):
        return {
            (n, i): f(x, axes=axes, where=where, **_kw(n, base))
            for n, (f, _) in fns.items()
            for i, base in enumerate(BASES)
        }

    return run(x)


def _check_table(fns, x, axes, where, dtype):
    got = _all(fns, x, axes, where)
    for (name, i), value in got.items():
        want = fns[name][1](f64(x), axes, where, **_kw(name, BASES[i]))
        close(value, want, dtype, atol=5e-6)


@pytest.mark.parametrize("shape,axes,dtype,mask_kind", TABLE)
def test_probability_table(shape, axes, dtype, mask_kind):
    rng = np.random.default_rng(0)
    p = jnp.asarray(random_tables(rng, shape, axes, zeros=0.2), dtype)
    _check_table(PROBABILITY_FNS, p, axes, make_where(mask_kind, rng, shape, axes), dtype)


@pytest.mark.parametrize("shape,axes,dtype,mask_kind", TABLE)
def test_logit_table(shape, axes, dtype, mask_kind):
    rng = np.random.default_rng(1)
    z = jnp.asarray(rng.normal(size=shape) * 2, dtype)
    _check_table(LOGIT_FNS, z, axes, make_where(mask_kind, rng, shape, axes), dtype)


# Independent references: dit, and scikit-learn on contingency tables of integer counts.


def test_matches_dit():
    pytest.importorskip("dit")
    rng = np.random.default_rng(2)
    tables = random_tables(rng, (3, 3, 4), zeros=0.25)
    got = np.stack(
        [
            je.joint_entropy(tables, base=2),
            je.conditional_entropy(tables, base=2),
            je.mutual_information(tables, base=2),
        ],
        -1,
    )
    want = np.array([ref.dit_joint_measures(t) for t in tables])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


# Contingency tables of counts: random, independent, a perfect match, and the limit cases
# (one cluster on both sides; one cluster on one side).
COUNTS = [
    np.array([[3, 0, 1], [2, 5, 0], [0, 1, 4]]),
    np.array([[1, 2], [2, 4], [3, 6]]),
    np.array([[4, 0], [0, 6]]),
    np.array([[0, 0, 0], [0, 7, 0]]),
    np.array([[7]]),
    np.array([[2, 3, 5]]),
    np.array([[0, 0], [3, 4]]),
]


@pytest.mark.parametrize("counts", COUNTS, ids=range(len(COUNTS)))
def test_matches_scikit_learn(counts):
    metrics = pytest.importorskip("sklearn.metrics")
    labels_true, labels_pred = ref.labels_from_counts(counts)
    table = jnp.asarray(counts / counts.sum())
    mi = metrics.mutual_info_score(labels_true, labels_pred)
    nmi = metrics.normalized_mutual_info_score(labels_true, labels_pred)
    np.testing.assert_allclose(je.mutual_information(table), mi, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(je.normalized_mutual_information(table), nmi, rtol=1e-12)
    # with random counts too.
    rng = np.random.default_rng(int(counts.sum()))
    counts = rng.integers(0, 6, (4, 5))
    labels_true, labels_pred = ref.labels_from_counts(counts)
    table = jnp.asarray(counts / counts.sum())
    np.testing.assert_allclose(
        je.normalized_mutual_information(table),
        metrics.normalized_mutual_info_score(labels_true, labels_pred),
        rtol=1e-12,
    )


def test_normalized_limit_cases():
    """0/0 (both marginals certain) is 1, as scikit-learn's; one certain marginal gives 0;
    an all-zero table is 1 (scikit-learn's zero samples); a table masked out, or with all
    its cells masked, is 0."""
    nmi = je.normalized_mutual_information
    assert nmi(jnp.array([[0.0, 0.0], [0.0, 1.0]])) == 1.0
    assert nmi(jnp.zeros((2, 3))) == 1.0
    assert nmi(jnp.array([[0.25, 0.75], [0.0, 0.0]])) == 0.0
    assert nmi(jnp.array([[0.0, 0.0], [1.0, 0.0]]), where=jnp.array(False)) == 0.0
    assert nmi(jnp.array([[0.0, 0.0], [1.0, 0.0]]), where=jnp.zeros((2, 2), bool)) == 0.0
    # the derivative is finite (0 where the 0/0 is defined as 1).
    for t in (jnp.array([[0.0, 0.0], [0.0, 1.0]]), jnp.zeros((2, 2))):
        np.testing.assert_array_equal(jgrad(nmi)(t), 0.0)
        np.testing.assert_array_equal(jfwd(nmi)(t), 0.0)


def test_worked_numbers():
    """A fair bit copied: H(X, Y) = H(X) = I = 1 bit, H(Y | X) = 0; independent fair bits:
    H(X, Y) = 2 bits, I = 0, H(Y | X) = 1 bit."""
    copy = jnp.array([[0.5, 0.0], [0.0, 0.5]])
    indep = jnp.full((2, 2), 0.25)
    for f, want_copy, want_indep in (
        (je.joint_entropy, 1.0, 2.0),
        (je.conditional_entropy, 0.0, 1.0),
        (je.mutual_information, 1.0, 0.0),
    ):
        np.testing.assert_allclose(f(copy, base=2), want_copy, rtol=1e-15)
        np.testing.assert_allclose(f(indep, base=2), want_indep, rtol=1e-15)
    assert je.normalized_mutual_information(copy) == 1.0
    assert je.normalized_mutual_information(indep) == 0.0


# Simpler equivalent calls.


def _each(fns, **kw):
    """All the functions of ``fns`` in one compiled call, as a dict."""
    return jax.jit(lambda x: {n: f(x, **kw) for n, (f, _) in fns.items()})


@pytest.mark.parametrize("family", ["probabilities", "logits"])
def test_masked_equals_sliced_or_excluded(family):
    """Masking whole X rows and Y columns == slicing them out; masking cells == setting them
    to 0 (-inf logits); a per-table mask gives 0 for the tables masked out."""
    fns = PROBABILITY_FNS if family == "probabilities" else LOGIT_FNS
    rng = np.random.default_rng(3)
    x = jnp.asarray(random_tables(rng, (2, 4, 5)))
    if family == "logits":
        x = jnp.log(x)
    rows, cols = np.array([True, False, True, True]), np.array([True, True, False, True, False])
    cells = rng.random((2, 4, 5)) < 0.6
    cells[:, 0, 0] = True
    on = np.array([False, True])
    excluded = jnp.where(cells, x, -jnp.inf if family == "logits" else 0)
    pairs = [
        (_each(fns, where=rows[:, None] & cols[None, :])(x), _each(fns)(x[:, rows][:, :, cols])),
        (_each(fns, where=cells)(x), _each(fns)(excluded)),
    ]
    for got, want in pairs:
        chex.assert_trees_all_close(got, want, rtol=1e-14)
    full = _each(fns)(x)
    for name, v in _each(fns, where=on)(x).items():
        np.testing.assert_array_equal(v, np.where(on, full[name], 0.0), err_msg=name)
    if family == "logits":
        # the logits of a table, and its probabilities, give the same measures.
        probs = _each(PROBABILITY_FNS)(jax.nn.softmax(x, axis=(-2, -1)))
        for name, v in full.items():
            np.testing.assert_allclose(v, probs[name.removesuffix("_from_logits")], rtol=1e-13)


@pytest.mark.parametrize("family", ["probabilities", "logits"])
def test_axes_equal_moveaxis(family):
    fns = PROBABILITY_FNS if family == "probabilities" else LOGIT_FNS
    rng = np.random.default_rng(5)
    x = jnp.asarray(random_tables(rng, (3, 4, 5), (2, 0)))
    if family == "logits":
        x = jnp.log(x)
    want = _each(fns)(jnp.moveaxis(x, (2, 0), (-2, -1)))
    chex.assert_trees_all_close(_each(fns, axes=(2, 0))(x), want, rtol=1e-14)
    chex.assert_trees_all_close(_each(fns, axes=(-1, -3))(x), want, rtol=1e-14)


def test_axes_order():
    """axes=(-1, -2) swaps the roles: H(X | Y) and the joint of the transposed table;
    joint entropy and mutual information are symmetric."""
    rng = np.random.default_rng(6)
    p = jnp.asarray(random_tables(rng, (2, 3, 4), zeros=0.2))
    symmetric = (je.joint_entropy, je.mutual_information, je.normalized_mutual_information)

    @jax.jit  # one compilation for every call
    def values(p):
        swapped = [f(p, axes=(-1, -2)) for f in symmetric]
        plain = [f(p) for f in symmetric]
        h = je.conditional_entropy
        return swapped, plain, h(p, axes=(-1, -2)), h(jnp.swapaxes(p, -1, -2)), h(p)

    swapped, plain, h_x_y, h_transposed, h_y_x = values(p)
    chex.assert_trees_all_close(swapped, plain, rtol=1e-14)
    np.testing.assert_allclose(h_x_y, h_transposed, rtol=1e-14)
    np.testing.assert_allclose(
        h_x_y, ref.joint_entropy(f64(p)) - ref.entropy(f64(p).sum(-2)), rtol=1e-13
    )
    # H(Y | X) = H(X, Y) - H(X), X on axis -2.
    np.testing.assert_allclose(
        h_y_x, ref.joint_entropy(f64(p)) - ref.entropy(f64(p).sum(-1)), rtol=1e-13
    )


# Eager, jit and vmap agree; static options never retrace.


VARIANTS = [(name, name, {"axes": (-1, -2), **_kw(name, 2)}) for name in ALL_FNS]


class PublicFunctionTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*VARIANTS)
    def test_matches_eager(self, name, static):
        f = ALL_FNS[name][0]
        rng = np.random.default_rng(7)
        x = jnp.asarray(random_tables(rng, (3, 4, 5), zeros=0.2))
        if name.endswith("logits"):
            x = jnp.log(x)
        eager = f(x, **static)
        g = partial(self.variant(f, static_argnames=tuple(static)), **static)
        # compiled or not, the same to an ulp or two.
        np.testing.assert_allclose(g(x), eager, rtol=1e-14, atol=0)
        np.testing.assert_allclose(jax.vmap(g)(x), eager, rtol=1e-14, atol=0)
        # vmapped over a trailing axis, the tables on the leading two.
        moved = jnp.moveaxis(x, 0, -1)
        np.testing.assert_allclose(jax.vmap(g, in_axes=-1)(moved), eager, rtol=1e-14, atol=0)

    @parameterized.named_parameters(*[(n, n) for n in ALL_FNS])
    def test_static_options_do_not_retrace(self, name):
        f = ALL_FNS[name][0]
        rng = np.random.default_rng(8)
        calls = [((jnp.asarray(rng.random((2, 3, 4))),), {}) for _ in range(3)]
        check_traced_once(f, {"axes": (-1, -2), **_kw(name, 2)}, calls)


# Gradients against closed forms written out here.


def _probability_gradients(p, base):
    """The closed-form gradients, 0 at zero cells (where the slopes diverge)."""
    ln_b = 1.0 if base is None else math.log(base)
    px, py = p.sum(-1, keepdims=True), p.sum(-2, keepdims=True)
    nz = p > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        lp, lpx, lpy = np.log(p), np.log(px), np.log(py)
        h = np.where(nz, -(lp + 1), 0) / ln_b
        cond = np.where(nz, lpx - lp, 0) / ln_b
        rho = np.where(nz, lp - lpx - lpy, 0)
        mi = np.where(nz, rho - 1, 0) / ln_b
        i = np.sum(p * rho, (-2, -1), keepdims=True)
        hx = -np.sum(np.where(px > 0, px * lpx, 0), -2, keepdims=True)
        hy = -np.sum(np.where(py > 0, py * lpy, 0), -1, keepdims=True)
        n = 2 * i / (hx + hy)
        d_i, d_hx, d_hy = rho - 1, -(lpx + 1), -(lpy + 1)
        nmi = np.where(nz, (2 * d_i - n * (d_hx + d_hy)) / (hx + hy), 0)
        # NMI is that of p / sum(p): its derivative has no component along p (each table
        # sums to 1 here).
        nmi = np.where(nz, nmi - np.sum(nmi * p, (-2, -1), keepdims=True), 0)
    return {
        "joint_entropy": h,
        "conditional_entropy": cond,
        "mutual_information": mi,
        "normalized_mutual_information": nmi,
    }


def test_probability_gradients_closed_form():
    base = 2  # in bits: every gradient gains 1/ln 2
    rng = np.random.default_rng(9)
    p = random_tables(rng, (2, 3, 4), zeros=0.25)
    want = _probability_gradients(p, base)
    for name, (f, _) in PROBABILITY_FNS.items():

        def total(x, f=f, name=name):
            return f(x, **_kw(name, base)).sum()

        np.testing.assert_allclose(jgrad(total)(p), want[name], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(jfwd(total)(p), want[name], rtol=1e-12, atol=1e-15)


def _logit_gradients(z, base):
    ln_b = 1.0 if base is None else math.log(base)
    p = ref.softmax(z.reshape(z.shape[0], -1)).reshape(z.shape)
    px, py = p.sum(-1, keepdims=True), p.sum(-2, keepdims=True)
    log_p = np.log(p)
    h = -np.sum(p * log_p, (-2, -1), keepdims=True)
    log_c = np.log(p / px)
    h_c = -np.sum(p * log_c, (-2, -1), keepdims=True)
    rho = np.log(p / (px * py))
    i = np.sum(p * rho, (-2, -1), keepdims=True)
    return {
        "joint_entropy_from_logits": -p * (log_p + h) / ln_b,
        "conditional_entropy_from_logits": -p * (log_c + h_c) / ln_b,
        "mutual_information_from_logits": p * (rho - i) / ln_b,
    }


def test_logit_gradients_closed_form():
    base = 2  # in bits: every gradient gains 1/ln 2
    rng = np.random.default_rng(10)
    z = rng.normal(size=(2, 3, 4)) * 2
    want = _logit_gradients(z, base)
    for name, (f, _) in LOGIT_FNS.items():

        def total(x, f=f):
            return f(x, base=base).sum()

        np.testing.assert_allclose(jgrad(total)(z), want[name], rtol=1e-12, atol=1e-16)
        np.testing.assert_allclose(jfwd(total)(z), want[name], rtol=1e-12, atol=1e-16)


# Each family checked at once: the functions weighted 1, 2, 3, ... and summed, so that a
# wrong value or derivative of any one of them shows (one compilation per check).
FAMILIES = {"probabilities": PROBABILITY_FNS, "logits": LOGIT_FNS}


def weighted(fns, **kw):
    def f(x):
        return sum((k + 1) * g(x, **kw) for k, (g, _) in enumerate(fns.values()))

    return f


@pytest.mark.parametrize("family", list(FAMILIES))
def test_check_grads(family):
    rng = np.random.default_rng(11)
    if family == "logits":
        x = jnp.asarray(rng.normal(size=(2, 3)))
    else:  # cells away from 0, where finite differences are exact (the table as given)
        x = jnp.asarray(rng.uniform(0.05, 0.3, (2, 3)))
    f = jax.jit(weighted(FAMILIES[family]))
    # (eps 1e-5: the second derivatives of the scale-invariant NMI reach hundreds here)
    check_grads(f, (x,), order=2, modes=("fwd", "rev"), eps=1e-5, atol=1e-5, rtol=1e-5)


# Boundary inputs.


def _zero_cell_table(family):
    p = np.array([[0.3, 0.0, 0.1], [0.0, 0.0, 0.0], [0.2, 0.25, 0.15]])
    with np.errstate(divide="ignore"):
        return p, jnp.asarray(np.log(p) if family == "logits" else p)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_zero_cells_and_neg_inf_logits(family):
    """Zero cells (-inf logits) give exact values and gradient 0 there, finite elsewhere, in
    both modes, with a finite Hessian; an all-zero row of X takes no part."""
    fns = FAMILIES[family]
    p, x = _zero_cell_table(family)
    values = jax.jit(lambda x: {n: f(x) for n, (f, _) in fns.items()})(x)
    for name, v in values.items():
        np.testing.assert_allclose(v, fns[name][1](np.asarray(x)), rtol=1e-14, err_msg=name)
    f = weighted(fns)
    g, t = jgrad(f)(x), jfwd(f)(x)
    np.testing.assert_array_equal(g[p == 0], 0.0)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(t, g, rtol=1e-13)
    _, tangent = jjvp(f, (x,), (jnp.ones_like(x),))
    # (from logits the gradient sums to 0: compared to rounding of the O(1) terms)
    np.testing.assert_allclose(tangent, jnp.sum(g), rtol=1e-13, atol=1e-15)
    assert np.all(np.isfinite(jhess(f)(x)))
    if family == "logits":
        # the -inf cells behave as logits of -1e3 (numerically the same distribution).
        clean = jnp.where(jnp.isinf(x), -1e3, x)
        v, g_clean = jax.jit(jax.value_and_grad(f))(clean)
        np.testing.assert_allclose(f(x), v, rtol=1e-12)
        np.testing.assert_allclose(g, g_clean, rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_masked_garbage_changes_nothing(family):
    """Each table holds one GARBAGE value in a masked cell; the last table is fully masked
    (and NaN). Values and gradients (both modes) equal those of clean tables."""
    fns = FAMILIES[family]
    n = len(GARBAGE)
    rng = np.random.default_rng(12)
    clean = random_tables(rng, (n + 1, 3, 4))
    if family == "logits":
        clean = np.log(clean)
    mask = np.ones((n + 1, 3, 4), bool)
    mask[:, 1, 2] = False
    mask[n] = False
    dirty = clean.copy()
    dirty[:n, 1, 2] = GARBAGE
    dirty[n] = np.nan
    clean, dirty = jnp.asarray(clean), jnp.asarray(dirty)
    values = jax.jit(lambda x: {n: f(x, where=mask) for n, (f, _) in fns.items()})
    chex.assert_trees_all_equal(values(dirty), values(clean))
    for name, v in values(dirty).items():
        assert v[n] == 0, name
    f = weighted(fns, where=mask)
    for transform in (jgrad, jfwd):
        g = transform(lambda x: f(x).sum())(dirty)
        np.testing.assert_array_equal(g, transform(lambda x: f(x).sum())(clean))
        np.testing.assert_array_equal(g[~mask], 0.0)


def test_invalid_values_give_nan():
    p = jnp.array([[0.5, 0.0], [0.25, 0.25]])
    bad_p = jnp.stack([p.at[0, 1].set(jnp.nan), p.at[0, 1].set(-0.25)])
    z = jnp.array([[0.0, -jnp.inf], [1.0, 0.5]])
    bad_z = jnp.stack([z.at[1, 0].set(jnp.nan), z.at[1, 0].set(jnp.inf)])

    @jax.jit  # one compilation for every function
    def values(bad_p, bad_z):
        return {
            name: f(bad_z if name.endswith("logits") else bad_p) for name, (f, _) in ALL_FNS.items()
        }

    for name, v in values(bad_p, bad_z).items():
        assert np.all(np.isnan(v)), name


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_huge_logits(dtype):
    """Four equal huge logits: log 4 jointly, log 2 given X, no information; a copied bit
    at 1e8 scale: one bit of information, none left given X."""
    z = jnp.array([jnp.full((2, 2), 1e8), [[1e8, 0.0], [0.0, 1e8]]], dtype)
    h, h_c, i = jax.jit(
        lambda z: (
            je.joint_entropy_from_logits(z),
            je.conditional_entropy_from_logits(z),
            je.mutual_information_from_logits(z, base=2),
        )
    )(z)
    np.testing.assert_allclose(h, [math.log(4), math.log(2)], rtol=1e-6)
    np.testing.assert_allclose(h_c, [math.log(2), 0.0], rtol=1e-6)
    np.testing.assert_allclose(i, [0.0, 1.0], rtol=1e-6)
    assert i[0] == 0 and h_c[1] == 0


def test_all_neg_inf_table_gives_zero():
    z = jnp.full((2, 2, 3), -jnp.inf).at[1, 0, 0].set(0.0)
    f = weighted(LOGIT_FNS)
    v, g = jax.jit(jax.value_and_grad(lambda x: f(x).sum()))(z)
    assert v == 0
    np.testing.assert_array_equal(g, 0.0)
    np.testing.assert_array_equal(f(z), 0.0)


def test_mutual_information_is_no_difference_of_entropies():
    """A large, nearly independent float32 table: I is small beside H(X) + H(Y) ~ 8 nats.
    The direct sum keeps its float32 error at a fraction of I, the difference of entropies
    (computed in float32) does not; and I is never negative, even for exactly independent
    tables, where rounding leaves the sum of its terms on either side of 0."""
    rng = np.random.default_rng(13)
    px, py = ref.random_probs(rng, (64,)), ref.random_probs(rng, (48,))
    p64 = np.outer(px, py) * (1 + 1e-3 * rng.normal(size=(64, 48)))
    p64 /= p64.sum()
    p = jnp.asarray(p64, jnp.float32)
    want = ref.mutual_information(f64(p))
    got, naive = jax.jit(
        lambda p: (
            je.mutual_information(p),
            je.entropy(p.sum(-1)) + je.entropy(p.sum(-2)) - je.joint_entropy(p),
        )
    )(p)
    assert 1e-7 < want < 1e-6
    np.testing.assert_allclose(got, want, rtol=0.3)
    assert abs(naive - want) > 3 * abs(got - want)
    px, py = ref.random_probs(rng, (8, 5, 1), 1), ref.random_probs(rng, (8, 1, 7), 2)
    q = jnp.asarray(px * py)
    for dtype in (jnp.float32, jnp.float64):
        x = q.astype(dtype)
        for i in jax.jit(
            lambda x: (je.mutual_information(x), je.mutual_information_from_logits(jnp.log(x)))
        )(x):
            assert np.all((0 <= i) & (i < 10 * jnp.finfo(dtype).eps))


def test_normalized_mutual_information_is_scale_invariant():
    """NMI normalises the table by its (masked) total first: counts, float or integer, give
    scikit-learn's score on the labels they count (0.1300057055 for these seven pairs,
    computed with ``normalized_mutual_info_score``), whatever the scale, and a masked cell
    takes no part in the total; the derivative along the table itself is 0."""
    counts = np.array([[2.0, 1.0], [1.0, 3.0]])
    tables = jnp.asarray(np.stack([counts, 0.5 * counts, counts / 7, counts]))
    where = jnp.ones((4, 2, 2), bool)
    padded = jnp.concatenate([tables, jnp.full((4, 2, 1), jnp.nan)], axis=-1)
    mask = jnp.concatenate([where, jnp.zeros((4, 2, 1), bool)], axis=-1)
    nmi = je.normalized_mutual_information
    # never -0.0: an independent table gives +0.
    indep = jnp.array([[2.0, 2.0], [1.0, 1.0]])
    v, g, zero = jax.jit(lambda t, m: (nmi(t, where=m), jax.grad(nmi)(t[0, :, :2]), nmi(indep)))(
        padded, mask
    )
    np.testing.assert_allclose(v, 0.130005705487629, rtol=1e-12)
    np.testing.assert_allclose(jnp.sum(g * tables[0]), 0.0, atol=1e-15)
    assert zero == 0 and not np.signbit(zero)
    got = jax.jit(nmi)(jnp.asarray(counts, jnp.int32))
    np.testing.assert_allclose(got, 0.130005705487629, rtol=1e-6)


def test_clamped_mutual_information_has_zero_gradient():
    """Where the formula for a table used as given is <= 0, the value is held at 0, and so
    is the derivative: the 2x2 counts give the formula -11.8 (the clamp holds 0 over a
    neighbourhood; finite differences give 0), and a table summing to 1 with one empty row
    gives I = 0 exactly, its minimum. Never -0.0."""
    tables = jnp.array([[[2.0, 1.0], [1.0, 3.0]], [[0.3, 0.7], [0.0, 0.0]]])
    v, g = jax.jit(jax.vmap(jax.value_and_grad(je.mutual_information)))(tables)
    np.testing.assert_array_equal(v, 0.0)
    assert not np.any(np.signbit(v))
    np.testing.assert_array_equal(g, 0.0)


def test_conditional_entropy_is_never_negative():
    rng = np.random.default_rng(14)
    p = jnp.asarray(random_tables(rng, (50, 6, 7), zeros=0.5), jnp.float32)
    assert np.all(np.asarray(je.conditional_entropy(p)) >= 0)


# Dtype contract and argument checks.


# Half precision here; float32 and float64 are in the oracle tables.
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_dtype_contract(dtype):
    rng = np.random.default_rng(15)
    p = jnp.asarray(random_tables(rng, (2, 3, 4)), dtype)
    z = jnp.log(p)

    def each(p, z):
        return {n: f(z if n.endswith("logits") else p) for n, (f, _) in ALL_FNS.items()}

    values = jax.jit(each)(p, z)
    for name, v in values.items():
        assert v.dtype == out_dtype(dtype), name
        x = z if name.endswith("logits") else p
        np.testing.assert_allclose(v, ALL_FNS[name][1](f64(x)), rtol=1e-5)
    grads = jgrad(lambda p, z: sum(v.sum() for v in each(p, z).values()), (0, 1))(p, z)
    assert all(g.dtype == dtype for g in grads)
    # integer tables (counts of 0 and 1) are accepted and computed in float.
    v = je.mutual_information(jnp.array([[1, 0], [0, 0]]))
    assert v == 0 and v.dtype.itemsize >= 4 and jnp.issubdtype(v.dtype, jnp.floating)


@pytest.mark.parametrize("name", list(ALL_FNS))
def test_static_argument_checks(name):
    f = ALL_FNS[name][0]
    x = jnp.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        f(jnp.zeros(4))
    with pytest.raises(ValueError, match="`axes` must name two axes"):
        f(x, axes=-1)
    with pytest.raises(ValueError, match=r"`axes`.*same axis twice"):
        f(x, axes=(1, -2))
    with pytest.raises(ValueError, match=r"`axes`.*out of range"):
        f(x, axes=(0, 3))
    with pytest.raises(TypeError, match="`axes` must be"):
        f(x, axes="xy")
    with pytest.raises(TypeError, match="`where` must be a boolean"):
        f(x, where=jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="`where` has shape"):
        f(x, where=jnp.ones((5,), bool))
    if name != "normalized_mutual_information":
        with pytest.raises(ValueError, match="`base`"):
            f(x, base=1)
    if name.endswith("logits"):
        with pytest.raises(TypeError, match="`joint_logits` must have a floating dtype"):
            f(jnp.zeros((2, 3), int))
        with pytest.raises(ValueError, match="`joint_logits` has no cells"):
            f(jnp.zeros((2, 0)))
    else:
        with pytest.raises(TypeError, match="`joint` must hold real numbers"):
            f(jnp.zeros((2, 3), complex))
        # an empty table is an empty sum.
        assert f(jnp.zeros((2, 0))) == (1.0 if name == "normalized_mutual_information" else 0.0)


# Memory: the compiler's temp memory, compiled only (never run), from argument specs.

MEMORY_SHAPE = (4096, 64, 64)


def _temp_bytes(fn, specs) -> int:
    mem = jax.jit(fn).lower(*specs).compile().memory_analysis()
    if mem is None:
        pytest.skip(f"the {jax.default_backend()} backend reports no memory analysis")
    return int(mem.temp_size_in_bytes)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_logit_measures_temp_memory(dtype):
    """Forward: under 1% of the logits' bytes. Value-and-grad: the same for the joint
    entropy; conditional entropy and mutual information add their per-table row and column
    sums ((X + Y) / (XY) of the logits, and their copy; see their docstrings). bfloat16 logits
    add the one float32 copy of the shared row-block passes (as in ``test_memory``)."""
    t, x, y = MEMORY_SHAPE
    logits = jax.ShapeDtypeStruct(MEMORY_SHAPE, dtype)
    cells, tables = jax.ShapeDtypeStruct((y,), bool), jax.ShapeDtypeStruct((t,), bool)
    nbytes = t * x * y * jnp.dtype(dtype).itemsize
    sums = 2 * t * (x + y) * 4
    cases = [
        (je.joint_entropy_from_logits, {}, 0),
        (je.joint_entropy_from_logits, {"axes": (-1, -2), "where": cells}, 0),
        (je.conditional_entropy_from_logits, {"where": cells}, sums),
        (je.mutual_information_from_logits, {"where": tables, "base": 2}, sums),
    ]
    if dtype == jnp.bfloat16:  # the options' handling is dtype-blind: one case
        cases = cases[2:3]
    for fn, opts, extra in cases:
        where = opts.get("where")
        specs = [logits] if where is None else [logits, where]
        static = {k: v for k, v in opts.items() if k != "where"}

        def f(z, *m, fn=fn, static=static):
            return fn(z, **static, **({"where": m[0]} if m else {}))

        vg = jax.value_and_grad(lambda z, *m, f=f: jnp.sum(f(z, *m)))
        for label, g, more in (("forward", f, 0), ("value-and-grad", vg, extra)):
            bound = 0.01 * nbytes if dtype == jnp.float32 else 2 * nbytes * 1.01
            temp = _temp_bytes(g, specs)
            assert temp <= bound + more, f"{fn.__name__} {opts} {label}: {temp / nbytes:.2%}"


def test_nearly_certain_diagonal_table_keeps_its_accuracy():
    """A cell holding all but 1e-6 of the mass: log(p / (p_x p_y)) is about 1e-6, and the
    rounded ratio would keep only eps / 1e-6 of it (NMI 1.004 in float32 once). I = H(X)
    for a diagonal table, NMI = 1 with slope 0 along it."""
    small = jnp.array([1e-2, 1e-4, 1e-6], jnp.float32)
    tables = jax.vmap(lambda s: jnp.array([[1 - s, 0.0], [0.0, s]]))(small)
    marginals = np.asarray(tables, np.float64).sum(-1)
    hx = -(marginals * np.log(marginals)).sum(-1)
    i, nmi, g = jax.jit(
        lambda t: (
            je.mutual_information(t),
            je.normalized_mutual_information(t),
            jax.vmap(jax.grad(je.normalized_mutual_information))(t),
        )
    )(tables)
    np.testing.assert_allclose(i, hx, rtol=1e-5)
    np.testing.assert_allclose(nmi, 1.0, rtol=1e-5)
    assert np.all(np.abs(g) < 1e-2), g


def test_nmi_of_a_table_without_cells_is_that_of_empty_labelings():
    # scikit-learn: normalized_mutual_info_score([], []) == 1; a masked table gives 0.
    assert je.normalized_mutual_information(jnp.zeros((0, 3))) == 1
    np.testing.assert_array_equal(je.normalized_mutual_information(jnp.zeros((2, 3, 0))), 1)
    assert je.normalized_mutual_information(jnp.ones((2, 2)), where=jnp.zeros((2, 2), bool)) == 0


# An outside trial's find: the conditional entropy and mutual information from logits
# returned one per-row output per column of the table, so tracing grew with its size
# (13 s an eager call at [2, 1000], over two minutes at [2, 40000]). The program must not
# grow with the table.
@pytest.mark.parametrize(
    "f", [je.conditional_entropy_from_logits, je.mutual_information_from_logits]
)
def test_program_size_does_not_grow_with_the_table(f):
    def size(shape):
        z = jax.ShapeDtypeStruct(shape, jnp.float32)
        text = str(jax.make_jaxpr(jax.value_and_grad(lambda z: f(z).sum()))(z))
        return len(text)

    small, large = size((2, 8)), size((2, 4000))
    assert large < 1.2 * small, (small, large)
    assert size((3, 4000)) < 1.2 * size((3, 8))
