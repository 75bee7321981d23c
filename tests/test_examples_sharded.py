"""The sharded language-model example: its smoke run on 8 simulated CPU devices.

The example sets XLA's host device count before JAX starts, so it runs in a subprocess
(bounded in time), which returns its key numbers as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from examples_support import EXAMPLES

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from examples_support import load

    example = load("sharded_language_model")
    result = example.main(["--quick"])

    # The logits check bites: a block of tokens x classes in a collective is found.
    from benchmarks.collectives import Collective
    block = Collective("all-gather", "g", ("f32[64,2048]",), 64 * 512 * 4, 64 * 2048 * 4, 1)
    result["planted"] = example.logits_shaped([block], (64,), (2048, 512))
    print("RESULT " + json.dumps(result))
    """
)


@pytest.fixture(scope="module")
def result():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # the example sets the device count itself
    tests = os.path.dirname(os.path.abspath(__file__))
    run = subprocess.run(
        [sys.executable, "-c", _SCRIPT, tests],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=EXAMPLES.parent,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    line = next(ln for ln in run.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_sharded_training_equals_one_device(result):
    sharded, single = np.array(result["sharded_losses"]), np.array(result["single_losses"])
    assert len(sharded) == len(single) == 4
    np.testing.assert_allclose(sharded, single, rtol=2e-6)
    assert np.all(np.diff(sharded) < 0)  # it learns


def test_no_collective_carries_logits(result):
    ops = {c["op"] for c in result["collectives"]}
    assert ops == {"all-reduce"}, ops  # per-row statistics and gradients are summed
    assert all(c["runs"] is not None for c in result["collectives"])
    assert result["logits_shaped"] == []
    assert result["planted"] == ["all-gather f32[64,2048]"]
    # The largest: the data-parallel sum of the gradients, embedding and head shards first.
    largest = max(result["collectives"], key=lambda c: c["operand_bytes"])
    assert largest["shapes"][:2] == ["f32[512,32]", "f32[32,512]"], largest


def test_each_device_holds_a_quarter_of_the_vocabulary_matrices(result):
    sharded, single = result["sharded_memory"], result["single_memory"]
    # Parameters and Adam's two moments: [V, D] and [D, V] split 4 ways, [D, D] whole;
    # inputs and labels split 2 ways.
    vocab, d, tokens = 2048, 32, 8 * 16
    whole = 3 * 4 * (2 * vocab * d + d * d) + 2 * 4 * tokens + 4
    split = 3 * 4 * (2 * vocab * d // 4 + d * d) + 2 * 4 * tokens // 2 + 4
    assert single["arguments"] == whole, single
    assert sharded["arguments"] == split, sharded
    assert 0 < sharded["temp"] < single["temp"]
