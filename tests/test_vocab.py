"""The streaming large-vocabulary loss (``_src/vocab/``): linear layer + softmax
cross-entropy without the logits, against the dense reference.

The oracle is the dense computation (materialised logits, soft cap, then
``softmax_cross_entropy_with_integer_labels``) run in float64 on the same inputs, upcast.
Every loss is reduced with random per-token weights, so the per-token cotangents that the
backward pass receives are never all equal.
"""

from __future__ import annotations

import math
import zlib

import chex
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import check_traced_once

import jaxent as je
from benchmarks import harness
from jaxent._src.vocab import dense_linear_softmax_cross_entropy, streaming
from jaxent._src.vocab.streaming import bounded_chunk_sizes, default_chunk_sizes

OPTIONS = {
    "plain": {},
    "bias": {"bias": True},
    "ignore": {"ignore_index": -100},
    "where": {"where": True},
    "smoothing": {"label_smoothing": 0.1},
    "z_loss": {"z_loss": 1e-3},
    "softcap": {"logit_softcap": 7.0},
    "lse": {"return_lse": True},
    "all": {
        "bias": True,
        "ignore_index": -100,
        "where": True,
        "label_smoothing": 0.2,
        "z_loss": 1e-3,
        "logit_softcap": 30.0,
        "return_lse": True,
    },
}


def _problem(seed, batch, d, v, dtype, scale, opts):
    """Inputs whose logits have about ``scale`` spread; labels include -100 when ignored."""
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(*batch, d))
    weight = rng.normal(size=(d, v)) * scale / math.sqrt(d)
    labels = rng.integers(0, v, size=batch)
    if "ignore_index" in opts:
        labels = np.where(rng.random(batch) < 0.25, -100, labels)
    kwargs = {k: x for k, x in opts.items() if k not in ("bias", "where")}
    if opts.get("bias"):
        kwargs["bias"] = jnp.asarray(rng.normal(size=(v,)) * scale, dtype)
    if opts.get("where"):
        kwargs["where"] = jnp.asarray(rng.random(batch) < 0.8)
    cot = jnp.asarray(rng.normal(size=batch))
    cot_lse = jnp.asarray(rng.normal(size=batch))
    return (
        jnp.asarray(hidden, dtype),
        jnp.asarray(weight, dtype),
        jnp.asarray(labels),
        kwargs,
        cot,
        cot_lse,
    )


def _objective(fn, labels, kwargs, cot, cot_lse):
    """The weighted sum of the per-token losses (and lse), as a function of h, W, b."""
    rest = {k: x for k, x in kwargs.items() if k != "bias"}

    def total(h, w, b):
        out = fn(h, w, labels, bias=b, **rest)
        if kwargs.get("return_lse"):
            loss, lse = out
            return jnp.sum(loss * cot) + jnp.sum(lse * cot_lse)
        return jnp.sum(out * cot)

    return total


def _many_values_and_grads(fn, problems, upcast=False):
    """The objective's value and gradients in h, W, b for each problem ``(hidden, weight,
    labels, kwargs, cot, cot_lse)``: all of them in one compiled call."""
    objectives = [_objective(fn, lab, kw, c, cl) for _, _, lab, kw, c, cl in problems]
    args = [(h, w, kw.get("bias")) for h, w, _, kw, _, _ in problems]
    if upcast:
        args = jax.tree.map(lambda x: x.astype(jnp.float64), args)

    @jax.jit
    def run(args):
        return [
            jax.value_and_grad(f, argnums=(0, 1, 2))(*a)
            for f, a in zip(objectives, args, strict=True)
        ]

    return run(args)


def _value_and_grads(fn, hidden, weight, labels, kwargs, cot, cot_lse, upcast=False):
    """Weighted sum of the per-token losses (and lse) and its gradients in h, W, b."""
    problem = (hidden, weight, labels, kwargs, cot, cot_lse)
    return _many_values_and_grads(fn, [problem], upcast)[0]


def _normwise(tree, like):
    """Each leaf of ``tree`` in float64, divided by the largest magnitude of its leaf in
    ``like``: elementwise closeness to ``atol`` of the scaled trees is normwise closeness."""
    return jax.tree.map(
        lambda x, r: np.asarray(x, np.float64) / max(np.max(np.abs(r), initial=0.0), 1e-30),
        tree,
        like,
    )


def _check_against_dense(*problems, sizes, rtol, names=None):
    """Loss and gradients in h, W, b of each problem ``(hidden, weight, labels, kwargs, cot,
    cot_lse)``: finite, of the inputs' dtypes and shapes, and within ``rtol`` (one per
    problem, or one for all) times the largest magnitude of the float64 dense reference.
    The fused values of every problem come from one compiled call, the references from
    another."""
    got = _many_values_and_grads(
        lambda *a, **k: je.linear_softmax_cross_entropy(*a, **k, **sizes), problems
    )
    want = _many_values_and_grads(dense_linear_softmax_cross_entropy, problems, upcast=True)
    rtols = rtol if isinstance(rtol, list) else [rtol] * len(problems)
    for i, (g, w, problem, tol) in enumerate(zip(got, want, problems, rtols, strict=True)):
        hidden, weight, _, kwargs, _, _ = problem
        try:
            chex.assert_tree_all_finite(g)
            chex.assert_trees_all_equal_shapes_and_dtypes(
                g[1], (hidden, weight, kwargs.get("bias"))
            )
            chex.assert_trees_all_close(_normwise(g, w), _normwise(w, w), rtol=0, atol=tol)
        except AssertionError as err:
            raise AssertionError(f"case {names[i] if names else i}: {err}") from err


# Every option alone at logit scale 10 with tokens [N]; the plain call and all options
# together at every scale with tokens [N] and [B, T]; each in float32 and bfloat16.
CASES = [(o, 10.0, (21,)) for o in sorted(OPTIONS) if o not in ("plain", "all")] + [
    (o, scale, batch)
    for o in ("plain", "all")
    for scale in (1.0, 10.0, 100.0)
    for batch in ((21,), (3, 7))
]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_matches_dense_reference(dtype):
    # Every case of CASES, in one compiled call (and the references in another).
    problems, rtols = [], []
    for option, scale, batch in CASES:
        seed = zlib.crc32(repr((option, scale, batch)).encode())  # the same in every process
        problems.append(_problem(seed, batch, 16, 50, dtype, scale, OPTIONS[option]))
        # Logits of magnitude `scale` carry float32 rounding of about scale * 6e-8 into
        # every exp(z - lse).
        rtols.append(2e-5 * max(1.0, scale / 10) if dtype == jnp.float32 else 2e-2)
    # Ragged on both axes: 50 classes in chunks of 16, 21 tokens in tiles of 8.
    sizes = {"chunk_size": 16, "token_chunk_size": 8}
    _check_against_dense(*problems, sizes=sizes, rtol=rtols, names=CASES)


def test_chunk_and_tile_sizes():
    # Every pair of sizes on one problem, in one compiled call.
    h, w, labels, kwargs, cot, cot_lse = _problem(
        1, (33,), 8, 50, jnp.float32, 10.0, OPTIONS["all"]
    )
    sizes = [
        {},
        {"chunk_size": 1},
        {"chunk_size": 7, "token_chunk_size": 5},
        {"chunk_size": 50, "token_chunk_size": 33},
        {"chunk_size": 64, "token_chunk_size": 100},
        {"chunk_size": 10, "token_chunk_size": 1},
        {"chunk_size": 25, "token_chunk_size": 11},
    ]

    def sized(size):
        return lambda *a, size=size, **k: je.linear_softmax_cross_entropy(*a, **k, **size)

    got = [
        jax.value_and_grad(_objective(sized(size), labels, kwargs, cot, cot_lse), (0, 1, 2))
        for size in sizes
    ]
    got = jax.jit(lambda *a: [f(*a) for f in got])(h, w, kwargs["bias"])
    want = _value_and_grads(
        dense_linear_softmax_cross_entropy, h, w, labels, kwargs, cot, cot_lse, True
    )
    for size, g in zip(sizes, got, strict=True):
        try:
            chex.assert_tree_all_finite(g)
            chex.assert_trees_all_equal_shapes_and_dtypes(g[1], (h, w, kwargs["bias"]))
            chex.assert_trees_all_close(
                _normwise(g, want), _normwise(want, want), rtol=0, atol=2e-5
            )
        except AssertionError as err:
            raise AssertionError(f"sizes {size}: {err}") from err


def test_float64_is_exact_and_dtypes():
    args = _problem(2, (4, 5), 6, 30, jnp.float64, 10.0, OPTIONS["all"])
    _check_against_dense(args, sizes={"chunk_size": 8, "token_chunk_size": 3}, rtol=1e-12)
    h, w, labels, _, _, _ = args
    assert je.linear_softmax_cross_entropy(h, w, labels).dtype == jnp.float64
    for dt in (jnp.bfloat16, jnp.float16, jnp.float32):
        loss, lse = je.linear_softmax_cross_entropy(
            h.astype(dt), w.astype(dt), labels, return_lse=True
        )
        assert loss.dtype == lse.dtype == jnp.float32
        assert loss.shape == lse.shape == labels.shape


def test_lse_is_the_log_normaliser():
    h, w, labels, kwargs, _, _ = _problem(3, (9,), 5, 40, jnp.float64, 10.0, {"bias": True})
    _, lse = je.linear_softmax_cross_entropy(
        h, w, labels, bias=kwargs["bias"], logit_softcap=5.0, chunk_size=16, return_lse=True
    )
    logits = 5.0 * jnp.tanh((h @ w + kwargs["bias"]) / 5.0)
    np.testing.assert_allclose(lse, jax.nn.logsumexp(logits, axis=-1), rtol=1e-13)


def test_closed_form_gradient():
    """d loss / d h = (softmax(z) - onehot) W^T, written out independently."""
    rng = np.random.default_rng(4)
    h = jnp.asarray(rng.normal(size=(6, 4)))
    w = jnp.asarray(rng.normal(size=(4, 11)))
    labels = jnp.asarray(rng.integers(0, 11, 6))
    cot = jnp.asarray(rng.normal(size=6))
    grad = jax.grad(
        lambda h, w: jnp.sum(je.linear_softmax_cross_entropy(h, w, labels, chunk_size=4) * cot),
        argnums=(0, 1),
    )(h, w)
    z = np.asarray(h @ w)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(11)[np.asarray(labels)]) * np.asarray(cot)[:, None]
    chex.assert_trees_all_close(grad, (dz @ np.asarray(w).T, np.asarray(h).T @ dz), rtol=1e-12)


@pytest.mark.parametrize("k", [0, 3])
def test_per_token_cotangent_is_exact(k):
    """The VJP with a one-hot cotangent is the gradient of that token's loss alone."""
    h, w, labels, kwargs, _, _ = _problem(5, (7,), 6, 30, jnp.float64, 10.0, OPTIONS["all"])
    kwargs.pop("return_lse")
    labels = labels.at[k].set(3)
    where = kwargs.pop("where").at[k].set(True)
    opts = dict(kwargs, chunk_size=8, token_chunk_size=3)

    @jax.jit
    def vjp(h, w, cot):
        fn = lambda h, w: je.linear_softmax_cross_entropy(h, w, labels, where=where, **opts)  # noqa: E731
        return jax.vjp(fn, h, w)[1](cot)

    dh, dw = vjp(h, w, jnp.zeros(7).at[k].set(2.5))
    dh_k, dw_k = jax.jit(
        jax.grad(
            lambda hk, w: (
                2.5 * je.linear_softmax_cross_entropy(hk, w, labels[k : k + 1], **opts)[0]
            ),
            argnums=(0, 1),
        )
    )(h[k : k + 1], w)
    np.testing.assert_allclose(dh[k], dh_k[0], rtol=1e-12)
    np.testing.assert_allclose(np.delete(np.asarray(dh), k, 0), 0)
    np.testing.assert_allclose(dw, dw_k, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("how", ["ignore_index", "where"])
def test_all_ignored_batch(how):
    h, w, labels, kwargs, cot, _ = _problem(6, (2, 5), 4, 20, jnp.float32, 10.0, {"bias": True})
    if how == "ignore_index":
        labels, opts = jnp.full(labels.shape, -1), {"ignore_index": -1}
    else:
        opts = {"where": jnp.zeros(labels.shape, bool)}
    opts |= {"label_smoothing": 0.1, "z_loss": 1e-2, "chunk_size": 8, "token_chunk_size": 3}

    def total(h, w, b):
        return jnp.sum(je.linear_softmax_cross_entropy(h, w, labels, bias=b, **opts) * cot)

    value, grads = jax.jit(jax.value_and_grad(total, argnums=(0, 1, 2)))(h, w, kwargs["bias"])
    assert value == 0
    chex.assert_trees_all_equal(grads, jax.tree.map(jnp.zeros_like, grads))


def test_invalid_labels_give_nan():
    h, w, labels, _, cot, _ = _problem(7, (8,), 4, 20, jnp.float64, 1.0, {})
    labels = labels.at[2].set(20).at[5].set(-1)
    where = jnp.ones(8, bool).at[5].set(False)
    opts = {"where": where, "chunk_size": 8, "token_chunk_size": 3}
    loss = je.linear_softmax_cross_entropy(h, w, labels, **opts)
    # Token 5's label is out of range but `where` excludes it: 0, not NaN.
    np.testing.assert_array_equal(np.isnan(loss), np.isin(np.arange(8), [2]))
    assert loss[5] == 0
    ref = dense_linear_softmax_cross_entropy(h, w, labels, where=where)
    np.testing.assert_allclose(loss, ref, rtol=1e-12)

    def grads(fn, **kw):
        return jax.jit(jax.grad(lambda h: jnp.sum(fn(h, w, labels, where=where, **kw) * cot)))(h)

    dh = grads(je.linear_softmax_cross_entropy, chunk_size=8, token_chunk_size=3)
    dh_ref = grads(dense_linear_softmax_cross_entropy)
    # The invalid label's row is NaN; the one that `where` excludes has gradient 0, as in
    # the dense reference; the others are exact.
    np.testing.assert_array_equal(np.isnan(dh), np.isnan(dh_ref))
    assert np.isnan(dh[2]).all() and not np.isnan(dh[5]).any()
    np.testing.assert_allclose(np.delete(np.asarray(dh), 2, 0), np.delete(dh_ref, 2, 0))


# The static options of OPTIONS["all"], with chunk sizes that leave ragged tiles.
STATIC = {
    **{k: x for k, x in OPTIONS["all"].items() if k not in ("bias", "where", "return_lse")},
    "chunk_size": 8,
    "token_chunk_size": 4,
}


class PublicFunctionTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_and_vmap_match_eager(self):
        h, w, labels, kwargs, _, _ = _problem(8, (3, 6), 5, 30, jnp.float32, 10.0, OPTIONS["all"])
        bias = kwargs["bias"]
        loss = self.variant(je.linear_softmax_cross_entropy, static_argnames=tuple(STATIC))

        def fn(h, labels, where):
            return loss(h, w, labels, bias=bias, where=where, **STATIC)

        eager = je.linear_softmax_cross_entropy(
            h, w, labels, bias=bias, where=kwargs["where"], **STATIC
        )
        np.testing.assert_allclose(fn(h, labels, kwargs["where"]), eager, rtol=1e-6)
        np.testing.assert_allclose(jax.vmap(fn)(h, labels, kwargs["where"]), eager, rtol=1e-6)


@pytest.mark.parametrize("return_lse", [False, True])
def test_static_options_do_not_retrace(return_lse):
    def call(seed):
        h, w, labels, kwargs, _, _ = _problem(
            seed, (3, 6), 5, 30, jnp.float32, 10.0, OPTIONS["all"]
        )
        return (h, w, labels), {"bias": kwargs["bias"], "where": kwargs["where"]}

    static = dict(STATIC, return_lse=return_lse)
    check_traced_once(je.linear_softmax_cross_entropy, static, [call(seed) for seed in range(3)])


def test_empty_tokens():
    loss = je.linear_softmax_cross_entropy(jnp.zeros((0, 4)), jnp.ones((4, 9)), jnp.zeros(0, int))
    assert loss.shape == (0,)


def test_default_sizes():
    assert default_chunk_sizes(8192, 256000, 4096) == (1024, 1024)
    assert default_chunk_sizes(2048, 32768, 512) == (2048, 2048)
    assert default_chunk_sizes(100_000, 1000, 64) == (1000, 4194)
    assert default_chunk_sizes(10, 50, 8) == (50, 10)


@pytest.mark.parametrize("costs", [streaming.BY_TILE_COSTS, streaming.BY_CHUNK_COSTS])
def test_bounded_sizes_fit_one_percent_of_the_logits(costs):
    # The modelled scratch D (a C + b T) + T C of the chosen blocks is within
    # max(1% of N V, 2^20) elements wherever 128 x 128 blocks are, and no block is larger
    # than default_chunk_sizes makes it; sizes are multiples of 128, N or V.
    a, b = costs
    for n, v, d in [
        (8192, 32000, 4096),
        (65536, 32000, 4096),
        (8192, 32000, 512),
        (2048, 32768, 512),
        (256, 4096, 128),
        (100_000, 1000, 64),
        (300, 3000, 64),
        (24, 5, 6),
        (1024, 32000, 4096),
    ]:
        chunk, tile = bounded_chunk_sizes(n, v, d, costs=costs)
        budget = max(n * v // 100, 2**20)
        scratch = d * (a * chunk + b * tile) + tile * chunk
        assert scratch <= budget or (chunk, tile) == (128, 128), (n, v, d, chunk, tile)
        cap_chunk = default_chunk_sizes(n, v, d)[0]
        assert chunk <= cap_chunk and tile <= max(n, 1)
        assert chunk in (v,) or chunk % 128 == 0
        assert tile in (n,) or tile % 128 == 0
    assert bounded_chunk_sizes(8192, 32000, 4096, costs=(1, 3)) == (128, 128)
    # Small problems keep the unbounded defaults' blocks.
    assert bounded_chunk_sizes(256, 4096, 128, costs=(1, 3)) == (2048, 256)
    # An even split: 1000 classes in two chunks of 512, not 896 and a shifted 896.
    assert bounded_chunk_sizes(100_000, 1000, 64, costs=(1, 3))[0] == 512
    # A size passed is kept and the other fitted to it.
    assert bounded_chunk_sizes(8192, 32000, 512, costs=(1, 3), chunk_size=128) == (128, 1408)
    assert bounded_chunk_sizes(8192, 32000, 512, costs=(1, 3), token_chunk_size=64)[1] == 64


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"hidden": jnp.zeros((3, 5))}, ValueError),
        ({"weight": jnp.zeros(4)}, ValueError),
        ({"labels": jnp.zeros(4, int)}, ValueError),
        ({"labels": jnp.zeros(3)}, TypeError),
        ({"hidden": jnp.zeros((3, 4), int)}, TypeError),
        ({"bias": jnp.zeros(5)}, ValueError),
        ({"chunk_size": 0}, ValueError),
        ({"token_chunk_size": 2.5}, TypeError),
        ({"label_smoothing": 1.0}, ValueError),
        ({"z_loss": -1.0}, ValueError),
        ({"logit_softcap": 0.0}, ValueError),
        ({"ignore_index": 1.5}, TypeError),
        ({"where": jnp.ones(3)}, TypeError),
        ({"where": jnp.ones((1, 3), bool)}, ValueError),
    ],
)
def test_argument_errors(kwargs, error):
    args = {"hidden": jnp.zeros((3, 4)), "weight": jnp.zeros((4, 6)), "labels": jnp.zeros(3, int)}
    args |= kwargs
    with pytest.raises(error):
        je.linear_softmax_cross_entropy(
            args.pop("hidden"), args.pop("weight"), args.pop("labels"), **args
        )


def _big_arrays(jaxpr):
    """Every (shape, size) of a variable in a jaxpr, sub-jaxprs (scan bodies) included."""
    found = []

    def visit(jx):
        for eqn in jx.eqns:
            for var in (*eqn.invars, *eqn.outvars):
                shape = getattr(var.aval, "shape", ())
                found.append((tuple(shape), math.prod(shape)))
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                visit(sub)

    visit(jaxpr.jaxpr)
    return found


@pytest.mark.parametrize("batch", [(24,), (4, 6)])
def test_no_tokens_by_vocab_array_in_jaxpr(batch):
    n, d, v = math.prod(batch), 8, 40
    h, w, labels, kwargs, cot, _ = _problem(9, batch, d, v, jnp.float32, 1.0, OPTIONS["all"])
    kwargs.pop("return_lse")

    def total(fn, **sizes):
        return lambda h, w, b: jnp.sum(fn(h, w, labels, **dict(kwargs, bias=b), **sizes) * cot)

    fused = total(je.linear_softmax_cross_entropy, chunk_size=16)
    dense = total(dense_linear_softmax_cross_entropy)

    def offending(fn):
        jaxpr = jax.make_jaxpr(jax.value_and_grad(fn, argnums=(0, 1, 2)))(h, w, kwargs["bias"])
        return [s for s, size in _big_arrays(jaxpr) if size >= n * v or (n in s and v in s)]

    assert offending(dense)  # the check sees the dense logits
    assert offending(fused) == []


def _temp_bytes(fn, n, d, v, dtype):
    def total(h, w, labels):
        return jnp.sum(fn(h, w, labels))

    shapes = (
        jax.ShapeDtypeStruct((n, d), dtype),
        jax.ShapeDtypeStruct((d, v), dtype),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    return harness.temp_bytes(jax.value_and_grad(total, argnums=(0, 1)), *shapes)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_compiled_temp_memory_is_small(dtype):
    """Compiled, never run: N=8192 tokens, D=4096, V=256000 (8 GiB of float32 logits)."""
    n, d, v = 8192, 4096, 256000
    fused = _temp_bytes(je.linear_softmax_cross_entropy, n, d, v, dtype)
    dense = _temp_bytes(dense_linear_softmax_cross_entropy, n, d, v, dtype)
    assert dense >= n * v * 4  # at least the float32 logits
    assert fused * 20 <= dense, (fused, dense)


# Transformations the custom VJP must get right.


@pytest.mark.parametrize("in_axes", [(None, None, 0, None), (None, None, None, 0), (0, None, 0, 0)])
@pytest.mark.parametrize("use", ["both", "lse"])
def test_grad_of_vmap_with_return_lse_and_shared_weights(in_axes, use):
    """Labels (or the mask) batched, hidden states and weight shared: lse alone is unbatched."""
    batch, n, d, v = 3, 5, 4, 11
    kh, kw, kl, km = jax.random.split(jax.random.key(0), 4)
    hidden = jax.random.normal(kh, (n, d))
    weight = jax.random.normal(kw, (d, v))
    labels = jax.random.randint(kl, (batch, n), 0, v)
    mask = jax.random.bernoulli(km, 0.7, (batch, n))
    hs = jnp.stack([hidden * (i + 1) for i in range(batch)])
    args = [
        hs if in_axes[0] == 0 else hidden,
        weight,
        labels if in_axes[2] == 0 else labels[0],
        mask if in_axes[3] == 0 else mask[0],
    ]

    def fused(h, w, lab, m):
        return je.linear_softmax_cross_entropy(
            h, w, lab, where=m, return_lse=True, chunk_size=4, token_chunk_size=2
        )

    def dense(h, w, lab, m):
        z = h @ w
        loss = je.softmax_cross_entropy_with_integer_labels(z, lab, where=m)
        return loss, jax.nn.logsumexp(z, -1)

    def objective(f):
        def fn(h, w):
            loss, lse = jax.vmap(f, in_axes=in_axes, axis_size=batch)(h, w, *args[2:])
            return (loss + 0.1 * lse**2).sum() if use == "both" else (lse**2).sum()

        return fn

    got = jax.jit(jax.grad(objective(fused), argnums=(0, 1)))(args[0], weight)
    want = jax.jit(jax.grad(objective(dense), argnums=(0, 1)))(args[0], weight)
    chex.assert_trees_all_close(got, want, rtol=1e-10, atol=1e-12)


def test_forward_mode_is_refused_by_jax():
    """A custom VJP has no forward mode; the README says so and JAX raises a TypeError."""
    h, w, lab = jnp.ones((4, 8)), jnp.ones((8, 10)), jnp.zeros(4, int)
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(lambda h: je.linear_softmax_cross_entropy(h, w, lab), (h,), (h,))
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jacfwd(lambda h: je.linear_softmax_cross_entropy(h, w, lab).sum())(h)


@pytest.mark.parametrize("how", ["ignore_index", "where"])
def test_skipped_token_with_nan_hidden_state_gets_zero_gradient(how):
    """A skipped token takes no part in any gradient, whatever its hidden state holds: its
    own is 0 and the weight's and bias's are those of the other tokens (one token tile and
    several)."""
    h = jnp.ones((5, 4)).at[2].set(jnp.nan).at[4, 1].set(jnp.inf)
    w = jnp.arange(24.0).reshape(4, 6) / 50
    b = jnp.linspace(-1, 1, 6)
    labels = jnp.array([0, 1, 2, 3, 4])
    skipped = np.array([False, False, True, False, True])
    if how == "ignore_index":
        kw = {"ignore_index": -100}
        labels = jnp.where(skipped, -100, labels)
    else:
        kw = {"where": jnp.asarray(~skipped)}
    clean = jnp.where(skipped[:, None], 0.0, h)
    want = jax.jit(
        jax.grad(
            lambda a, v, c: dense_linear_softmax_cross_entropy(a, v, labels, bias=c, **kw).sum(),
            (0, 1, 2),
        )
    )(clean, w, b)
    for tile in (None, 2):
        got = jax.jit(
            jax.grad(
                lambda a, v, c, tile=tile: je.linear_softmax_cross_entropy(
                    a, v, labels, bias=c, chunk_size=4, token_chunk_size=tile, **kw
                ).sum(),
                (0, 1, 2),
            )
        )(h, w, b)
        np.testing.assert_array_equal(got[0][skipped], 0.0)
        for g, ref_g in zip(got, want, strict=True):
            np.testing.assert_allclose(g, ref_g, rtol=1e-12, atol=1e-15)


def test_hessian_in_hidden_equals_dense():
    """Forward over reverse works: the backward pass is made of differentiable operations."""
    rng = np.random.default_rng(8)
    h = jnp.asarray(rng.normal(size=(3, 4)))
    w = jnp.asarray(rng.normal(size=(4, 7)))
    labels = jnp.array([0, 6, 3])
    kw = {"label_smoothing": 0.1, "z_loss": 0.01}
    got = jax.jit(
        jax.hessian(
            lambda a: je.linear_softmax_cross_entropy(a, w, labels, chunk_size=3, **kw).sum()
        )
    )(h)
    want = jax.jit(
        jax.hessian(lambda a: dense_linear_softmax_cross_entropy(a, w, labels, **kw).sum())
    )(h)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_logit_softcap_must_be_positive():
    h, w, labels = jnp.ones((2, 3)), jnp.ones((3, 4)), jnp.zeros(2, int)
    for cap in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match=r"logit_softcap.*positive"):
            je.linear_softmax_cross_entropy(h, w, labels, logit_softcap=cap)
