"""The benchmark cases: jaxent against Optax, naive JAX and SciPy, and the machine's limits.

One builder per case group, ``fused`` included: the large-vocabulary loss of a language-model
head, ``jaxent.linear_softmax_cross_entropy``, against the dense computation that forms the
logits. Each builder yields ``Case`` objects one at a time, so that only one case's data is alive
at once (the full shapes hold 512 MiB of float32 logits). The first variant of every case
is the reference of the agreement check. Cross-entropy cases also time the machine limit
that their target is stated against (a fresh ``jnp.copy`` of the logits, or a row-wise
``sum(exp(x))``) in the same round robin, so that the ratio shares the machine's noise.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.special
import scipy.stats
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxent as je
from jaxent._src.vocab import dense_linear_softmax_cross_entropy

from .harness import Case, Variant

FULL_SHAPES: tuple[tuple[int, int], ...] = ((4096, 32768), (16384, 8192), (1024, 131072))
QUICK_SHAPES: tuple[tuple[int, int], ...] = ((64, 512), (16, 2048))
DTYPES = ("float32", "bfloat16")
GROUPS = (
    "limits",
    "xent_int",
    "xent_soft",
    "bce",
    "entropy_logits",
    "kl_logits",
    "probs",
    "measures",
    "measures_logits",
    "fused",
    "estimators",
)


def _rtol(dtype: str) -> float:
    # bfloat16 carries 8 significant bits: Optax and the naive forms compute in it.
    return 1e-4 if dtype == "float32" else 6e-2


def _logits(key: int, shape: tuple[int, ...], dtype: str) -> jax.Array:
    x = 2.0 * jax.random.normal(jax.random.key(key), shape, jnp.float32)
    return jax.block_until_ready(x.astype(dtype))


def _int_labels(shape: tuple[int, int]) -> jax.Array:
    return jax.random.randint(jax.random.key(7), shape[:1], 0, shape[1])


def _value_and_grad(loss: Callable[..., jax.Array], argnums: int | tuple[int, ...] = 0):
    """value_and_grad of the float32 sum of the per-example losses."""
    return jax.value_and_grad(lambda *a: jnp.sum(loss(*a).astype(jnp.float32)), argnums)


def _naive_int(x, y):
    onehot = jax.nn.one_hot(y, x.shape[-1], dtype=x.dtype)
    return -jnp.sum(onehot * jnp.log(jax.nn.softmax(x, axis=-1)), axis=-1)


def _naive_soft(x, t):
    return -jnp.sum(t * jnp.log(jax.nn.softmax(x, axis=-1)), axis=-1)


def _naive_bce(x, t):
    s = jax.nn.sigmoid(x)
    return -(t * jnp.log(s) + (1 - t) * jnp.log(1 - s))


def _naive_entropy(x):
    p = jax.nn.softmax(x, axis=-1)
    return -jnp.sum(p * jnp.log(p), axis=-1)


def _naive_kl(a, b):
    p = jax.nn.softmax(a, axis=-1)
    return jnp.sum(p * (jnp.log(p) - jnp.log(jax.nn.softmax(b, axis=-1))), axis=-1)


def _optax_kl(a, b):
    log_p = jax.nn.log_softmax(a, axis=-1)
    return optax.losses.kl_divergence_with_log_targets(jax.nn.log_softmax(b, axis=-1), log_p)


def _copy(x, *_):
    return jnp.copy(x)


def _row_sum_exp(x, *_):
    return jnp.sum(jnp.exp(x.astype(jnp.float32)), axis=-1)


def _row_sum_exp_blocked(x, *_):
    """Row-wise sum(exp(x)) over blocks of 16 rows: on XLA's CPU backend a long-row
    reduction of exp(x) stores exp(x) whole (a fresh buffer, page faults); per block it
    does not."""
    blocks = x.reshape(x.shape[0] // 16, 16, x.shape[1])
    return jax.lax.map(_row_sum_exp, blocks).reshape(x.shape[0])


def _limit(name: str, x: jax.Array) -> Variant:
    fn = _copy if name == "copy" else _row_sum_exp
    return Variant(name, fn, (x,), limit=True)


def _pair_cases(
    group: str,
    shape: tuple[int, int],
    dtype: str,
    make_args: Callable[[], tuple[jax.Array, ...]],
    impls: list[tuple[str, Callable[..., jax.Array]]],
    argnums: int | tuple[int, ...] = 0,
    note: str = "",
    unchecked: tuple[str, ...] = (),
    vg_rtol: float | None = None,
) -> Iterator[Case]:
    """A forward case and a value-and-grad case for the same implementations.

    Variants named in ``unchecked`` are timed but left out of the agreement check (a naive
    form that overflows in bfloat16, say); ``note`` says why. ``vg_rtol``: the
    value-and-grad case's tolerance where it differs from the forward's.
    """
    if dtype == "bfloat16":
        # The naive forms compute in bfloat16 end to end: softmax probabilities round to 0
        # or 1 and their logs lose all digits, so they are timed but not compared.
        unchecked = (*unchecked, "naive")
        note = "; ".join(filter(None, (note, "naive (in bfloat16) timed, not compared")))
    args = make_args()
    data_bytes = int(args[0].nbytes)
    fwd = [Variant(n, f, args, check=n not in unchecked) for n, f in impls]
    fwd.append(_limit("sum_exp", args[0]))
    yield Case(group, "fwd", shape, dtype, fwd, _rtol(dtype), note=note, data_bytes=data_bytes)
    if dtype == "bfloat16":
        # Optax computes in bfloat16: its gradients carry bfloat16 rounding of p - t (errors
        # of 2-20% of the typical gradient), reported in the error column, not enforced.
        unchecked = (*unchecked, "optax")
    vg = [Variant(n, _value_and_grad(f, argnums), args, check=n not in unchecked) for n, f in impls]
    vg.append(_limit("copy", args[0]))
    rtol = _rtol(dtype) if vg_rtol is None else vg_rtol
    yield Case(group, "vg", shape, dtype, vg, rtol, note=note, data_bytes=data_bytes)


def limits(shapes, quick: bool) -> Iterator[Case]:
    shape = shapes[0]
    for dtype in DTYPES:
        x = _logits(0, shape, dtype)
        variants = [
            Variant("sum", lambda x: jnp.sum(x, dtype=jnp.float32), (x,), check=False),
            Variant("copy", _copy, (x,), check=False),
            Variant("sum_exp", _row_sum_exp, (x,), check=False),
        ]
        yield Case(
            "limits",
            "memory",
            shape,
            dtype,
            variants,
            note="sum: read bandwidth; copy: fresh output buffer; sum_exp: row-wise exp",
            data_bytes=int(x.nbytes),
        )
        n = 256 if quick else 2048
        a = _logits(1, (n, n), dtype)
        b = _logits(2, (n, n), dtype)
        yield Case(
            "limits",
            "matmul",
            (n, n, n),
            dtype,
            [Variant("matmul", jnp.matmul, (a, b), check=False)],
            note=f"{2 * n**3 / 1e9:.3g} GFLOP",
            data_bytes=int(a.nbytes),
        )


def xent_int(shapes, quick: bool) -> Iterator[Case]:
    impls = [
        ("jaxent", je.softmax_cross_entropy_with_integer_labels),
        ("optax", optax.losses.softmax_cross_entropy_with_integer_labels),
        ("naive", _naive_int),
    ]
    for shape in shapes:
        # The naive form (2-4x slower, 0.5-2 GiB of temp) is timed at the first shape only.
        these = impls if shape == shapes[0] else impls[:2]
        for dtype in DTYPES:

            def make(shape=shape, dtype=dtype):
                return _logits(0, shape, dtype), _int_labels(shape)

            fwd, vg = _pair_cases("xent_int", shape, dtype, make, these)
            if shape == max(shapes, key=lambda s: s[1]):
                fwd.variants.append(
                    Variant(
                        "sum_exp_rows16",
                        _row_sum_exp_blocked,
                        (fwd.variants[0].args[0],),
                        limit=True,
                    )
                )
                fwd.note = "sum_exp_rows16: the row-wise sum(exp(x)) computed 16 rows at a time"
            yield fwd
            yield vg


def _every(shapes) -> Iterator[tuple[tuple[int, int], str]]:
    """Every (shape, dtype) pair of the logits groups."""
    for shape in shapes:
        for dtype in DTYPES:
            yield shape, dtype


def _first(impls: list, shape, shapes) -> list:
    """The naive form (slow, up to GiBs of temp) is timed at the first shape only."""
    return impls if shape == shapes[0] else [i for i in impls if i[0] != "naive"]


def xent_soft(shapes, quick: bool) -> Iterator[Case]:
    impls = [
        ("jaxent", je.softmax_cross_entropy),
        ("optax", optax.losses.softmax_cross_entropy),
        ("naive", _naive_soft),
    ]
    for shape, dtype in _every(shapes):

        def make(shape=shape, dtype=dtype):
            t = jax.nn.softmax(_logits(1, shape, "float32"), axis=-1).astype(dtype)
            return _logits(0, shape, dtype), t

        yield from _pair_cases("xent_soft", shape, dtype, make, _first(impls, shape, shapes))


def bce(shapes, quick: bool) -> Iterator[Case]:
    impls = [
        ("jaxent", je.sigmoid_binary_cross_entropy),
        ("optax", optax.losses.sigmoid_binary_cross_entropy),
        ("naive", _naive_bce),
    ]
    shape = shapes[0]
    for dtype in DTYPES:

        def make(dtype=dtype):
            t = jax.random.bernoulli(jax.random.key(3), 0.3, shape).astype(dtype)
            return _logits(0, shape, dtype), t

        yield from _pair_cases("bce", shape, dtype, make, impls)


def entropy_logits(shapes, quick: bool) -> Iterator[Case]:
    impls = [("jaxent", je.entropy_from_logits), ("naive", _naive_entropy)]
    for shape, dtype in _every(shapes):

        def make(shape=shape, dtype=dtype):
            return (_logits(0, shape, dtype),)

        yield from _pair_cases("entropy_logits", shape, dtype, make, impls)


def kl_logits(shapes, quick: bool) -> Iterator[Case]:
    impls = [
        ("jaxent", je.kl_divergence_from_logits),
        ("optax", _optax_kl),
        ("naive", _naive_kl),
    ]
    for shape, dtype in _every(shapes):

        def make(shape=shape, dtype=dtype):
            return _logits(0, shape, dtype), _logits(1, shape, dtype)

        bf16 = dtype == "bfloat16"
        yield from _pair_cases(
            "kl_logits",
            shape,
            dtype,
            make,
            _first(impls, shape, shapes),
            argnums=(0, 1),
            note="optax's bfloat16 gradient (log p - log q in bfloat16) timed, not compared"
            if bf16
            else "",
            unchecked=("optax",) if bf16 else (),
            # float32 gradients of the KL round at about 1e-4 of their typical size: against
            # float64 (every 16th row at [4096, 32768]), jaxent's in the first argument is off
            # by a scaled 1.5e-4 and optax's by 7.4e-5, so the two differ by up to 2e-4.
            vg_rtol=None if bf16 else 3e-4,
        )


def _naive_kl_probs(p, q):
    return jnp.sum(jax.scipy.special.rel_entr(p, q), axis=-1)


def _naive_xent_probs(p, q):
    return -jnp.sum(jax.scipy.special.xlogy(p, q), axis=-1)


def _naive_entropy_probs(p, _):
    return jnp.sum(jax.scipy.special.entr(p), axis=-1)


def probs(shapes, quick: bool) -> Iterator[Case]:
    """KL divergence, cross-entropy and entropy of probabilities (no softmax) at the logits
    groups' shapes, against the naive ``jax.scipy.special`` forms (optax has none)."""
    pairs = [
        ("kl", je.kl_divergence, _naive_kl_probs),
        ("xent", je.cross_entropy, _naive_xent_probs),
        ("entropy", lambda p, _: je.entropy(p), _naive_entropy_probs),
    ]
    for shape, dtype in _every(shapes):

        def make(shape=shape, dtype=dtype):
            p, q = _probs(0, shape), _probs(1, shape)
            return (
                jax.block_until_ready(jnp.asarray(p).astype(dtype)),
                jax.block_until_ready(jnp.asarray(q).astype(dtype)),
            )

        for name, mine, naive in pairs:
            yield from _pair_cases(
                f"probs:{name}",
                shape,
                dtype,
                make,
                [("jaxent", mine), ("naive", naive)],
                argnums=(0, 1),
            )


def _probs(key: int, shape: tuple[int, int]) -> np.ndarray:
    p = np.asarray(jax.nn.softmax(_logits(key, shape, "float32"), axis=-1))
    return np.ascontiguousarray(p, dtype=np.float32)


def measures(shapes, quick: bool) -> Iterator[Case]:
    """Entropy and KL of many distributions: vmapped jaxent, jitted xlogy forms, SciPy."""
    shape = (256, 256) if quick else (16384, 1024)
    p_np, q_np = _probs(4, shape), _probs(5, shape)
    p, q = jnp.asarray(p_np), jnp.asarray(q_np)
    note = "host variants run NumPy/SciPy on the same float32 data"
    yield Case(
        "measures",
        "entropy",
        shape,
        "float32",
        [
            Variant("jaxent", jax.vmap(je.entropy), (p,)),
            Variant("xlogy", lambda p: -jnp.sum(jax.scipy.special.xlogy(p, p), axis=-1), (p,)),
            Variant("scipy.stats", lambda p: scipy.stats.entropy(p, axis=-1), (p_np,), "host"),
            Variant("scipy.entr", lambda p: scipy.special.entr(p).sum(-1), (p_np,), "host"),
            # Not a valid implementation (NaN at p = 0): the fused-reduction bound.
            Variant("p*log(p)", lambda p: -jnp.sum(p * jnp.log(p), axis=-1), (p,), limit=True),
        ],
        baseline="scipy.stats",
        note=note,
        data_bytes=int(p.nbytes),
    )
    yield Case(
        "measures",
        "kl",
        shape,
        "float32",
        [
            Variant("jaxent", jax.vmap(je.kl_divergence), (p, q)),
            Variant(
                "xlogy",
                lambda p, q: jnp.sum(jax.scipy.special.rel_entr(p, q), axis=-1),
                (p, q),
            ),
            Variant(
                "scipy.stats", lambda p, q: scipy.stats.entropy(p, q, axis=-1), (p_np, q_np), "host"
            ),
            Variant(
                "scipy.rel_entr",
                lambda p, q: scipy.special.rel_entr(p, q).sum(-1),
                (p_np, q_np),
                "host",
            ),
        ],
        baseline="scipy.stats",
        note=note,
        data_bytes=2 * int(p.nbytes),
    )


def _naive_js(a, b):
    p, q = jax.nn.softmax(a, axis=-1), jax.nn.softmax(b, axis=-1)
    m = 0.5 * (p + q)
    return 0.5 * jnp.sum(p * jnp.log(p / m) + q * jnp.log(q / m), axis=-1)


def _naive_renyi2(a, b):
    p, q = jax.nn.softmax(a, axis=-1), jax.nn.softmax(b, axis=-1)
    return jnp.log(jnp.sum(p * p / q, axis=-1))


def _naive_softmax_focal(x, y):
    p_c = jnp.take_along_axis(jax.nn.softmax(x, axis=-1), y[:, None], axis=-1)[:, 0]
    return -((1 - p_c) ** 2) * jnp.log(p_c)


def _naive_poly1(x, t):
    p = jax.nn.softmax(x, axis=-1)
    return -jnp.sum(t * jnp.log(p), axis=-1) + jnp.sum(t * (1 - p), axis=-1)


def _naive_sigmoid_focal(x, t):
    p = jax.nn.sigmoid(x)
    p_t = t * p + (1 - t) * (1 - p)
    return -((1 - p_t) ** 2) * (t * jnp.log(p) + (1 - t) * jnp.log(1 - p))


def _joint_softmax(z):
    flat = z.reshape(*z.shape[:-2], -1)
    return jax.nn.softmax(flat, axis=-1).reshape(z.shape)


def _naive_joint_entropy(z):
    p = _joint_softmax(z)
    return -jnp.sum(p * jnp.log(p), axis=(-2, -1))


def _naive_conditional_entropy(z):
    p = _joint_softmax(z)
    return jnp.sum(p * jnp.log(jnp.sum(p, axis=-1, keepdims=True) / p), axis=(-2, -1))


def _naive_mutual_information(z):
    p = _joint_softmax(z)
    px, py = jnp.sum(p, axis=-1, keepdims=True), jnp.sum(p, axis=-2, keepdims=True)
    return jnp.sum(p * jnp.log(p / (px * py)), axis=(-2, -1))


def _measures_logits_impls(shape):
    """(name, jaxent, naive, the arguments' builder, argnums of value-and-grad)."""

    def two():
        return _logits(0, shape, "float32"), _logits(1, shape, "float32")

    def labels():
        return _logits(0, shape, "float32"), _int_labels(shape)

    def soft():
        t = jax.nn.softmax(_logits(1, shape, "float32"), axis=-1)
        return _logits(0, shape, "float32"), t

    def binary():
        t = jax.random.uniform(jax.random.key(3), shape, jnp.float32)
        return _logits(0, shape, "float32"), t

    table = (shape[0], 64, shape[1] // 64)

    def joint():
        return (_logits(0, table, "float32"),)

    return [
        ("js", je.js_divergence_from_logits, _naive_js, two, (0, 1)),
        (
            "renyi_alpha2",
            lambda a, b: je.renyi_divergence_from_logits(a, b, 2.0),
            _naive_renyi2,
            two,
            (0, 1),
        ),
        ("softmax_focal", je.softmax_focal_loss, _naive_softmax_focal, labels, 0),
        ("poly1", je.poly1_softmax_cross_entropy, _naive_poly1, soft, 0),
        ("sigmoid_focal", je.sigmoid_focal_loss, _naive_sigmoid_focal, binary, 0),
        ("joint_entropy", je.joint_entropy_from_logits, _naive_joint_entropy, joint, 0),
        (
            "conditional_entropy",
            je.conditional_entropy_from_logits,
            _naive_conditional_entropy,
            joint,
            0,
        ),
        (
            "mutual_information",
            je.mutual_information_from_logits,
            _naive_mutual_information,
            joint,
            0,
        ),
    ]


MEASURES_LOGITS_COUNT = 16


def measures_logits(shapes, quick: bool) -> Iterator[Case]:
    """The other measures and losses on logits (float32), forward and value-and-grad,
    against the naive form (softmax, then the measure on probabilities). The joint measures
    take tables [rows, 64, K / 64] of the same size."""
    shape = (64, 512) if quick else (2048, 4096)
    for name, fn, naive, make, argnums in _measures_logits_impls(shape):
        impls = [("jaxent", fn), ("naive", naive)]
        note = "naive: its difference reported, not enforced (float32 rounding of its logs)"
        pairs = _pair_cases(
            name, shape, "float32", make, impls, argnums, note=note, unchecked=("naive",)
        )
        for case in pairs:
            data_shape = case.variants[0].args[0].shape
            yield dataclasses.replace(
                case, group="measures_logits", name=f"{name} {case.name}", shape=data_shape
            )


def _optax_linear(hidden, weight, labels):
    logits = jnp.matmul(hidden, weight, preferred_element_type=jnp.float32)
    return optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels)


def _fused_shapes(quick: bool) -> list[tuple[tuple[int, int, int], str]]:
    """([N, D, V], dtype) of the fused cases: tokens, features, vocabulary."""
    if quick:
        return [((64, 32, 4096), dtype) for dtype in DTYPES]
    out = [((2048, 512, 32768), dtype) for dtype in DTYPES]
    if jax.default_backend() == "gpu":
        out.append(((8192, 4096, 131072), "bfloat16"))
    return out


def fused(shapes, quick: bool) -> Iterator[Case]:
    """Value and gradient (in hidden and weight) of the summed loss of a language-model head.

    ``dense`` forms the ``[N, V]`` logits (float32 accumulation) and applies jaxent's
    integer-label cross-entropy: the reference. ``fused`` is
    ``jaxent.linear_softmax_cross_entropy``, which never forms them; ``optax`` forms them and
    applies Optax's loss. The cases' own shapes ``[N, D, V]`` replace ``shapes``.
    """
    impls = [
        ("dense", dense_linear_softmax_cross_entropy),
        ("fused", je.linear_softmax_cross_entropy),
        ("optax", _optax_linear),
    ]
    for (n, d, v), dtype in _fused_shapes(quick):
        hidden = _logits(0, (n, d), dtype)
        weight = jax.block_until_ready(
            (jax.random.normal(jax.random.key(1), (d, v)) / np.sqrt(d)).astype(dtype)
        )
        labels = _int_labels((n, v))
        args = (hidden, weight, labels)
        yield Case(
            "fused",
            "vg",
            (n, d, v),
            dtype,
            [Variant(name, _value_and_grad(f, (0, 1)), args) for name, f in impls],
            _rtol(dtype),
            note="shape: tokens N, features D, vocabulary V; ratios to the dense variant",
            data_bytes=int(hidden.nbytes + weight.nbytes),
        )


def _parallel_configs(quick: bool) -> list[tuple[str, int, tuple[int, ...]]]:
    """(case, model devices, shape) of the ``parallel`` group: V grows at 8 devices, then
    the device count grows at one V. Shapes: ``xent`` [N, V], ``linear`` [N, D, V]."""
    if quick:
        return [("xent", 8, (64, 1024)), ("linear", 8, (64, 32, 1024))]
    xent = [(8, v) for v in (8192, 32768, 131072)] + [(n, 32768) for n in (2, 4)]
    linear = [(8, v) for v in (8192, 32768)] + [(n, 32768) for n in (2, 4)]
    return [("xent", n, (256, v)) for n, v in xent] + [
        ("linear", n, (256, 128, v)) for n, v in linear
    ]


def _constrain(x: jax.Array, sharding: NamedSharding) -> jax.Array:
    return jax.lax.with_sharding_constraint(x, sharding)


def parallel(shapes, quick: bool) -> Iterator[Case]:
    """Vocabulary-parallel losses against all-gathering the logits, on a ``model`` mesh axis.

    Needs as many devices as the largest mesh (8): ``python -m benchmarks.parallel`` starts
    JAX with 8 simulated CPU devices. The vocabulary is split over n devices; tokens and
    labels are replicated. ``gathered`` all-gathers the logits (a sharding constraint to
    replicated) and applies jaxent's single-device loss: the reference. ``parallel`` is
    ``jaxent.parallel.vocab_parallel_softmax_cross_entropy`` inside ``shard_map``; for the
    ``linear`` case (hidden states times a weight split over the vocabulary)
    ``parallel_logits`` applies it to this device's ``[N, V/n]`` logits block and
    ``parallel_fused`` is ``vocab_parallel_linear_softmax_cross_entropy``, which never forms
    it. Value and gradient of the summed loss (in the logits, or in hidden and weight).
    """
    vp = je.parallel
    for case, n, shape in _parallel_configs(quick):
        mesh = jax.make_mesh((n,), ("model",), (AxisType.Auto,), devices=jax.devices()[:n])
        whole, split = NamedSharding(mesh, P()), NamedSharding(mesh, P(None, "model"))
        labels = jax.device_put(_int_labels((shape[0], shape[-1])), whole)

        def smap(f, *in_specs, mesh=mesh):
            return jax.shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=P())

        def gathered(z, y, whole=whole):
            return je.softmax_cross_entropy_with_integer_labels(_constrain(z, whole), y)

        def on_logits(z, y):
            return vp.vocab_parallel_softmax_cross_entropy(z, y, axis_name="model")

        if case == "xent":
            args = (jax.device_put(_logits(0, shape, "float32"), split), labels)
            impls = [("gathered", gathered), ("parallel", smap(on_logits, P(None, "model"), P()))]
            argnums: int | tuple[int, ...] = 0
            data_bytes = int(args[0].nbytes)
        else:
            _, d, v = shape
            hidden = jax.device_put(_logits(0, shape[:2], "float32"), whole)
            weight = jax.random.normal(jax.random.key(1), (d, v)) / np.sqrt(d)
            args = (hidden, jax.device_put(weight, split), labels)
            fused = functools.partial(
                vp.vocab_parallel_linear_softmax_cross_entropy, axis_name="model"
            )
            impls = [
                ("gathered", lambda h, w, y, g=gathered, s=split: g(_constrain(h @ w, s), y)),
                (
                    "parallel_logits",
                    smap(lambda h, w, y: on_logits(h @ w, y), P(), P(None, "model"), P()),
                ),
                ("parallel_fused", smap(fused, P(), P(None, "model"), P())),
            ]
            argnums = (0, 1)
            data_bytes = int(hidden.nbytes + weight.nbytes)
        yield Case(
            "parallel",
            case,
            (n, *shape),
            "float32",
            [Variant(name, _value_and_grad(f, argnums), args) for name, f in impls],
            note="shape: model devices n, tokens N, (features D,) vocabulary V; ratios to gathered",
            data_bytes=data_bytes,
        )


def _pyitlib() -> Any:
    """pyitlib's discrete random variable module, or None where it is not installed."""
    try:
        return importlib.import_module("pyitlib.discrete_random_variable")
    except ImportError:
        return None


def _counts(shape: tuple[int, int], total: int) -> np.ndarray:
    """Histograms of ``total`` draws from Dirichlet(0.5) distributions, float32."""
    rng = np.random.default_rng(9)
    p = rng.dirichlet(np.full(shape[1], 0.5), size=shape[0])
    return rng.multinomial(total, p).astype(np.float32)


def _scipy_loop(*arrays: np.ndarray) -> np.ndarray:
    return np.array([scipy.stats.entropy(*rows) for rows in zip(*arrays, strict=True)])


def estimators(shapes, quick: bool) -> Iterator[Case]:
    """Many small distributions at once: entropy and KL of probabilities, and the entropy
    estimators on histograms, each vmapped over the batch, against SciPy's
    ``stats.entropy`` on the whole batch and in a Python loop over rows, and against
    pyitlib (which loops over rows itself) where it is installed. pyitlib and NSB are timed
    on the first tenth of the rows."""
    shape = (64, 32) if quick else (10_000, 256)
    few = (shape[0] // 10, shape[1])
    total = 100 if quick else 1000
    drv = _pyitlib()
    p_np, q_np = _probs(4, shape), _probs(5, shape)
    p, q = jnp.asarray(p_np), jnp.asarray(q_np)
    note = "host variants run NumPy/SciPy/pyitlib on the same float32 data; ratios to scipy.stats"
    variants = [
        Variant("jaxent", jax.vmap(je.entropy), (p,)),
        Variant("scipy.stats", lambda p: scipy.stats.entropy(p, axis=-1), (p_np,), "host"),
        Variant("scipy loop", _scipy_loop, (p_np,), "host"),
    ]
    if drv is not None:
        variants.append(
            Variant("pyitlib", lambda p: drv.entropy_pmf(p, base=np.e), (p_np,), "host")
        )
    yield Case("estimators", "entropy", shape, "float32", variants, 1e-5, "scipy.stats", note)
    variants = [
        Variant("jaxent", jax.vmap(je.kl_divergence), (p, q)),
        Variant(
            "scipy.stats", lambda p, q: scipy.stats.entropy(p, q, axis=-1), (p_np, q_np), "host"
        ),
        Variant("scipy loop", _scipy_loop, (p_np, q_np), "host"),
    ]
    if drv is not None:
        variants.append(
            Variant(
                "pyitlib",
                lambda p, q: drv.divergence_kullbackleibler_pmf(p, q, base=np.e),
                (p_np, q_np),
                "host",
            )
        )
    yield Case("estimators", "kl", shape, "float32", variants, 1e-5, "scipy.stats", note)
    c_np = _counts(shape, total)
    c = jnp.asarray(c_np)
    yield Case(
        "estimators",
        "plugin",
        shape,
        "float32",
        [
            Variant("jaxent", jax.vmap(je.estimators.entropy_plugin), (c,)),
            Variant("scipy.stats", lambda c: scipy.stats.entropy(c, axis=-1), (c_np,), "host"),
            Variant("scipy loop", _scipy_loop, (c_np,), "host"),
        ],
        1e-5,
        "scipy.stats",
        f"counts: {total} draws per histogram; SciPy normalises them to probabilities",
    )
    for name in ("miller_madow", "grassberger", "chao_shen", "james_stein"):
        fn = getattr(je.estimators, f"entropy_{name}")
        yield Case("estimators", name, shape, "float32", [Variant("jaxent", jax.vmap(fn), (c,))])
    few_c = jnp.asarray(c_np[: few[0]])
    yield Case(
        "estimators",
        "nsb",
        few,
        "float32",
        [Variant("jaxent", jax.vmap(je.estimators.entropy_nsb), (few_c,))],
        note="128 quadrature nodes x K gammaln and digamma per histogram",
    )
    if drv is not None:
        samples = np.stack([np.repeat(np.arange(few[1]), r) for r in c_np[: few[0]].astype(int)])
        alphabet = np.broadcast_to(np.arange(few[1]), few)
        for name, estimator in (("plugin", "ML"), ("james_stein", "JAMES-STEIN")):
            fn = getattr(je.estimators, f"entropy_{name}")

            def pyit(x, estimator=estimator):
                return drv.entropy(x, estimator=estimator, base=np.e, Alphabet_X=alphabet)

            yield Case(
                "estimators",
                f"{name} vs pyitlib",
                few,
                "float32",
                [
                    Variant("jaxent", jax.vmap(fn), (few_c,)),
                    Variant("pyitlib", pyit, (samples,), "host"),
                ],
                1e-5,
                "pyitlib",
                "pyitlib takes the samples behind the counts; ratios to pyitlib",
            )


BUILDERS: dict[str, Callable[[Any, bool], Iterator[Case]]] = {
    "limits": limits,
    "xent_int": xent_int,
    "xent_soft": xent_soft,
    "bce": bce,
    "entropy_logits": entropy_logits,
    "kl_logits": kl_logits,
    "probs": probs,
    "measures": measures,
    "measures_logits": measures_logits,
    "fused": fused,
    "estimators": estimators,
    # Not in GROUPS: it needs 8 devices, so ``python -m benchmarks.parallel`` runs it.
    "parallel": parallel,
}


def count(group: str, quick: bool) -> int:
    """How many cases a group yields, without building its data."""
    shapes = QUICK_SHAPES if quick else FULL_SHAPES
    per_dtype = {
        "limits": 2,
        "xent_int": 2 * len(shapes),
        "xent_soft": 2 * len(shapes),
        "bce": 2,
        "entropy_logits": 2 * len(shapes),
        "kl_logits": 2 * len(shapes),
        "probs": 6 * len(shapes),
    }
    if group == "fused":
        return len(_fused_shapes(quick))
    if group == "parallel":
        return len(_parallel_configs(quick))
    if group == "estimators":
        return 8 + 2 * (_pyitlib() is not None)
    if group == "measures_logits":
        return MEASURES_LOGITS_COUNT
    return 2 if group == "measures" else per_dtype[group] * len(DTYPES)


def cases(group: str, quick: bool) -> Iterator[Case]:
    return BUILDERS[group](QUICK_SHAPES if quick else FULL_SHAPES, quick)
