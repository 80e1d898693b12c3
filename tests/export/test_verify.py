"""Verification criteria: an int8 model may not lose more than the tolerance, and may score higher."""

import numpy as np

from edgemm.export.source import Samples
from edgemm.export.verify import Tolerance, verify
from edgemm.vocab import Precision

N = 160


def _samples() -> Samples:
    rng = np.random.default_rng(0)
    return Samples(rng.random((N, 3, 8, 8), np.float32), rng.random((N, 100), np.float32),
                   np.arange(N) % 4, "synthetic")


samples = _samples()
lookup = {int(np.rint(v * 1e6)): i for i, v in enumerate(samples.image[:, 0, 0, 0])}


def _runner(wrong: set[int]):
    """Logits that answer every sample right (label = index % 4) except those in ``wrong``."""
    def run(image, audio, image_present, audio_present):
        idx = np.rint(image[:, 0, 0, 0] * 1e6).astype(np.int64)  # identify samples by a pixel
        out = np.zeros((len(image), 4), np.float32)
        for row, key in enumerate(idx):
            i = lookup[key]
            out[row, (i + (i in wrong)) % 4] = 1.0
        return out
    return run


def test_int8_fails_only_when_it_loses_more_than_the_tolerance():
    labels = ["a", "b", "c", "d"]
    reference = _runner({0, 1})  # 2 of 160 wrong: 98.75 %
    higher = verify(_runner(set()), reference, samples, Precision.INT8, reference_name="ref", labels=labels,
                    tol=Tolerance())
    assert higher["status"] == "passed", higher["message"]  # 1.25 pts better is not a failure
    lower = verify(_runner({0, 1, 2, 3}), reference, samples, Precision.INT8, reference_name="ref", labels=labels,
                   tol=Tolerance())
    assert lower["status"] == "failed" and "1.25 pts lower > 1.0" in lower["message"]
    one = verify(_runner({0, 1, 2}), reference, samples, Precision.INT8, reference_name="ref", labels=labels,
                 tol=Tolerance())
    assert one["status"] == "passed"  # 0.625 pts lower is within 1 pt
