"""The examples run in smoke mode, write their plots, and reproduce their key numbers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from examples_support import EXAMPLES, load


@pytest.mark.parametrize(
    ("name", "plots"),
    [
        ("logistic_regression", ["logistic_regression.png"]),
        ("coin_flips", ["coin_flips.png"]),
        ("information_tour", ["information_tour.png"]),
        ("softmax_regression", ["softmax_regression.png"]),
        ("cross_entropy_vs_squared_error", ["cross_entropy_vs_squared_error.png"]),
    ],
)
def test_example_runs_in_quick_mode_and_writes_plots(name, plots, tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for plot in plots:
        path = tmp_path / plot
        assert path.exists() and path.stat().st_size > 10_000, plot


def test_logistic_regression_matches_statsmodels():
    lr = load("logistic_regression")
    x, y, names = lr.load_data()
    cols = [names.index(f) for f in lr.SUBSET]
    fit = lr.fit_logistic_regression(x[:, cols], y)
    ref = lr.fit_statsmodels(x[:, cols], y)
    assert fit.converged
    assert fit.coef.shape == (len(cols),) and fit.stderr.shape == (len(cols) + 1,)
    np.testing.assert_allclose(fit.intercept, ref.params[0], rtol=1e-4)
    np.testing.assert_allclose(fit.coef, ref.params[1:], rtol=1e-4)
    np.testing.assert_allclose(fit.stderr, ref.bse, rtol=1e-4)
    np.testing.assert_allclose(fit.log_likelihood, ref.llf, rtol=1e-10)


def test_logistic_regression_detects_separation_on_all_features():
    lr = load("logistic_regression")
    x, y, names = lr.load_data()
    full = lr.separation(x, y)
    assert full.complete and not full.mle_exists
    s = 2 * y - 1
    margins = s * (full.direction[0] + x @ full.direction[1:])
    assert margins.min() >= 1 - 1e-6  # a genuine separating hyperplane
    subset = lr.separation(x[:, [names.index(f) for f in lr.SUBSET]], y)
    assert subset.mle_exists and not subset.complete


def test_coin_flips_estimate_is_seven_tenths():
    coin = load("coin_flips")
    fit = coin.fit_coin(steps=200)
    assert abs(fit.theta - 0.7) < 1e-4
    theta, likelihood, xent = coin.curves()
    assert abs(theta[likelihood.argmax()] - 0.7) < 3e-3
    assert likelihood.argmax() == xent.argmin()
    assert np.all(np.diff(fit.loss_history) <= 1e-15)  # descent never goes up


def test_information_tour_worked_numbers():
    tour = load("information_tour")
    n = tour.worked_numbers()
    expected = {
        "surprisal of a 1% win (bits)": 6.6439,
        "surprisal of a 99% win (bits)": 0.0145,
        "final at 1/4 then win at 1/2 (bits)": 3.0,
        "title at 1/8 (bits)": 3.0,
        "16-bit uniform word (bits)": 16.0,
        "H(50/50) (bits)": 1.0,
        "H(99/1) (bits)": 0.0808,
        "H_b(0.99) (bits)": 0.0808,
        "H(uniform 6) = log2 6 (bits)": 2.585,
        "H(p, q), p=[1,0,0], q=[.7,.2,.1] (nats)": 0.3567,
        "D(p || q), same p and q (nats)": 0.3567,
        "softmax cross-entropy of log q, label 0 (nats)": 0.3567,
    }
    assert set(n) == set(expected)
    for key, value in expected.items():
        assert round(n[key], 4) == pytest.approx(value, abs=1e-12), key


def test_information_tour_gibbs_identity_and_asymmetry():
    checks = load("information_tour").random_checks(300, seed=3)
    assert checks.min_kl >= 0
    assert checks.max_identity_error < 1e-12
    assert checks.max_asymmetry > 0.1


def test_information_tour_codes():
    tour = load("information_tour")
    codes = {c.name: c for c in tour.coding_examples()}
    assert codes["6 uniform, fixed 3-bit code"].average_length == 3.0
    assert round(codes["6 uniform, code {00,01,100,...}"].average_length, 3) == 2.667
    assert round(codes["6 with 80% on two, same code"].average_length, 6) == 2.2
    for c in codes.values():
        assert c.kraft_sum <= 1 + 1e-12
        assert c.entropy_bits <= c.average_length + 1e-12
        if "Huffman" in c.name:
            assert c.average_length < c.entropy_bits + 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_huffman_bound_on_random_distributions(seed):
    tour = load("information_tour")
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(int(rng.integers(2, 40)), 0.5))
    report = tour.code_report("random", p)
    assert report.entropy_bits <= report.average_length < report.entropy_bits + 1
    assert report.kraft_sum == pytest.approx(1.0)  # Huffman codes are complete
