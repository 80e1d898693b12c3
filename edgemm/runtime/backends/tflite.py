"""TFLite through the LiteRT interpreter (``ai_edge_litert``), else ``tflite_runtime``, else TensorFlow.

XNNPACK is on by default in all three; ``threads`` sets its thread count. Models are called through
their ``serving_default`` signature, so inputs are matched by name, not by position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgemm.runtime.backends import LayerProfileUnavailable

try:
    from ai_edge_litert.interpreter import Interpreter
    INTERPRETER = "ai_edge_litert"
except ImportError:  # older devices (e.g. JetPack images) ship one of these instead
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef]
        INTERPRETER = "tflite_runtime"
    except ImportError:
        from tensorflow.lite import Interpreter  # type: ignore[no-redef]  # ImportError propagates
        INTERPRETER = "tensorflow.lite"

NAME = "tflite"
SIGNATURE = "serving_default"


class TFLiteBackend:
    name = NAME

    def __init__(self, path: Path, *, provider: str | None = None, threads: int | None = None,
                 hints: dict[str, Any] | None = None, profile: bool = False) -> None:
        if provider and provider.upper() != "CPU":
            raise ValueError(f"the TFLite backend runs on the CPU (XNNPACK); provider {provider!r} is not supported")
        self.device = f"CPU ({INTERPRETER}, XNNPACK)"
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads or None)
        signatures = self.interpreter.get_signature_list()
        key = SIGNATURE if SIGNATURE in signatures else next(iter(signatures))
        self.runner = self.interpreter.get_signature_runner(key)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.runner(**feeds).items()}

    def layer_times(self) -> list:
        raise LayerProfileUnavailable(
            f"the {INTERPRETER} Python interpreter exposes no per-op profiler; for op times run LiteRT's "
            "benchmark_model tool with --enable_op_profiling=true on the bundle's model.tflite")


def open(path: Path, *, hints: dict[str, Any], provider: str | None, threads: int | None,
         profile: bool = False) -> TFLiteBackend:
    return TFLiteBackend(path, provider=provider, threads=threads, hints=hints)
