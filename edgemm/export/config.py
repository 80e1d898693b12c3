"""What one ``edgemm export`` builds and how it checks it: ``ExportConfig``.

The CLI, ``edgemm.deploy`` (device profiles, ``--precision auto``, ``edgemm bench``) and the Python
API all describe an export with one of these; its choices are parsed and checked here, once.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from edgemm.config import parse_enum
from edgemm.export.formats import FORMATS, Precision, Target
from edgemm.export.verify import Tolerance
from edgemm.vocab import FrontendPlace, PrecisionChoice


@dataclass(frozen=True)
class ExportConfig:
    """One export's choices (strings are accepted where an enum is expected, and parsed).

    Attributes:
        target: The bundle's format.
        precision: ``fp32``, ``fp16``, ``int8``, or ``auto`` (every precision exported, the fastest
            that verifies kept: ``edgemm.deploy.export``; ``edgemm.export.export`` builds one).
        frontend: Where the audio log-mel runs: in the exported graph (the model takes the
            waveform), or in edgemm's runtime (the model takes the log-mel). Recorded in the
            manifest as ``frontend``, which the runtime reads.
        verify: Open the bundle with the torch-free runtime and compare it with PyTorch (and fit
            the softmax temperature on the validation split).
        verify_samples: Verification samples (test split first, topped up from val, then train).
        calib_data: Data for int8 calibration (default: the checkpoint's training data).
        calib_samples: Calibration samples.
        tolerance: Verification criteria.
        device_profile: The device profile's name, recorded in the manifest (``source.device``).
        explain: int8: measure every layer's int8 error, print the worst by branch and record them.
        max_drop: int8: the accuracy drop allowed, in points (replaces the tolerance's); when
            verification fails, the layers int8 hurts most are kept in float until it passes.
    """

    target: Target
    precision: PrecisionChoice = PrecisionChoice.FP32
    frontend: FrontendPlace = FrontendPlace.GRAPH
    verify: bool = True
    verify_samples: int = 256
    calib_data: str | Path | None = None
    calib_samples: int = 256
    tolerance: Tolerance = Tolerance()
    device_profile: str | None = None
    explain: bool = False
    max_drop: float | None = None

    def __post_init__(self) -> None:
        target = parse_enum(Target, self.target, "--target")
        precision = parse_enum(PrecisionChoice, self.precision, "--precision")
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        set_("target", target)
        set_("precision", precision)
        set_("frontend", parse_enum(FrontendPlace, self.frontend, "--frontend"))
        spec = FORMATS[target]
        if precision.concrete is not None and precision.concrete not in spec.precisions:
            raise ValueError(f"--precision: {target.value} supports {[p.value for p in spec.precisions]}, "
                             f"not {precision.value}")
        if (self.explain or self.max_drop is not None) and precision not in (PrecisionChoice.INT8, PrecisionChoice.AUTO):
            raise ValueError(f"--explain / --max-drop: apply to int8 exports, not {precision.value}")
        if self.max_drop is not None:
            if not (isinstance(self.max_drop, (int, float)) and math.isfinite(self.max_drop) and self.max_drop >= 0):
                raise ValueError(f"--max-drop must be a finite number of points >= 0, got {self.max_drop!r}")
            set_("tolerance", dataclasses.replace(self.tolerance, int8_accuracy_points=float(self.max_drop)))
        if precision is PrecisionChoice.AUTO and not self.verify:
            raise ValueError("--no-verify: --precision auto keeps the fastest bundle that verifies, so it verifies "
                             "every candidate; pick a precision to skip verification")
        for name in ("verify_samples", "calib_samples"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")

    @property
    def concrete(self) -> Precision:
        """The one precision this export builds (``auto`` is resolved a layer above)."""
        if self.precision.concrete is None:
            raise ValueError("precision 'auto' is measured on a backend: use edgemm.deploy.export(..., precision='auto')")
        return self.precision.concrete

    @property
    def int8(self) -> bool:
        return self.precision is PrecisionChoice.INT8

    def at(self, precision: Precision | str) -> ExportConfig:
        """The same export at ``precision``; the int8-only choices (``explain``, ``max_drop``) go to
        an int8 export only."""
        precision = parse_enum(PrecisionChoice, precision, "--precision")
        int8_only = {} if precision is PrecisionChoice.INT8 else {"explain": False, "max_drop": None}
        return dataclasses.replace(self, precision=precision, **int8_only)
