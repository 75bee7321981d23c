"""Shared test helpers: compiled transforms, dtypes and tolerances, masks, the oracle case
table, and the checks that several test modules apply each to its own functions.

The float64 oracles and the seeded inputs live in ``references``; nothing here computes an
expected value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from absl.testing import parameterized
from jax.test_util import check_grads

# Compiled transforms: op-by-op eager differentiation is far slower to run.


def jit(f, **kw):
    return jax.jit(partial(f, **kw))


def jgrad(f, argnums=0):
    return jax.jit(jax.grad(f, argnums))


def jfwd(f, argnums=0):
    return jax.jit(jax.jacfwd(f, argnums))


def jhess(f):
    return jax.jit(jax.hessian(f))


def jvg(f, argnums=0):
    return jax.jit(jax.value_and_grad(f, argnums))


def jjvp(f, primals, tangents):
    return jax.jit(lambda p, t: jax.jvp(f, p, t))(primals, tangents)


# Dtypes and tolerances.

DTYPES = [jnp.float64, jnp.float32, jnp.bfloat16, jnp.float16]


def f64(x):
    return np.asarray(jnp.asarray(x).astype(jnp.float64))


def out_dtype(dtype):
    """The promised result dtype: float64 stays float64, everything else computes in float32."""
    return jnp.float64 if dtype == jnp.float64 else jnp.float32


def tol(dtype, low=2e-6):
    """Relative tolerance: inputs are rounded to ``dtype`` first, the computation runs in at
    least float32 (``low`` is the float32 tolerance)."""
    return 1e-12 if dtype == jnp.float64 else low


def close(got, want, dtype, *, atol=2e-6):
    """``got`` has the promised dtype and matches the float64 oracle ``want``; below float64,
    with an absolute ``atol`` (a few ulps of the O(1) terms)."""
    assert got.dtype == out_dtype(dtype)
    np.testing.assert_allclose(
        got, want, rtol=tol(dtype), atol=1e-300 if dtype == jnp.float64 else atol
    )


# Shapes, masks and the oracle table.


def batch_shape(shape, axis):
    axes = ref._axes(axis, len(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def num_classes(shape, axis):
    return math.prod(shape[a] for a in ref._axes(axis, len(shape)))


def make_mask(kind, rng, shape, axis):
    """No mask, a per-class mask, or a per-example mask with one fully masked distribution."""
    if kind is None:
        return None
    if kind == "per_class":
        return ref.random_mask(rng, shape, axis)
    m = rng.random(batch_shape(shape, axis)) < 0.7
    m.flat[0] = False
    return m


# Every shape/axis with a per-class mask in float64; the other masks and dtypes on fewer cases
# (the dtype contract tests cover the rest).
TABLE = (
    [(s, a, jnp.float64, "per_class") for s, a in ref.SHAPES_AXES]
    + [(s, a, jnp.float64, m) for s, a in ref.SHAPES_AXES[2:5:2] for m in (None, "per_example")]
    + [(s, a, jnp.float32, None) for s, a in ref.SHAPES_AXES[3:5]]
    + [(*ref.SHAPES_AXES[4], jnp.bfloat16, "per_class"), (*ref.SHAPES_AXES[1], jnp.float16, None)]
)


# The public functions: eager, jit and vmap agree; static options never retrace.


class Public(NamedTuple):
    """A public function, the kinds of its positional arguments (see ``make_args``), its
    static options, and (keyword, kind) pairs of keyword arrays that are traced too."""

    fn: Callable
    kinds: str
    static: dict
    arrays: tuple = ()


def make_args(kinds, seed, n=3, k=5):
    """Seeded arguments by kind: "p" probabilities with zeros, "q" positive probabilities,
    "z" and "w" logits, "y" soft labels, "l" integer labels (one is k - 1), "c" class
    weights, "m" a per-class mask."""
    rng = np.random.default_rng(seed)
    make = {
        "p": lambda: ref.random_probs(rng, (n, k), zeros=0.2),
        "q": lambda: ref.random_probs(rng, (n, k)),
        "z": lambda: rng.normal(size=(n, k)),
        "w": lambda: rng.normal(size=(n, k)) * 2,
        "y": lambda: ref.random_probs(rng, (n, k)),
        "l": lambda: np.array([0, k - 1, 2][:n]),
        "c": lambda: rng.uniform(0.5, 2.0, k),
        "m": lambda: ref.random_mask(rng, (n, k)),
    }
    return tuple(jnp.asarray(make[c]()) for c in kinds)


def _call(public, seed):
    """Seeded ``(args, kwargs)`` for ``public``: its positional and keyword arrays."""
    values = make_args(public.kinds + "".join(kind for _, kind in public.arrays), seed)
    names = [name for name, _ in public.arrays]
    return values[: len(public.kinds)], dict(zip(names, values[len(public.kinds) :], strict=True))


def check_matches_eager(variant, fn, args, static, *, rtol=0.0):
    """Under a ``chex`` variant (with or without jit), ``fn`` with the static options
    ``static`` equals the eager call (to ``rtol``; 0 is exact), and so does its vmap over
    the leading axis and over axis 1 of the 2-D arguments."""
    eager = fn(*args, **static)
    f = partial(variant(fn, static_argnames=tuple(static)), **static)
    np.testing.assert_allclose(f(*args), eager, rtol=rtol, atol=0)
    np.testing.assert_allclose(jax.vmap(f)(*args), eager, rtol=1e-15, atol=0)
    in_axes = tuple(1 if jnp.ndim(a) == 2 else 0 for a in args)
    moved = tuple(a.T if jnp.ndim(a) == 2 else a for a in args)
    np.testing.assert_allclose(jax.vmap(f, in_axes=in_axes)(*moved), eager, rtol=1e-15, atol=0)


def check_traced_once(fn, static, calls):
    """A jitted ``fn`` called with the same static options ``static`` on every
    ``(args, kwargs)`` of ``calls`` (arrays of one shape and dtype, new values) traces once.
    A call with other dtypes must retrace: the trace counter is live."""
    chex.clear_trace_counter()
    traced = jax.jit(chex.assert_max_traces(fn, n=1), static_argnames=tuple(static))
    for args, kwargs in calls:
        jax.block_until_ready(traced(*args, **kwargs, **static))
    args, kwargs = jax.tree.map(
        lambda x: x.astype(jnp.bfloat16) if jnp.issubdtype(x.dtype, jnp.floating) else x,
        calls[0],
    )
    with pytest.raises(AssertionError, match="traced > 1 times"):
        traced(*args, **kwargs, **static)


def public_function_tests(public, seed):
    """The ``chex`` tests of the functions ``public`` ({name: Public}) of one module: each
    with its default and its static options gives the same values with and without jit (to
    within an ulp on logits, exactly on probabilities), vmapped or not; and repeated calls
    with the static options and new arrays trace once."""
    variants = [(name, p.fn, p.kinds, {}) for name, p in public.items()] + [
        (f"{name}_options", p.fn, p.kinds, p.static) for name, p in public.items() if p.static
    ]

    class PublicFunctionTest(chex.TestCase):
        @chex.variants(with_jit=True, without_jit=True)
        @parameterized.named_parameters(*variants)
        def test_matches_eager(self, fn, kinds, static):
            rtol = 1e-15 if "z" in kinds else 0.0
            check_matches_eager(self.variant, fn, make_args(kinds, seed), static, rtol=rtol)

        @parameterized.named_parameters(*public.items())
        def test_static_options_do_not_retrace(self, p):
            check_traced_once(p.fn, p.static, [_call(p, s) for s in range(3)])

    return PublicFunctionTest


# Gradients.


def check_grads_both_modes(f, probabilities, *, nargs):
    """``check_grads`` of ``f`` to second order in forward and reverse mode, compiled, on
    ``nargs`` (2, 3) arrays: probabilities away from 0 and 1 (where finite differences are
    exact), or logits then soft labels."""
    if probabilities:
        rng = np.random.default_rng(6)
        args = tuple(jnp.asarray(rng.uniform(0.2, 0.8, (2, 3))) for _ in range(nargs))
    else:
        rng = np.random.default_rng(19)
        z, y = rng.normal(size=(2, 3)), ref.random_probs(rng, (2, 3))
        args = (jnp.asarray(z), jnp.asarray(y))[:nargs]
    check_grads(jax.jit(f), args, order=2, modes=("fwd", "rev"), eps=1e-4, atol=1e-5, rtol=1e-5)


def check_finite_and_modes_agree(f, arg):
    """The gradient of the scalar ``f`` at ``arg`` is finite, and forward mode agrees with
    reverse mode (a NaN tangent would show here)."""
    g = jgrad(f)(arg)
    _, t = jjvp(f, (arg,), (jnp.ones_like(arg),))
    assert np.all(np.isfinite(g)) and np.isfinite(t)
    np.testing.assert_allclose(t, jnp.sum(g), rtol=1e-14)


# Simpler equivalent calls and masked garbage, for measures on probabilities. ``f`` takes
# ``nargs`` distributions.


def check_masked_equals_sliced(f, nargs):
    rng = np.random.default_rng(3)
    args = tuple(jnp.asarray(ref.random_probs(rng, (4, 6))) for _ in range(nargs))
    keep = np.array([True, False, True, True, False, True])
    got = f(*args, where=keep[None, :])
    np.testing.assert_allclose(got, f(*(a[:, keep] for a in args)), rtol=1e-14)
    # a per-example mask: masked-out examples give 0.
    rows_on = np.array([True, False, True, False])
    np.testing.assert_array_equal(f(*args, where=rows_on), np.where(rows_on, f(*args), 0.0))


def check_axis_equals_moveaxis(f, nargs, axis):
    rng = np.random.default_rng(4)
    args = tuple(jnp.asarray(ref.random_probs(rng, (3, 4, 5), axis)) for _ in range(nargs))
    moved = f(*(jnp.moveaxis(a, axis, -1) for a in args))
    np.testing.assert_allclose(f(*args, axis=axis), moved, rtol=1e-14)
    # a tuple axis equals the call on the flattened classes.
    flat = f(*(jnp.moveaxis(a, 1, 0).reshape(4, 15) for a in args))
    np.testing.assert_allclose(f(*args, axis=(0, 2)), flat, rtol=1e-14)


GARBAGE = np.array([1e30, np.inf, -np.inf, np.nan, -3.0, 5e-324])


def check_masked_garbage_probabilities(f, nargs):
    """Row i holds GARBAGE[i] in its masked-out entry; the last row is fully masked."""
    n = len(GARBAGE)
    rng = np.random.default_rng(8)
    clean = tuple(jnp.asarray(ref.random_probs(rng, (n + 1, 4))) for _ in range(nargs))
    mask = np.ones((n + 1, 4), bool)
    mask[:, 2] = False
    mask[n] = False
    fill = np.full(n + 1, 0.25)
    fill[:n] = GARBAGE
    dirty = tuple(a.at[:, 2].set(fill) for a in clean)

    def call(*args):
        return f(*args, where=mask)

    def total(*args):
        return call(*args).sum()

    vals = jax.jit(call)
    grads = jax.jit(jax.grad(total, tuple(range(nargs))))
    np.testing.assert_array_equal(vals(*dirty), vals(*clean))
    assert vals(*dirty)[n] == 0
    chex.assert_trees_all_equal(grads(*dirty), grads(*clean))
    for g in grads(*dirty):
        np.testing.assert_array_equal(g[~mask], 0.0)
    ones = tuple(jnp.ones_like(a) for a in clean)
    _, t = jjvp(total, dirty, ones)
    _, t_clean = jjvp(total, clean, ones)
    np.testing.assert_array_equal(t, t_clean)


def check_prob_dtype_contract(f, args, want, dtype):
    """The result comes back in ``out_dtype``, float32-accurate on inputs that are exact in
    float32, and each gradient in its input's dtype."""
    v = f(*args)
    assert v.dtype == out_dtype(dtype), f
    np.testing.assert_allclose(v, want, rtol=tol(dtype))
    grads = jgrad(lambda *a: f(*a).sum(), tuple(range(len(args))))(*args)
    for g in grads:
        assert g.dtype == dtype


# Simpler equivalent calls and boundary inputs, for functions of logits. ``f(z, y, lab, **kw)``
# takes logits, soft labels and integer labels, and uses the ones it needs.


def check_logit_simpler_calls(f):
    """Masked call == call on the sliced input; axis=k == call on moveaxis; a tuple axis ==
    the call on the flattened classes."""
    rng = np.random.default_rng(14)
    z = jnp.asarray(rng.normal(size=(4, 6)))
    y = jnp.asarray(ref.random_probs(rng, (4, 6)))
    keep = np.array([True, False, True, True, False, True])
    lab = jnp.array([0, 2, 3, 5])  # allowed classes, and their index in the sliced call
    lab_sliced = jnp.array([0, 1, 2, 3])
    got = jax.jit(partial(f, where=keep[None, :]))(z, y, lab)
    np.testing.assert_allclose(got, jax.jit(f)(z[:, keep], y[:, keep], lab_sliced), rtol=1e-14)
    rows_on = np.array([True, False, True, False])
    got = jax.jit(partial(f, where=rows_on))(z, y, lab)
    # Masked rows give exactly 0; the others agree to rounding (a row mask may take another
    # route through the fused passes).
    np.testing.assert_array_equal(np.asarray(got)[~rows_on], 0.0)
    np.testing.assert_allclose(got, np.where(rows_on, jax.jit(f)(z, y, lab), 0.0), rtol=1e-14)
    z3 = jnp.asarray(rng.normal(size=(3, 4, 5)))
    y3 = jnp.asarray(ref.random_probs(rng, (3, 4, 5), 1))
    lab3 = jnp.asarray(rng.integers(0, 4, (3, 5)))
    got = jax.jit(partial(f, axis=1))(z3, y3, lab3)
    moved = jax.jit(f)(jnp.moveaxis(z3, 1, -1), jnp.moveaxis(y3, 1, -1), lab3)
    np.testing.assert_allclose(got, moved, rtol=1e-14)
    y3t = jnp.asarray(ref.random_probs(rng, (3, 4, 5), (0, 2)))
    lab_flat = jnp.asarray(rng.integers(0, 15, (4,)))
    got = jax.jit(partial(f, axis=(0, 2)))(z3, y3t, lab_flat)

    def flat(x):
        return jnp.moveaxis(x, 1, 0).reshape(4, 15)

    np.testing.assert_allclose(got, jax.jit(f)(flat(z3), flat(y3t), lab_flat), rtol=1e-14)


def check_neg_inf_logit_zero_gradient(f):
    """A -inf logit gets gradient exactly 0 in both modes, and the rest equals the same call
    with -1e3 in its place (numerically the same distribution); Jacobian and Hessian finite."""
    z = jnp.array([[-jnp.inf, 0.5, -1.0, 2.0], [0.3, 0.5, -1.0, -jnp.inf]])
    clean = z.at[0, 0].set(-1e3).at[1, 3].set(-1e3)

    def total(x):
        return f(x).sum()

    (v, g), fwd = jvg(total)(z), jfwd(total)(z)
    v_c, g_c = jvg(total)(clean)
    np.testing.assert_allclose(v, v_c, rtol=1e-12)
    assert g[0, 0] == 0 and g[1, 3] == 0 and fwd[0, 0] == 0 and fwd[1, 3] == 0
    np.testing.assert_allclose(g, g_c, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(fwd, g_c, rtol=1e-10, atol=1e-300)
    # the per-row Jacobian in forward mode is finite, too (no 0 * inf).
    assert np.all(np.isfinite(jax.jit(jax.jacfwd(f))(z)))
    assert np.all(np.isfinite(jhess(total)(z)))


def check_masked_garbage_logits(f):
    """``f(z, mask)``: row i holds garbage in its masked-out class 2; the last row is fully
    masked and all NaN. Values and gradients (both modes) equal those of clean logits."""
    garbage = np.array([1e30, np.inf, -np.inf, np.nan, 5e-324])
    rng = np.random.default_rng(21)
    z = jnp.asarray(rng.normal(size=(6, 4)))
    mask = np.ones((6, 4), bool)
    mask[:, 2] = False
    mask[5] = False
    dirty = z.at[:5, 2].set(garbage).at[5].set(np.nan)

    def total(x):
        return f(x, mask).sum()

    vals = jax.jit(lambda x: f(x, mask))
    np.testing.assert_array_equal(vals(dirty), vals(z))
    assert vals(dirty)[5] == 0
    for transform in (jgrad, jfwd):
        g_dirty, g_clean = transform(total)(dirty), transform(total)(z)
        np.testing.assert_array_equal(g_dirty, g_clean)
        np.testing.assert_array_equal(g_dirty[~mask], 0.0)
        assert np.all(np.isfinite(g_dirty))


def check_logit_dtype_contract(f):
    """``f(z, y)`` in every float dtype: the promised result dtype, the float64 value of the
    same rounded inputs, gradients in the input dtype, tangents in the result dtype."""
    rng = np.random.default_rng(23)
    z64 = rng.normal(size=(3, 4)) * 3
    y64 = ref.random_probs(rng, (3, 4))
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64):
        z, y = jnp.asarray(z64, dtype), jnp.asarray(y64, dtype)
        v = jax.jit(f)(z, y)
        assert v.dtype == out_dtype(dtype), dtype
        want = jax.jit(f)(z.astype(jnp.float64), y.astype(jnp.float64))
        np.testing.assert_allclose(v, want, rtol=1e-5 if dtype != jnp.float64 else 0)
        gz, gy = jgrad(lambda a, b: f(a, b).sum(), (0, 1))(z, y)
        assert gz.dtype == dtype and gy.dtype == dtype
        _, t = jax.jit(lambda a, b, da: jax.jvp(lambda u: f(u, b).sum(), (a,), (da,)))(
            z, y, jnp.ones_like(z)
        )
        assert t.dtype == out_dtype(dtype)
