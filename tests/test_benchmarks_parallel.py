"""The ``parallel`` benchmark group (its own entry point, 8 simulated CPU devices) in smoke
mode, and the reading of collectives from HLO text that its communication columns rest on."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

from benchmarks import collectives

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_quick_parallel_run_prints_tables_and_writes_json(tmp_path):
    out_file = tmp_path / "parallel.json"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # the entry point asks for 8 devices itself
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.parallel", "--quick", "--json", str(out_file)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "## parallel" in run.stdout and "| xent | 8 | 64 | - | 1024 | parallel |" in run.stdout
    data = json.loads(out_file.read_text())
    assert data["meta"]["device_count"] == 8 and data["meta"]["quick"] is True
    records = {r["case"]: {v["name"]: v for v in r["variants"]} for r in data["records"]}
    assert list(records) == ["xent", "linear"]
    assert list(records["linear"]) == ["gathered", "parallel_logits", "parallel_fused"]
    logits_bytes, rows_bytes = 64 * 1024 * 4, 64 * 4
    for case, by_name in records.items():
        gathered = by_name["gathered"]
        # The reference gathers the whole [N, V] float32 logits onto every device.
        assert gathered["largest_collective_bytes"] == logits_bytes, case
        assert {c["op"] for c in gathered["collectives"]} >= {"all-gather"}
        for name, v in by_name.items():
            assert v["max_rel_err"] is not None and v["max_rel_err"] < 1e-4, (case, name)
            if name == "gathered":
                continue
            # A few per-row statistics at once, and for linear the gradient of the
            # (replicated) hidden states, [N, D].
            assert {c["op"] for c in v["collectives"]} == {"all-reduce"}, (case, name)
            bound = 4 * rows_bytes if case == "xent" else 64 * 32 * 4
            assert v["largest_collective_bytes"] <= bound, (case, name)
            assert v["comm_bytes"] < gathered["comm_bytes"] / 8
            assert 0 < v["temp_bytes"] < gathered["temp_bytes"]


_HLO = textwrap.dedent(
    """
    HloModule m

    %add (a: f32[], b: f32[]) -> f32[] {
      %a = f32[] parameter(0)
      %b = f32[] parameter(1)
      ROOT %s = f32[] add(%a, %b)
    }

    %inner (q: f32[2]) -> f32[2] {
      %q = f32[2]{0} parameter(0)
      ROOT %q2 = f32[2]{0} all-reduce(%q), to_apply=%add
    }

    %body (p: (s32[], f32[16])) -> (s32[], f32[16]) {
      %p = (s32[], f32[16]{0}) parameter(0)
      %x = f32[16]{0} get-tuple-element(%p), index=1
      %r = f32[16]{0} all-reduce(%x), replica_groups={{0,1}}, to_apply=%add
      %v = f32[2]{0} constant({1, 2})
      %l = f32[2]{0} while(%v), condition=%cond, body=%inner, TRIPS_3
      %i = s32[] get-tuple-element(%p), index=0
      ROOT %t = (s32[], f32[16]{0}) tuple(%i, %r)
    }

    %cond (p: (s32[], f32[16])) -> pred[] {
      %p.1 = (s32[], f32[16]{0}) parameter(0)
      ROOT %c = pred[] constant(true)
    }

    %body2 (p: (s32[], f32[16])) -> (s32[], f32[16]) {
      %p.2 = (s32[], f32[16]{0}) parameter(0)
      %y.2 = f32[16]{0} get-tuple-element(%p.2), index=1
      %r2 = f32[16]{0} all-reduce(%y.2), to_apply=%add
      ROOT %t2 = (s32[], f32[16]{0}) tuple(%i, %r2)
    }

    ENTRY %main (x: bf16[8,32], y: f32[4]) -> f32[] {
      %x.1 = bf16[8,32]{1,0} parameter(0)
      %y.1 = f32[4]{0} parameter(1)
      %g = bf16[8,256]{1,0} all-gather(%x.1), dimensions={1}, replica_groups={{0,1}}
      %pair = (f32[4]{0}, bf16[8,32]{1,0}) all-reduce(%y.1, %x.1), to_apply=%add
      %st = (bf16[8,32]{1,0}, bf16[64,32]{1,0}) all-gather-start(%x.1), dimensions={0}
      %dn = bf16[64,32]{1,0} all-gather-done(%st)
      %w = (s32[], f32[16]{0}) while(%init), condition=%cond, body=%body, TRIPS_5
      %u = (s32[], f32[16]{0}) while(%init), condition=%cond, body=%body2
      ROOT %out = f32[] constant(0)
    }
    """
)
for _n in (3, 5):
    _HLO = _HLO.replace(f"TRIPS_{_n}", f'backend_config={{"known_trip_count":{{"n":"{_n}"}}}}')


def test_collectives_read_from_hlo_text():
    found = {c.name: c for c in collectives.collectives(_HLO)}
    assert list(found) == ["q2", "r", "r2", "g", "pair", "st"]
    # In loops: 5 trips of the outer body, 3 of the inner; unknown trips give None.
    assert [found[k].runs for k in ("q2", "r", "r2", "g")] == [15, 5, None, 1]
    assert found["r"].op == "all-reduce"
    assert (found["r"].operand_bytes, found["r"].result_bytes) == (64, 64)
    g = found["g"]
    assert (g.op, g.shapes) == ("all-gather", ("bf16[8,256]",))
    assert (g.operand_bytes, g.result_bytes, g.largest_bytes) == (512, 4096, 4096)
    pair = found["pair"]
    assert pair.shapes == ("f32[4]", "bf16[8,32]") and pair.operand_bytes == 16 + 512
    start = found["st"]  # an asynchronous pair: its result is the -done's
    assert (start.op, start.shapes, start.result_bytes) == ("all-gather", ("bf16[64,32]",), 4096)
    total = 15 * 8 + 5 * 64 + 64 + 4096 + 528 + 4096
    assert collectives.total_bytes(found.values()) == total
    lines = collectives.describe(found.values())
    assert len(lines) == 6 and lines[0].endswith("x 15 runs") and "unknown" in lines[2]
