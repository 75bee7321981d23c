"""Test configuration.

Tests run with float64 enabled, so that references run in double precision; tests that
check the float32 or half-precision contract pass explicit dtypes. Doctests run in JAX's
default mode (float32, no x64) and compare text exactly: what a docstring shows is what a
user who pastes it sees.
"""

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
