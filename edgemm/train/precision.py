"""Training arithmetic: float32, or bfloat16 autocast where the hardware computes it natively.

bfloat16 keeps float32's exponent range, so autocast needs no loss scaling. It pays off only where
the matrix units take bf16 directly (CUDA GPUs from Ampere on; CPUs with AVX512-BF16 or AMX, e.g.
Sapphire Rapids, Zen 4): there a ResNet-18-sized teacher trains ~1.7x faster on 2 CPU cores
(measured in benchmarks/HISTORY.md). Elsewhere bf16 is emulated and slower, hence ``auto``.

Example:
    >>> dtype = autocast_dtype("auto", torch.device("cpu"))  # torch.bfloat16 or None
    >>> with autocast(dtype, torch.device("cpu")):
    ...     pass  # forward and loss here; backward outside is fine
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from edgemm.vocab import Arithmetic

if TYPE_CHECKING:  # the enum is read by the torch-free CLI; torch is imported where it is used
    import torch


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware.

    Args:
        device: A CPU or CUDA device.
    """
    import torch

    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        cpu = torch.cpu
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(cpu, name, lambda: False)() for name in checks)
    return False


def autocast_dtype(precision: Arithmetic | str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``precision`` means on ``device``; None means plain float32.

    Raises:
        ValueError: If ``precision`` is not one of fp32, bf16, auto.
    """
    try:
        p = Arithmetic(precision)
    except ValueError:
        raise ValueError(f"precision: expected one of {[m.value for m in Arithmetic]}, got {precision!r}") from None
    if p is Arithmetic.BF16 or (p is Arithmetic.AUTO and native_bf16(device)):
        import torch

        return torch.bfloat16
    return None


def autocast(dtype: torch.dtype | None, device: torch.device):
    """A ``torch.autocast`` context for ``dtype`` on ``device``, or a no-op when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device.type, dtype=dtype)


def torch_device(name: str) -> "torch.device":
    """The torch device ``--device`` names: ``auto`` is CUDA when available, else the CPU; anything
    else as torch spells it (``cpu``, ``cuda:1``).

    Raises:
        ValueError: A name torch does not know, with the valid forms.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device: {name!r} is not a torch device; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ValueError(f"--device {name}: this machine has {count} CUDA device(s) usable by this torch "
                             f"(CUDA build: {torch.version.cuda or 'none'}); use --device cpu or auto")
    return device
