"""The estimator-bias example: its smoke run writes the plot and shows the known biases."""

from __future__ import annotations

import numpy as np
from examples_support import load


def test_estimator_bias_quick_run(tmp_path, capsys):
    example = load("estimator_bias")
    (study,) = example.main(["--quick", "--out", str(tmp_path)])
    plot = tmp_path / "estimator_bias.png"
    assert plot.exists() and plot.stat().st_size > 10_000
    assert "Zipf law over K = 100 bins" in capsys.readouterr().out
    names = list(example.ESTIMATORS)
    bias = dict(zip(names, study.bias.T, strict=True))  # name: bias per sample size
    rmse = dict(zip(names, study.rmse.T, strict=True))
    assert study.sizes == (10, 100, 1000) and study.bias.shape == (3, len(names))
    np.testing.assert_allclose(study.truth, example.true_entropy(example.zipf(100)))
    # the plug-in estimate is biased low at every N, by about (K - 1) / (2N) once N ~ 10 K.
    assert np.all(bias["plug-in"] < 0)
    assert abs(bias["plug-in"][-1] + 99 / 2000) < 0.02
    # at small N, Miller-Madow and NSB have smaller |bias| than the plug-in estimate.
    for name in ("Miller-Madow", "NSB", "Grassberger", "Chao-Shen"):
        assert np.all(np.abs(bias[name][:2]) < np.abs(bias["plug-in"][:2])), name
    assert abs(bias["NSB"][0]) < abs(bias["plug-in"][0]) / 3
    # the plug-in RMSE shrinks with N, and every estimator is within 0.1 nats at N = 1000.
    assert np.all(np.diff(rmse["plug-in"]) < 0)
    assert np.all(study.rmse[-1] < 0.1)
