"""Sharded inputs: every function under ``jit`` on meshes of simulated CPU devices, with
``Explicit`` (the default of ``jax.make_mesh``) and ``Auto`` axis types, gives the unsharded
values and gradients, and the gradients keep the inputs' shardings.

The devices are simulated in a subprocess (XLA's host device count is fixed at start-up),
bounded in time.
"""

import os
import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
    import jaxent as je

    assert jax.device_count() == 8

    @jax.jit
    def dense_streaming(h, w, b, lab, m):
        def dense(h, w, b):
            z = h @ w + b
            loss = je.softmax_cross_entropy_with_integer_labels(
                z, lab, where=m, ignore_index=-100)
            return (loss + 0.1 * jax.nn.logsumexp(z, -1) ** 2).sum()

        return jax.value_and_grad(dense, argnums=(0, 1, 2))(h, w, b)

    def streaming(mesh, shape, hspec, **kw):
        kh, kw_, kl, kb, km = jax.random.split(jax.random.key(0), 5)
        h = jax.random.normal(kh, (*shape, 32))
        w = jax.random.normal(kw_, (32, 100)) / 4
        b = jax.random.normal(kb, (100,))
        lab = jax.random.randint(kl, shape, 0, 100)
        lab = jnp.where(jax.random.bernoulli(km, 0.2, shape), -100, lab)
        m = jax.random.bernoulli(km, 0.8, shape)
        want = dense_streaming(h, w, b, lab, m)  # one compilation per shape
        tok = NamedSharding(mesh, P(*hspec[:-1]))
        with jax.set_mesh(mesh):
            h = jax.device_put(h, NamedSharding(mesh, hspec))
            w, b = jax.device_put((w, b), NamedSharding(mesh, P()))
            lab_s, m_s = jax.device_put((lab, m), tok)

            def fused(h, w, b):
                loss, lse = je.linear_softmax_cross_entropy(
                    h, w, lab_s, bias=b, where=m_s, ignore_index=-100, return_lse=True, **kw)
                return (loss + 0.1 * lse**2).sum(), loss

            (value, loss), grads = jax.jit(
                jax.value_and_grad(fused, argnums=(0, 1, 2), has_aux=True))(h, w, b)
        np.testing.assert_allclose(value, want[0], rtol=1e-5)
        for g, g_want, x in zip(grads, want[1], (h, w, b)):
            np.testing.assert_allclose(g, g_want, rtol=1e-5, atol=1e-6)
            assert jax.typeof(g).sharding.spec == jax.typeof(x).sharding.spec
        if mesh.axis_types[0] == AxisType.Explicit:
            assert loss.sharding.spec == tok.spec, loss.sharding

    def dense_family(mesh, specs):
        rng = np.random.default_rng(0)
        z = jnp.asarray(rng.normal(size=(16, 24)), jnp.float32)
        q = jnp.asarray(rng.normal(size=(16, 24)), jnp.float32)
        y = jnp.asarray(rng.integers(0, 24, 16)).at[3].set(-100)
        t = jax.nn.softmax(q)
        rows = jnp.arange(16) % 5 != 0
        calls = {
            "int": lambda z, q, t, y, rows: je.softmax_cross_entropy_with_integer_labels(
                z, y, ignore_index=-100, label_smoothing=0.1, z_loss=1e-3),
            "int_weights": lambda z, q, t, y, rows: je.softmax_cross_entropy_with_integer_labels(
                z, y, ignore_index=-100, class_weights=jnp.arange(24.0)),
            "int_where": lambda z, q, t, y, rows: je.softmax_cross_entropy_with_integer_labels(
                z, y, where=rows, ignore_index=-100),
            "soft": lambda z, q, t, y, rows: je.softmax_cross_entropy(
                z, t, class_weights=jnp.arange(24.0)),
            "entropy": lambda z, q, t, y, rows: je.entropy_from_logits(z, base=2),
            "kl": lambda z, q, t, y, rows: je.kl_divergence_from_logits(z, q),
            "sigmoid": lambda z, q, t, y, rows: je.multilabel_sigmoid_cross_entropy(z, t),
            "probs": lambda z, q, t, y, rows: je.kl_divergence(jax.nn.softmax(z), t),
        }
        args = (q, t, y, rows)

        @jax.jit
        def every_call(z, *args):
            # value, gradient and per-row values of every function: one compiled call
            return [(*jax.value_and_grad(lambda z: f(z, *args).sum())(z), f(z, *args))
                    for f in calls.values()]

        want = every_call(z, *args)
        for spec in specs:
            with jax.set_mesh(mesh):
                row_spec = NamedSharding(mesh, P(spec[0]))
                zs, qs, ts = jax.device_put((z, q, t), NamedSharding(mesh, spec))
                ys, rs = jax.device_put((y, rows), row_spec)
                got = every_call(zs, qs, ts, ys, rs)
            for name, (v, g, per_row), (v_w, g_w, per_row_w) in zip(calls, got, want):
                np.testing.assert_allclose(v, v_w, rtol=2e-5, err_msg=name)
                np.testing.assert_allclose(g, g_w, rtol=2e-5, atol=1e-6, err_msg=name)
                np.testing.assert_allclose(per_row, per_row_w, rtol=2e-5, atol=1e-6, err_msg=name)
                assert jax.typeof(g).sharding.spec == jax.typeof(zs).sharding.spec, name

    for axis_type in (AxisType.Explicit, AxisType.Auto):
        m1 = jax.make_mesh((8,), ("data",), axis_types=(axis_type,))
        m2 = jax.make_mesh((2, 4), ("data", "model"), axis_types=(axis_type,) * 2)
        streaming(m1, (16,), P("data", None))
        streaming(m1, (16,), P("data", None), token_chunk_size=3, chunk_size=24)
        streaming(m2, (4, 8), P("data", None, None), token_chunk_size=5, chunk_size=30)
        streaming(m2, (4, 8), P(None, "data", None))
        # The class axis split over devices is the vocabulary-parallel case: Auto axes only.
        auto = axis_type == AxisType.Auto
        dense_family(m2, [P("data", None)] + [P(None, "model"), P("data", "model")] * auto)
    print("ok")
    """
)


def test_functions_under_sharded_meshes_equal_unsharded():
    env = dict(
        os.environ,
        # Small programs, compile-bound: code generation at -O0 (what is checked, values,
        # shardings, collectives and buffer sizes, is settled before it).
        XLA_FLAGS="--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0",
        JAX_PLATFORMS="cpu",
    )
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=420
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
