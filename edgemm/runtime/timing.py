"""Latency statistics from raw timings (torch-free), shared by the live runtime and ``edgemm profile``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Percentiles of one stage's time per call, in milliseconds."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    n: int

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int] | np.ndarray) -> LatencyStats:
        return cls.from_ms(np.asarray(samples_ns, dtype=np.float64) / 1e6)

    @classmethod
    def from_ms(cls, samples_ms: Sequence[float] | np.ndarray) -> LatencyStats:
        ms = np.asarray(samples_ms, dtype=np.float64)
        if ms.size == 0:
            raise ValueError("no timings to summarise")
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(float(p50), float(p90), float(p99), float(ms.mean()), float(ms.std()), int(ms.size))

    def percentiles(self, digits: int = 3) -> dict[str, float]:
        """``{"p50": .., "p90": .., "p99": ..}`` in ms, rounded (the runtime's summary form)."""
        return {"p50": round(self.p50_ms, digits), "p90": round(self.p90_ms, digits), "p99": round(self.p99_ms, digits)}

    def to_dict(self) -> dict:
        return asdict(self)
