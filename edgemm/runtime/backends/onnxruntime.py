"""onnxruntime: execution providers picked by short name (CPU, CUDA, TensorRT, OpenVINO, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

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
                 hints: dict[str, Any] | None = None) -> None:
        available = ort.get_available_providers()
        wanted = provider_name(device or "cpu")
        if wanted not in available:
            raise ValueError(f"onnxruntime execution provider {wanted!r} is not in this onnxruntime build; "
                             f"available: {', '.join(available)}")
        providers = [wanted] + (["CPUExecutionProvider"] if wanted != "CPUExecutionProvider" else [])
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        self.device = self.session.get_providers()[0]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds)))


def open(path: Path, *, hints: dict[str, Any], device: str | None, threads: int | None) -> OrtBackend:
    return OrtBackend(path, device=device, threads=threads, hints=hints)
