"""Device profiles: what runs best on a device and how to feed it, one YAML file per device.

A profile names the bundle to build (target, precision), how to run it (backend, device or
execution provider, backend options, threads), where the camera and microphone are, the camera's
frame size, and the latency budget a live demo must meet. ``--device NAME|PATH`` on ``export``,
``run`` and ``profile`` applies one; options given on the command line still win.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from edgemm.config import check_keys, parse_enum
from edgemm.runtime.backends import CAN_RUN, BackendName

TARGETS = ("onnx", "openvino", "tflite")  # edgemm.export.formats.Target, without importing torch-side code
PRECISIONS = ("fp32", "fp16", "int8", "auto")  # auto: measured at export (edgemm.export.auto)


class DeviceProfileError(ValueError):
    """A device profile is missing, unreadable or invalid (the message names the file and field)."""


@dataclass(frozen=True)
class AudioDefaults:
    """Microphone defaults: a PortAudio device (index, name substring or ``default``) and its rate."""

    device: str | int | None = "default"
    sample_rate: int = 48000
    channels: int = 1


@dataclass(frozen=True)
class DeviceProfile:
    """One device (see the module docstring). ``source`` is where it was read from."""

    name: str
    description: str
    target: str
    precision: str
    backend: str
    device: str = "CPU"
    backend_options: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    camera: str | int = 0
    audio: AudioDefaults = field(default_factory=AudioDefaults)
    input_size: tuple[int, int] = (640, 480)
    latency_budget_ms: float = 33.0
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    def session_kwargs(self, target: str, backend: str | None = None, device: str | None = None,
                       threads: int | None = None) -> dict[str, Any]:
        """``Session`` arguments for a bundle of ``target``: explicit arguments win; the profile's
        backend, device and options apply where its backend runs that target (a profile made for
        OpenVINO still lends its threads to a TFLite bundle)."""
        kw: dict[str, Any] = {"backend": backend, "device": device, "threads": threads or self.threads, "options": None}
        if target in CAN_RUN[BackendName(self.backend)] and backend in (None, self.backend):
            kw.update(backend=self.backend, device=device or self.device, options=dict(self.backend_options))
        return kw


def _fail(where: str, msg: str) -> DeviceProfileError:
    return DeviceProfileError(f"{where}: {msg}")


def parse_profile(data: Any, where: str) -> DeviceProfile:
    """Validates a profile's mapping; every error names ``where`` and the field.

    Raises:
        DeviceProfileError: An unknown or missing key, a value of the wrong type or out of range, or a
            backend that cannot run the target.
    """
    if not isinstance(data, dict):
        raise _fail(where, f"a device profile is a mapping of fields, got {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(DeviceProfile)} - {"source"}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise _fail(where, f"unknown key(s) {unknown}; valid keys are {sorted(fields)}")
    missing = [k for k in ("name", "description", "target", "precision", "backend") if k not in data]
    if missing:
        raise _fail(where, f"missing required key(s) {missing}")
    d = dict(data)
    for key, valid in (("target", TARGETS), ("precision", PRECISIONS)):
        if d[key] not in valid:
            raise _fail(where, f"{key}: {d[key]!r} is not one of {list(valid)}")
    try:
        backend = parse_enum(BackendName, d["backend"], "backend")
    except ValueError as e:
        raise _fail(where, str(e)) from None
    if d["target"] not in CAN_RUN[backend]:
        raise _fail(where, f"backend {backend.value!r} cannot run {d['target']!r} bundles "
                           f"(it runs {sorted(CAN_RUN[backend])})")
    for key, typ in (("name", str), ("description", str), ("device", str), ("backend_options", dict)):
        if key in d and not isinstance(d[key], typ):
            raise _fail(where, f"{key}: expected {typ.__name__}, got {d[key]!r}")
    if d.get("threads") is not None and (not isinstance(d["threads"], int) or d["threads"] < 1):
        raise _fail(where, f"threads: expected a positive integer or null, got {d['threads']!r}")
    if "camera" in d and not isinstance(d["camera"], (str, int)):
        raise _fail(where, f"camera: expected an index or a source string, got {d['camera']!r}")
    size = d.get("input_size", [640, 480])
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise _fail(where, f"input_size: expected [width, height] in pixels, got {size!r}")
    d["input_size"] = tuple(size)
    budget = d.get("latency_budget_ms", 33.0)
    if not isinstance(budget, (int, float)) or budget <= 0:
        raise _fail(where, f"latency_budget_ms: expected a positive number, got {budget!r}")
    audio = d.get("audio", {}) or {}
    if not isinstance(audio, dict):
        raise _fail(where, f"audio: expected a mapping, got {audio!r}")
    try:
        check_keys(AudioDefaults, audio, f"{where}: audio")
    except ValueError as e:
        raise DeviceProfileError(str(e)) from None
    rate = audio.get("sample_rate", 48000)
    if not isinstance(rate, int) or not 8000 <= rate <= 192000:
        raise _fail(where, f"audio.sample_rate: expected an integer rate in Hz (8000-192000), got {rate!r}")
    d["audio"] = AudioDefaults(**audio)
    d["backend"] = backend.value
    return DeviceProfile(**d, source=where)


def builtin_dir() -> Path:
    return Path(str(resources.files("edgemm.devices")))


def list_profiles() -> list[DeviceProfile]:
    """The profiles shipped with edgemm, by name."""
    return [load_profile(p) for p in sorted(builtin_dir().glob("*.yaml"))]


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """A shipped profile by name (``raspberry-pi-5``) or a user's YAML file by path.

    Raises:
        DeviceProfileError: Unknown name (the shipped ones are listed), unreadable YAML, invalid fields.
    """
    path = Path(name_or_path)
    if not (path.suffix in {".yaml", ".yml"} or path.is_file()):
        path = builtin_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            names = sorted(p.stem for p in builtin_dir().glob("*.yaml"))
            raise DeviceProfileError(f"unknown device {str(name_or_path)!r}; shipped profiles: {', '.join(names)} "
                                     "(or give a path to your own .yaml)")
    if not path.is_file():
        raise DeviceProfileError(f"{path}: device profile file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise DeviceProfileError(f"{path}: not valid YAML ({e})") from None
    return parse_profile(data, str(path))
