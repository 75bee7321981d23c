"""A language-model head trained with the fused cross-entropy, and the memory it saves.

A tiny next-token model (embedding, one tanh layer, output projection ``[D, V]``) is trained
for a few Adam steps on random token sequences whose next token is a fixed function of
the current one, so the loss has something to learn. The loss is
``jaxent.linear_softmax_cross_entropy`` on the hidden states and the output weight, with
padding tokens skipped through ``ignore_index`` and a little label smoothing and z-loss:
the ``[tokens, V]`` logits are never formed, in the forward or the backward pass.

Then the compiler's ``memory_analysis()`` is asked (through the benchmark harness's
``temp_bytes``), without running anything, how much temporary memory value-and-grad of the
loss needs with the dense computation (materialised logits) and with the fused one, at this
model's size and at a large one.

Run ``python examples/lm_head.py``; ``--quick`` trains fewer steps on a smaller model and
checks a smaller large shape. Nothing is downloaded and no file is written.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxent as je
from benchmarks.harness import temp_bytes

PAD = -100  # label of padding tokens


def make_data(key, batch: int, length: int, vocab: int):
    """Token sequences with next = (3 * current + 1) mod V, and padded tails."""
    start = jax.random.randint(key, (batch, 1), 0, vocab)
    tokens = start
    for _ in range(length):
        tokens = jnp.concatenate([tokens, (3 * tokens[:, -1:] + 1) % vocab], axis=1)
    inputs, labels = tokens[:, :-1], tokens[:, 1:]
    lengths = jax.random.randint(jax.random.fold_in(key, 1), (batch, 1), length // 2, length + 1)
    labels = jnp.where(jnp.arange(length) < lengths, labels, PAD)
    return inputs, labels


def init(key, vocab: int, d: int) -> dict[str, jax.Array]:
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "embed": jax.random.normal(k1, (vocab, d)) / np.sqrt(d),
        "mix": jax.random.normal(k2, (d, d)) / np.sqrt(d),
        "head": jax.random.normal(k3, (d, vocab)) / np.sqrt(d),
    }


def loss_fn(params, inputs, labels, fused: bool = True):
    hidden = jnp.tanh(params["embed"][inputs] @ params["mix"])  # [B, T, D]
    options = {"ignore_index": PAD, "label_smoothing": 0.05, "z_loss": 1e-4}
    if fused:
        per_token = je.linear_softmax_cross_entropy(hidden, params["head"], labels, **options)
    else:
        logits = hidden @ params["head"]  # [B, T, V]: what the fused loss avoids
        per_token = je.softmax_cross_entropy_with_integer_labels(logits, labels, **options)
    return per_token.sum() / jnp.maximum((labels != PAD).sum(), 1)


def head_temp_bytes(n: int, d: int, v: int, dtype, fused: bool) -> int:
    """Compiler temp bytes of value-and-grad of a summed head loss (compiled, never run)."""

    def total(hidden, weight, labels):
        if fused:
            return je.linear_softmax_cross_entropy(hidden, weight, labels).sum()
        logits = jnp.matmul(hidden, weight, preferred_element_type=jnp.float32)
        return je.softmax_cross_entropy_with_integer_labels(logits, labels).sum()

    shapes = (
        jax.ShapeDtypeStruct((n, d), dtype),
        jax.ShapeDtypeStruct((d, v), dtype),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    return temp_bytes(jax.value_and_grad(total, argnums=(0, 1)), *shapes)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, smaller shapes")
    args = parser.parse_args(argv)
    batch, length, vocab, d, steps = (
        (8, 32, 4096, 64, 8) if args.quick else (16, 64, 16384, 128, 30)
    )

    key = jax.random.key(0)
    params = init(key, vocab, d)
    inputs, labels = make_data(jax.random.fold_in(key, 1), batch, length, vocab)
    opt = optax.adam(3e-2)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params, inputs, labels)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    for i in range(steps):
        params, state, loss = step(params, state)
        losses.append(float(loss))
        if i % max(1, steps // 6) == 0 or i == steps - 1:
            print(f"step {i:3d}  loss {loss:.4f}")
    dense = float(loss_fn(params, inputs, labels, fused=False))
    fused = float(loss_fn(params, inputs, labels))
    print(f"final loss: fused {fused:.6f}, dense {dense:.6f}")

    print("\ncompiler temp memory of value-and-grad of the head loss (MiB):")
    print("| tokens x D x V | dtype | dense | fused | dense / fused |")
    print("|---|---|---:|---:|---:|")
    big = (2048, 1024, 65536) if args.quick else (8192, 4096, 256000)
    result: dict[str, Any] = {"losses": losses, "final_dense": dense, "final_fused": fused}
    for shape, dtype in (((batch * length, d, vocab), jnp.float32), (big, jnp.bfloat16)):
        t_dense = head_temp_bytes(*shape, dtype, fused=False)
        t_fused = head_temp_bytes(*shape, dtype, fused=True)
        print(
            f"| {' x '.join(map(str, shape))} | {jnp.dtype(dtype).name} | "
            f"{t_dense / 2**20:.1f} | {t_fused / 2**20:.1f} | {t_dense / max(t_fused, 1):.0f}x |"
        )
        result["dense_temp_bytes"], result["fused_temp_bytes"] = t_dense, t_fused
    return result


if __name__ == "__main__":
    main()
