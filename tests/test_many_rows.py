"""Every public function at many rows against the same rows alone.

From 4096 rows on, XLA's CPU backend hands chains of reductions to fused YNNPACK kernels,
whose ``max`` drops NaN (``max(NaN, x) = x``), and jaxent's forward passes from logits take
their whole-array route. Rows holding NaN, +-inf and huge entries must give there what they
give in a small batch: for each public function of the test modules' ``PUBLIC`` tables,
special entries go into its first rows, and the first rows of a 4200-row call are compared
with a call on those rows alone.
"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import make_args

MODULES = (
    "test_losses",
    "test_entropy",
    "test_divergences",
    "test_f_divergences",
    "test_focal",
    "test_metrics",
    "test_gaussian",
    "test_joint",
)
SPECIAL = (np.nan, np.inf, -np.inf, 0.0, 1e30, -1e30)
ROWS = 4200


def _publics():
    out = {}
    for name in MODULES:
        mod = importlib.import_module(name)
        for table in ("PUBLIC", "RENYI_PUBLIC"):
            for key, public in (getattr(mod, table, None) or {}).items():
                out[f"{name[5:]}:{key}"] = public
    return out


PUBLICS = _publics()


def _args(kinds, k):
    args = []
    for i, (kind, a) in enumerate(zip(kinds, make_args(kinds, 3, n=ROWS, k=k), strict=True)):
        if kind == "l":
            a = jnp.asarray(np.arange(ROWS) % k)
        elif jnp.issubdtype(a.dtype, jnp.floating):
            a = np.array(a, np.float32)
            if kind in "pqzwy" and a.ndim == 2:
                for r, v in enumerate(SPECIAL):
                    a[r + len(SPECIAL) * i, 0] = v
            a = jnp.asarray(a)
        args.append(a)
    return args


@pytest.mark.parametrize("k", [5, 64])
@pytest.mark.parametrize("name", list(PUBLICS))
def test_special_rows_as_in_a_small_batch(name, k):
    public = PUBLICS[name]
    args = _args(public.kinds, k)
    f = jax.jit(lambda *a: public.fn(*a, **public.static))
    few = len(SPECIAL) * len(public.kinds) + 2
    many = jax.tree.leaves(f(*args))
    alone = jax.tree.leaves(f(*(a[:few] if a.ndim and a.shape[0] == ROWS else a for a in args)))
    compared = 0
    for got, want in zip(many, alone, strict=True):
        if got.ndim == 0 or got.shape[0] != ROWS:
            continue
        compared += 1
        np.testing.assert_allclose(
            np.asarray(got[:few], np.float64), np.asarray(want, np.float64), rtol=1e-4, atol=1e-6
        )
    if not compared:
        pytest.skip("no per-row output")
