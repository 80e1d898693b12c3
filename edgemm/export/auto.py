"""``--precision auto``: export every precision, measure each on the backend that will run it, keep
the fastest one that verifies.

int8 is not always the fastest: on a CPU without VNNI a sub-millisecond model can run slower in
int8 than in fp32 (quantize/dequantize overhead), while a larger model gains. So the choice is
measured, on the chosen backend, device and threads, and the manifest records every candidate
(``selection``) so the choice can be audited.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from edgemm.export.errors import ExportError
from edgemm.export.formats import Precision, Target
from edgemm.runtime.manifest import publish, read_manifest, write_manifest


def export_auto(checkpoint: str | Path | None, *, target: Target, out: str | Path | None,
                candidates: tuple[Precision | str, ...] = tuple(Precision), backend: str | None = None,
                device: str | None = None, threads: int | None = None, options: dict[str, Any] | None = None,
                runs: int = 200, log: Callable[[str], None] = print, **export_kw):
    """Exports each candidate precision, profiles the verified ones, publishes the fastest.

    Args:
        checkpoint: As for ``export``.
        target: The bundle target.
        out: The bundle directory (default: ``<checkpoint dir>/<model>-<target>-auto.edgemm``).
        candidates: Precisions to try.
        backend: Backend to measure on (default: the target's own).
        device: Backend device / execution provider to measure on.
        threads: Threads to measure with.
        options: Backend options (e.g. from a device profile).
        runs: Timed predictions per candidate.
        log: Progress sink.
        **export_kw: Passed to ``export`` (calibration, verification, tolerance, device name).

    Returns:
        The published bundle's manifest; ``manifest.selection`` holds the measurements.

    Raises:
        ExportError: No candidate both exported and verified (every candidate's outcome is listed).
    """
    from edgemm.export.bundle import VerificationFailed, default_bundle_path, export
    from edgemm.export.source import load_source, resolve_checkpoint
    from edgemm.profile.latency import ProfileConfig, profile

    from edgemm.config import parse_enum

    candidates = tuple(parse_enum(Precision, c, "auto candidates") for c in candidates)
    ckpt = resolve_checkpoint(checkpoint)
    bundle = Path(out) if out else default_bundle_path(ckpt, load_source(ckpt).name, target, "auto")
    bundle.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".auto-{bundle.name}-", dir=bundle.parent))
    rows: list[dict[str, Any]] = []
    try:
        for precision in candidates:
            path = work / f"{precision.value}{bundle.suffix}"
            try:
                export(ckpt, target=target, precision=precision, out=path, log=log, **export_kw)
                status = "passed"
            except VerificationFailed as e:
                status = f"failed verification: {e.message}"
            except ExportError as e:
                rows.append({"precision": precision.value, "status": f"export failed: {e}"})
                continue
            m = read_manifest(path)
            row = {"precision": precision.value, "status": status,
                   "accuracy": m.verification.get("accuracy"), "top1_agreement": m.verification.get("top1_agreement")}
            if status == "passed":
                r = profile(path, ProfileConfig(runs=runs, warmup=10, layers=0, backend=backend, device=device,
                                                threads=threads, options=dict(options or {})))
                row.update(inference_p50_ms=r.stages["inference"].p50_ms, inference_p90_ms=r.stages["inference"].p90_ms,
                           backend=r.backend, device=r.device, threads=r.threads)
            rows.append(row)
            log(f"export auto: {precision.value}: {status}"
                + (f", inference p50 {row['inference_p50_ms']:.3f} ms" if "inference_p50_ms" in row else ""))
        passed = [r for r in rows if "inference_p50_ms" in r]
        if not passed:
            raise ExportError(f"--precision auto: no precision both exported and verified for {target.value}: "
                              + "; ".join(f"{r['precision']}: {r['status']}" for r in rows))
        best = min(passed, key=lambda r: r["inference_p50_ms"])
        chosen = work / f"{best['precision']}{bundle.suffix}"
        manifest = read_manifest(chosen)
        manifest.selection = {"rule": "fastest p50 inference among the precisions that passed verification",
                              "chosen": best["precision"], "candidates": rows, "runs": runs}
        write_manifest(manifest, chosen)
        publish(chosen, bundle)
        log(f"export auto: chose {best['precision']} -> {bundle}")
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)
