"""Seven heads in ten flips: minimising binary cross-entropy lands on the likelihood's peak.

For i.i.d. coin flips with P(heads) = theta, the log-likelihood of 7 heads and 3 tails is
7 log theta + 3 log(1 - theta), maximised at theta = 0.7. Divided by -10 it is the binary
cross-entropy between the empirical distribution (0.7, 0.3) and the model (theta,
1 - theta), computed here with ``jaxent.binary_cross_entropy``. Gradient descent on the
coin's logit (``jaxent.sigmoid_binary_cross_entropy``, so theta stays in (0, 1)) converges
to theta = 0.7, and the plot shows the likelihood and the cross-entropy side by side: one
peaks where the other bottoms out.

Run ``python examples/coin_flips.py --out plots``; ``--quick`` takes fewer steps.
Plot: ``coin_flips.png``.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import jaxent as je

jax.config.update("jax_enable_x64", True)

FLIPS = np.array([1, 1, 0, 1, 1, 1, 0, 1, 0, 1], dtype=np.float64)  # 7 heads, 3 tails


class CoinFit(NamedTuple):
    theta: float
    logit_history: np.ndarray
    loss_history: np.ndarray


def mean_cross_entropy(logit: jax.Array, flips: jax.Array) -> jax.Array:
    """Mean binary cross-entropy of the flips under P(heads) = sigmoid(logit)."""
    return jnp.mean(je.sigmoid_binary_cross_entropy(jnp.broadcast_to(logit, flips.shape), flips))


def fit_coin(flips: np.ndarray = FLIPS, *, steps: int = 200, learning_rate: float = 2.0) -> CoinFit:
    """Gradient descent on the logit of P(heads), from theta = 0.5."""
    flips_j = jnp.asarray(flips)
    value_and_grad = jax.jit(jax.value_and_grad(mean_cross_entropy))
    logit = jnp.zeros((), jnp.float64)
    logits, losses = [], []
    for _ in range(steps):
        loss, grad = value_and_grad(logit, flips_j)
        logits.append(float(logit))
        losses.append(float(loss))
        logit = logit - learning_rate * grad
    return CoinFit(float(jax.nn.sigmoid(logit)), np.array(logits), np.array(losses))


def curves(flips: np.ndarray = FLIPS, num: int = 399) -> tuple[np.ndarray, ...]:
    """theta grid, likelihood theta^h (1 - theta)^t, and the cross-entropy H(p_hat, theta)."""
    theta = np.linspace(0.0025, 0.9975, num)
    heads = flips.sum()
    likelihood = theta**heads * (1 - theta) ** (len(flips) - heads)
    p_hat = jnp.full(theta.shape, heads / len(flips))
    xent = np.asarray(je.binary_cross_entropy(jnp.asarray(theta), p_hat))
    return theta, likelihood, xent


def plot(path: pathlib.Path, fit: CoinFit) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    theta, likelihood, xent = curves()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(theta, likelihood, label=r"likelihood $\theta^7(1-\theta)^3$")
    ax1.set_xlabel(r"$\theta$ = P(heads)")
    ax1.set_ylabel("likelihood")
    twin = ax1.twinx()
    twin.plot(theta, xent, color="C1", label="binary cross-entropy (nats)")
    twin.set_ylabel("cross-entropy (nats)")
    for ax in (ax1,):
        ax.axvline(0.7, color="gray", ls="--")
    ax1.set_title(r"Maximum likelihood = minimum cross-entropy at $\theta = 0.7$")
    lines = ax1.get_lines()[:1] + twin.get_lines()
    ax1.legend(lines, [line.get_label() for line in lines], loc="upper left", fontsize=8)
    thetas = 1 / (1 + np.exp(-fit.logit_history))
    ax2.plot(thetas, label=r"$\theta$ during gradient descent")
    ax2.axhline(0.7, color="gray", ls="--")
    ax2.set_xlabel("step")
    ax2.set_ylabel(r"$\theta$")
    ax2.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> CoinFit:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("plots"))
    parser.add_argument("--quick", action="store_true", help="fewer steps (smoke test)")
    args = parser.parse_args(argv)
    fit = fit_coin(steps=60 if args.quick else 200)
    theta, likelihood, xent = curves()
    print(f"Flips: {FLIPS.astype(int).tolist()} ({int(FLIPS.sum())} heads in {len(FLIPS)})")
    print(f"gradient descent on the binary cross-entropy: theta = {fit.theta:.10f}")
    print(f"grid argmax of the likelihood: theta = {theta[likelihood.argmax()]:.4f}")
    print(f"grid argmin of the cross-entropy: theta = {theta[xent.argmin()]:.4f}")
    print(
        f"minimum cross-entropy = H(0.7) = {fit.loss_history[-1]:.6f} nats "
        f"({float(je.binary_entropy(0.7)):.6f} nats)"
    )
    path = args.out / "coin_flips.png"
    plot(path, fit)
    print(f"Plot written to {path}")
    return fit


if __name__ == "__main__":
    main()
