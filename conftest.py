"""Test configuration: float64 is enabled so that references run in double precision.

Tests that check the float32 or half-precision contract pass explicit dtypes.
"""

import jax

jax.config.update("jax_enable_x64", True)
