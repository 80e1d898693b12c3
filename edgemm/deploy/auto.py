"""``--precision auto``: export every precision, measure each on the backend that will run it, keep
the fastest one that verifies.

int8 is not always the fastest: on a CPU without VNNI a sub-millisecond model can run slower in
int8 than in fp32 (quantize/dequantize overhead), while a larger model gains. So the choice is
measured, on the chosen backend, device and threads, and the manifest records every candidate
(``selection``) so the choice can be audited.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from edgemm.atomic import remove_leftovers
from edgemm.config import parse_enum
from edgemm.deploy.attempt import try_export
from edgemm.export import ExportError
from edgemm.export.bundle import default_bundle_path
from edgemm.export.config import ExportConfig
from edgemm.export.source import load_source, resolve_checkpoint
from edgemm.profile.latency import ProfileConfig, profile
from edgemm.runtime.manifest import check_replaceable, publish, read_manifest, write_manifest
from edgemm.vocab import Precision


@dataclass(frozen=True)
class AutoConfig:
    """How ``--precision auto`` measures.

    Attributes:
        candidates: Precisions to try.
        backend: Backend to measure on (default: the target's own).
        provider: Execution provider (onnxruntime) or device (OpenVINO) to measure on.
        threads: Threads to measure with.
        options: Backend options (e.g. from a device profile).
        runs: Timed predictions per candidate.
    """

    candidates: tuple[Precision, ...] = tuple(Precision)
    backend: str | None = None
    provider: str | None = None
    threads: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    runs: int = 200

    def __post_init__(self) -> None:
        object.__setattr__(self, "candidates",
                           tuple(parse_enum(Precision, c, "auto candidates") for c in self.candidates))
        if not self.candidates:
            raise ValueError("auto candidates: give at least one precision")
        if self.runs < 1:
            raise ValueError(f"auto runs: expected a positive number of timed runs, got {self.runs}")


def export_auto(checkpoint: str | Path | None, export: ExportConfig, *, out: str | Path | None,
                auto: AutoConfig = AutoConfig(), log: Callable[[str], None] = print):
    """Exports each candidate precision, profiles the verified ones, publishes the fastest.

    Args:
        checkpoint: As for ``edgemm.export.export``.
        export: The export (its precision ``auto``); each candidate is ``export.at(precision)``.
        out: The bundle directory (default: ``<checkpoint dir>/<model>-<target>-auto.edgemm``).
        auto: What to try and how to measure.
        log: Progress sink.

    Returns:
        The published bundle's manifest; ``manifest.selection`` holds the measurements.

    Raises:
        ExportError: No candidate both exported and verified (every candidate's outcome is listed).
    """
    target = export.target
    ckpt = resolve_checkpoint(checkpoint)
    bundle = check_replaceable(Path(out) if out else default_bundle_path(ckpt, load_source(ckpt).name, target, "auto"))
    bundle.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(bundle.parent, f".auto-{bundle.name}-")  # what killed runs left
    work = Path(tempfile.mkdtemp(prefix=f".auto-{bundle.name}-{os.getpid()}-", dir=bundle.parent))
    rows: list[dict[str, Any]] = []
    try:
        from edgemm.export.formats import offers

        for precision in (p for p in auto.candidates if offers(target, p)):
            tried = try_export(ckpt, export.at(precision), out=work / f"{precision.value}{bundle.suffix}", log=log)
            row = {"precision": precision.value, "status": tried.status}
            if tried.bundle is None:
                rows.append(row)
                continue
            row.update(accuracy=tried.verification.get("accuracy"), top1_agreement=tried.verification.get("top1_agreement"))
            if tried.verified:
                r = profile(tried.bundle, ProfileConfig(runs=auto.runs, warmup=10, layers=0, backend=auto.backend,
                                                provider=auto.provider, threads=auto.threads,
                                                options=dict(auto.options)))
                row.update(inference_p50_ms=r.stages["inference"].p50_ms, inference_p90_ms=r.stages["inference"].p90_ms,
                           backend=r.backend, device=r.device, threads=r.threads)
            rows.append(row)
            log(f"export auto: {precision.value}: {tried.status}"
                + (f", inference p50 {row['inference_p50_ms']:.3f} ms" if "inference_p50_ms" in row else ""))
        passed = [r for r in rows if "inference_p50_ms" in r]
        if not passed:
            raise ExportError(f"--precision auto: no precision both exported and verified for {target.value}: "
                              + "; ".join(f"{r['precision']}: {r['status']}" for r in rows))
        best = min(passed, key=lambda r: r["inference_p50_ms"])
        chosen = work / f"{best['precision']}{bundle.suffix}"
        manifest = read_manifest(chosen)
        manifest.selection = {"rule": "fastest p50 inference among the precisions that passed verification",
                              "chosen": best["precision"], "candidates": rows, "runs": auto.runs}
        write_manifest(manifest, chosen)
        publish(chosen, bundle)
        manifest.location = bundle
        log(f"export auto: chose {best['precision']} -> {bundle}")
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)
