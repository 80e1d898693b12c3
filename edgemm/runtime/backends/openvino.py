"""OpenVINO: IR or ONNX files on CPU, GPU, NPU or AUTO, with a compiled-model cache.

The manifest's ``runtime.openvino`` section carries properties measured at export: an fp32
bundle pins ``INFERENCE_PRECISION_HINT=f32`` because the CPU plugin otherwise runs bf16 where the
CPU allows it (measured here: max |Δlogit| 5e-3 instead of 3e-7).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

NAME = "openvino"


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEMM_CACHE", Path.home() / ".cache" / "edgemm")) / "openvino"


class OpenVINOBackend:
    name = NAME

    def __init__(self, path: Path, *, device: str | None = None, threads: int | None = None,
                 hints: dict[str, Any] | None = None) -> None:
        core = ov.Core()
        self.device = (device or "CPU").upper()
        available = core.available_devices
        if self.device not in {"AUTO", "MULTI", "HETERO"} and self.device.split(".")[0] not in {d.split(".")[0] for d in available}:
            raise ValueError(f"OpenVINO device {self.device!r} is not available here; available: {', '.join(available)}, AUTO")
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "CACHE_DIR": str(cache_dir())}
        config.update(hints or {})
        if threads and self.device == "CPU":
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if self.device != "CPU":  # CPU-only properties would be refused elsewhere
            config.pop("INFERENCE_NUM_THREADS", None)
        self.compiled = core.compile_model(str(path), self.device, config)
        self.request = self.compiled.create_infer_request()
        self.outputs = [o.get_any_name() for o in self.compiled.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self.request.infer(feeds)
        return {name: np.array(result[out]) for name, out in zip(self.outputs, self.compiled.outputs)}


def open(path: Path, *, hints: dict[str, Any], device: str | None, threads: int | None) -> OpenVINOBackend:
    return OpenVINOBackend(path, device=device, threads=threads, hints=hints)
