"""The Flax and Equinox examples in smoke mode: their key numbers, checked independently."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from examples_support import load

pytest.importorskip("flax")
pytest.importorskip("equinox")


def smoke_run(name: str, out):
    """``main(["--smoke", "--out", out])`` in JAX's default float32 mode, as the script runs."""
    with jax.enable_x64(False):
        report = load(name).main(["--smoke", "--out", str(out)])
    assert (out / f"{name}.png").stat().st_size > 10_000
    return report


@pytest.fixture(scope="module")
def flax_report(tmp_path_factory):
    return smoke_run("flax_classifier", tmp_path_factory.mktemp("flax"))


@pytest.fixture(scope="module")
def lm_report(tmp_path_factory):
    return smoke_run("equinox_language_model", tmp_path_factory.mktemp("equinox"))


def numpy_ece(probs: np.ndarray, labels: np.ndarray, bins: int) -> float:
    """Top-class ECE with equal-width bins (right-closed, as torchmetrics), in float64."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for k in range(bins):
        in_bin = which == k
        if in_bin.any():
            total += abs(correct[in_bin].sum() - confidence[in_bin].sum())
    return total / len(labels)


def test_flax_classifier_learns_the_digits(flax_report):
    r = flax_report
    assert r.test_logits.shape == (450, 10)
    assert r.accuracy > 0.85
    assert r.accuracy == pytest.approx(np.mean(r.test_logits.argmax(axis=1) == r.test_labels))
    assert r.losses[-1] < r.losses[0] < np.log(10) + 0.1  # training loss goes down


def test_flax_classifier_calibration_and_entropy(flax_report):
    r = flax_report
    logits = r.test_logits.astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    entropy = -np.sum(probs * np.log(probs), axis=1)
    assert r.mean_entropy == pytest.approx(entropy.mean(), rel=1e-4)
    # Label smoothing keeps the predictions away from certainty.
    assert 0.1 < r.mean_entropy < np.log(10)
    assert r.ece == pytest.approx(numpy_ece(probs, r.test_labels, 15), abs=1e-4)
    assert 0 < r.ece < 0.5


def test_equinox_language_model_beats_its_baselines(lm_report):
    r = lm_report
    assert r.vocab > 50 and r.valid_chars > 1000
    assert r.perplexity == pytest.approx(np.exp(r.mean_loss), rel=1e-5)
    assert r.perplexity < 0.7 * r.unigram_perplexity < r.vocab
    assert r.valid_perplexity[-1] < r.valid_perplexity[0]
    assert r.fused_vs_dense < 1e-4  # the fused loss equals the loss on the logits
    assert r.sample.startswith(load("equinox_language_model").PROMPT)
    assert len(r.sample) == len(load("equinox_language_model").PROMPT) + 120


def test_unigram_baseline_is_the_frequencies_cross_entropy():
    lm = load("equinox_language_model")
    data = lm.load_data()
    counts = np.bincount(data.train, minlength=len(data.chars)) + 1.0
    q = counts / counts.sum()
    held_out = data.valid
    expected = np.exp(-np.mean(np.log(q[held_out])))
    with jax.enable_x64(False):
        assert lm.unigram_perplexity(data) == pytest.approx(expected, rel=1e-5)
