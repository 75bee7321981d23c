"""Timing, agreement and memory measurement shared by every benchmark case.

The method: every variant of a case is compiled first (its compile time and the compiler's
``memory_analysis()`` recorded), its output is checked against the case's reference
variant, it is warmed up, and then all variants are timed together, round robin, so that
they share the machine's noise; the median of the repeats is reported, and ratios are
formed only between variants timed in the same round robin.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np


class AgreementError(AssertionError):
    """Raised when a variant's output differs from the reference variant's."""


@dataclasses.dataclass
class Variant:
    """One implementation to time.

    Attributes:
      name: shown in the tables ("jaxent", "optax", "naive", "scipy", ...).
      fn: for ``kind="jax"`` a function of JAX arrays, jitted here; for ``kind="host"`` a
        plain Python callable (SciPy, NumPy) that is timed as it is.
      args: positional arguments, already on the device (or NumPy arrays for host code).
      kind: "jax" or "host".
      check: whether the agreement check enforces its tolerance on this variant's output
        (when False its difference is still reported where the outputs are comparable).
      limit: a machine-limit measurement timed alongside (a copy, a sum): never compared.
    """

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kind: str = "jax"
    check: bool = True
    limit: bool = False


@dataclasses.dataclass
class Case:
    """A set of variants computing the same quantity on the same data.

    ``variants[0]`` is the reference for the agreement check; ``rtol`` bounds the allowed
    difference (see ``agree``). ``baseline`` names the variant that ratios divide by.
    """

    group: str
    name: str
    shape: tuple[int, ...]
    dtype: str
    variants: list[Variant]
    rtol: float = 1e-4
    baseline: str | None = None
    note: str = ""
    data_bytes: int = 0


@dataclasses.dataclass
class Measured:
    name: str
    median_s: float
    times_s: list[float]
    temp_bytes: int | None
    compile_s: float | None
    faults_per_call: float
    max_rel_err: float | None


_SAMPLE = 1 << 22


def _sample(x: Any) -> np.ndarray:
    """A float64 copy of ``x``, or of every k-th row of it when it is large."""
    a = np.asarray(x)
    if a.size > _SAMPLE:
        rows = a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(-1, 1)
        step = -(-a.size // _SAMPLE)
        a = rows[::step] if rows.shape[0] >= step else rows.reshape(-1)[::step]
    return a.astype(np.float64)


def _leaves(x: Any) -> list[np.ndarray]:
    return [_sample(leaf) for leaf in jax.tree_util.tree_leaves(x)]


def agree(out: Any, ref: Any, rtol: float) -> float:
    """The largest scaled difference between two outputs; raises if it exceeds ``rtol``.

    Each array pair is compared elementwise as ``|a - b| / (|b| + mean|b|)``, so that a
    relative error is measured where values are large and an error relative to the
    array's typical size where they are near 0. Non-finite entries must match exactly
    (NaN where NaN, the same infinity).
    """
    a_leaves, b_leaves = _leaves(out), _leaves(ref)
    if len(a_leaves) != len(b_leaves):
        raise AgreementError(f"output structure differs: {len(a_leaves)} vs {len(b_leaves)}")
    worst = 0.0
    for a, b in zip(a_leaves, b_leaves, strict=True):
        a = a.reshape(-1) if a.size == b.size else a
        b = b.reshape(-1) if a.size == b.size else b
        if a.shape != b.shape:
            raise AgreementError(f"shape differs: {a.shape} vs {b.shape}")
        fa, fb = np.isfinite(a), np.isfinite(b)
        if not np.array_equal(fa, fb) or not np.array_equal(
            np.nan_to_num(a[~fa], nan=0.0), np.nan_to_num(b[~fb], nan=0.0)
        ):
            raise AgreementError("non-finite entries differ")
        if not fa.any():
            continue
        scale = float(np.mean(np.abs(b[fb]))) or 1.0
        err = float(np.max(np.abs(a[fa] - b[fb]) / (np.abs(b[fb]) + scale)))
        worst = max(worst, err)
    if not worst <= rtol:
        raise AgreementError(f"scaled difference {worst:.3g} exceeds rtol {rtol:.3g}")
    return worst


def _temp(compiled: Any) -> int | None:
    """The temp bytes of a compiled computation; None where the backend does not say."""
    mem = compiled.memory_analysis()
    return None if mem is None else int(mem.temp_size_in_bytes)


def temp_bytes(fn: Callable[..., Any], *args: Any) -> int:
    """The compiler's temporary memory for ``jax.jit(fn)(*args)``: compiled, never run.

    This is the "temp" of the tables. ``args`` may be ``jax.ShapeDtypeStruct``s, so that
    shapes too large to allocate can be asked about.

    Raises:
      RuntimeError: the backend reports no memory analysis.
    """
    temp = _temp(jax.jit(fn).lower(*args).compile())
    if temp is None:
        raise RuntimeError(f"the {jax.default_backend()} backend reports no memory analysis")
    return temp


def _prepare(v: Variant) -> tuple[Callable[[], Any], int | None, float | None]:
    """Returns a call that blocks until its result is ready, the temp bytes, compile s."""
    if v.kind == "host":
        return (lambda: v.fn(*v.args)), None, None
    t0 = time.perf_counter()
    compiled = jax.jit(v.fn).lower(*v.args).compile()
    compile_s = time.perf_counter() - t0
    temp = _temp(compiled)
    args = v.args

    def call() -> Any:
        return jax.block_until_ready(compiled(*args))

    return call, temp, compile_s


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(case: Case, repeats: int, warmup: int = 1) -> list[Measured]:
    """Compiles, checks agreement, warms up, then times the variants round robin.

    Raises:
      AgreementError: a checked variant's output differs from ``case.variants[0]``'s.
    """
    calls, temps, compiles, errs = [], [], [], []
    ref_out = None
    for i, v in enumerate(case.variants):
        call, temp, compile_s = _prepare(v)
        out = call()
        if i == 0:
            ref_out = jax.tree_util.tree_map(_sample, out)
            errs.append(0.0 if v.check else None)
        elif v.limit:
            errs.append(None)
        elif v.check:
            try:
                errs.append(agree(out, ref_out, case.rtol))
            except AgreementError as err:
                raise AgreementError(
                    f"{case.group}/{case.name} {case.dtype} {case.shape}: variant {v.name!r} "
                    f"disagrees with {case.variants[0].name!r}: {err}"
                ) from None
        else:
            try:  # reported, not enforced: a shape or non-finite mismatch reads as "-"
                errs.append(agree(out, ref_out, math.inf))
            except AgreementError:
                errs.append(None)
        del out
        calls.append(call)
        temps.append(temp)
        compiles.append(compile_s)
    del ref_out
    for _ in range(warmup):
        for call in calls:
            call()
    times: list[list[float]] = [[] for _ in calls]
    faults: list[list[int]] = [[] for _ in calls]
    for _ in range(repeats):
        for j, call in enumerate(calls):
            f0 = _minor_faults()
            t0 = time.perf_counter()
            call()
            t1 = time.perf_counter()
            faults[j].append(_minor_faults() - f0)
            times[j].append(t1 - t0)
    return [
        Measured(
            name=v.name,
            median_s=statistics.median(times[j]),
            times_s=times[j],
            temp_bytes=temps[j],
            compile_s=compiles[j],
            faults_per_call=float(statistics.median(faults[j])),
            max_rel_err=errs[j],
        )
        for j, v in enumerate(case.variants)
    ]


def record(case: Case, results: Sequence[Measured]) -> dict[str, Any]:
    """The JSON record of a measured case, with ratios to the baseline variant."""
    base = case.baseline or case.variants[0].name
    base_s = next(r.median_s for r in results if r.name == base)
    return {
        "group": case.group,
        "case": case.name,
        "shape": list(case.shape),
        "dtype": case.dtype,
        "note": case.note,
        "data_bytes": case.data_bytes,
        "baseline": base,
        "variants": [
            {
                "name": r.name,
                "median_ms": 1e3 * r.median_s,
                "times_ms": [1e3 * t for t in r.times_s],
                "ratio_to_baseline": r.median_s / base_s,
                "temp_bytes": r.temp_bytes,
                "compile_s": r.compile_s,
                "faults_per_call": r.faults_per_call,
                "max_rel_err": r.max_rel_err,
            }
            for r in results
        ],
    }


def _mib(x: int | None) -> str:
    return "-" if x is None else f"{x / 2**20:.2f}"


def _shape(s: Sequence[int]) -> str:
    return "[" + ", ".join(map(str, s)) + "]"


def _rate(rec: dict[str, Any], v: dict[str, Any]) -> str:
    """Throughput of a machine-limit variant."""
    seconds = v["median_ms"] / 1e3
    if v["name"] == "matmul":
        n = rec["shape"][0]
        return f"{2 * n**3 / seconds / 1e9:.1f} GFLOP/s"
    moved = rec["data_bytes"] * (2 if v["name"] == "copy" else 1)
    return f"{moved / seconds / 1e9:.2f} GB/s"


def markdown(out: dict[str, Any]) -> str:
    """The report: the machine, a table per case group, the targets."""
    meta, records = out["meta"], out["records"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    lines = [
        "# jaxent benchmarks",
        "",
        f"- command: `{meta['command'].strip()}`",
        f"- device: {meta['platform']} ({meta['device_kind']}), {meta['cpu']}, "
        f"{meta['cpu_count']} cores",
        f"- versions: {versions}; Python {meta['python']}",
        f"- date: {meta['date']}; {meta['repeats']} timed calls per variant after the "
        f"agreement call and {meta['warmup']} more warm-up calls, interleaved round robin, "
        f"medians; wall {meta['wall_s']} s",
        "",
        "Ratio: the variant's median time over the first variant's (jaxent; for `measures`, "
        "over `scipy.stats`; for `fused`, over the dense computation), timed in the same "
        "round robin. Temp: the compiler's "
        "`memory_analysis()` temp bytes. Faults: minor page faults per call. Error: the "
        "largest scaled difference from the first variant, enforced for checked variants "
        "(`-`: not comparable).",
    ]
    groups: list[str] = []
    for rec in records:
        if rec["group"] not in groups:
            groups.append(rec["group"])
    for group in groups:
        recs = [r for r in records if r["group"] == group]
        lines += ["", f"## {group}", ""]
        limits = group == "limits"
        head = "| case | shape | dtype | variant | median ms | ratio | temp MiB | faults/call |"
        head += " rate |" if limits else " error |"
        lines += [head, "|---|---|---|---|---:|---:|---:|---:|---:|"]
        for rec in recs:
            for v in rec["variants"]:
                last = (
                    _rate(rec, v)
                    if limits
                    else ("-" if v["max_rel_err"] is None else f"{v['max_rel_err']:.1e}")
                )
                lines.append(
                    f"| {rec['case']} | {_shape(rec['shape'])} | {rec['dtype']} | {v['name']} | "
                    f"{v['median_ms']:.2f} | {v['ratio_to_baseline']:.2f} | "
                    f"{_mib(v['temp_bytes'])} | {v['faults_per_call']:.0f} | {last} |"
                )
    lines += ["", "## Targets", "", "| # | check | shape | dtype | measured | target | met |"]
    lines += ["|---|---|---|---|---:|---|---|"]
    for t in out["targets"]:
        if not t["checks"]:
            lines.append(f"| {t['id']} | {t['title']} | | | | | {t.get('note', 'no data')} |")
        for c in t["checks"]:
            lines.append(
                f"| {t['id']} | {c['what']} | {_shape(c['shape'])} | {c['dtype']} | "
                f"{c['value']:.3f} | {c['op']} {c['bound']:g} | {'yes' if c['met'] else 'no'} |"
            )
    return "\n".join(lines) + "\n"
