"""ExecuTorch ``.pte`` programs through ExecuTorch's Python runtime (XNNPACK-delegated on the CPU).

The Python runtime (``executorch.runtime``) links libtorch and takes torch tensors, so this is the
one backend that needs torch; it is imported only when a ``.pte`` bundle is opened, and without
torch it says so. On a device without torch, ExecuTorch's C++ runtime runs the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgemm.runtime.backends import LayerProfileUnavailable

try:
    import torch
    from executorch.runtime import Runtime
except ImportError as e:  # re-raised with what to do; open_backend turns it into BackendUnavailable
    raise ImportError(f"{e}: ExecuTorch's Python runtime needs torch and executorch "
                      "(on a torch-free device run the .pte with ExecuTorch's C++ runtime)") from None

NAME = "executorch"
METHOD = "forward"


def _position(name: str) -> int:
    return int(name.rpartition("_")[2])


class ExecuTorchBackend:
    name = NAME

    def __init__(self, path: Path, *, provider: str | None = None, threads: int | None = None) -> None:
        if provider and provider.upper() != "CPU":
            raise ValueError(f"the ExecuTorch backend runs on the CPU (XNNPACK); provider {provider!r} is not supported")
        self.device = "CPU (ExecuTorch, XNNPACK)"
        if threads:  # the runtime's one thread pool (XNNPACK's): process-wide, the last session opened sets it
            from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

            _unsafe_reset_threadpool(threads)
        self.method = Runtime.get().load_program(Path(path)).load_method(METHOD)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = sorted(feeds, key=_position)
        outputs = self.method.execute([torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names])
        return {f"output_{i}": out.numpy() for i, out in enumerate(outputs)}

    def layer_times(self) -> list:
        raise LayerProfileUnavailable(
            "ExecuTorch's Python runtime exposes no per-op profiler here; build the program with ETDump "
            "(executorch.devtools) and inspect it with the Inspector for op times")


def open(path: Path, *, hints: dict[str, Any], provider: str | None, threads: int | None,
         profile: bool = False) -> ExecuTorchBackend:
    return ExecuTorchBackend(path, provider=provider, threads=threads)
