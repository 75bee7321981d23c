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
import jax.numpy as jnp
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


def mesh(shape: tuple[int, ...], axis_type: AxisType) -> jax.sharding.Mesh:
    """A mesh over the 8 devices of both processes: ``("data",)`` if 1-D, else
    ``("data", "model")`` with ``data`` across the processes and ``model`` within each."""
    names = ("data", "model")[: len(shape)]
    return jax.make_mesh(shape, names, axis_types=(axis_type,) * len(shape))


# --- plain: the public functions under jit, inputs sharded over tokens ----------------------

N, K, D, V = 32, 24, 16, 40


def plain_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = rng.random((N, K)) + 0.1
    labels = rng.integers(0, K, N)
    labels[3] = IGNORE
    tokens = rng.integers(0, V, N)
    tokens[5] = IGNORE
    f32 = np.float32
    return {
        "z": rng.normal(size=(N, K)).astype(f32),
        "q": rng.normal(size=(N, K)).astype(f32),
        "t": (t / t.sum(1, keepdims=True)).astype(f32),
        "y": labels.astype(np.int32),
        "rows": np.arange(N) % 5 != 0,
        "h": rng.normal(size=(N, D)).astype(f32),
        "w": (rng.normal(size=(D, V)) / 4).astype(f32),
        "b": rng.normal(size=(V,)).astype(f32),
        "tok": tokens.astype(np.int32),
    }


def plain_losses(x: dict[str, jax.Array]) -> dict[str, Any]:
    """Per-token values and gradients of every loss family, in one computation."""
    classes = jnp.arange(K, dtype=jnp.float32)

    def head(h, w, b):
        return je.linear_softmax_cross_entropy(
            h,
            w,
            x["tok"],
            bias=b,
            where=x["rows"],
            ignore_index=IGNORE,
            label_smoothing=0.1,
            z_loss=1e-3,
            logit_softcap=8.0,
            chunk_size=16,
            token_chunk_size=3,
        )

    on_logits: dict[str, Callable[[jax.Array], jax.Array]] = {
        "integer": lambda z: je.softmax_cross_entropy_with_integer_labels(
            z,
            x["y"],
            where=x["rows"],
            ignore_index=IGNORE,
            label_smoothing=0.1,
            z_loss=1e-3,
            class_weights=classes,
        ),
        "soft": lambda z: je.softmax_cross_entropy(z, x["t"], class_weights=classes),
        "entropy": lambda z: je.entropy_from_logits(z, base=2),
        "kl": lambda z: je.kl_divergence_from_logits(z, x["q"]),
    }
    out: dict[str, Any] = {}
    for name, f in on_logits.items():
        out[name] = (f(x["z"]), jax.grad(lambda z, f=f: f(z).sum())(x["z"]))
    args = (x["h"], x["w"], x["b"])
    out["linear"] = (head(*args), jax.grad(lambda *a: head(*a).sum(), (0, 1, 2))(*args))
    return out


def check_plain() -> None:
    inputs = plain_inputs()
    want = on_one_device(plain_losses, inputs)
    configs = [
        ((8,), AxisType.Explicit, "data"),
        ((2, 4), AxisType.Explicit, "data"),
        ((2, 4), AxisType.Auto, ("data", "model")),
    ]
    for shape, axis_type, tokens in configs:
        m = mesh(shape, axis_type)
        what = f"plain, mesh {shape} {axis_type.name}, tokens over {tokens}"
        shardings = {k: NamedSharding(m, P() if k in ("w", "b") else P(tokens)) for k in inputs}
        with jax.set_mesh(m):
            x = {k: put(v, shardings[k]) for k, v in inputs.items()}
            got = jax.jit(plain_losses)(x)
        if axis_type == AxisType.Explicit:
            # Explicit axes: the gradients come back sharded like their inputs.
            for key, g in (("z", got["integer"][1]), ("h", got["linear"][1][0])):
                assert g.sharding.is_equivalent_to(shardings[key], g.ndim), (what, g.sharding)
        assert_close(gather(got), want, what)


CHECKS = {"plain": check_plain}


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
