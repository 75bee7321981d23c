"""Run the benchmarks: ``python -m benchmarks [--quick] [--only NAME] [--json FILE]``.

Prints a markdown report on stdout (the machine, then one table per case group, then the
performance targets) and a progress display on stderr. ``--quick`` is a smoke mode on tiny
shapes that the test suite runs; its timings mean nothing.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from . import cases, harness, targets


def machine() -> dict[str, Any]:
    """What the timings were taken on."""
    dev = jax.devices()[0]
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {"jax": jax.__version__, "jaxlib": jax.lib.__version__, "numpy": np.__version__}
    for mod in ("optax", "scipy"):
        versions[mod] = importlib.import_module(mod).__version__
    return {
        "platform": dev.platform,
        "device_kind": dev.device_kind,
        "device_count": jax.device_count(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


class Progress:
    """One status line on stderr, rewritten in place on a terminal."""

    def __init__(self, total: int):
        self.total, self.done, self.t0 = total, 0, time.perf_counter()
        self.tty = sys.stderr.isatty()

    def show(self, text: str, finished: bool = False) -> None:
        self.done += finished
        elapsed = time.perf_counter() - self.t0
        line = f"[{self.done:>3}/{self.total}] {elapsed:6.1f}s  {text}"
        if self.tty:
            sys.stderr.write("\r\033[K" + line[:150] + ("\n" if finished else ""))
        elif finished:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def run_groups(
    groups: Sequence[str], quick: bool, repeats: int, warmup: int
) -> list[dict[str, Any]]:
    total = sum(cases.count(g, quick) for g in groups)
    progress = Progress(total)
    records: list[dict[str, Any]] = []
    for group in groups:
        # The groups that the targets are stated on get the full repeat count.
        reps = repeats if group in ("limits", "xent_int", "measures") else max(3, repeats // 2)
        for case in cases.cases(group, quick):
            label = f"{group}/{case.name} {case.dtype} {'x'.join(map(str, case.shape))}"
            progress.show(label)
            results = harness.measure(case, repeats=reps, warmup=warmup)
            records.append(harness.record(case, results))
            best = min(results, key=lambda r: r.median_s)
            progress.show(f"{label}: fastest {best.name} {1e3 * best.median_s:.1f} ms", True)
            del case, results
    return records


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke mode on tiny shapes")
    parser.add_argument(
        "--only",
        action="append",
        choices=cases.GROUPS,
        metavar="NAME",
        help=f"run only this case group (repeatable): {', '.join(cases.GROUPS)}",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every measurement here")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per variant")
    parser.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="untimed calls per variant besides the first call (the agreement check)",
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    groups = args.only or list(cases.GROUPS)

    meta = machine()
    meta.update(
        command="python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
        quick=args.quick,
        repeats=repeats,
        warmup=args.warmup,
        groups=groups,
    )
    t0 = time.perf_counter()
    records = run_groups(groups, args.quick, repeats, args.warmup)
    meta["wall_s"] = round(time.perf_counter() - t0, 1)
    out = {"meta": meta, "records": records, "targets": targets.evaluate(records, args.quick)}
    sys.stdout.write(harness.markdown(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
