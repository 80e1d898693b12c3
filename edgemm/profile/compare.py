"""``edgemm profile A B C --rounds N``: bundles timed against each other, interleaved and paired.

Two separate ``edgemm profile`` runs of the same bundle on a shared machine differ by more than a
pruning step saves (measured on this project's 2-vCPU machine: a spread of ~10 % of the default
student's p50 between fresh processes). Timing the bundles in turn, call by call (A, B, C, A, B,
C, ...), in one process, exposes all of them to the same load; the ratio of each bundle's p50 to
the first bundle's in the same round cancels the load, and the spread of those ratios over the
rounds is what the comparison resolves.

Measured with three copies of the default student's ONNX bundle (true ratio 1), 300 calls each,
6 repetitions: turns of 60 calls per bundle gave ratios off by 1.3 % (median) and up to 13 %;
call-by-call turns, 0.4 % and up to 3.3 %. The price: each call follows the other bundles' calls,
so caches hold less of its weights than in a loop over one model; the ratios compare bundles under
the same handicap.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from edgemm.profile.latency import STAGES, ProfileConfig, synthetic_inputs
from edgemm.profile.stats import machine
from edgemm.runtime.session import Session

MEDIAN_SE = 1.2533  # standard error of a median over that of a mean (normal data): sqrt(pi / 2)


@dataclass
class Comparison:
    """What ``edgemm profile A B … --json`` prints (``to_dict``).

    Attributes:
        stage: The stage compared (``inference`` or ``end_to_end``).
        rounds: Rounds; each times every bundle ``runs`` times in turn.
        runs: Timed predictions per bundle per round.
        rows: Per bundle, in the order given: ``bundle``, ``p50_ms`` (median of the round p50s),
            ``p50_ms_rounds``, ``ratio`` (median over rounds of its p50 over the first bundle's
            p50 in the same round: < 1 is faster), ``ratio_rounds``, ``ratio_spread`` (the
            median absolute deviation of the ratios, scaled to a standard deviation: one round's
            noise) and ``ratio_error`` (the standard error of the median ratio: its noise).
        machine: Where it ran.
        remote: Set by ``edgemm.devices.remote`` when measured over SSH.
    """

    stage: str
    rounds: int
    runs: int
    rows: list[dict[str, Any]]
    machine: dict[str, Any]
    remote: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Comparison":
        keys = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in keys})


@dataclass(frozen=True)
class CompareConfig:
    """How to compare.

    Attributes:
        rounds: Rounds of every bundle in turn.
        stage: Which stage's p50 is compared.
        profile: Runs per round, warm-up, backend, threads and frame size (as ``edgemm profile``).
    """

    rounds: int = 5
    stage: str = "inference"
    profile: ProfileConfig = field(default_factory=ProfileConfig)

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"profile: --rounds must be >= 1, got {self.rounds}")
        if self.stage not in STAGES:
            raise ValueError(f"profile: stage {self.stage!r} is not one of {list(STAGES)}")


def _mad(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mid = statistics.median(values)
    return 1.4826 * statistics.median(abs(v - mid) for v in values)


def compare(bundles: Sequence[str | Path], config: CompareConfig | None = None) -> Comparison:
    """Times ``bundles`` in interleaved rounds in this process; see the module docstring.

    Args:
        bundles: Two or more bundle directories; the first is the reference of the ratios.
        config: Rounds, stage, and the per-round profile settings.
    """
    config = config or CompareConfig()
    if len(bundles) < 2:
        raise ValueError("profile: comparing needs two or more bundles")
    p = config.profile
    sessions = [Session(b, backend=p.backend, provider=p.provider, threads=p.threads, options=p.options) for b in bundles]
    inputs = [synthetic_inputs(s, p.frame_size, p.seed) for s in sessions]
    for session, (frame, audio) in zip(sessions, inputs):
        for _ in range(p.warmup):
            session.predict(frame, audio)
    p50s: list[list[float]] = [[] for _ in sessions]
    for _ in range(config.rounds):
        times: list[list[float]] = [[] for _ in sessions]
        for _ in range(p.runs):  # call by call: A, B, C, A, B, C, ...
            for k, (session, (frame, audio)) in enumerate(zip(sessions, inputs)):
                pred = session.predict(frame, audio)
                times[k].append(pred.latency_ms if config.stage == "end_to_end" else pred.stages[config.stage])
        for k, t in enumerate(times):
            p50s[k].append(statistics.median(t))
    rows = []
    for bundle, rounds in zip(bundles, p50s):
        ratios = [t / b for t, b in zip(rounds, p50s[0])]
        spread = _mad(ratios)
        rows.append({"bundle": str(bundle), "p50_ms": statistics.median(rounds), "p50_ms_rounds": rounds,
                     "ratio": statistics.median(ratios), "ratio_rounds": ratios, "ratio_spread": spread,
                     "ratio_error": MEDIAN_SE * spread / math.sqrt(len(ratios))})
    return Comparison(config.stage, config.rounds, p.runs, rows, machine())


def to_markdown(c: Comparison) -> str:
    """One table: each bundle's p50 and its paired time ratio to the first."""
    mc = c.machine
    where = f" on {c.remote['url']}" if c.remote else ""
    lines = [f"{c.stage} p50, {c.rounds} interleaved rounds of {c.runs} runs{where}; {mc['cpu']} ({mc['cores']} cores)",
             "", "| bundle | p50 ms | time vs first (median of rounds ± its error) | spread of one round |", "|---|---:|---:|---:|"]
    for r in c.rows:
        lines.append(f"| {Path(r['bundle']).name} | {r['p50_ms']:.3f} | {r['ratio']:.3f}× ±{r['ratio_error']:.3f} | "
                     f"±{r['ratio_spread']:.3f} |")
    return "\n".join(lines)
