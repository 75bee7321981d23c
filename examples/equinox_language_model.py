"""A character-level language model in Equinox, trained with the fused cross-entropy.

The text is built into Python itself, so nothing is downloaded: the Zen of Python and the
docstrings of a fixed list of standard-library modules (about 19,000 characters; every
tenth block of 500 is held out). The model (``equinox``) reads the previous 8 characters
through an embedding and an MLP into a hidden state, and predicts the next character with
an output layer ``[D, V]`` and a bias; its loss is ``jaxent.linear_softmax_cross_entropy``
of the hidden states, the output weight and the next characters, which never forms the
logits. Optax's Adam trains it under ``eqx.filter_jit``.

The script reports the held-out perplexity (``jaxent.perplexity`` of the per-character
losses) and bits per character, beside two baselines: a uniform guess over the V
characters (perplexity V) and the training text's character frequencies (perplexity
``exp`` of ``jaxent.cross_entropy`` between the held-out and the training frequencies).
It checks that the fused loss equals ``softmax_cross_entropy_with_integer_labels`` on the
materialised logits, and ends with text sampled from the model.

Run ``python examples/equinox_language_model.py --out plots``; ``--quick`` trains fewer
steps. Plot: ``equinox_language_model.png``.
"""

from __future__ import annotations

import argparse
import codecs
import importlib
import pathlib
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxent as je

CONTEXT = 8
MODULES = "argparse string json random statistics heapq itertools collections difflib csv calendar"
PROMPT = "Beautiful is bet"


def corpus() -> str:
    """The Zen of Python (stored ROT13-encoded in ``this``) and some modules' docstrings."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # importing ``this`` prints the Zen
        import this
    parts = [codecs.decode(this.s, "rot13")]
    parts += [importlib.import_module(name).__doc__ or "" for name in MODULES.split()]
    return "\n\n".join(parts)


class Data(NamedTuple):
    chars: str  # the vocabulary, sorted
    train: np.ndarray  # int32 character ids
    valid: np.ndarray


def load_data(block: int = 500) -> Data:
    """Character ids; every tenth block of ``block`` characters is held out."""
    text = corpus()
    chars = "".join(sorted(set(text)))
    ids = np.array([chars.index(c) for c in text], np.int32)
    held_out = (np.arange(len(ids)) // block) % 10 == 9
    return Data(chars, ids[~held_out], ids[held_out])


def windows(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ``CONTEXT``-character window and the character that follows it."""
    idx = np.arange(len(ids) - CONTEXT)[:, None] + np.arange(CONTEXT)
    return ids[idx], ids[CONTEXT:]


class CharModel(eqx.Module):
    embed: eqx.nn.Embedding
    mlp: eqx.nn.MLP
    head: jax.Array  # [D, V]
    bias: jax.Array  # [V]

    def __init__(self, vocab: int, *, dim: int = 16, width: int = 128, key: jax.Array):
        k1, k2, k3 = jax.random.split(key, 3)
        self.embed = eqx.nn.Embedding(vocab, dim, key=k1)
        self.mlp = eqx.nn.MLP(
            CONTEXT * dim,
            width,
            width,
            depth=1,
            activation=jax.nn.gelu,
            final_activation=jnp.tanh,
            key=k2,
        )
        self.head = jax.random.normal(k3, (width, vocab)) / np.sqrt(width)
        self.bias = jnp.zeros(vocab)

    def hidden(self, contexts: jax.Array) -> jax.Array:
        """``[B, CONTEXT]`` character ids -> ``[B, D]`` hidden states."""
        embedded = jax.vmap(jax.vmap(self.embed))(contexts)
        return jax.vmap(self.mlp)(embedded.reshape(contexts.shape[0], -1))

    def logits(self, contexts: jax.Array) -> jax.Array:
        return self.hidden(contexts) @ self.head + self.bias


def per_char_loss(model: CharModel, contexts: jax.Array, targets: jax.Array) -> jax.Array:
    """Per-character cross-entropy (nats) from the hidden states: no ``[B, V]`` logits."""
    return je.linear_softmax_cross_entropy(
        model.hidden(contexts), model.head, targets, bias=model.bias
    )


@eqx.filter_jit
def train_step(model, opt_state, contexts, targets, optimizer):
    def loss_fn(model):
        return per_char_loss(model, contexts, targets).mean()

    loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    return eqx.apply_updates(model, updates), opt_state, loss


@eqx.filter_jit
def evaluate(model: CharModel, contexts: jax.Array, targets: jax.Array):
    losses = per_char_loss(model, contexts, targets)
    dense = je.softmax_cross_entropy_with_integer_labels(model.logits(contexts), targets)
    return je.perplexity(losses), losses.mean(), jnp.max(jnp.abs(losses - dense))


class Report(NamedTuple):
    vocab: int
    train_chars: int
    valid_chars: int
    steps: np.ndarray
    train_loss: np.ndarray  # nats, per evaluation point (mean of the steps since the last)
    valid_perplexity: np.ndarray
    perplexity: float  # final, held out
    mean_loss: float  # final, held out, nats
    unigram_perplexity: float
    fused_vs_dense: float  # largest |fused - dense| per-character loss, held out
    sample: str


def unigram_perplexity(data: Data) -> float:
    """Perplexity on the held-out text of the training text's character frequencies."""
    vocab = len(data.chars)
    train = np.bincount(data.train, minlength=vocab) + 1.0  # add-one: no zero probability
    valid = np.bincount(data.valid, minlength=vocab).astype(np.float64)
    return float(jnp.exp(je.cross_entropy(valid / valid.sum(), train / train.sum())))


def sample(model: CharModel, data: Data, length: int, key: jax.Array) -> str:
    ids = [data.chars.index(c) for c in PROMPT]
    for i in range(length):
        logits = model.logits(jnp.array([ids[-CONTEXT:]]))[0]
        ids.append(int(jax.random.categorical(jax.random.fold_in(key, i), logits)))
    return "".join(data.chars[i] for i in ids)


def run(*, steps: int, batch: int = 128, seed: int = 0, sample_length: int = 120) -> Report:
    data = load_data()
    x_train, y_train = windows(data.train)
    x_valid, y_valid = jnp.asarray(windows(data.valid)[0]), jnp.asarray(windows(data.valid)[1])
    key = jax.random.key(seed)
    model = CharModel(len(data.chars), key=key)
    optimizer = optax.adam(optax.cosine_decay_schedule(3e-3, steps))
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    rng = np.random.default_rng(seed)
    every = max(1, steps // 10)
    marks, train_loss, valid_ppl, recent = [], [], [], []
    for step in range(1, steps + 1):
        idx = rng.integers(0, len(y_train), batch)
        model, opt_state, loss = train_step(model, opt_state, x_train[idx], y_train[idx], optimizer)
        recent.append(loss)
        if step % every == 0 or step == steps:
            ppl, _, _ = evaluate(model, x_valid, y_valid)
            marks.append(step)
            train_loss.append(float(np.mean(jax.device_get(recent))))
            valid_ppl.append(float(ppl))
            recent = []
    ppl, mean_loss, gap = evaluate(model, x_valid, y_valid)
    return Report(
        vocab=len(data.chars),
        train_chars=len(data.train),
        valid_chars=len(data.valid),
        steps=np.array(marks),
        train_loss=np.array(train_loss),
        valid_perplexity=np.array(valid_ppl),
        perplexity=float(ppl),
        mean_loss=float(mean_loss),
        unigram_perplexity=unigram_perplexity(data),
        fused_vs_dense=float(gap),
        sample=sample(model, data, sample_length, jax.random.fold_in(key, 1)),
    )


def plot(path: pathlib.Path, report: Report) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(report.steps, report.train_loss / np.log(2), "o-")
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss (bits per character)")
    ax1.set_title("Fused cross-entropy during training")
    ax2.plot(report.steps, report.valid_perplexity, "o-", label="model")
    ax2.axhline(report.unigram_perplexity, color="C1", ls="--", label="character frequencies")
    ax2.axhline(report.vocab, color="gray", ls=":", label=f"uniform guess (V = {report.vocab})")
    ax2.set_yscale("log")
    ax2.set_xlabel("step")
    ax2.set_ylabel("held-out perplexity")
    ax2.set_title(f"Held-out perplexity {report.perplexity:.2f}")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("plots"))
    parser.add_argument("--quick", "--smoke", action="store_true", help="fewer steps")
    args = parser.parse_args(argv)
    steps = 300 if args.quick else 1000
    report = run(steps=steps)
    print(
        f"text: {report.train_chars} training and {report.valid_chars} held-out characters, "
        f"V = {report.vocab}; context {CONTEXT}; {steps} Adam steps of 128 windows"
    )
    print(" step  training loss (bits/char)  held-out perplexity")
    for step, loss, ppl in zip(
        report.steps, report.train_loss, report.valid_perplexity, strict=True
    ):
        print(f"{step:5d}  {loss / np.log(2):25.4f}  {ppl:19.2f}")
    print(f"held-out perplexity: {report.perplexity:.2f}")
    print(f"held-out bits per character: {report.mean_loss / np.log(2):.4f}")
    print(
        f"baselines: character frequencies {report.unigram_perplexity:.2f}, uniform {report.vocab}"
    )
    print(f"largest |fused - dense| per-character loss: {report.fused_vs_dense:.1e} nats")
    print(f"sampled from the model, after the prompt {PROMPT!r}:\n{report.sample}")
    path = args.out / "equinox_language_model.png"
    plot(path, report)
    print(f"Plot written to {path}")
    return report


if __name__ == "__main__":
    main()
