"""onnxruntime: execution providers picked by short name (CPU, CUDA, TensorRT, OpenVINO, ...), or a
chain of them in order of preference (``TensorRT,CUDA,CPU``) that falls back to what the build has.

Hints whose key starts with ``session.`` are onnxruntime session config entries (e.g.
``session.intra_op.allow_spinning: "0"`` stops idle workers spin-waiting, which frees cores for
capture threads at some latency cost: on 2 cores, 0.32 -> 0.55 ms for the default student with 2
threads); the others are options of the chosen execution provider (e.g. ``trt_fp16_enable``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgemm.runtime.backends import LayerTime

NAME = "onnxruntime"


def provider_name(device: str) -> str:
    """``cuda`` -> ``CUDAExecutionProvider``; full provider names pass through."""
    device = device.strip()
    return device if device.endswith("ExecutionProvider") else {
        "cpu": "CPU", "cuda": "CUDA", "tensorrt": "Tensorrt", "trt": "Tensorrt", "openvino": "OpenVINO",
        "coreml": "CoreML", "dml": "Dml", "rocm": "ROCM", "qnn": "QNN", "xnnpack": "XNNPACK",
    }.get(device.lower(), device) + "ExecutionProvider"


TENSORRT = "TensorrtExecutionProvider"
CPU = "CPUExecutionProvider"


def engine_cache_dir(model: Path) -> Path:
    """Where TensorRT keeps the engines it builds for ``model``: the user cache, one directory per
    model file content (a bundle stays read-only and engines are never shared between models)."""
    digest = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "edgemm" / "tensorrt" / digest


def choose_providers(provider: str, available: list[str], options: dict[str, Any], model: Path | None = None
                     ) -> tuple[list[tuple[str, dict[str, str]]], str | None]:
    """The execution providers a session asks for, and a note when some were not available.

    Args:
        provider: One provider (``cuda``: it must be in this build) or a chain in order of preference
            (``TensorRT,CUDA,CPU``: those missing from this build are skipped, with a note; a Jetson
            profile asks for this, so the same profile runs on a build without TensorRT).
        available: ``onnxruntime.get_available_providers()``.
        options: Provider options: ``trt_*`` keys go to TensorRT, the others to the first other
            provider of the chain. With ``trt_engine_cache_enable`` and no ``trt_engine_cache_path``,
            engines are cached under ``engine_cache_dir(model)``.
        model: The model file (names the engine cache).

    Raises:
        ValueError: A single provider, or every provider of a chain, missing from this build.
    """
    chain = [provider_name(d) for d in provider.split(",") if d.strip()] or [CPU]
    usable = [p for p in chain if p in available]
    if not usable:
        raise ValueError(f"onnxruntime execution provider{'s' if len(chain) > 1 else ''} {', '.join(chain)} "
                         f"{'are' if len(chain) > 1 else 'is'} not in this onnxruntime build; available: "
                         f"{', '.join(available)}")
    skipped = [p for p in chain if p not in available]
    note = (f"onnxruntime here has no {', '.join(skipped)} (available: {', '.join(available)}); running on "
            f"{' -> '.join(usable)}") if skipped else None
    trt = {k: str(v) for k, v in options.items() if k.startswith("trt_")}
    if trt.get("trt_engine_cache_enable", "").lower() in ("1", "true") and "trt_engine_cache_path" not in trt and model:
        trt["trt_engine_cache_path"] = str(engine_cache_dir(model))
    other = {k: str(v) for k, v in options.items() if not k.startswith("trt_")}
    providers, given = [], False
    for p in usable:
        if p == TENSORRT:
            providers.append((p, trt))
        elif p != CPU and not given:
            providers.append((p, other))
            given = True
        else:
            providers.append((p, {}))
    if CPU not in usable:  # the nodes no accelerator takes
        providers.append((CPU, {}))
    return providers, note


class OrtBackend:
    name = NAME

    def __init__(self, path: Path, *, provider: str | None = None, threads: int | None = None,
                 hints: dict[str, Any] | None = None, profile: bool = False) -> None:
        hints = hints or {}
        config = {k: str(v) for k, v in hints.items() if k.startswith("session.")}
        # Other options (from a device profile) go to the providers, e.g. trt_fp16_enable for TensorRT.
        providers, note = choose_providers(provider or "cpu", ort.get_available_providers(),
                                           {k: v for k, v in hints.items() if not k.startswith("session.")}, path)
        if note:
            warnings.warn(note, stacklevel=3)
        cache = dict(providers).get(TENSORRT, {}).get("trt_engine_cache_path")
        if cache:
            Path(cache).mkdir(parents=True, exist_ok=True)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        for key, value in config.items():
            opts.add_session_config_entry(key, value)
        if profile:
            self._trace_dir = tempfile.TemporaryDirectory(prefix="edgemm-ort-profile-")
            opts.enable_profiling = True
            opts.profile_file_prefix = str(Path(self._trace_dir.name) / "ort")
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        self.device = self.session.get_providers()[0]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds)))

    def layer_times(self) -> list[LayerTime]:
        """Per-node kernel times from onnxruntime's trace (ends profiling), slowest first."""
        events = json.loads(Path(self.session.end_profiling()).read_text())
        total, calls, ops, where = defaultdict(float), defaultdict(int), {}, {}
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                node = e["name"][: -len("_kernel_time")]
                total[node] += e["dur"] / 1e3  # microseconds
                calls[node] += 1
                ops[node] = e.get("args", {}).get("op_name", "?")
                where[node] = e.get("args", {}).get("provider", "")  # the provider that ran it
        runs = max(calls.values(), default=1)
        return sorted((LayerTime(n, ops[n], total[n] / runs, calls[n], where[n]) for n in total),
                      key=lambda t: -t.mean_ms)


def open(path: Path, *, hints: dict[str, Any], provider: str | None, threads: int | None,
         profile: bool = False) -> OrtBackend:
    return OrtBackend(path, provider=provider, threads=threads, hints=hints, profile=profile)
