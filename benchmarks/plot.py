"""Plot the headline ratios of a benchmark run: ``python benchmarks/plot.py [JSON] [PNG]``.

Reads the file written by ``python -m benchmarks --json FILE`` (default
``benchmarks/results.json``) and writes a PNG (default ``benchmarks/results.png``) with
three panels: jaxent's speed-up over Optax on integer-label cross-entropy, jaxent's time
over the machine limit its target is stated against, and the speed-up over SciPy of the
measures on probabilities. Every ratio comes from one round robin of one run.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent


def _times(rec: dict[str, Any]) -> dict[str, float]:
    return {v["name"]: v["median_ms"] for v in rec["variants"]}


def _label(rec: dict[str, Any]) -> str:
    dtype = {"float32": "f32", "bfloat16": "bf16"}.get(rec["dtype"], rec["dtype"])
    return f"{rec['case']} {dtype}\n{'x'.join(map(str, rec['shape']))}"


def plot(data: dict[str, Any], out: Path) -> Path:
    records = [r for r in data["records"] if "variants" in r]
    xent = [r for r in records if r["group"] == "xent_int"]
    measures = [r for r in records if r["group"] == "measures"]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2), width_ratios=[3, 3, 1.2])

    labels = [_label(r) for r in xent]
    speed = [_times(r)["optax"] / _times(r)["jaxent"] for r in xent]
    ax = axes[0]
    bars = ax.bar(range(len(xent)), speed, color=["C0" if s >= 1 else "C3" for s in speed])
    ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(range(len(xent)), labels, fontsize=6, rotation=90)
    ax.set_ylabel("optax time / jaxent time")
    ax.set_title("Integer-label cross-entropy: speed-up over optax")

    limit = [
        _times(r)["jaxent"] / _times(r)["sum_exp" if r["case"] == "fwd" else "copy"] for r in xent
    ]
    ax = axes[1]
    bars = ax.bar(range(len(xent)), limit, color="C1")
    ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(2.0, color="C0", ls="--", lw=0.8, label="target 2: fwd <= 2.0x sum(exp)")
    ax.axhline(1.33, color="C2", ls="--", lw=0.8, label="target 1: vg <= 1.33x copy")
    ax.set_xticks(range(len(xent)), labels, fontsize=6, rotation=90)
    ax.set_ylabel("jaxent time / limit time")
    ax.set_title("Against the machine: fwd / row-wise sum(exp), vg / fresh copy")
    ax.legend(fontsize=7)

    ax = axes[2]
    ms = [_times(r)["scipy.stats"] / _times(r)["jaxent"] for r in measures]
    bars = ax.bar(range(len(measures)), ms, color="C4")
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.axhline(10.0, color="k", ls="--", lw=0.8, label="target 5: 10x")
    ax.set_xticks(range(len(measures)), [r["case"] for r in measures])
    ax.set_ylabel("scipy.stats.entropy time / jaxent time")
    ax.set_title("Measures on probabilities")
    ax.legend(fontsize=7)

    meta = data["meta"]
    fig.suptitle(
        f"jaxent benchmarks on {meta['platform']} ({meta['cpu']}, {meta['cpu_count']} cores), "
        f"jax {meta['versions']['jax']}, {meta['date']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("json", nargs="?", default=str(HERE / "results.json"))
    parser.add_argument("png", nargs="?", default=str(HERE / "results.png"))
    args = parser.parse_args(argv)
    with open(args.json) as f:
        data = json.load(f)
    print(plot(data, Path(args.png)))


if __name__ == "__main__":
    main()
