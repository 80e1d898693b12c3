"""NVIDIA GPUs through NVML (``pip install nvidia-ml-py``): the board's total energy counter.

``nvmlDeviceGetTotalEnergyConsumption`` counts millijoules since the driver loaded (Volta and
later), read here as joules (``counter``: the sampler differences it, no integration). It measures
the GPU board only: with a CUDA or TensorRT provider that is where inference runs, and
``edgemm profile`` prefers it then; the host CPU's share is not in it (RAPL measures that). Jetsons
have no NVML: their INA3221 input rail is read instead (``ina3221``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgemm.profile.energy import Unavailable, readable


class NvmlEnergy:
    counter = True
    max_hz = 50.0

    def __init__(self, nvml: Any, handle: Any, index: int) -> None:
        self._nvml, self._handle = nvml, handle
        self.method = f"nvml:gpu{index}"

    def read(self) -> float:
        try:
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000.0
        except self._nvml.NVMLError as e:  # e.g. a GPU older than Volta: "Not Supported"
            raise OSError(f"total energy: {e}") from None


def find(root: Path, index: int = 0) -> NvmlEnergy | Unavailable:
    """GPU ``index``'s energy counter when NVML loads and the GPU has one; else why not.

    ``root`` is unused: NVML talks to the driver, not to files.
    """
    try:
        import pynvml
    except ImportError:
        return Unavailable("no NVML (NVIDIA GPU): pip install nvidia-ml-py")
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        if count <= index:
            return Unavailable(f"NVML: no NVIDIA GPU {index} ({count} found)")
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    except pynvml.NVMLError as e:
        return Unavailable(f"NVML: {e}")
    return readable(NvmlEnergy(pynvml, handle, index))
