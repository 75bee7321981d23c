"""A language-model head trained on a (data, model) mesh with the vocabulary-parallel loss.

Eight CPU devices are simulated (the XLA flag is set below, before JAX starts) and arranged
as a 2 x 4 mesh: tokens are split over ``data``, the vocabulary over ``model``. The toy
next-token model of ``lm_head.py`` (embedding ``[V, D]``, one tanh layer, output projection
``[D, V]``) keeps both vocabulary-sized matrices split over ``model``: the embedding by rows
(each device looks up the tokens in its range, one ``psum`` assembles the rows) and the head
by columns, with ``jaxent.parallel.vocab_parallel_linear_softmax_cross_entropy`` as the
loss, inside ``jax.shard_map``. No device ever holds logits for the whole vocabulary, nor
sends any. The same model is trained beside it on one device with
``jaxent.linear_softmax_cross_entropy``, from the same start, with the same Adam steps.

It prints each step's loss on the mesh beside the single-device loss, every collective of
one compiled training step with the bytes of its operands and result on one device (from
the optimised HLO, see ``benchmarks/collectives.py``), and the compiler's per-device memory
(``memory_analysis()``) of the sharded and the single-device step.

Run ``python examples/sharded_language_model.py``; ``--quick`` is a smoke run on a smaller
model. Nothing is downloaded and no file is written.
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    )
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from lm_head import PAD, init, make_data

import jaxent as je
from benchmarks.collectives import collectives, describe, total_bytes

OPTIONS = {"ignore_index": PAD, "label_smoothing": 0.05, "z_loss": 1e-4}
#: Where each parameter and each batch lives on the mesh.
PARAM_SPECS = {"embed": P("model", None), "mix": P(), "head": P(None, "model")}
DATA_SPEC = P("data", None)


def sharded_loss(mesh: jax.sharding.Mesh, params, inputs, labels) -> jax.Array:
    """The mean token loss, computed inside ``shard_map`` on the (data, model) mesh."""

    def local(embed, mix, head, inputs, labels):
        # This device's rows of the embedding are tokens [first, first + rows).
        rows = embed.shape[0]
        index = inputs - lax.axis_index("model") * rows
        mine = (index >= 0) & (index < rows)
        x = jnp.where(mine[..., None], embed[jnp.clip(index, 0, rows - 1)], 0)
        hidden = jnp.tanh(lax.psum(x, "model") @ mix)  # [B / 2, T, D], whole rows
        per_token = je.parallel.vocab_parallel_linear_softmax_cross_entropy(
            hidden, head, labels, axis_name="model", **OPTIONS
        )
        total = lax.psum(per_token.sum(), "data")
        count = lax.psum((labels != PAD).sum(), "data")
        return total / jnp.maximum(count, 1)

    specs = (PARAM_SPECS["embed"], PARAM_SPECS["mix"], PARAM_SPECS["head"], DATA_SPEC, DATA_SPEC)
    fn = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P())
    return fn(params["embed"], params["mix"], params["head"], inputs, labels)


def single_device_loss(params, inputs, labels) -> jax.Array:
    """The same mean token loss on one device."""
    hidden = jnp.tanh(params["embed"][inputs] @ params["mix"])
    per_token = je.linear_softmax_cross_entropy(hidden, params["head"], labels, **OPTIONS)
    return per_token.sum() / jnp.maximum((labels != PAD).sum(), 1)


def train_step(loss_fn, opt: optax.GradientTransformation):
    """One Adam step of ``loss_fn(params, inputs, labels)``, jitted."""

    @jax.jit
    def step(params, state, inputs, labels):
        loss, grads = jax.value_and_grad(loss_fn)(params, inputs, labels)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return step


def logits_shaped(found, tokens, classes) -> list[str]:
    """The arrays in ``found``'s collectives with a token axis and a class axis.

    Args:
      found: collectives, from ``benchmarks.collectives.collectives``.
      tokens: the sizes a token axis may have: ints, or tuples of sizes that must all occur.
      classes: the sizes a class axis may have (the vocabulary, or one shard of it).
    """
    out = []
    for c in found:
        for shape in c.shapes:
            dims = [int(d) for d in shape.split("[")[1].rstrip("]").split(",") if d]
            has_tokens = any(
                all(t in dims for t in (size if isinstance(size, tuple) else (size,)))
                for size in tokens
            )
            if has_tokens and any(k in dims for k in classes):
                out.append(f"{c.op} {shape}")
    return out


class Memory(NamedTuple):
    """The compiler's memory of one device for a compiled step, in bytes."""

    arguments: int
    outputs: int
    temp: int


def memory(compiled) -> Memory:
    m = compiled.memory_analysis()
    return Memory(
        int(m.argument_size_in_bytes), int(m.output_size_in_bytes), int(m.temp_size_in_bytes)
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, a smaller model")
    args = parser.parse_args(argv)
    batch, length, vocab, d, steps = (8, 16, 2048, 32, 4) if args.quick else (16, 64, 16384, 64, 12)
    if jax.device_count() < 8:
        raise SystemExit(f"needs 8 devices, found {jax.device_count()}: set XLA_FLAGS first")
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    print(f"mesh {dict(mesh.shape)} on {jax.device_count()} {jax.devices()[0].platform} devices")

    key = jax.random.key(0)
    params = init(key, vocab, d)
    inputs, labels = make_data(jax.random.fold_in(key, 1), batch, length, vocab)
    opt = optax.adam(3e-2)

    one = jax.devices()[0]
    single = jax.device_put((params, inputs, labels), one)
    single_state = opt.init(single[0])
    single_step = train_step(single_device_loss, opt)

    with jax.set_mesh(mesh):
        shardings = {k: NamedSharding(mesh, s) for k, s in PARAM_SPECS.items()}
        sharded = jax.device_put(params, shardings)
        data = jax.device_put((inputs, labels), NamedSharding(mesh, DATA_SPEC))
        state = opt.init(sharded)
        step = train_step(lambda *a: sharded_loss(mesh, *a), opt)
        compiled = step.lower(sharded, state, *data).compile()

    print("\nstep  sharded loss  single-device loss  |difference|")
    sharded_losses, single_losses = [], []
    for i in range(steps):
        with jax.set_mesh(mesh):
            sharded, state, loss = step(sharded, state, *data)
        single_params, single_state, single_loss = single_step(single[0], single_state, *single[1:])
        single = (single_params, *single[1:])
        sharded_losses.append(float(loss))
        single_losses.append(float(single_loss))
        print(
            f"{i:4d}  {sharded_losses[-1]:12.6f}  {single_losses[-1]:18.6f}  "
            f"{abs(sharded_losses[-1] - single_losses[-1]):.1e}"
        )

    found = collectives(compiled)
    rows = batch // mesh.shape["data"]
    classes = vocab // mesh.shape["model"]
    logits_like = logits_shaped(found, (rows * length, (rows, length)), (vocab, classes))
    largest = max(c.largest_bytes for c in found)
    print("\ncollectives of one sharded training step (one device; bytes of operands, result):")
    for line in describe(found):
        print("  " + line)
    print(f"  total: {total_bytes(found):,d} B (each collective's larger buffer, summed)")
    print(
        f"arrays of tokens x classes in any collective: {', '.join(logits_like) or 'none'}; "
        f"this device's float32 logits block ({rows * length} tokens x {classes} classes) "
        f"would be {rows * length * classes * 4:,d} B, the largest collective is {largest:,d} B"
    )

    single_memory = memory(single_step.lower(single[0], single_state, *single[1:]).compile())
    sharded_memory = memory(compiled)
    print("\ncompiler memory of one training step, per device (MiB):")
    print("| step | arguments | outputs | temp |")
    print("|---|---:|---:|---:|")
    for name, m in (("sharded, 2 x 4 mesh", sharded_memory), ("one device", single_memory)):
        print(
            f"| {name} | {m.arguments / 2**20:.3f} | {m.outputs / 2**20:.3f} | "
            f"{m.temp / 2**20:.3f} |"
        )
    return {
        "sharded_losses": sharded_losses,
        "single_losses": single_losses,
        "collectives": [dataclasses.asdict(c) for c in found],
        "logits_shaped": logits_like,
        "largest_collective_bytes": largest,
        "logits_block_bytes": rows * length * classes * 4,
        "sharded_memory": sharded_memory._asdict(),
        "single_memory": single_memory._asdict(),
    }


if __name__ == "__main__":
    main()
