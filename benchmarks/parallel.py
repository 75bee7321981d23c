"""The ``parallel`` group: ``python -m benchmarks.parallel [--quick] [--json FILE]``.

The vocabulary-parallel losses against all-gathering the logits, on a ``model`` mesh axis
of 2, 4 and 8 devices (``cases.parallel``). A process's device count is fixed when JAX
starts, so this group has its own entry point, which asks for 8 simulated CPU devices
before importing JAX (unless ``XLA_FLAGS`` already sets a count, or ``JAX_PLATFORMS``
names another platform with enough devices). Each case is measured by the shared harness
(compile, agreement with the ``gathered`` variant, interleaved medians, the compiler's temp
bytes per device) and, in addition, each variant's collectives are read from its compiled
HLO (``collectives.py``). Prints a markdown report: every measurement, then how time,
communication and temp memory grow with V and with the device count. ``--quick`` is the
smoke mode that the tests run; its timings mean nothing.
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    )
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax

from . import cases, harness
from .__main__ import Progress, machine
from .collectives import collectives, total_bytes

GROUP = "parallel"


def measure(quick: bool, repeats: int, warmup: int) -> list[dict[str, Any]]:
    """The harness's records of every case, each variant with its collectives added."""
    progress = Progress(cases.count(GROUP, quick))
    records = []
    for case in cases.cases(GROUP, quick):
        label = f"{case.name} {'x'.join(map(str, case.shape))}"
        progress.show(label)
        results = harness.measure(case, repeats=repeats, warmup=warmup)
        rec = harness.record(case, results)
        for v, out in zip(case.variants, rec["variants"], strict=True):
            found = collectives(jax.jit(v.fn).lower(*v.args).compile())
            out["comm_bytes"] = total_bytes(found)
            out["largest_collective_bytes"] = max((c.largest_bytes for c in found), default=0)
            out["collectives"] = [dataclasses.asdict(c) for c in found]
        records.append(rec)
        best = min(results, key=lambda r: r.median_s)
        progress.show(f"{label}: fastest {best.name} {1e3 * best.median_s:.1f} ms", True)
        del case, results
    return records


def _kib(x: int | None) -> str:
    return "-" if x is None else f"{x / 2**10:,.1f}"


def _mib(x: int | None) -> str:
    return "-" if x is None else f"{x / 2**20:,.2f}"


def _dims(rec: dict[str, Any]) -> tuple[int, int, str, int]:
    """(model devices, tokens, features or "-", vocabulary) of a record."""
    shape = rec["shape"]
    return shape[0], shape[1], str(shape[2]) if len(shape) == 4 else "-", shape[-1]


def markdown(meta: dict[str, Any], records: list[dict[str, Any]]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    lines = [
        "## parallel: vocabulary-parallel losses against all-gathered logits",
        "",
        f"- command: `{meta['command'].strip()}`",
        f"- device: {meta['device_count']} {meta['platform']} devices ({meta['device_kind']}), "
        f"{meta['cpu']}, {meta['cpu_count']} cores",
        f"- versions: {versions}; Python {meta['python']}",
        f"- date: {meta['date']}; {meta['repeats']} timed calls per variant after the "
        f"agreement call and {meta['warmup']} more warm-up calls, interleaved round robin, "
        f"medians; wall {meta['wall_s']} s",
        "",
        "Value and gradient of the summed float32 loss, the vocabulary split over n devices "
        "of a `model` mesh axis, tokens replicated. `gathered`: the logits all-gathered, "
        "then jaxent's single-device loss (the reference of the agreement check); "
        "`parallel`: `vocab_parallel_softmax_cross_entropy` on each device's logits block; "
        "`parallel_logits`: the same on `hidden @ weight_shard`; `parallel_fused`: "
        "`vocab_parallel_linear_softmax_cross_entropy`. Ratio: median time over "
        "`gathered`'s. Temp: the compiler's `memory_analysis()` temp bytes of one device. "
        "Comm: the bytes of the buffers each collective of the compiled HLO reads or "
        "fills on one device (the larger of operand and result), summed; largest: the "
        "biggest one. Error: the largest scaled difference from `gathered`.",
        "",
        "| case | n | N | D | V | variant | median ms | ratio | temp MiB | comm KiB "
        "| largest KiB | error |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for rec in records:
        n, tokens, d, vocab = _dims(rec)
        for v in rec["variants"]:
            err = "-" if v["max_rel_err"] is None else f"{v['max_rel_err']:.1e}"
            lines.append(
                f"| {rec['case']} | {n} | {tokens} | {d} | {vocab} | {v['name']} | "
                f"{v['median_ms']:.2f} | {v['ratio_to_baseline']:.2f} | "
                f"{_mib(v['temp_bytes'])} | {_kib(v['comm_bytes'])} | "
                f"{_kib(v['largest_collective_bytes'])} | {err} |"
            )
    lines += [
        "",
        "Scaling: `gathered` over the vocabulary-parallel loss (`parallel`, or "
        "`parallel_fused` for `linear`), for time, communicated bytes and temp memory.",
        "",
        "| case | n | V | time gathered / parallel | comm gathered / parallel "
        "| comm KiB parallel | temp gathered / parallel | temp MiB parallel |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rec in records:
        n, _, _, vocab = _dims(rec)
        by = {v["name"]: v for v in rec["variants"]}
        g, p = by["gathered"], by.get("parallel") or by["parallel_fused"]
        comm = g["comm_bytes"] / p["comm_bytes"] if p["comm_bytes"] else float("inf")
        temp = g["temp_bytes"] / p["temp_bytes"] if p["temp_bytes"] else float("inf")
        lines.append(
            f"| {rec['case']} | {n} | {vocab} | {g['median_ms'] / p['median_ms']:.2f} | "
            f"{comm:,.0f} | {_kib(p['comm_bytes'])} | {temp:.1f} | {_mib(p['temp_bytes'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parallel", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke mode on tiny shapes")
    parser.add_argument("--json", metavar="FILE", help="also write every measurement here")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per variant")
    args = parser.parse_args(argv)
    if jax.device_count() < 8:
        parser.error(f"needs 8 devices, found {jax.device_count()}; see the module docstring")
    repeats = args.repeats or (3 if args.quick else 7)
    meta = machine()
    meta.update(
        command="python -m benchmarks.parallel "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        quick=args.quick,
        repeats=repeats,
        warmup=args.warmup,
        groups=[GROUP],
    )
    t0 = time.perf_counter()
    records = measure(args.quick, repeats, args.warmup)
    meta["wall_s"] = round(time.perf_counter() - t0, 1)
    sys.stdout.write(markdown(meta, records))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "records": records}, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
