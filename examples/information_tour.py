"""A tour of information theory with jaxent: every worked number, and entropy as code length.

Computes, in bits and nats, the worked examples behind jaxent: the surprisal of a 1% and a
99% win, additivity of information over independent events, the entropy of 50/50 and 99/1
matches, the cross-entropy and KL divergence of a 70/20/10 prediction of a one-hot label.
Then checks Gibbs' inequality and the asymmetry of the KL divergence on random
distributions, and the identity H(p, q) = H(p) + D(p || q). Last, the coding view: a Huffman
code is built for several distributions (the six-outcome example among them), and its
average length L satisfies H <= L < H + 1 with a Kraft sum of at most 1.

Run ``python examples/information_tour.py --out plots``; ``--quick`` uses fewer random
distributions. Plot: ``information_tour.png``.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import jaxent as je

jax.config.update("jax_enable_x64", True)


def worked_numbers() -> dict[str, float]:
    """The worked examples, each computed with jaxent."""
    f = float
    return {
        "surprisal of a 1% win (bits)": f(je.self_information(0.01, base=2)),
        "surprisal of a 99% win (bits)": f(je.self_information(0.99, base=2)),
        "final at 1/4 then win at 1/2 (bits)": f(
            je.self_information(0.25, base=2) + je.self_information(0.5, base=2)
        ),
        "title at 1/8 (bits)": f(je.self_information(1 / 8, base=2)),
        "16-bit uniform word (bits)": f(je.entropy(jnp.full(2**16, 2.0**-16), base=2)),
        "H(50/50) (bits)": f(je.entropy(jnp.array([0.5, 0.5]), base=2)),
        "H(99/1) (bits)": f(je.entropy(jnp.array([0.99, 0.01]), base=2)),
        "H_b(0.99) (bits)": f(je.binary_entropy(0.99, base=2)),
        "H(uniform 6) = log2 6 (bits)": f(je.entropy(jnp.full(6, 1 / 6), base=2)),
        "H(p, q), p=[1,0,0], q=[.7,.2,.1] (nats)": f(
            je.cross_entropy(jnp.array([1.0, 0.0, 0.0]), jnp.array([0.7, 0.2, 0.1]))
        ),
        "D(p || q), same p and q (nats)": f(
            je.kl_divergence(jnp.array([1.0, 0.0, 0.0]), jnp.array([0.7, 0.2, 0.1]))
        ),
        "softmax cross-entropy of log q, label 0 (nats)": f(
            je.softmax_cross_entropy_with_integer_labels(
                jnp.log(jnp.array([0.7, 0.2, 0.1])), jnp.array(0)
            )
        ),
    }


class RandomChecks(NamedTuple):
    min_kl: float
    max_identity_error: float
    max_asymmetry: float
    kl_pq: np.ndarray
    kl_qp: np.ndarray


def random_checks(count: int, classes: int = 5, seed: int = 0) -> RandomChecks:
    """Gibbs' inequality, H(p, q) = H(p) + D(p || q), and KL asymmetry on random pairs."""
    kp, kq = jax.random.split(jax.random.key(seed))
    p = jax.random.dirichlet(kp, jnp.ones(classes), (count,))
    q = jax.random.dirichlet(kq, jnp.ones(classes), (count,))
    kl_pq, kl_qp = je.kl_divergence(p, q, base=2), je.kl_divergence(q, p, base=2)
    identity = je.cross_entropy(p, q, base=2) - je.entropy(p, base=2) - kl_pq
    return RandomChecks(
        float(jnp.min(kl_pq)),
        float(jnp.max(jnp.abs(identity))),
        float(jnp.max(jnp.abs(kl_pq - kl_qp))),
        np.asarray(kl_pq),
        np.asarray(kl_qp),
    )


def huffman_lengths(p: np.ndarray) -> np.ndarray:
    """Codeword lengths of a binary Huffman code for the distribution p."""
    if len(p) == 1:
        return np.ones(1, int)
    lengths = np.zeros(len(p), int)
    counter = itertools.count()
    heap = [(float(pi), next(counter), [i]) for i, pi in enumerate(p)]
    heapq.heapify(heap)
    while len(heap) > 1:
        p1, _, s1 = heapq.heappop(heap)
        p2, _, s2 = heapq.heappop(heap)
        for i in s1 + s2:
            lengths[i] += 1
        heapq.heappush(heap, (p1 + p2, next(counter), s1 + s2))
    return lengths


class CodeReport(NamedTuple):
    name: str
    entropy_bits: float
    average_length: float
    kraft_sum: float


def code_report(name: str, p: np.ndarray, lengths: np.ndarray | None = None) -> CodeReport:
    """Entropy, average codeword length and Kraft sum (Huffman lengths unless given)."""
    lengths = huffman_lengths(p) if lengths is None else np.asarray(lengths)
    h = float(je.entropy(jnp.asarray(p), base=2))
    return CodeReport(name, h, float(np.dot(p, lengths)), float(np.sum(2.0**-lengths)))


SIX_WORDS = ["00", "01", "100", "101", "110", "111"]


def coding_examples() -> list[CodeReport]:
    """The six-outcome example with its fixed and variable codes, then Huffman codes."""
    uniform6 = np.full(6, 1 / 6)
    skewed6 = np.array([0.4, 0.4, 0.05, 0.05, 0.05, 0.05])
    variable = np.array([len(w) for w in SIX_WORDS])
    return [
        code_report("6 uniform, fixed 3-bit code", uniform6, np.full(6, 3)),
        code_report("6 uniform, code {00,01,100,...}", uniform6, variable),
        code_report("6 with 80% on two, same code", skewed6, variable),
        code_report("6 uniform, Huffman", uniform6),
        code_report("6 with 80% on two, Huffman", skewed6),
        code_report("99/1, Huffman", np.array([0.99, 0.01])),
        code_report("dyadic 1/2,1/4,1/8,1/8, Huffman", np.array([0.5, 0.25, 0.125, 0.125])),
        code_report("English-like 8 letters, Huffman", _letters()),
    ]


def _letters() -> np.ndarray:
    w = np.array([12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1])
    return w / w.sum()


def plot(path: pathlib.Path, checks: RandomChecks, codes: list[CodeReport]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.scatter(checks.kl_pq, checks.kl_qp, s=8)
    top = float(max(checks.kl_pq.max(), checks.kl_qp.max()))
    ax1.plot([0, top], [0, top], color="gray", ls="--", label="D(p||q) = D(q||p)")
    ax1.set_xlabel("D(p || q) (bits)")
    ax1.set_ylabel("D(q || p) (bits)")
    ax1.set_title("KL divergence is not symmetric (and never negative)")
    ax1.legend()
    x = np.arange(len(codes))
    ax2.bar(x - 0.2, [c.entropy_bits for c in codes], 0.4, label="entropy H")
    ax2.bar(x + 0.2, [c.average_length for c in codes], 0.4, label="average length L")
    ax2.set_xticks(x, [c.name for c in codes], rotation=60, ha="right", fontsize=7)
    ax2.set_ylabel("bits per outcome")
    ax2.set_title("Codes: H <= L (< H + 1 for Huffman)")
    ax2.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("plots"))
    parser.add_argument("--quick", action="store_true", help="fewer random distributions")
    args = parser.parse_args(argv)
    numbers = worked_numbers()
    print("Worked numbers")
    for name, value in numbers.items():
        print(f"  {name:<48} {value:.4f}")
    checks = random_checks(200 if args.quick else 2000)
    print(
        f"\nRandom pairs of 5-outcome distributions: min D(p||q) = {checks.min_kl:.2e} bits "
        f"(Gibbs: >= 0); max |H(p,q) - H(p) - D(p||q)| = {checks.max_identity_error:.1e}; "
        f"max |D(p||q) - D(q||p)| = {checks.max_asymmetry:.3f} bits"
    )
    print(f"\n{'code':<34} {'H (bits)':>9} {'L (bits)':>9} {'Kraft':>7}")
    codes = coding_examples()
    for c in codes:
        print(f"{c.name:<34} {c.entropy_bits:9.4f} {c.average_length:9.4f} {c.kraft_sum:7.4f}")
    path = args.out / "information_tour.png"
    plot(path, checks, codes)
    print(f"\nPlot written to {path}")
    return numbers


if __name__ == "__main__":
    main()
