"""One of the two processes of ``test_distributed.py``: jaxent on a mesh spanning processes.

Run as ``python tests/distributed_worker.py PORT PROCESS_ID CHECK`` with four simulated CPU
devices (``XLA_FLAGS=--xla_force_host_platform_device_count=4``), once per process. The two
processes join through ``jax.distributed.initialize`` at ``127.0.0.1:PORT`` and run the
same program on one 8-device mesh (CPU collectives over gloo). Every process builds the
same seeded inputs, puts its shards of them on its devices, runs the sharded computation,
gathers the result and compares it with the same functions computed on one of its own
devices from the whole arrays. ``CHECK`` is ``plain`` (the public functions under ``jit``
with inputs sharded over tokens) or ``parallel`` (``jaxent.parallel`` under ``shard_map``
with the vocabulary split over devices). Prints ``ok CHECK`` when every comparison holds.

Nothing here runs on import (the test run imports every module for its doctests).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxent as je

RTOL, ATOL = 2e-5, 2e-6  # float32: sums of tens of terms in a different order
IGNORE = -100


def join(port: int, process_id: int) -> None:
    """Joins the two processes; every socket is on 127.0.0.1, every wait is bounded."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    address = f"127.0.0.1:{port}"
    jax.distributed.initialize(
        coordinator_address=address,
        coordinator_bind_address=address,
        num_processes=2,
        process_id=process_id,
        initialization_timeout=60,
        heartbeat_timeout_seconds=30,
        shutdown_timeout_seconds=30,
    )
    assert jax.process_count() == 2 and jax.device_count() == 8, jax.devices()
    assert jax.local_device_count() == 4


def put(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """The global array ``x`` with this process's shards on its devices."""
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def gather(tree: Any) -> Any:
    """Every leaf of a global result as one NumPy array on every process."""
    return jax.tree.map(
        lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True)), tree
    )


def on_one_device(fn: Callable[..., Any], *args: Any) -> Any:
    """``jit(fn)`` of whole arrays on this process's first device: the reference."""
    device = jax.local_devices()[0]
    return jax.device_get(jax.jit(fn)(*jax.device_put(args, device)))


def assert_close(got: Any, want: Any, what: str) -> None:
    assert jax.tree.structure(got) == jax.tree.structure(want), what
    for (path, g), w in zip(
        jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want), strict=True
    ):
        err_msg = f"{what}, {jax.tree_util.keystr(path)}"
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=err_msg)


def mesh(shape: tuple[int, ...], names: tuple[str, ...], axis_type: AxisType):
    """A mesh over the 8 devices of both processes: with shape (2, 4), the first axis runs
    across the processes and the second within each."""
    return jax.make_mesh(shape, names, axis_types=(axis_type,) * len(shape))


Call = tuple[Callable[[dict[str, jax.Array]], Any], tuple[str, ...]]


def values_and_grads(calls: dict[str, Call], x: dict[str, jax.Array]) -> dict[str, Any]:
    """Each call's per-token values and the gradient of their sum in the inputs it names.

    A call returning ``(loss, lse)`` is differentiated through ``sum(loss + 0.1 lse**2)``.
    """
    out = {}
    for name, (fn, keys) in calls.items():

        def total(diff, fn=fn):
            r = fn({**x, **diff})
            return (r[0] + 0.1 * r[1] ** 2 if isinstance(r, tuple) else r).sum(), r

        (_, values), grads = jax.value_and_grad(total, has_aux=True)({k: x[k] for k in keys})
        out[name] = (values, grads)
    return out


N, D, V = 32, 16, 64
OPTIONS = {"ignore_index": IGNORE, "label_smoothing": 0.1, "z_loss": 1e-3}
FUSED = {**OPTIONS, "logit_softcap": 8.0, "return_lse": True}


def inputs() -> dict[str, np.ndarray]:
    """Tokens with labels (one ignored, one invalid but masked out), logits with a -inf and
    NaN at masked-out classes, hidden states and a head."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    labels = rng.integers(0, V, N)
    labels[3], labels[10] = IGNORE, -1
    rows = np.arange(N) % 5 != 0
    z = rng.normal(size=(N, V))
    z[2, (labels[2] + 1) % V] = -np.inf
    classes = rng.random((N, V)) < 0.8
    classes[:, 0] = True
    t = rng.random((N, V)) + 0.1
    return {
        "z": z.astype(f32),
        "zm": np.where(classes, z, np.nan).astype(f32),
        "q": rng.normal(size=(N, V)).astype(f32),
        "t": (t / t.sum(1, keepdims=True)).astype(f32),
        "y": labels.astype(np.int32),
        # For the per-class mask, which keeps every row: no invalid label.
        "yc": np.where(labels == -1, IGNORE, labels).astype(np.int32),
        "rows": rows,
        "classes": classes,
        "cw": rng.random(V).astype(f32) + 0.5,
        "h": rng.normal(size=(N, D)).astype(f32),
        "w": (rng.normal(size=(D, V)) / 4).astype(f32),
        "b": rng.normal(size=(V,)).astype(f32),
    }


# --- plain: the public functions under jit, inputs sharded over tokens ----------------------

PLAIN: dict[str, Call] = {
    "integer": (
        lambda x: je.softmax_cross_entropy_with_integer_labels(
            x["z"], x["y"], where=x["rows"], class_weights=x["cw"], **OPTIONS
        ),
        ("z",),
    ),
    "soft": (lambda x: je.softmax_cross_entropy(x["z"], x["t"], class_weights=x["cw"]), ("z",)),
    "entropy": (lambda x: je.entropy_from_logits(x["zm"], where=x["classes"], base=2), ("zm",)),
    "kl": (lambda x: je.kl_divergence_from_logits(x["z"], x["q"]), ("z", "q")),
    "linear": (
        lambda x: je.linear_softmax_cross_entropy(
            x["h"], x["w"], x["y"], bias=x["b"], where=x["rows"], **FUSED
        ),
        ("h", "w", "b"),
    ),
}


def check_plain() -> None:
    arrays = inputs()
    want = on_one_device(lambda x: values_and_grads(PLAIN, x), arrays)
    configs = [
        ((8,), AxisType.Explicit, "data"),
        ((2, 4), AxisType.Explicit, "data"),
        ((2, 4), AxisType.Auto, ("data", "model")),
    ]
    for shape, axis_type, tokens in configs:
        m = mesh(shape, ("data", "model")[: len(shape)], axis_type)
        what = f"plain, mesh {shape} {axis_type.name}, tokens over {tokens}"
        replicated = ("cw", "w", "b")
        shardings = {k: NamedSharding(m, P() if k in replicated else P(tokens)) for k in arrays}
        with jax.set_mesh(m):
            x = {k: put(v, shardings[k]) for k, v in arrays.items()}
            got = jax.jit(lambda x: values_and_grads(PLAIN, x))(x)
        if axis_type == AxisType.Explicit:
            # Explicit axes: the gradients come back sharded like their inputs.
            for name, key in (("integer", "z"), ("linear", "h"), ("linear", "w")):
                g = got[name][1][key]
                assert g.sharding.is_equivalent_to(shardings[key], g.ndim), (what, g.sharding)
        assert_close(gather(got), want, what)


# --- parallel: jaxent.parallel in shard_map, the vocabulary split over devices ---------------

#: The single-device functions that the vocabulary-parallel ones must equal.
REFERENCE: dict[str, Call] = {
    "integer": PLAIN["integer"],
    "per_class": (
        lambda x: je.softmax_cross_entropy_with_integer_labels(
            x["zm"], x["yc"], where=x["classes"], label_smoothing=0.1, ignore_index=IGNORE
        ),
        ("zm",),
    ),
    "entropy": (lambda x: je.entropy_from_logits(x["z"], where=x["rows"], base=2), ("z",)),
    "kl": (
        lambda x: je.kl_divergence_from_logits(x["zm"], x["q"], where=x["classes"], base=10),
        ("zm", "q"),
    ),
    "linear": PLAIN["linear"],
}


def parallel_calls(m, tokens, vocab) -> dict[str, Call]:
    """``REFERENCE``'s calls through ``jaxent.parallel`` on the mesh ``m``: tokens split over
    ``tokens`` (or not, None), classes over ``vocab``."""
    kw = {"axis_name": vocab}
    row, block, cols = P(tokens), P(tokens, vocab), P(vocab)

    def smap(f, *in_specs):
        return jax.shard_map(f, mesh=m, in_specs=in_specs, out_specs=row)

    def fused(h, w, y, b, rows):
        return je.parallel.vocab_parallel_linear_softmax_cross_entropy(
            h, w, y, bias=b, where=rows, chunk_size=3, token_chunk_size=5, **kw, **FUSED
        )

    # A device's block is 16 x 16 on the (2, 4) mesh: a (16,) mask would fit both the rows and
    # the classes, so the row mask is given its class axis.
    integer = smap(
        lambda z, y, rows, cw: je.parallel.vocab_parallel_softmax_cross_entropy(
            z, y, where=rows[:, None], class_weights=cw, **kw, **OPTIONS
        ),
        *(block, row, row, cols),
    )
    per_class = smap(
        lambda z, y, c: je.parallel.vocab_parallel_softmax_cross_entropy(
            z, y, where=c, label_smoothing=0.1, ignore_index=IGNORE, **kw
        ),
        *(block, row, block),
    )
    entropy = smap(
        lambda z, rows: je.parallel.vocab_parallel_entropy_from_logits(
            z, where=rows[:, None], base=2, **kw
        ),
        *(block, row),
    )
    kl = smap(
        lambda a, b, c: je.parallel.vocab_parallel_kl_divergence_from_logits(
            a, b, where=c, base=10, **kw
        ),
        *(block, block, block),
    )
    linear = jax.shard_map(
        fused,
        mesh=m,
        in_specs=(P(tokens, None), P(None, vocab), row, cols, row),
        out_specs=(row, row),
    )
    calls = {
        "integer": lambda x: integer(x["z"], x["y"], x["rows"], x["cw"]),
        "per_class": lambda x: per_class(x["zm"], x["yc"], x["classes"]),
        "entropy": lambda x: entropy(x["z"], x["rows"]),
        "kl": lambda x: kl(x["zm"], x["q"], x["classes"]),
        "linear": lambda x: linear(x["h"], x["w"], x["y"], x["b"], x["rows"]),
    }
    return {name: (calls[name], keys) for name, (_, keys) in REFERENCE.items()}


def check_parallel() -> None:
    arrays = inputs()
    want = on_one_device(lambda x: values_and_grads(REFERENCE, x), arrays)
    configs = [
        ((8,), ("model",), AxisType.Explicit, None, "model"),
        ((2, 4), ("data", "model"), AxisType.Auto, "data", "model"),
        ((2, 4), ("data", "model"), AxisType.Explicit, None, ("data", "model")),
    ]
    for shape, names, axis_type, tokens, vocab in configs:
        m = mesh(shape, names, axis_type)
        what = f"parallel, mesh {shape} {axis_type.name}, tokens over {tokens}, classes {vocab}"
        specs = {
            "z": P(tokens, vocab),
            "zm": P(tokens, vocab),
            "q": P(tokens, vocab),
            "classes": P(tokens, vocab),
            "t": P(tokens, vocab),
            "cw": P(vocab),
            "b": P(vocab),
            "w": P(None, vocab),
        }
        with jax.set_mesh(m):
            x = {k: put(v, NamedSharding(m, specs.get(k, P(tokens)))) for k, v in arrays.items()}
            calls = parallel_calls(m, tokens, vocab)
            got = jax.jit(lambda x, calls=calls: values_and_grads(calls, x))(x)
        assert_close(gather(got), want, what)


CHECKS = {"plain": check_plain, "parallel": check_parallel}


def main(argv: list[str]) -> None:
    port, process_id, check = int(argv[0]), int(argv[1]), argv[2]
    join(port, process_id)
    try:
        CHECKS[check]()
    except BaseException:
        # Leave at once: a normal exit would wait for the other process at shutdown.
        traceback.print_exc()
        sys.stdout.flush()
        os._exit(1)
    print(f"ok {check}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
