"""OpenVINO: IR or ONNX files on CPU, GPU, NPU or AUTO, with a compiled-model cache.

The manifest's ``runtime.openvino`` section carries properties measured at export: an fp32
bundle pins ``INFERENCE_PRECISION_HINT=f32`` because the CPU plugin otherwise runs bf16 where the
CPU allows it (measured here: max |Δlogit| 5e-3 instead of 3e-7).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from edgemm.runtime.backends import LayerTime

NAME = "openvino"


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEMM_CACHE", Path.home() / ".cache" / "edgemm")) / "openvino"


def static_batch(model: ov.Model, batch: int = 1) -> ov.Model:
    """Fixes a dynamic batch dimension (the NPU plugin compiles static shapes only)."""
    shapes = {}
    for port in model.inputs:
        shape = port.get_partial_shape()
        if shape.rank.is_static and shape.rank.get_length() and shape[0].is_dynamic:
            shape[0] = batch
            shapes[port] = shape
    if shapes:
        model.reshape(shapes)
    return model


class OpenVINOBackend:
    name = NAME

    def __init__(self, path: Path, *, provider: str | None = None, threads: int | None = None,
                 hints: dict[str, Any] | None = None, profile: bool = False) -> None:
        core = ov.Core()
        self.device = (provider or "CPU").upper()  # OpenVINO calls its providers devices
        available = core.available_devices
        if self.device not in {"AUTO", "MULTI", "HETERO"} and self.device.split(".")[0] not in {d.split(".")[0] for d in available}:
            raise ValueError(f"OpenVINO device {self.device!r} is not available here; available: {', '.join(available)}, AUTO")
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "CACHE_DIR": str(cache_dir())}
        config.update(hints or {})
        if profile:
            config["PERF_COUNT"] = True
            config.pop("CACHE_DIR")  # a model imported from the cache reports no counters on some devices
        self._total: dict[str, float] = defaultdict(float)
        self._calls: dict[str, int] = defaultdict(int)
        self._ops: dict[str, str] = {}
        self._profile = profile
        if threads and self.device == "CPU":
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if self.device != "CPU":  # CPU-only properties would be refused elsewhere
            config.pop("INFERENCE_NUM_THREADS", None)
        model = core.read_model(str(path))
        if self.device.startswith("NPU"):
            static_batch(model)
        self.compiled = core.compile_model(model, self.device, config)
        self.request = self.compiled.create_infer_request()
        self.outputs = [o.get_any_name() for o in self.compiled.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self.request.infer(feeds)
        if self._profile:
            for info in self.request.profiling_info:
                if info.status == info.Status.EXECUTED:
                    self._total[info.node_name] += info.real_time.total_seconds() * 1e3
                    self._calls[info.node_name] += 1
                    self._ops[info.node_name] = f"{info.node_type} ({info.exec_type})"
        return {name: np.array(result[out]) for name, out in zip(self.outputs, self.compiled.outputs)}


    def layer_times(self) -> list[LayerTime]:
        """Per-node times from OpenVINO's performance counters (collected on every run), slowest first."""
        if not self._profile:
            raise ValueError("open the backend with profile=True to collect performance counters")
        runs = max(self._calls.values(), default=1)
        return sorted((LayerTime(n, self._ops[n], t / runs, self._calls[n]) for n, t in self._total.items()),
                      key=lambda t: -t.mean_ms)


def open(path: Path, *, hints: dict[str, Any], provider: str | None, threads: int | None,
         profile: bool = False) -> OpenVINOBackend:
    return OpenVINOBackend(path, provider=provider, threads=threads, hints=hints, profile=profile)
