"""Temperature scaling on the validation split, the --threshold auto operating point, and the runtime's
calibrated scores."""

import numpy as np
import pytest

from edgemm.export.calibrate import best_threshold, calibrate, ece, fit_temperature, nll
from edgemm.export.source import Samples


def _overconfident(n=4000, classes=5, scale=3.0, seed=0):
    """Labels drawn from softmax(z); the model reports scale * z: over-confident by exactly ``scale``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, classes))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return scale * z, labels


def test_the_fitted_temperature_undoes_a_known_overconfidence_and_lowers_ece():
    logits, labels = _overconfident()
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(3.0, rel=0.1)
    soft = lambda x: np.exp(x - x.max(1, keepdims=True)) / np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)  # noqa: E731
    assert ece(soft(logits / t), labels) < 0.5 * ece(soft(logits), labels)
    assert nll(logits, labels, t) < nll(logits, labels)


def test_ece_of_a_perfectly_calibrated_bin_is_zero_and_of_a_wrong_one_its_gap():
    probs = np.array([[0.75, 0.25]] * 4)
    assert ece(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.0)  # 75 % confident, 75 % right
    assert ece(probs, np.array([1, 1, 1, 1])) == pytest.approx(0.75)  # 75 % confident, never right


def test_the_threshold_leaves_out_answers_only_where_that_is_right_more_often():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.55, 0.45], [0.52, 0.48]])
    assert best_threshold(probs, np.array([0, 0, 1, 1])) == pytest.approx((0.8 + 0.55) / 2)  # the two unsure are wrong
    assert best_threshold(probs, np.array([0, 0, 0, 0])) == 0.0  # every answer right: give them all


def test_calibrate_runs_the_model_and_states_its_figures():
    logits, labels = _overconfident(n=600)
    samples = Samples(np.zeros((600, 3, 2, 2), np.float32), np.zeros((600, 10), np.float32), labels, "val 600 of 600")
    calls = []

    def run(image, audio, image_present, audio_present):
        calls.append(len(image))
        assert image_present.all() and audio_present.all()  # both modalities, as a device mostly runs
        return logits[sum(calls[:-1]):sum(calls)]

    cal = calibrate(run, samples, batch=64)
    assert sum(calls) == 600 and cal["samples"] == 600 and cal["data"] == "val 600 of 600"
    assert cal["temperature"] == pytest.approx(3.0, rel=0.15)
    assert cal["ece_after"] < cal["ece_before"] and cal["nll_after"] < cal["nll_before"]
    assert 0 < cal["threshold"] < 1
