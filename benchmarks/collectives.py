"""What a compiled sharded computation communicates: its collectives, read from the HLO.

``collectives(compiled)`` lists every collective operation (all-reduce, all-gather,
reduce-scatter, all-to-all, collective-permute, and their asynchronous ``-start`` forms) in
the optimised, partitioned HLO of a ``jax.jit(...).lower(...).compile()`` result, with the
bytes of its operands and of its result on one device: the shapes times the dtype sizes.
These are the buffers a collective reads and fills, not a count of bytes on a wire (a ring
all-reduce of B bytes over n devices sends about 2 B (n - 1) / n of them). A collective in
the body of a loop is marked: its bytes are counted once, though it runs once per trip.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

OPS = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")

_BYTES = {
    "pred": 1,
    "s8": 1,
    "u8": 1,
    "s16": 2,
    "u16": 2,
    "f16": 2,
    "bf16": 2,
    "s32": 4,
    "u32": 4,
    "f32": 4,
    "s64": 8,
    "u64": 8,
    "f64": 8,
    "c64": 8,
    "c128": 16,
}
_ARRAY = re.compile(r"\b([a-z]+[0-9]*(?:e[0-9]m[0-9][a-z]*)?)\[([0-9,]*)\]")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*")
_COMPUTATION = re.compile(r"^(ENTRY\s+)?%([\w.\-]+)\s")
_TRIPS = re.compile(r'"known_trip_count":\{"n":"([0-9]+)"\}')
_CALLED = re.compile(
    r"\b(?:body|condition|calls|to_apply|branch_computations)=(\{[^}]*\}|%[\w.\-]+)"
)


@dataclasses.dataclass(frozen=True)
class Collective:
    """One collective operation of a compiled computation, seen from one device.

    Attributes:
      op: the operation, e.g. "all-reduce" (an asynchronous pair counts once, as its op).
      name: the HLO instruction's name.
      shapes: the result's array types, e.g. ``("f32[128,64]",)``.
      operand_bytes: bytes of the operands on one device.
      result_bytes: bytes of the result on one device.
      runs: how many times one call runs it: 1 outside loops, the product of the enclosing
        loops' trip counts inside, None where a trip count is unknown.
    """

    op: str
    name: str
    shapes: tuple[str, ...]
    operand_bytes: int
    result_bytes: int
    runs: int | None

    @property
    def largest_bytes(self) -> int:
        """The larger of operand and result bytes: the biggest buffer it touches."""
        return max(self.operand_bytes, self.result_bytes)


def _arrays(type_text: str) -> list[tuple[str, int]]:
    """The array types in an HLO type (an array or a tuple) and their element counts."""
    out = []
    for dtype, dims in _ARRAY.findall(type_text):
        count = 1
        for d in filter(None, dims.split(",")):
            count *= int(d)
        out.append((f"{dtype}[{dims}]", count * _BYTES.get(dtype, 1)))
    return out


def _split_type(rest: str) -> tuple[str, str]:
    """Splits ``TYPE opcode(operands), attributes`` after the ``=`` of an instruction."""
    if rest.startswith("("):
        depth = 0
        for i, ch in enumerate(rest):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                return rest[: i + 1], rest[i + 1 :].lstrip()
    head, _, tail = rest.partition(" ")
    return head, tail


def _operands(call: str) -> list[str]:
    """The operand names of ``opcode(%a, %b), ...``."""
    depth, end = 0, len(call)
    for i, ch in enumerate(call):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and ch == ")":
            end = i
            break
    return re.findall(r"%([\w.\-]+)", call[:end])


def hlo_text(compiled: Any) -> str:
    """The optimised HLO of a compiled computation (or the text itself)."""
    return compiled if isinstance(compiled, str) else compiled.as_text()


def collectives(compiled: Any) -> list[Collective]:
    """Every collective of ``compiled`` (a ``jax.stages.Compiled`` or its HLO text)."""
    text = hlo_text(compiled)
    types: dict[str, str] = {}
    parsed = []  # (computation, name, type, opcode, operands)
    calls: dict[str, list[tuple[str, int | None]]] = {}  # callee, runs per call of caller
    computation = entry = ""
    for line in text.splitlines():
        m = _INSTRUCTION.match(line)
        if m is None:
            c = _COMPUTATION.match(line)
            if c is not None:
                computation = c.group(2)
                entry = computation if c.group(1) else entry
            continue
        name = m.group(1)
        type_text, rest = _split_type(line[m.end() :])
        types[name] = type_text
        opcode = rest.split("(", 1)[0].strip()
        trips = _TRIPS.search(rest)
        factor = (int(trips.group(1)) if trips else None) if opcode == "while" else 1
        for group in _CALLED.findall(rest):
            for callee in re.findall(r"%?([\w.\-]+)", group):
                calls.setdefault(computation, []).append((callee, factor))
        parsed.append((computation, name, type_text, opcode, _operands(rest[len(opcode) :])))

    runs: dict[str, int | None] = {entry: 1}
    todo = [entry]
    while todo:
        caller = todo.pop()
        for callee, factor in calls.get(caller, ()):
            if callee not in runs:
                r = runs[caller]
                runs[callee] = None if r is None or factor is None else r * factor
                todo.append(callee)

    done_of = {
        operands[0]: name
        for _, name, _, opcode, operands in parsed
        if opcode.endswith("-done") and operands
    }
    found = []
    for comp, name, type_text, opcode, operands in parsed:
        op = opcode.removesuffix("-start")
        if op not in OPS:
            continue
        operand_bytes = sum(b for o in operands for _, b in _arrays(types.get(o, "")))
        result_type = types[done_of[name]] if opcode.endswith("-start") else type_text
        result = _arrays(result_type)
        found.append(
            Collective(
                op=op,
                name=name,
                shapes=tuple(s for s, _ in result),
                operand_bytes=operand_bytes,
                result_bytes=sum(b for _, b in result),
                runs=runs.get(comp, 1),
            )
        )
    return found


def total_bytes(found: Iterable[Collective]) -> int:
    """Each collective's larger buffer times its runs (once where unknown), summed: the
    tables' "comm bytes"."""
    return sum(c.largest_bytes * (c.runs or 1) for c in found)


def _runs(runs: int | None) -> str:
    return "" if runs == 1 else "  x unknown trips" if runs is None else f"  x {runs} runs"


def describe(found: Iterable[Collective]) -> list[str]:
    """One line per collective: op, shapes, operand and result bytes, runs if not 1."""
    return [
        f"{c.op:<18} {' '.join(c.shapes):<28} operand {c.operand_bytes:>10,d} B  "
        f"result {c.result_bytes:>10,d} B{_runs(c.runs)}"
        for c in found
    ]
