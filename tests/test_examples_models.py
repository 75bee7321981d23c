"""The softmax-regression and cross-entropy-versus-squared-error examples: their numbers."""

from __future__ import annotations

import numpy as np
import pytest
from examples_support import load


@pytest.fixture(scope="module")
def softmax():
    return load("softmax_regression")


@pytest.fixture(scope="module")
def ce_vs_se():
    return load("cross_entropy_vs_squared_error")


# --- softmax_regression.py ---------------------------------------------------------------


def sklearn_reference(x, y):
    """Unpenalised scikit-learn fit: predicted probabilities and the maximised log-likelihood."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=np.inf, solver="lbfgs", tol=1e-12, max_iter=100_000).fit(x, y)
    proba = model.predict_proba(x)
    return proba, float(np.sum(np.log(proba[np.arange(len(y)), y])))


def softmax_probabilities(fit, x):
    logits = x @ fit.weights + fit.bias
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def iris_settings(softmax):
    """(name, x, y, K): all three species on sepal length; versicolor vs virginica on all 4."""
    x, y, _, _ = softmax.load_data()
    pair = y > 0
    return [
        ("three species, sepal length", x[:, :1], np.asarray(y), 3),
        ("versicolor vs virginica, all 4", x[pair], np.asarray(y[pair]) - 1, 2),
    ]


def test_softmax_mle_does_not_exist_on_all_iris_features(softmax):
    x, y, _, _ = softmax.load_data()
    assert not softmax.mle_exists(x, np.asarray(y), 3)


def test_softmax_mle_exists_in_the_fitted_settings(softmax, iris_settings):
    for name, x, y, k in iris_settings:
        assert softmax.mle_exists(x, y, k), name


@pytest.fixture(scope="module")
def softmax_fits(softmax, iris_settings):
    return [
        (name, x, y, softmax.fit_softmax_regression(x, y, k), sklearn_reference(x, y))
        for name, x, y, k in iris_settings
    ]


def test_softmax_fit_matches_sklearn(softmax_fits):
    for name, x, y, fit, (proba, loglik) in softmax_fits:
        k = proba.shape[1]
        assert fit.converged, name
        assert np.shape(fit.weights) == (x.shape[1], k), name
        assert np.shape(fit.bias) == (k,), name
        assert fit.log_likelihood == pytest.approx(loglik, rel=1e-6), name
        np.testing.assert_allclose(softmax_probabilities(fit, x), proba, rtol=0, atol=1e-5)
        # the log-likelihood reported is that of the reported parameters
        ours = softmax_probabilities(fit, x)
        assert fit.log_likelihood == pytest.approx(
            np.sum(np.log(ours[np.arange(len(y)), y])), rel=1e-10
        )


def test_softmax_probabilities_are_invariant_to_a_common_shift(softmax_fits):
    _, x, _, fit, _ = softmax_fits[0]
    shifted = fit._replace(weights=np.asarray(fit.weights) + 3.0, bias=np.asarray(fit.bias) - 1.5)
    np.testing.assert_allclose(
        softmax_probabilities(shifted, x), softmax_probabilities(fit, x), atol=1e-12
    )


# --- cross_entropy_vs_squared_error.py ----------------------------------------------------


@pytest.mark.parametrize(
    ("w", "b", "x", "y"),
    [(2.0, 2.0, 1.0, 0.0), (3.0, 2.5, 1.0, 0.0), (-1.5, 0.3, 2.0, 1.0), (0.7, -4.0, -0.5, 1.0)],
)
def test_gradients_equal_closed_forms(ce_vs_se, w, b, x, y):
    check = ce_vs_se.gradient_check(w, b, x, y)
    a = 1.0 / (1.0 + np.exp(-(w * x + b)))
    slope = a * (1.0 - a)
    expected = {
        "squared error": [(a - y) * slope * x, (a - y) * slope],
        "cross-entropy": [(a - y) * x, a - y],
    }
    for name, want in expected.items():
        np.testing.assert_allclose(check.measured[name], want, rtol=0, atol=1e-10)
        np.testing.assert_allclose(check.closed_form[name], want, rtol=0, atol=1e-10)


def test_cross_entropy_learns_faster_from_a_confidently_wrong_start(ce_vs_se):
    histories = ce_vs_se.train_both(steps=100)
    se, ce = histories["squared error"], histories["cross-entropy"]
    assert len(se.loss) == len(ce.loss) == 101
    assert se.output[0] == ce.output[0] > 0.98  # same confidently wrong start
    assert ce.loss[-1] < se.loss[-1]
    assert ce.output[-1] < 0.05 < 0.9 < se.output[-1]  # target is 0
    # the vanishing gradient: squared error's starts over 50 times smaller
    assert se.grad_norm[0] * 50 < ce.grad_norm[0]


def test_convexity_check(ce_vs_se):
    check = ce_vs_se.convexity_check(np.linspace(-10.0, 10.0, 201))
    ce = check.second_derivative["cross-entropy"]
    se = check.second_derivative["squared error"]
    assert np.all(ce >= 0)
    assert se.min() < 0 < se.max()
    assert check.convex == {"squared error": False, "cross-entropy": True}
    # cross-entropy's second derivative in z_0 is q_0 (1 - q_0)
    z = np.stack([check.grid, *(np.full_like(check.grid, v) for v in ce_vs_se.SOFTMAX_OTHERS)])
    q0 = np.exp(z[0]) / np.exp(z).sum(axis=0)
    np.testing.assert_allclose(ce, q0 * (1 - q0), rtol=1e-10, atol=1e-15)
