"""onnxruntime: execution providers picked by short name (CPU, CUDA, TensorRT, OpenVINO, ...).

Hints whose key starts with ``session.`` are onnxruntime session config entries (e.g.
``session.intra_op.allow_spinning: "0"`` stops idle workers spin-waiting, which frees cores for
capture threads at some latency cost: on 2 cores, 0.32 -> 0.55 ms for the default student with 2
threads); the others are options of the chosen execution provider (e.g. ``trt_fp16_enable``).
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edgemm.runtime.backends import LayerTime

NAME = "onnxruntime"


def provider_name(device: str) -> str:
    """``cuda`` -> ``CUDAExecutionProvider``; full provider names pass through."""
    return device if device.endswith("ExecutionProvider") else {
        "cpu": "CPU", "cuda": "CUDA", "tensorrt": "Tensorrt", "trt": "Tensorrt", "openvino": "OpenVINO",
        "coreml": "CoreML", "dml": "Dml", "rocm": "ROCM", "qnn": "QNN", "xnnpack": "XNNPACK",
    }.get(device.lower(), device) + "ExecutionProvider"


class OrtBackend:
    name = NAME

    def __init__(self, path: Path, *, device: str | None = None, threads: int | None = None,
                 hints: dict[str, Any] | None = None, profile: bool = False) -> None:
        available = ort.get_available_providers()
        wanted = provider_name(device or "cpu")
        if wanted not in available:
            raise ValueError(f"onnxruntime execution provider {wanted!r} is not in this onnxruntime build; "
                             f"available: {', '.join(available)}")
        config = {k: str(v) for k, v in (hints or {}).items() if k.startswith("session.")}
        # Other options (from a device profile) go to the chosen provider, e.g. trt_fp16_enable for TensorRT.
        providers = [(wanted, {k: str(v) for k, v in (hints or {}).items() if not k.startswith("session.")})]
        providers += [("CPUExecutionProvider", {})] if wanted != "CPUExecutionProvider" else []
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
        total, calls, ops = defaultdict(float), defaultdict(int), {}
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                node = e["name"][: -len("_kernel_time")]
                total[node] += e["dur"] / 1e3  # microseconds
                calls[node] += 1
                ops[node] = e.get("args", {}).get("op_name", "?")
        runs = max(calls.values(), default=1)
        return sorted((LayerTime(n, ops[n], total[n] / runs, calls[n]) for n in total), key=lambda t: -t.mean_ms)


def open(path: Path, *, hints: dict[str, Any], device: str | None, threads: int | None,
         profile: bool = False) -> OrtBackend:
    return OrtBackend(path, device=device, threads=threads, hints=hints, profile=profile)
