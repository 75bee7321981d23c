"""Probes of the CPU's limits behind the open logits targets: ``python -m benchmarks.probes``.

Each probe times a few bare computations side by side (interleaved calls, medians), or reads
the compiler's temp bytes, to show what bounds a fused kernel on this backend:

- ``loop``: a row-wise log-sum-exp over the whole array against the same over blocks of 4
  rows in a ``lax.map`` (the row-block loop of the fused kernels), and jaxent's entropy
  forward beside the naive form;
- ``bf16_loop``: the temp bytes of a ``lax.map`` over blocks of a bfloat16 array, entered as
  bfloat16 (upcast per block) and as its raw bits;
- ``int_vg``: the integer-label value-and-grad at long rows beside its two necessary passes,
  one that writes an array of the logits' size (``exp(x - 1)``) and the blocked row
  statistics, and one copy;
- ``routes``: jaxent's own routes side by side, each compiled with the module setting that
  selects it: the entropy from logits through its whole-array passes and through the
  row-block loop, and at long rows the soft-label cross-entropy, KL and entropy from logits
  with two rows a loop step and with one;
- ``fast_route``: the forward passes of the soft-label cross-entropy, the entropy and the KL
  from logits through their whole-array route (taken from ``_FAST_MIN_ROWS`` rows) and
  through the exact route alone (``_FAST_MIN_ROWS`` above the row count), beside optax or
  the naive form, with each route's temp bytes; and the soft-label value-and-grad through
  both routes beside optax's;
- ``masked``: the entropy and KL from logits and the soft- and integer-label cross-entropy
  with a per-row ``where`` beside the same call unmasked, forward and value-and-grad;
- ``kl_support``: the KL from logits beside optax's on log-softmaxes, forward and
  value-and-grad, on its exact route (fewer rows than ``_FAST_MIN_ROWS``) and at long rows,
  where it reads q's maximum on p's support.

``--quick`` runs them on tiny shapes (a smoke test; its timings mean nothing).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxent as je
from jaxent._src import softmax


def _timed(fns: dict[str, Callable], args: tuple, repeats: int) -> dict[str, float]:
    """Median milliseconds per call, the variants called in turn (after one warm call)."""
    return _timed_compiled({name: jax.jit(f) for name, f in fns.items()}, args, repeats)


def _temp_mib(f: Callable, *specs) -> float:
    mem = jax.jit(f).lower(*specs).compile().memory_analysis()
    return float("nan") if mem is None else mem.temp_size_in_bytes / 2**20


def _lse(x):
    m = jnp.max(x, axis=-1, keepdims=True)
    return (jnp.log(jnp.sum(jnp.exp(x - m), axis=-1, keepdims=True)) + m)[..., 0]


def _lse_blocks(x, rows: int = 4):
    n, k = x.shape
    return jax.lax.map(_lse, x.reshape(n // rows, rows, k)).reshape(n)


def _naive_entropy(x):
    return -jnp.sum(jax.nn.softmax(x) * jax.nn.log_softmax(x), axis=-1)


def loop(shape, repeats: int) -> list[str]:
    x = jax.random.normal(jax.random.key(0), shape, jnp.float32)
    ms = _timed(
        {
            "lse whole": _lse,
            "lse blocks of 4 rows": _lse_blocks,
            "entropy_from_logits": je.entropy_from_logits,
            "naive entropy": _naive_entropy,
        },
        (x,),
        repeats,
    )
    return [f"| loop | {list(shape)} | float32 | {k} | {v:.1f} | |" for k, v in ms.items()]


def bf16_loop(shape) -> list[str]:
    spec = jax.ShapeDtypeStruct(shape, jnp.bfloat16)

    def upcast_in_loop(x):
        n, k = x.shape
        blocks = x.reshape(n // 4, 4, k)
        return jax.lax.map(lambda b: _lse(b.astype(jnp.float32)), blocks).reshape(n)

    def bits_in_loop(x):
        n, k = x.shape
        bits = jax.lax.bitcast_convert_type(x, jnp.uint16).reshape(n // 4, 4, k)

        def step(b):
            f = jax.lax.bitcast_convert_type(b.astype(jnp.uint32) << 16, jnp.float32)
            return _lse(f)

        return jax.lax.map(step, bits).reshape(n)

    mib = 2 * np.prod(shape) / 2**20
    return [
        f"| bf16_loop | {list(shape)} | bfloat16 ({mib:.0f} MiB) | {name} | temp {t:.2f} MiB | |"
        for name, t in (
            ("upcast per block", _temp_mib(upcast_in_loop, spec)),
            ("raw bits, shifted per block", _temp_mib(bits_in_loop, spec)),
        )
    ]


def int_vg(shape, repeats: int) -> list[str]:
    out = []
    labels = jax.random.randint(jax.random.key(2), shape[:1], 0, shape[1])

    def blocked_stats(x):
        m, s = softmax._max_and_sum_exp_blocked(x, None, jnp.float32)
        return m + jnp.log(s)

    def vg(loss):
        return jax.value_and_grad(lambda x: loss(x, labels).mean())

    for dtype in (jnp.float32, jnp.bfloat16):
        x = jax.random.normal(jax.random.key(0), shape, jnp.float32).astype(dtype)
        fns = {
            "copy": jnp.copy,
            "exp(x - 1) written": lambda x: jnp.exp(x - 1),
            "blocked row statistics": blocked_stats,
            "jaxent vg": vg(je.softmax_cross_entropy_with_integer_labels),
            "optax vg": vg(optax.losses.softmax_cross_entropy_with_integer_labels),
        }
        if shape[1] < softmax._ROW_BLOCK_MIN_CLASSES:
            # Shorter rows: the loss reads them whole (blocked only from 65536 classes).
            del fns["blocked row statistics"]
            fns["row statistics"] = lambda x: jax.nn.logsumexp(x.astype(jnp.float32), axis=-1)
        ms = _timed(fns, (x,), repeats)
        name = jnp.dtype(dtype).name
        out += [
            f"| int_vg | {list(shape)} | {name} | {k} | {v:.1f} | {v / ms['copy']:.2f} |"
            for k, v in ms.items()
        ]
    return out


def _compiled_with(setting: dict[str, int], f: Callable, args: tuple):
    """``f`` compiled for ``args`` while the ``softmax`` module constants in ``setting`` hold."""
    saved = {k: getattr(softmax, k) for k in setting}
    try:
        for k, v in setting.items():
            setattr(softmax, k, v)
        jax.clear_caches()  # the public functions are jitted: trace them under the setting
        return jax.jit(f).lower(*args).compile()
    finally:
        for k, v in saved.items():
            setattr(softmax, k, v)
        jax.clear_caches()


def _timed_compiled(fns: dict[str, Callable], args: tuple, repeats: int) -> dict[str, float]:
    for f in fns.values():
        jax.block_until_ready(f(*args))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(*args))
            times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


def routes(short, long, repeats: int) -> list[str]:
    out = []
    vg = _vg

    def ent(a, _):
        return je.entropy_from_logits(a)

    a = jax.random.normal(jax.random.key(0), short, jnp.float32) * 3
    fns = {}
    for name, setting in (("whole-array", {}), ("row-block loop", {"_ROW_BLOCK_MIN_CLASSES": 1})):
        fns[f"entropy_from_logits fwd, {name}"] = _compiled_with(setting, ent, (a, a))
        fns[f"entropy_from_logits vg, {name}"] = _compiled_with(setting, vg(ent), (a, a))
    fns["naive entropy fwd"] = jax.jit(lambda x, _: _naive_entropy(x)).lower(a, a).compile()
    out += [
        f"| routes | {list(short)} | float32 | {k} | {v:.1f} | |"
        for k, v in _timed_compiled(fns, (a, a), repeats).items()
    ]
    a = jax.random.normal(jax.random.key(0), long, jnp.float32) * 3
    b = jax.random.normal(jax.random.key(1), long, jnp.float32) * 3
    y = jax.nn.softmax(b)
    cases = (
        ("softmax_cross_entropy", je.softmax_cross_entropy, y),
        ("kl_divergence_from_logits", je.kl_divergence_from_logits, b),
        ("entropy_from_logits", ent, b),
    )
    # One row a step: the row-block rule as it was (about 1/_ROW_STEPS of the rows, at
    # least one), which _ROW_STEPS above the row count gives.
    one_row = {"_ROW_STEPS": 2 * long[0]}
    for name, f, second in cases:
        fns = {}
        for label, setting in (("two rows a step", {}), ("one row a step", one_row)):
            fns[f"{name} fwd, {label}"] = _compiled_with(setting, f, (a, second))
            fns[f"{name} vg, {label}"] = _compiled_with(setting, vg(f), (a, second))
        out += [
            f"| routes | {list(long)} | float32 | {k} | {v:.1f} | |"
            for k, v in _timed_compiled(fns, (a, second), repeats).items()
        ]
    return out


def fast_route(shape, repeats: int) -> list[str]:
    a = jax.random.normal(jax.random.key(0), shape, jnp.float32) * 3
    b = jax.random.normal(jax.random.key(1), shape, jnp.float32) * 3
    y = jax.nn.softmax(b)
    exact = {"_FAST_MIN_ROWS": 2**62}
    cases = (
        ("softmax_cross_entropy", je.softmax_cross_entropy, y, optax.softmax_cross_entropy),
        ("entropy_from_logits", lambda z, _: je.entropy_from_logits(z), b, _naive_ent2),
        ("kl_divergence_from_logits", je.kl_divergence_from_logits, b, _optax_kl),
    )
    out = []
    for name, f, second, alternative in cases:
        fns = {
            f"{name} fwd, whole-array route": _compiled_with({}, f, (a, second)),
            f"{name} fwd, exact route": _compiled_with(exact, f, (a, second)),
            f"{name} fwd, optax or naive": jax.jit(alternative).lower(a, second).compile(),
        }
        vg = {}
        if name == "softmax_cross_entropy":
            # The route's form bare, with and without the check that a negative label gives
            # NaN (optax's form has no such check): what the check costs.
            fns[f"{name} fwd, bare form with the label check"] = (
                jax.jit(_bare_xent_checked).lower(a, second).compile()
            )
            fns[f"{name} fwd, bare form without it"] = (
                jax.jit(_bare_xent).lower(a, second).compile()
            )
            # Its value-and-grad takes the route too (unsmoothed float32 targets).
            vg[f"{name} vg, whole-array route"] = _compiled_with({}, _vg(f), (a, second))
            vg[f"{name} vg, exact route"] = _compiled_with(exact, _vg(f), (a, second))
            vg[f"{name} vg, optax"] = jax.jit(_vg(alternative)).lower(a, second).compile()
        for k, c in {**fns, **vg}.items():
            mem = c.memory_analysis()
            temp = float("nan") if mem is None else mem.temp_size_in_bytes / 2**20
            out.append(f"| fast_route | {list(shape)} | float32 | {k} | temp {temp:.2f} MiB | |")
        # Forward calls interleaved among themselves, value-and-grad calls among themselves
        # (interleaved with the heavier value-and-grad, the forward times spread more).
        for group in (fns, vg):
            out += [
                f"| fast_route | {list(shape)} | float32 | {k} | {v:.1f} | |"
                for k, v in (_timed_compiled(group, (a, second), repeats) if group else {}).items()
            ]
    return out


def _bare_xent(z, y):
    """The whole-array route's soft-label form, sum y (log s - (z - m)), alone."""
    d = z - jnp.max(z, axis=-1, keepdims=True)
    log_s = jnp.log(jnp.sum(jnp.exp(d), axis=-1, keepdims=True))
    return jnp.sum(y * (log_s - d), axis=-1)


def _bare_xent_checked(z, y):
    """``_bare_xent`` plus the route's negative-label check: NaN where a label is < 0."""
    return _bare_xent(z, y) + jnp.sqrt(jnp.minimum(jnp.min(y, axis=-1), 0))


def _vg(f: Callable) -> Callable:
    return lambda z, t: jax.value_and_grad(lambda x: jnp.sum(f(x, t)))(z)


def _naive_ent2(x, _):
    return _naive_entropy(x)


def _optax_kl(p, q):
    return optax.losses.kl_divergence_with_log_targets(jax.nn.log_softmax(q), jax.nn.log_softmax(p))


def masked(shape, repeats: int) -> list[str]:
    """The logits functions with a per-row ``where`` (every 7th row masked) beside the same
    call unmasked, forward and value-and-grad, each pair's calls interleaved: what the mask's
    route costs (entropy and KL from logits, soft- and integer-label cross-entropy)."""
    kz, kq, ky = jax.random.split(jax.random.key(0), 3)
    z = jax.random.normal(kz, shape, jnp.float32)
    q = jax.random.normal(kq, shape, jnp.float32)
    t = jax.nn.softmax(jax.random.normal(ky, shape, jnp.float32))
    labels = jax.random.randint(ky, shape[:1], 0, shape[1])
    w = jnp.arange(shape[0]) % 7 != 0
    calls = {
        "entropy_from_logits": (lambda z, _, **kw: je.entropy_from_logits(z, **kw), None),
        "kl_divergence_from_logits": (
            lambda z, q, **kw: je.kl_divergence_from_logits(z, q, **kw),
            q,
        ),
        "softmax_cross_entropy": (lambda z, t, **kw: je.softmax_cross_entropy(z, t, **kw), t),
        "softmax_cross_entropy_with_integer_labels": (
            lambda z, y, **kw: je.softmax_cross_entropy_with_integer_labels(z, y, **kw),
            labels,
        ),
    }
    out = []
    for name, (f, other) in calls.items():
        fwd = {
            f"{name} fwd": lambda z, o, f=f: f(z, o),
            f"{name} fwd, where": lambda z, o, f=f: f(z, o, where=w),
        }
        vg = {
            f"{name} vg": _vg(lambda z, o, f=f: f(z, o)),
            f"{name} vg, where": _vg(lambda z, o, f=f: f(z, o, where=w)),
        }
        for group in (fwd, vg):
            times = _timed(group, (z, other), repeats)
            out += [
                f"| masked | {list(shape)} | float32 | {k} | {v:.1f} | |" for k, v in times.items()
            ]
    return out


def kl_support(shapes, repeats: int) -> list[str]:
    """``kl_divergence_from_logits`` beside optax's KL on log-softmaxes, forward and
    value-and-grad (each pair's calls interleaved), on the routes that read q's maximum on
    p's support: fewer rows than the whole-array route takes, and long rows."""
    out = []
    for shape in shapes:
        kp, kq = jax.random.split(jax.random.key(0))
        p = jax.random.normal(kp, shape, jnp.float32) * 3
        q = jax.random.normal(kq, shape, jnp.float32) * 3
        for suffix, wrap in (("fwd", lambda f: f), ("vg", _vg)):
            group = {
                f"jaxent {suffix}": wrap(je.kl_divergence_from_logits),
                f"optax {suffix}": wrap(_optax_kl),
            }
            times = _timed(group, (p, q), repeats)
            ratio = times[f"jaxent {suffix}"] / times[f"optax {suffix}"]
            out += [
                f"| kl_support | {list(shape)} | float32 | {k} | {v:.1f} | |"
                for k, v in times.items()
            ]
            label = f"jaxent / optax {suffix}"
            out.append(f"| kl_support | {list(shape)} | float32 | {label} | {ratio:.3f} | |")
    return out


PROBES = ("loop", "bf16_loop", "int_vg", "routes", "fast_route", "masked", "kl_support")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, a smoke test")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument(
        "--only", action="append", choices=PROBES, help="run only this probe (repeatable)"
    )
    args = parser.parse_args(argv)
    big = (
        ((64, 512), (8, 1024), (16, 256))
        if args.quick
        else ((4096, 32768), (1024, 131072), (16384, 8192))
    )
    repeats = 2 if args.quick else args.repeats
    runs = {
        "loop": lambda: loop(big[0], repeats),
        "bf16_loop": lambda: bf16_loop((big[0][0] // 4, big[0][1])),
        "int_vg": lambda: [*int_vg(big[1], repeats), *int_vg(big[2], repeats)],
        "routes": lambda: routes(big[0], big[1], repeats),
        "fast_route": lambda: fast_route(big[0], repeats),
        "masked": lambda: masked((big[0][0] // 2, big[0][1] // 4), repeats),
        "kl_support": lambda: kl_support(
            ((big[0][0] // 2, big[0][1] // 4), (big[1][0] // 4, big[1][1])), repeats
        ),
    }
    print(f"device: {jax.devices()[0].device_kind}; jax {jax.__version__}")
    print("| probe | shape | dtype | variant | median ms (or temp) | x copy |")
    print("|---|---|---|---|---:|---:|")
    for name in args.only or PROBES:
        for line in runs[name]():
            print(line)


if __name__ == "__main__":
    main()
