"""Why cross-entropy and not squared error: a confidently wrong sigmoid unit, and convexity.

A single sigmoid unit a = sigmoid(z), z = w x + b, is started confidently wrong: input x = 1,
target y = 0, w = b = 2, so a = sigmoid(4) = 0.982. It is trained by plain gradient descent
(same learning rate, same number of steps) twice:

* with squared error L = (a - y)^2 / 2, whose gradients dL/dw = (a - y) sigmoid'(z) x and
  dL/db = (a - y) sigmoid'(z) carry the factor sigmoid'(z) = a (1 - a), tiny when |z| is large:
  the unit is most wrong exactly where it learns slowest (a vanishing gradient);
* with cross-entropy L = -[y log a + (1 - y) log(1 - a)], written with
  ``jaxent.sigmoid_binary_cross_entropy``, whose gradients dL/dw = (a - y) x and dL/db = a - y
  have no sigmoid' factor: the more wrong, the faster it learns.

The script prints the gradients measured by ``jax.grad`` beside those closed forms, and plots
the loss and the gradient magnitude per step for both. The second part looks at a softmax
output (3 classes, label 0): varying the logit z_0 with the others fixed, cross-entropy
-log softmax(z)_0 has second derivative q_0 (1 - q_0) >= 0 everywhere (convex), while squared
error ||softmax(z) - onehot||^2 / 2 has a second derivative that changes sign (not convex);
both are checked with ``jax.grad(jax.grad(...))`` on a grid.

Run ``python examples/cross_entropy_vs_squared_error.py --out plots``; ``--quick`` uses a
coarser grid and fewer steps. Plot: ``cross_entropy_vs_squared_error.png``.
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

X, Y = 1.0, 0.0  # one training example: input 1, target 0
W0, B0 = 2.0, 2.0  # confidently wrong start: a = sigmoid(4) = 0.982
LEARNING_RATE = 0.15
STEPS = 300
SOFTMAX_OTHERS = (1.0, -1.0)  # fixed logits z_1, z_2 of the softmax example; label 0


def squared_error(params, x, y) -> jax.Array:
    """L = (a - y)^2 / 2 with a = sigmoid(w x + b)."""
    w, b = params
    return 0.5 * (jax.nn.sigmoid(w * x + b) - y) ** 2


def cross_entropy(params, x, y) -> jax.Array:
    """L = -[y log a + (1 - y) log(1 - a)] with a = sigmoid(w x + b), computed from the logit."""
    w, b = params
    return je.sigmoid_binary_cross_entropy(w * x + b, y)


LOSSES = {"squared error": squared_error, "cross-entropy": cross_entropy}


class History(NamedTuple):
    loss: np.ndarray  # [steps + 1], before each step and after the last
    grad_norm: np.ndarray  # [steps + 1], Euclidean norm of (dL/dw, dL/db)
    w: np.ndarray  # [steps + 1]
    b: np.ndarray  # [steps + 1]
    output: np.ndarray  # [steps + 1], a = sigmoid(w x + b)


def train(
    loss_fn,
    *,
    w0: float = W0,
    b0: float = B0,
    x: float = X,
    y: float = Y,
    learning_rate: float = LEARNING_RATE,
    steps: int = STEPS,
) -> History:
    """Plain gradient descent on one example; the loss and gradient at every step."""

    def record(params):
        value, grad = jax.value_and_grad(loss_fn)(params, x, y)
        return value, jnp.sqrt(grad[0] ** 2 + grad[1] ** 2), grad

    def step(params, _):
        value, norm, grad = record(params)
        new = (params[0] - learning_rate * grad[0], params[1] - learning_rate * grad[1])
        return new, (value, norm, params[0], params[1])

    start = (jnp.asarray(w0, jnp.float64), jnp.asarray(b0, jnp.float64))
    final, (values, norms, ws, bs) = jax.lax.scan(step, start, None, length=steps)
    last_value, last_norm, _ = record(final)
    w = np.append(np.asarray(ws), float(final[0]))
    b = np.append(np.asarray(bs), float(final[1]))
    return History(
        loss=np.append(np.asarray(values), float(last_value)),
        grad_norm=np.append(np.asarray(norms), float(last_norm)),
        w=w,
        b=b,
        output=np.asarray(jax.nn.sigmoid(w * x + b)),
    )


def train_both(*, steps: int = STEPS, **kwargs) -> dict[str, History]:
    """The two gradient-descent histories from the same start, keyed by loss name."""
    return {name: train(fn, steps=steps, **kwargs) for name, fn in LOSSES.items()}


class GradientCheck(NamedTuple):
    z: float
    a: float
    measured: dict[str, np.ndarray]  # loss name -> (dL/dw, dL/db) from jax.grad
    closed_form: dict[str, np.ndarray]  # loss name -> the closed forms


def gradient_check(w: float = W0, b: float = B0, x: float = X, y: float = Y) -> GradientCheck:
    """jax.grad of both losses at (w, b) beside their closed forms.

    Squared error: ((a - y) sigmoid'(z) x, (a - y) sigmoid'(z)); cross-entropy: ((a - y) x,
    a - y); sigmoid'(z) = a (1 - a).
    """
    z = w * x + b
    a = float(jax.nn.sigmoid(z))
    slope = a * (1 - a)
    params = (jnp.float64(w), jnp.float64(b))
    measured = {
        name: np.asarray(jax.grad(fn)(params, x, y), dtype=np.float64)
        for name, fn in LOSSES.items()
    }
    closed = {
        "squared error": np.array([(a - y) * slope * x, (a - y) * slope]),
        "cross-entropy": np.array([(a - y) * x, a - y]),
    }
    return GradientCheck(z=float(z), a=a, measured=measured, closed_form=closed)


def softmax_squared_error(z: jax.Array, label: int) -> jax.Array:
    """||softmax(z) - onehot(label)||^2 / 2."""
    q = jax.nn.softmax(z)
    return 0.5 * jnp.sum((q - jax.nn.one_hot(label, z.shape[-1])) ** 2)


def softmax_cross_entropy(z: jax.Array, label: int) -> jax.Array:
    """-log softmax(z)_label."""
    return je.softmax_cross_entropy_with_integer_labels(z, jnp.asarray(label))


class ConvexityCheck(NamedTuple):
    grid: np.ndarray  # [m] values of z_0
    loss: dict[str, np.ndarray]  # loss name -> [m]
    second_derivative: dict[str, np.ndarray]  # loss name -> [m], d^2 L / d z_0^2
    min_second_derivative: dict[str, float]
    convex: dict[str, bool]  # second derivative >= 0 on the whole grid


def convexity_check(
    grid=None, others: tuple[float, ...] = SOFTMAX_OTHERS, label: int = 0
) -> ConvexityCheck:
    """Both softmax losses and their second derivatives in z_0, the others fixed, on a grid.

    The second derivative is ``jax.grad(jax.grad(.))`` of the loss as a function of z_0.
    """
    grid = np.linspace(-10.0, 10.0, 401) if grid is None else np.asarray(grid, np.float64)
    rest = jnp.asarray(others, jnp.float64)
    fns = {"squared error": softmax_squared_error, "cross-entropy": softmax_cross_entropy}
    loss, second = {}, {}
    for name, fn in fns.items():

        def along(z0, fn=fn):
            return fn(jnp.concatenate([z0[None], rest]), label)

        values = jax.jit(jax.vmap(lambda z0, f=along: (f(z0), jax.grad(jax.grad(f))(z0))))
        loss[name], second[name] = (np.asarray(v) for v in values(jnp.asarray(grid)))
    return ConvexityCheck(
        grid=grid,
        loss=loss,
        second_derivative=second,
        min_second_derivative={k: float(v.min()) for k, v in second.items()},
        convex={k: bool(np.all(v >= 0)) for k, v in second.items()},
    )


def gradient_table(check: GradientCheck) -> str:
    lines = [
        f"start: x = {X:g}, y = {Y:g}, w = {W0:g}, b = {B0:g}, z = {check.z:g}, "
        f"a = sigmoid(z) = {check.a:.6f}, sigmoid'(z) = {check.a * (1 - check.a):.6f}",
        f"{'gradient':<26}{'jax.grad':>22}{'closed form':>22}{'abs diff':>11}  closed form",
    ]
    forms = {
        "squared error": ("(a - y) sigmoid'(z) x", "(a - y) sigmoid'(z)"),
        "cross-entropy": ("(a - y) x", "(a - y)"),
    }
    for name in LOSSES:
        for i, var in enumerate(("w", "b")):
            got, want = check.measured[name][i], check.closed_form[name][i]
            lines.append(
                f"{name + ': dL/d' + var:<26}{got:>22.17f}{want:>22.17f}"
                f"{abs(got - want):>11.1e}  {forms[name][i]}"
            )
    return "\n".join(lines)


def plot(path: pathlib.Path, histories: dict[str, History], convexity: ConvexityCheck) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for i, (name, h) in enumerate(histories.items()):
        steps = np.arange(len(h.loss))
        axes[0, 0].plot(steps, h.loss, color=f"C{i}", label=name)
        axes[0, 1].plot(steps, h.grad_norm, color=f"C{i}", label=name)
    axes[0, 0].set_title(
        f"Confidently wrong start (a = {histories['cross-entropy'].output[0]:.3f})"
    )
    axes[0, 0].set_xlabel("gradient-descent step")
    axes[0, 0].set_ylabel("loss")
    axes[0, 0].legend()
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_title("|(dL/dw, dL/db)|: squared error's is tiny while most wrong")
    axes[0, 1].set_xlabel("gradient-descent step")
    axes[0, 1].set_ylabel("gradient magnitude")
    axes[0, 1].legend()
    others = ", ".join(f"{v:g}" for v in SOFTMAX_OTHERS)
    for i, name in enumerate(LOSSES):
        axes[1, 0].plot(convexity.grid, convexity.loss[name], color=f"C{i}", label=name)
        axes[1, 1].plot(
            convexity.grid, convexity.second_derivative[name], color=f"C{i}", label=name
        )
    axes[1, 0].set_title(f"Softmax output, z = (z_0, {others}), label 0")
    axes[1, 0].set_xlabel("logit z_0")
    axes[1, 0].set_ylabel("loss")
    axes[1, 0].legend()
    axes[1, 1].axhline(0.0, color="0.6", lw=1)
    axes[1, 1].set_title("d²L/dz_0²: cross-entropy >= 0, squared error changes sign")
    axes[1, 1].set_xlabel("logit z_0")
    axes[1, 1].set_ylabel("second derivative")
    axes[1, 1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> tuple[dict[str, History], ConvexityCheck]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("plots"))
    parser.add_argument("--quick", action="store_true", help="fewer steps, coarser grid")
    args = parser.parse_args(argv)
    steps = 100 if args.quick else STEPS
    grid = np.linspace(-10.0, 10.0, 101 if args.quick else 401)

    print("A sigmoid unit a = sigmoid(w x + b) on one example, started confidently wrong.")
    print("Gradients at the start, measured by jax.grad and from the closed forms:\n")
    print(gradient_table(gradient_check()))

    histories = train_both(steps=steps)
    print(f"\nPlain gradient descent, learning rate {LEARNING_RATE}, {steps} steps from the start:")
    print(f"{'step':>6}{'squared error L':>18}{'|grad|':>11}{'a':>8}{'cross-entropy L':>18}"
          f"{'|grad|':>11}{'a':>8}")  # fmt: skip
    se, ce = histories["squared error"], histories["cross-entropy"]
    for t in sorted({0, 10, 25, 50, 100, 200, steps} & set(range(steps + 1))):
        print(
            f"{t:>6}{se.loss[t]:>18.6f}{se.grad_norm[t]:>11.2e}{se.output[t]:>8.4f}"
            f"{ce.loss[t]:>18.6f}{ce.grad_norm[t]:>11.2e}{ce.output[t]:>8.4f}"
        )
    slope = se.output[0] * (1 - se.output[0])
    print(f"Squared error's gradient carries sigmoid'(z) = a (1 - a) = {slope:.3f} at the start,")
    print("so the confidently wrong unit barely moves at first; cross-entropy's gradient is")
    print("a - y, largest when the unit is most wrong, and it learns fastest exactly there.")
    print(f"After {steps} steps the output a is {se.output[-1]:.4f} (squared error) versus")
    print(f"{ce.output[-1]:.4f} (cross-entropy) for the target y = {Y:g}.")
    print("(The two losses have different scales, -log(1 - a) against a^2 / 2 for y = 0;")
    print("the output a is the like-for-like comparison, and cross-entropy wins on both.)")

    convexity = convexity_check(grid)
    others = ", ".join(f"{v:g}" for v in SOFTMAX_OTHERS)
    print(f"\nSoftmax output, 3 classes, logits (z_0, {others}), label 0, z_0 on a grid of")
    print(
        f"{len(grid)} points in [{grid[0]:g}, {grid[-1]:g}]; d^2 L / d z_0^2 by jax.grad(jax.grad):"
    )
    for name in LOSSES:
        print(
            f"  {name:<14} min second derivative {convexity.min_second_derivative[name]:>+.6f}"
            f"  convex on the grid: {convexity.convex[name]}"
        )
    print("Cross-entropy's second derivative is q_0 (1 - q_0) >= 0 (it is convex in all the")
    print("logits jointly); squared error's turns negative, so it is not convex in the logits.")

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "cross_entropy_vs_squared_error.png"
    plot(path, histories, convexity)
    print(f"\nPlot written to {path}")
    return histories, convexity


if __name__ == "__main__":
    main()
