"""Inference backends, one file each, behind one small protocol.

A backend opens a bundle's model file and maps ``{tensor name: array}`` to the model's outputs.
Everything else (preprocessing, batching, labels) is the session's job and comes from the manifest.
Backends are looked up by name and imported only when used, so a device needs only the runtime
it runs (``pip install edgemm[runtime,headless]`` plus ``[openvino]`` or ``[tflite]``).
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np

from edgemm.errors import EdgemmError
from edgemm.vocab import CAN_RUN, DEFAULT_BACKEND, BackendName

__all__ = ["CAN_RUN", "DEFAULT_BACKEND", "Backend", "BackendName", "BackendUnavailable", "LayerProfileUnavailable",
           "LayerTime", "available_backends", "open_backend"]
_MODULES = {b: f"edgemm.runtime.backends.{b.value}" for b in BackendName}


class BackendUnavailable(EdgemmError, RuntimeError):
    """The backend's Python package is not installed (the message says which extra installs it)."""


class Backend(Protocol):
    """An opened model. ``run`` takes and returns arrays keyed by the names inside the model file."""

    name: str
    device: str

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class LayerTime(NamedTuple):
    """One op/layer of the compiled model and its mean time per run, from the backend's own profiler."""

    name: str
    op: str
    mean_ms: float
    calls: int
    provider: str = ""  # where the backend says it ran (onnxruntime's execution provider)


class LayerProfileUnavailable(EdgemmError, RuntimeError):
    """The backend offers no per-layer profiler (the message says what to use instead)."""


def open_backend(name: BackendName | str, model_path: Path, *, runtime_hints: dict[str, Any] | None = None,
                 provider: str | None = None, threads: int | None = None, profile: bool = False) -> Backend:
    """Opens ``model_path`` with the backend called ``name``.

    Args:
        name: A ``BackendName`` value.
        model_path: The model file inside the bundle.
        runtime_hints: The manifest's ``runtime`` section (per-backend settings found at export).
        provider: Where the backend runs the model: an onnxruntime execution provider (``CPU``, ``CUDA``,
            ``TensorRT``, ``OpenVINO``) or a chain of them (``TensorRT,CUDA,CPU``), an OpenVINO
            device (``CPU``, ``GPU``, ``NPU``, ``AUTO``);
            ignored by TFLite (XNNPACK on the CPU).
        threads: Intra-op threads (None: the backend's default).
        profile: Turn on the backend's per-op profiler (slower runs); read it with ``layer_times()``.
    """
    from edgemm.config import parse_enum

    backend = parse_enum(BackendName, name, "backend")
    try:
        module = import_module(_MODULES[backend])
    except ImportError as e:  # the module imports its runtime at the top
        extra = {"onnxruntime": "runtime", "openvino": "openvino", "tflite": "tflite",
                 "executorch": "executorch"}[backend.value]
        raise BackendUnavailable(f"backend {backend.value!r} is not installed ({e}); "
                                 f"pip install 'edgemm[{extra}]'") from None
    return module.open(Path(model_path), hints=(runtime_hints or {}).get(backend.value, {}), provider=provider,
                       threads=bounded_threads(threads), profile=profile)


def bounded_threads(threads: int | None, cpus: int | None = None) -> int | None:
    """``threads``, at most the machine's CPU count (with a warning when clamped): onnxruntime does
    not bound it, and 100000 threads hang session creation while memory grows."""
    import os
    import warnings

    cpus = cpus or os.cpu_count() or 1
    if threads is not None and threads > cpus:
        warnings.warn(f"--threads {threads}: this machine has {cpus} CPUs; using {cpus}", stacklevel=2)
        return cpus
    return threads


def available_backends() -> list[str]:
    """Backends whose runtime package imports here."""
    names = []
    for b in BackendName:
        try:
            import_module(_MODULES[b])
        except ImportError:
            continue
        names.append(b.value)
    return names
