"""Logistic regression by maximum likelihood: minimising binary cross-entropy IS the MLE.

The negative log-likelihood of a logistic model is the summed binary cross-entropy of its
logits, written here with ``jaxent.sigmoid_binary_cross_entropy`` and minimised with Optax:
``optax.lbfgs`` to machine precision for the estimate, ``optax.adam`` to draw a loss curve.
Standard errors come from the observed Fisher information, the Hessian of the negative
log-likelihood (``jax.hessian``), and everything is printed side by side with statsmodels'
``Logit`` on the same data.

Data: scikit-learn's bundled Wisconsin breast-cancer set (569 tumours, 30 features,
standardised), modelling the probability that a tumour is malignant. With all 30 features
the two classes are linearly separable, so the likelihood has no maximum: it keeps rising
towards 1 as the coefficients grow without bound. The script proves this with a linear
program and shows it (the loss along the separating direction goes to 0), then fits the
documented subset ``SUBSET`` of five features, one per property of the cell nuclei (size,
texture, smoothness, shape, symmetry), leaving out near-duplicates such as perimeter and
area. For that subset a second linear program certifies that no separating direction exists
(not even a quasi-complete one), so the maximum-likelihood estimate exists and is unique.

Run ``python examples/logistic_regression.py --out plots``; ``--quick`` shortens the Adam runs.
Plot: ``logistic_regression.png``.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize
import sklearn.datasets
from _lbfgs import minimize_lbfgs

import jaxent as je

jax.config.update("jax_enable_x64", True)

SUBSET = ("mean radius", "mean texture", "mean smoothness", "mean concave points", "mean symmetry")
GRADIENT_TOLERANCE = 1e-13  # on max |d(mean NLL)/d(theta)|, near float64 rounding level


class LogisticFit(NamedTuple):
    intercept: float
    coef: np.ndarray  # [d]
    stderr: np.ndarray  # [d + 1], intercept first
    log_likelihood: float
    converged: bool


class Separation(NamedTuple):
    complete: bool  # some w, b give s_i (b + x_i . w) >= 1 for every sample
    mle_exists: bool  # no direction even weakly separates the classes
    direction: np.ndarray  # [d + 1] separating (intercept, w) when complete, else zeros


def load_data() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Standardised breast-cancer features [569, 30], labels (1 = malignant), feature names."""
    data = sklearn.datasets.load_breast_cancer()
    x = (data.data - data.data.mean(axis=0)) / data.data.std(axis=0)
    return x, (data.target == 0).astype(np.float64), list(data.feature_names)


def negative_log_likelihood(theta: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    """-log L(theta) for theta = (intercept, coef): the summed binary cross-entropy."""
    logits = theta[0] + x @ theta[1:]
    return jnp.sum(je.sigmoid_binary_cross_entropy(logits, y))


def separation(x: np.ndarray, y: np.ndarray) -> Separation:
    """Decides by linear programming whether a maximum-likelihood estimate exists.

    With s_i = 2 y_i - 1 and x~_i = (1, x_i), the MLE of a full-rank logistic model exists iff
    no direction v != 0 has s_i x~_i . v >= 0 for all i (Albert and Anderson, 1984): along
    such a v the likelihood never decreases, so its supremum is not attained. The first LP
    maximises sum_i s_i x~_i . v over that cone inside the box |v| <= 1 (optimum 0 iff the
    MLE exists); the second looks for complete separation, s_i x~_i . v >= 1 for all i.
    """
    s = 2 * np.asarray(y) - 1
    a = s[:, None] * np.hstack([np.ones((len(s), 1)), x])
    n, p = a.shape
    cone = scipy.optimize.linprog(
        -a.sum(axis=0), A_ub=-a, b_ub=np.zeros(n), bounds=[(-1, 1)] * p, method="highs"
    )
    strict = scipy.optimize.linprog(
        np.zeros(p), A_ub=-a, b_ub=-np.ones(n), bounds=[(None, None)] * p, method="highs"
    )
    complete = strict.status == 0
    return Separation(
        complete=bool(complete),
        mle_exists=bool(-cone.fun <= 1e-9 * n),
        direction=strict.x if complete else np.zeros(p),
    )


@jax.jit
def _fit(x, y):
    n = x.shape[0]
    theta, worst, steps = minimize_lbfgs(
        lambda t: negative_log_likelihood(t, x, y) / n,
        jnp.zeros(x.shape[1] + 1),
        tol=GRADIENT_TOLERANCE,
    )
    nll = negative_log_likelihood(theta, x, y)
    fisher = jax.hessian(negative_log_likelihood)(theta, x, y)  # observed information
    stderr = jnp.sqrt(jnp.diag(jnp.linalg.inv(fisher)))
    return theta, stderr, -nll, worst, steps


def fit_logistic_regression(X, y) -> LogisticFit:
    """Maximum-likelihood logistic regression of y (0/1) on X [n, d], with an intercept.

    X is used as given (no scaling). ``converged`` is True when L-BFGS brought every
    component of the mean negative log-likelihood's gradient to ``GRADIENT_TOLERANCE``.
    """
    x = jnp.asarray(X, jnp.float64)
    y = jnp.asarray(y, jnp.float64)
    theta, stderr, loglik, worst, _ = _fit(x, y)
    return LogisticFit(
        intercept=float(theta[0]),
        coef=np.asarray(theta[1:]),
        stderr=np.asarray(stderr),
        log_likelihood=float(loglik),
        converged=bool(worst <= GRADIENT_TOLERANCE),
    )


def fit_statsmodels(X, y):
    """statsmodels' ``Logit`` fitted by Newton's method to a tight tolerance."""
    import statsmodels.api as sm

    x = sm.add_constant(np.asarray(X, np.float64), has_constant="add")
    return sm.Logit(np.asarray(y, np.float64), x).fit(
        method="newton", tol=1e-12, maxiter=100, disp=0
    )


def adam_curve(x, y, *, steps: int, learning_rate: float = 0.05):
    """Mean NLL and coefficient norm per step of ``optax.adam`` started at 0."""
    x = jnp.asarray(x, jnp.float64)
    y = jnp.asarray(y, jnp.float64)
    opt = optax.adam(learning_rate)

    def loss(t):
        return negative_log_likelihood(t, x, y) / x.shape[0]

    def step(carry, _):
        theta, state = carry
        value, grad = jax.value_and_grad(loss)(theta)
        updates, state = opt.update(grad, state)
        return (optax.apply_updates(theta, updates), state), (value, jnp.linalg.norm(theta[1:]))

    theta0 = jnp.zeros(x.shape[1] + 1)
    _, (values, norms) = jax.jit(
        lambda t: jax.lax.scan(step, (t, opt.init(t)), None, length=steps)
    )(theta0)
    return np.asarray(values), np.asarray(norms)


def relative_difference(a, b) -> np.ndarray:
    return np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b))


def comparison_table(fit: LogisticFit, reference, names: list[str]) -> str:
    """The side-by-side table of jaxent's fit against statsmodels', with largest differences."""
    ours_coef = np.concatenate([[fit.intercept], fit.coef])
    terms = ["intercept", *names]
    lines = [
        f"{'term':<22}{'coef jaxent':>17}{'coef statsmodels':>18}"
        f"{'s.e. jaxent':>15}{'s.e. statsmodels':>18}",
    ]
    for i, term in enumerate(terms):
        lines.append(
            f"{term:<22}{ours_coef[i]:>17.10f}{reference.params[i]:>18.10f}"
            f"{fit.stderr[i]:>15.10f}{reference.bse[i]:>18.10f}"
        )
    lines.append(f"{'log-likelihood':<22}{fit.log_likelihood:>17.10f}{reference.llf:>18.10f}")
    d_coef = relative_difference(ours_coef, reference.params)
    d_se = relative_difference(fit.stderr, reference.bse)
    d_ll = relative_difference(fit.log_likelihood, reference.llf)
    lines += [
        "largest relative differences, jaxent vs statsmodels:",
        f"  coefficients    {d_coef.max():.2e}  ({terms[int(d_coef.argmax())]})",
        f"  standard errors {d_se.max():.2e}  ({terms[int(d_se.argmax())]})",
        f"  log-likelihood  {float(d_ll):.2e}",
    ]
    return "\n".join(lines)


def plot(path: pathlib.Path, subset_curve, full_curve, subset_minimum: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    steps = np.arange(1, len(subset_curve[0]) + 1)
    gap = np.maximum(subset_curve[0] - subset_minimum, 1e-16)  # float64 rounding floor
    left.plot(steps, gap, label="Adam, 5-feature subset")
    left.set_yscale("log")
    left.set_xlabel("Adam step")
    left.set_ylabel("mean NLL minus L-BFGS minimum (nats)")
    left.set_title(f"MLE exists: Adam approaches the minimum {subset_minimum:.6f}")
    left.legend()
    steps = np.arange(1, len(full_curve[0]) + 1)
    right.plot(steps, full_curve[0], color="C3", label="mean NLL (nats)")
    right.set_yscale("log")
    right.set_xlabel("Adam step")
    right.set_title("All 30 features: separable, no MLE")
    twin = right.twinx()
    twin.plot(steps, full_curve[1], color="C2", label="|coefficients|")
    twin.set_ylabel("Euclidean norm of coefficients")
    right.legend(loc="upper center")
    twin.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> LogisticFit:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("plots"))
    parser.add_argument("--quick", action="store_true", help="short Adam runs (smoke test)")
    args = parser.parse_args(argv)
    adam_steps = 300 if args.quick else 3000

    x_all, y, names = load_data()
    n, d = x_all.shape
    print(f"Breast-cancer data (bundled with scikit-learn): {n} tumours, {d} standardised")
    print(f"features, {int(y.sum())} malignant (y = 1).")

    full = separation(x_all, y)
    if full.complete:
        v = full.direction
        margins = (2 * y - 1) * (v[0] + x_all @ v[1:])
        nll = [
            float(negative_log_likelihood(jnp.asarray(t * v), jnp.asarray(x_all), jnp.asarray(y)))
            for t in (1, 10, 100)
        ]
        print(f"\nAll {d} features: the classes are linearly separable. A linear program found")
        print(f"(b, w) with s_i (b + x_i . w) >= {margins.min():.3g} for every sample")
        print("(s_i = +1 malignant, -1 benign), so scaling (b, w) by t drives every predicted")
        print("probability to its label and the likelihood to 1: no maximum-likelihood estimate")
        print(f"exists. -log L along t (b, w): t = 1: {nll[0]:.3g}, t = 10: {nll[1]:.3g},")
        print(f"t = 100: {nll[2]:.3g} nats. Any 'fit' on all features is an artefact of where")
        print("the optimiser stopped.")
    elif not full.mle_exists:
        print(f"\nAll {d} features: quasi-complete separation, no maximum-likelihood estimate.")

    columns = [names.index(name) for name in SUBSET]
    x = x_all[:, columns]
    check = separation(x, y)
    status = "exists" if check.mle_exists else "does NOT exist"
    print(f"\nFitted subset ({len(SUBSET)} features, one per nuclear property):")
    print(f"  {', '.join(SUBSET)}.")
    print(f"Linear-programming check: no separating direction, so the MLE {status}.")

    fit = fit_logistic_regression(x, y)
    worst = float(jnp.max(jnp.abs(jax.grad(negative_log_likelihood)(
        jnp.asarray(np.concatenate([[fit.intercept], fit.coef])), jnp.asarray(x), jnp.asarray(y)
    ))))  # fmt: skip
    print(f"L-BFGS (optax): converged = {fit.converged}, max |d(-log L)/d theta| = {worst:.1e}.")
    print("Standard errors: sqrt of diag of the inverse observed Fisher information (jax.hessian).")
    print()
    reference = fit_statsmodels(x, y)
    print(comparison_table(fit, reference, list(SUBSET)))

    subset_curve = adam_curve(x, y, steps=adam_steps)
    full_curve = adam_curve(x_all, y, steps=adam_steps)
    minimum = -fit.log_likelihood / n
    print(f"\nAdam (lr 0.05, {adam_steps} steps) on the subset: mean NLL {subset_curve[0][-1]:.8f}")
    print(f"nats vs the L-BFGS minimum {minimum:.8f}. On all {d} features Adam drives the mean")
    print(f"NLL to {full_curve[0][-1]:.2e} while |w| grows to {full_curve[1][-1]:.1f} and beyond.")

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "logistic_regression.png"
    plot(path, subset_curve, full_curve, minimum)
    print(f"\nPlot written to {path}")
    return fit


if __name__ == "__main__":
    main()
