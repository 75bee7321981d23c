"""Softmax (multinomial logistic) regression by maximum likelihood, checked against scikit-learn.

The negative log-likelihood of a softmax regression is the summed softmax cross-entropy of its
logits against the integer class labels, written here with
``jaxent.softmax_cross_entropy_with_integer_labels`` and minimised with ``optax.lbfgs`` to
machine precision. The fit is compared with scikit-learn's unpenalised ``LogisticRegression``
(``C=inf``) on what the data identify: the maximised log-likelihood, every predicted
probability, and the coefficient contrasts between classes. The coefficients themselves are
not identifiable: adding the same vector to every class's weights (and the same number to
every bias) leaves every softmax probability unchanged, so two correct fits may differ there.
This fit reports the representative whose weights and biases sum to zero over the classes.

Data: scikit-learn's bundled iris set (150 flowers, 3 species), standardised. With any two
or more measurements, or a petal measurement alone, setosa is linearly separable from the
other species, so the likelihood has no maximum (it keeps rising as the weights grow without
bound): a linear program proves it below. A sepal measurement alone leaves all three species
overlapping; the model is fitted on sepal length, for which the same program certifies that
the maximum-likelihood estimate exists.

Run ``python examples/softmax_regression.py --out plots`` (``--quick`` runs the same, fast,
computation). Plot: ``softmax_regression.png``.
"""

from __future__ import annotations

import argparse
import itertools
import pathlib
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
import sklearn.datasets
from _lbfgs import minimize_lbfgs

import jaxent as je

jax.config.update("jax_enable_x64", True)

FEATURES = ("sepal length (cm)",)
GRADIENT_TOLERANCE = 1e-13  # on max |d(mean NLL)/d(parameters)|


class SoftmaxFit(NamedTuple):
    weights: np.ndarray  # [d, K], summing to zero over the classes
    bias: np.ndarray  # [K], summing to zero
    log_likelihood: float
    converged: bool


def load_data() -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Standardised iris measurements [150, 4], species labels, feature and class names."""
    data = sklearn.datasets.load_iris()
    x = (data.data - data.data.mean(axis=0)) / data.data.std(axis=0)
    return x, data.target, list(data.feature_names), list(data.target_names)


def negative_log_likelihood(params, x: jax.Array, y: jax.Array) -> jax.Array:
    """-log L for params = (weights [d, K], bias [K]): the summed softmax cross-entropy."""
    weights, bias = params
    return jnp.sum(je.softmax_cross_entropy_with_integer_labels(x @ weights + bias, y))


def probabilities(params, x) -> jax.Array:
    weights, bias = params
    return jax.nn.softmax(jnp.asarray(x) @ weights + bias, axis=-1)


def mle_exists(x: np.ndarray, y: np.ndarray, num_classes: int) -> bool:
    """Decides by linear programming whether the multinomial MLE exists.

    With x~_i = (1, x_i) and full-rank data, the MLE fails to exist iff some parameter
    direction V = (v_1, ..., v_K) never lowers any sample's log-probability, i.e.
    (v_{y_i} - v_k) . x~_i >= 0 for every sample i and class k, with at least one strict
    inequality. The LP maximises the sum of those margins over the cone with |V| <= 1; the
    MLE exists iff the optimum is 0.
    """
    n = len(y)
    xt = np.hstack([np.ones((n, 1)), x])
    p = xt.shape[1]
    rows = []
    for i, k in itertools.product(range(n), range(num_classes)):
        if k != y[i]:
            row = np.zeros((p, num_classes))
            row[:, y[i]] += xt[i]
            row[:, k] -= xt[i]
            rows.append(row.ravel())
    a = np.asarray(rows)
    cone = scipy.optimize.linprog(
        -a.sum(axis=0),
        A_ub=-a,
        b_ub=np.zeros(len(a)),
        bounds=[(-1, 1)] * a.shape[1],
        method="highs",
    )
    return bool(-cone.fun <= 1e-9 * n)


@jax.jit
def _fit(x, y, init):
    n = x.shape[0]
    params, worst, _ = minimize_lbfgs(
        lambda p: negative_log_likelihood(p, x, y) / n, init, tol=GRADIENT_TOLERANCE
    )
    weights, bias = params
    weights = weights - weights.mean(axis=1, keepdims=True)  # the sum-to-zero representative
    bias = bias - bias.mean()
    return weights, bias, -negative_log_likelihood((weights, bias), x, y), worst


def fit_softmax_regression(X, y, num_classes: int) -> SoftmaxFit:
    """Maximum-likelihood softmax regression of integer labels y on X [n, d], with biases.

    X is used as given. ``converged`` is True when L-BFGS brought every component of the mean
    negative log-likelihood's gradient to ``GRADIENT_TOLERANCE``.
    """
    x = jnp.asarray(X, jnp.float64)
    labels = jnp.asarray(y, jnp.int32)
    init = (jnp.zeros((x.shape[1], num_classes)), jnp.zeros(num_classes))
    weights, bias, loglik, worst = _fit(x, labels, init)
    return SoftmaxFit(
        weights=np.asarray(weights),
        bias=np.asarray(bias),
        log_likelihood=float(loglik),
        converged=bool(worst <= GRADIENT_TOLERANCE),
    )


class Reference(NamedTuple):
    log_likelihood: float
    proba: np.ndarray  # [n, K] on the training data
    weights: np.ndarray  # [d, K], centred over the classes
    bias: np.ndarray  # [K], centred
    model: object  # the fitted scikit-learn estimator


def fit_sklearn(X, y, num_classes: int) -> Reference:
    """scikit-learn's unpenalised multinomial ``LogisticRegression`` to a tight tolerance."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(X, np.float64)
    y = np.asarray(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Setting penalty=None ..." notices
        model = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(x, y)
    if len(model.classes_) != num_classes:
        raise ValueError(f"expected {num_classes} classes in y, found {len(model.classes_)}.")
    proba = model.predict_proba(x)
    weights = model.coef_.T - model.coef_.T.mean(axis=1, keepdims=True)
    return Reference(
        log_likelihood=float(np.sum(np.log(proba[np.arange(len(y)), y]))),
        proba=proba,
        weights=weights,
        bias=model.intercept_ - model.intercept_.mean(),
        model=model,
    )


def predict_proba(fit: SoftmaxFit, X) -> np.ndarray:
    """Class probabilities [n, K] of a fitted softmax regression."""
    return np.asarray(probabilities((fit.weights, fit.bias), np.asarray(X, np.float64)))


class Setting(NamedTuple):
    name: str
    x: np.ndarray  # [n, d], standardised
    y: np.ndarray  # [n] integer labels
    classes: list[str]


def settings() -> list[Setting]:
    """The data sets fitted here: iris on one measurement, where the MLE exists."""
    x, y, names, classes = load_data()
    return [
        Setting(f"iris, {feature}", x[:, [names.index(feature)]], y, classes)
        for feature in (*FEATURES, "sepal width (cm)")
    ]


class Comparison(NamedTuple):
    log_likelihood: float  # scikit-learn's
    log_likelihood_rel_diff: float
    max_probability_diff: float
    max_contrast_diff: float  # largest |difference| of (w_k - w_0, b_k - b_0), k = 1..K-1


def compare_with_sklearn(fit: SoftmaxFit, reference: Reference, X) -> Comparison:
    ours_all = np.vstack([fit.weights, fit.bias])  # [d + 1, K]
    theirs_all = np.vstack([reference.weights, reference.bias])
    contrast = (ours_all[:, 1:] - ours_all[:, :1]) - (theirs_all[:, 1:] - theirs_all[:, :1])
    loglik = reference.log_likelihood
    return Comparison(
        log_likelihood=loglik,
        log_likelihood_rel_diff=abs(fit.log_likelihood - loglik) / abs(loglik),
        max_probability_diff=float(np.abs(predict_proba(fit, X) - reference.proba).max()),
        max_contrast_diff=float(np.abs(contrast).max()),
    )


def plot(path: pathlib.Path, fit: SoftmaxFit, model, x, y, class_names, mean, std) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(x.min() - 0.5, x.max() + 0.5, 200)[:, None]
    ours = predict_proba(fit, grid)
    theirs = model.predict_proba(grid)
    cm = grid[:, 0] * std + mean
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for k, name in enumerate(class_names):
        ax.plot(cm, ours[:, k], color=f"C{k}", label=f"P({name}) jaxent + optax")
        ax.plot(cm[::8], theirs[::8, k], "o", color=f"C{k}", mfc="none", ms=5)
        rng = np.random.default_rng(k)
        xs = x[y == k, 0] * std + mean
        ax.plot(xs, -0.04 * (k + 1) + 0.01 * rng.standard_normal(len(xs)), "|", color=f"C{k}")
    ax.plot([], [], "o", color="gray", mfc="none", label="scikit-learn, unpenalised")
    ax.set_xlabel("sepal length (cm)")
    ax.set_ylabel("predicted probability")
    ax.set_title("Softmax regression of iris species on sepal length (MLE)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> tuple[SoftmaxFit, Comparison]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("plots"))
    parser.add_argument("--quick", action="store_true", help="smoke mode (the run is short anyway)")
    args = parser.parse_args(argv)

    x_all, y, names, class_names = load_data()
    k = len(class_names)
    print(f"Iris (bundled with scikit-learn): {len(y)} flowers, {k} species, 4 measurements.")
    print("Does a maximum-likelihood estimate exist? (linear-programming separation check)")
    for columns in ([0], [1], [2], [3]):
        verdict = "yes" if mle_exists(x_all[:, columns], y, k) else "no (classes separable)"
        print(f"  {names[columns[0]]:<20} alone: {verdict}")
    larger = [c for r in (2, 3, 4) for c in itertools.combinations(range(4), r)]
    separable = sum(not mle_exists(x_all[:, list(c)], y, k) for c in larger)
    print(f"  {separable} of the {len(larger)} sets of two or more measurements: no (separable)")
    print("Petal length or width, or any two measurements, separate setosa linearly from the")
    print("other species: its probability can be pushed to 1 without limit, so no MLE exists.")

    columns = [names.index(f) for f in FEATURES]
    x = x_all[:, columns]
    fit = fit_softmax_regression(x, y, k)
    reference = fit_sklearn(x, y, k)
    model = reference.model
    cmp = compare_with_sklearn(fit, reference, x)
    print(f"\nFitted on {', '.join(FEATURES)} alone. L-BFGS (optax) converged = {fit.converged}.")
    print(f"{'':<26}{'jaxent + optax':>18}{'scikit-learn':>18}")
    print(f"{'log-likelihood':<26}{fit.log_likelihood:>18.10f}{cmp.log_likelihood:>18.10f}")
    for j, name in enumerate(class_names):
        w = fit.weights[0, j] - fit.weights[0, 0]
        b = fit.bias[j] - fit.bias[0]
        w_ref = model.coef_[j, 0] - model.coef_[0, 0]
        b_ref = model.intercept_[j] - model.intercept_[0]
        if j:
            print(f"{'w_' + name + ' - w_setosa':<26}{w:>18.10f}{w_ref:>18.10f}")
            print(f"{'b_' + name + ' - b_setosa':<26}{b:>18.10f}{b_ref:>18.10f}")
    print(f"relative difference of log-likelihoods   {cmp.log_likelihood_rel_diff:.2e}")
    print(f"largest |difference| of probabilities    {cmp.max_probability_diff:.2e}")
    print(f"largest |difference| of class contrasts  {cmp.max_contrast_diff:.2e}")

    shift = (fit.weights + 5.0, fit.bias - 3.0)
    moved = -float(negative_log_likelihood(shift, jnp.asarray(x), jnp.asarray(y)))
    change = abs(moved - fit.log_likelihood)
    print("\nNot identifiable: adding 5 to every class's weight and -3 to every bias changes the")
    print(f"log-likelihood by {change:.1e} (nothing), so only contrasts and probabilities are")
    print("compared above; both fits are the sum-to-zero representative of their solution:")
    print(f"jaxent weights {np.round(fit.weights[0], 6)},")
    print(f"scikit-learn   {np.round(reference.weights[0], 6)}")

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "softmax_regression.png"
    raw = sklearn.datasets.load_iris().data[:, columns[0]]
    plot(path, fit, model, x, y, class_names, raw.mean(), raw.std())
    print(f"\nPlot written to {path}")
    return fit, cmp


if __name__ == "__main__":
    main()
