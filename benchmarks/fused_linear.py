"""Fused linear + softmax cross-entropy against the dense computation, side by side.

``python -m benchmarks.fused_linear [--quick] [--json FILE]`` times the value and gradient
(in ``hidden`` and ``weight``) of the summed per-token loss of a language-model head, three
ways, in one run:

- ``dense``: ``logits = hidden @ weight`` (float32 accumulation), then jaxent's
  ``softmax_cross_entropy_with_integer_labels``: the reference;
- ``fused``: ``jaxent.linear_softmax_cross_entropy``, which never forms the logits;
- ``optax``: the same materialised logits, then
  ``optax.losses.softmax_cross_entropy_with_integer_labels``.

Each variant is jitted and compiled first (the compiler's ``memory_analysis()`` temp bytes
are recorded), warmed up, then timed round robin with ``block_until_ready``; the median of
the repeats is reported, with ratios to the dense variant. ``--quick`` is a smoke mode on
tiny shapes whose timings mean nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxent as je
from jaxent._src.vocab import dense_linear_softmax_cross_entropy

VARIANTS = ("dense", "fused", "optax")


def _optax_loss(hidden, weight, labels):
    logits = jnp.matmul(hidden, weight, preferred_element_type=jnp.float32)
    return optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels)


LOSSES: dict[str, Callable[..., jax.Array]] = {
    "dense": dense_linear_softmax_cross_entropy,  # type: ignore[dict-item]
    "fused": je.linear_softmax_cross_entropy,  # type: ignore[dict-item]
    "optax": _optax_loss,
}


def cases(quick: bool) -> list[tuple[str, int, int, int, Any]]:
    """(name, N, D, V, dtype) of the cases for this machine."""
    if quick:
        return [
            ("lm-head-quick", 64, 32, 4096, jnp.float32),
            ("lm-head-quick", 64, 32, 4096, jnp.bfloat16),
        ]
    out = [
        ("lm-head-cpu", 2048, 512, 32768, jnp.float32),
        ("lm-head-cpu", 2048, 512, 32768, jnp.bfloat16),
    ]
    if jax.default_backend() == "gpu":
        out.append(("lm-head-gpu", 8192, 4096, 131072, jnp.bfloat16))
    return out


def _compiled(variant: str, n: int, d: int, v: int, dtype):
    loss = LOSSES[variant]

    def total(hidden, weight, labels):
        return jnp.sum(loss(hidden, weight, labels))

    shapes = (
        jax.ShapeDtypeStruct((n, d), dtype),
        jax.ShapeDtypeStruct((d, v), dtype),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    return jax.jit(jax.value_and_grad(total, argnums=(0, 1))).lower(*shapes).compile()


def measure(name: str, n: int, d: int, v: int, dtype, repeats: int) -> list[dict[str, Any]]:
    """Times the three variants on one shape, round robin; one row per variant."""
    rng = np.random.default_rng(0)
    hidden = jnp.asarray(rng.normal(size=(n, d)), dtype)
    weight = jnp.asarray(rng.normal(size=(d, v)) / np.sqrt(d), dtype)
    labels = jnp.asarray(rng.integers(0, v, size=n), jnp.int32)
    compiled = {k: _compiled(k, n, d, v, dtype) for k in VARIANTS}
    temps = {k: int(c.memory_analysis().temp_size_in_bytes) for k, c in compiled.items()}
    for c in compiled.values():  # warm-up
        jax.block_until_ready(c(hidden, weight, labels))
    times: dict[str, list[float]] = {k: [] for k in VARIANTS}
    for _ in range(repeats):
        for k, c in compiled.items():
            start = time.perf_counter()
            jax.block_until_ready(c(hidden, weight, labels))
            times[k].append(time.perf_counter() - start)
    medians = {k: statistics.median(t) for k, t in times.items()}
    return [
        {
            "case": name,
            "shape": {"N": n, "D": d, "V": v},
            "dtype": jnp.dtype(dtype).name,
            "variant": k,
            "median_s": medians[k],
            "ratio_vs_dense": medians[k] / medians["dense"],
            "temp_bytes": temps[k],
            "temp_ratio_vs_dense": temps[k] / max(temps["dense"], 1),
            "repeats": repeats,
            "jax": jax.__version__,
            "device_kind": jax.devices()[0].device_kind,
        }
        for k in VARIANTS
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    """Runs every case; one row per (case, dtype, variant)."""
    rows: list[dict[str, Any]] = []
    for name, n, d, v, dtype in cases(quick):
        rows += measure(name, n, d, v, dtype, repeats=2 if quick else 7)
    return rows


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a markdown table, with the jax version and device kind."""
    lines = [
        f"jax {jax.__version__}, device {jax.devices()[0].device_kind}; value and gradient "
        "of the summed loss, median of round-robin repeats.",
        "",
        "| case | N x D x V | dtype | variant | median ms | time / dense | temp MiB | "
        "temp / dense |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = r["shape"]
        lines.append(
            f"| {r['case']} | {s['N']} x {s['D']} x {s['V']} | {r['dtype']} | {r['variant']} "
            f"| {1e3 * r['median_s']:.1f} | {r['ratio_vs_dense']:.3f} | "
            f"{r['temp_bytes'] / 2**20:.1f} | {r['temp_ratio_vs_dense']:.4f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes (a smoke test)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    rows = run(args.quick)
    print(markdown(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
