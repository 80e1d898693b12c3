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


class LatencyHistogram:
    """Percentiles of an endless stream of timings in constant memory.

    A live run produces tens of results a second for days; keeping every timing for the summary
    grew the process by 8 MB an hour (measured by ``benchmarks/soak.py``). Timings are counted in
    log-spaced bins instead (``bins_per_decade`` of them from ``low_ms`` to ``high_ms``), so a
    percentile is exact to the bin's width: 1 % with the default 230 bins per decade.
    """

    def __init__(self, low_ms: float = 1e-3, high_ms: float = 1e5, bins_per_decade: int = 230) -> None:
        self._log_low = np.log10(low_ms)
        self._per_decade = bins_per_decade
        self._counts = np.zeros(int(np.ceil((np.log10(high_ms) - self._log_low) * bins_per_decade)) + 1, np.int64)
        self.n = 0
        self.max = 0.0  # exact

    def add(self, ms: float) -> None:
        i = int((np.log10(max(ms, 1e-12)) - self._log_low) * self._per_decade)
        self._counts[min(max(i, 0), len(self._counts) - 1)] += 1
        self.n += 1
        self.max = max(self.max, ms)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) in ms: the geometric middle of the bin holding it."""
        if self.n == 0:
            return 0.0
        i = int(np.searchsorted(np.cumsum(self._counts), q / 100 * self.n, side="left"))
        return float(10 ** (self._log_low + (i + 0.5) / self._per_decade))

    def percentiles(self, digits: int = 3) -> dict[str, float]:
        """``{"p50": .., "p90": .., "p99": ..}`` in ms, as ``LatencyStats.percentiles`` gives."""
        return {f"p{q}": round(self.percentile(q), digits) for q in (50, 90, 99)}

    def summary(self, digits: int = 3) -> dict[str, float] | None:
        """``percentiles`` and the maximum; None before the first timing."""
        return {**self.percentiles(digits), "max": round(self.max, digits)} if self.n else None


class SkewStats:
    """A signed offset over a run (audio ahead of video: positive) in constant memory: its mean,
    and the percentiles and maximum of its size."""

    def __init__(self) -> None:
        self._size = LatencyHistogram()
        self._sum = 0.0

    def add(self, ms: float) -> None:
        self._size.add(abs(ms))
        self._sum += ms

    def summary(self, digits: int = 3) -> dict[str, float] | None:
        """``{"mean", "p50", "p90", "p99", "max"}`` (all but the mean: of the size); None when empty."""
        size = self._size.summary(digits)
        return None if size is None else {"mean": round(self._sum / self._size.n, digits), **size}
