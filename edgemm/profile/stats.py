"""What machine a measurement ran on, and its memory; ``LatencyStats`` lives in ``edgemm.runtime.timing``."""

from __future__ import annotations

import os
import platform
import resource
import sys
from pathlib import Path

from edgemm.runtime.timing import LatencyStats  # noqa: F401  (re-exported)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What a measurement ran on: CPU, cores visible to this process, OS, Python."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "cores": cores, "os": f"{platform.system()} {platform.release()}",
            "arch": platform.machine(), "python": platform.python_version()}
