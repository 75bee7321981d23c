"""Test configuration.

Tests run with float64 enabled, so that references run in double precision; tests that
check the float32 or half-precision contract pass explicit dtypes. Doctests run in JAX's
default mode (float32, no x64) and compare text exactly: what a docstring shows is what a
user who pastes it sees.

The suite is compile-bound (many small programs, each compiled once), so XLA's CPU code
generation runs at LLVM -O0 (``--xla_backend_optimization_level=0``): 20-25% less CPU time.
XLA's HLO passes, where jaxent's computations and their fusion and buffer assignment
(``memory_analysis()``) are decided, run as always; the benchmarks and users compile at
the default level.
"""

import os

os.environ["XLA_FLAGS"] = " ".join(
    filter(None, [os.environ.get("XLA_FLAGS"), "--xla_backend_optimization_level=0"])
)

import jax
import pytest
from _pytest.doctest import DoctestItem

jax.config.update("jax_enable_x64", True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    if isinstance(item, DoctestItem):
        with jax.enable_x64(False):
            yield
    else:
        yield
