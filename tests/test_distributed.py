"""Two processes, one mesh: jaxent on 8 CPU devices split over two processes on this machine.

Each test starts ``distributed_worker.py`` twice (process 0 and 1, four simulated CPU
devices each) joined by ``jax.distributed.initialize`` at a free port of 127.0.0.1, with
gloo CPU collectives. The worker compares every sharded result with the same computation
on one device; see its docstring. Both processes run under one hard deadline: when either
fails, or the deadline passes, the other is killed, and both outputs are shown.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest

WORKER = pathlib.Path(__file__).resolve().parent / "distributed_worker.py"
DEADLINE_S = 150


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_pair(check: str, folder: pathlib.Path) -> list[tuple[int | None, str]]:
    """Runs both processes of ``check``; returns each one's exit code and output."""
    env = dict(
        os.environ,
        # Small programs, compile-bound: code generation at -O0 (what is checked, values,
        # shardings, collectives and buffer sizes, is settled before it).
        XLA_FLAGS="--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0",
        JAX_PLATFORMS="cpu",
    )
    port = str(free_port())
    logs = [folder / f"{check}_{i}.log" for i in range(2)]
    procs = []
    for i, log in enumerate(logs):
        with open(log, "w") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(WORKER), port, str(i), check],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
    deadline = time.monotonic() + DEADLINE_S
    try:
        while any(p.poll() is None for p in procs):
            failed = any(p.returncode not in (None, 0) for p in procs)
            if failed or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [(p.returncode, log.read_text()) for p, log in zip(procs, logs, strict=True)]


@pytest.mark.parametrize("check", ["plain", "parallel"])
def test_two_processes_equal_one_device(check, tmp_path):
    results = run_pair(check, tmp_path)
    report = "\n".join(
        f"--- process {i}: exit code {code}\n{text[-4000:]}"
        for i, (code, text) in enumerate(results)
    )
    for code, text in results:
        assert code == 0 and f"ok {check}" in text, report
