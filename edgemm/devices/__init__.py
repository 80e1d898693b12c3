"""Device profiles: what runs best on a device and how to feed it, one YAML file per device.

A profile names the bundle to build (target, precision, where the audio frontend runs), how to
run it (backend, ``provider``: the execution provider or OpenVINO device, backend options, threads), where the camera and
microphone are, the camera's frame size, and the latency budget a live demo must meet. ``--device-profile NAME|PATH`` on
``export``, ``run``, ``profile``, ``bench`` and ``eval`` applies one (through ``edgemm.deploy``);
options given on the command line still win.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edgemm.config import check_keys, parse_enum
from edgemm.errors import EdgemmError
from edgemm.safeio import load_yaml, read_text
from edgemm.vocab import CAN_RUN, BackendName, FrontendPlace, PrecisionChoice, Target


class DeviceProfileError(EdgemmError, ValueError):
    """A device profile is missing, unreadable or invalid (the message names the file and field)."""


@dataclass(frozen=True)
class AudioDefaults:
    """Microphone defaults: a PortAudio device (index, name substring or ``default``) and its rate."""

    device: str | int | None = "default"
    sample_rate: int = 48000
    channels: int = 1


@dataclass(frozen=True)
class DeviceProfile:
    """One device (see the module docstring), validated when made. ``source`` is where it was read from.

    Raises:
        DeviceProfileError: A value of the wrong type or out of range, or a backend that cannot run
            the target (the message names ``source`` and the field).
    """

    name: str
    description: str
    target: str
    precision: str
    backend: str
    provider: str = "CPU"
    backend_options: dict[str, Any] = field(default_factory=dict)
    frontend: str = FrontendPlace.GRAPH.value
    threads: int | None = None
    camera: str | int = 0
    audio: AudioDefaults = field(default_factory=AudioDefaults)
    input_size: tuple[int, int] = (640, 480)
    latency_budget_ms: float = 33.0
    source: str = "<python>"

    def __post_init__(self) -> None:
        where = self.source
        for key, enum_cls in (("target", Target), ("precision", PrecisionChoice), ("backend", BackendName),
                              ("frontend", FrontendPlace)):
            try:
                object.__setattr__(self, key, parse_enum(enum_cls, getattr(self, key), key).value)
            except ValueError as e:
                raise _fail(where, str(e)) from None
        if self.target not in CAN_RUN[BackendName(self.backend)]:
            raise _fail(where, f"backend {self.backend!r} cannot run {self.target!r} bundles "
                               f"(it runs {sorted(CAN_RUN[BackendName(self.backend)])})")
        for key, typ in (("name", str), ("description", str), ("provider", str), ("backend_options", dict)):
            if not isinstance(getattr(self, key), typ):
                raise _fail(where, f"{key}: expected {typ.__name__}, got {getattr(self, key)!r}")
        if self.threads is not None and (not _is_int(self.threads) or self.threads < 1):
            raise _fail(where, f"threads: expected a positive integer or null, got {self.threads!r}")
        if not isinstance(self.camera, (str, int)) or isinstance(self.camera, bool):
            raise _fail(where, f"camera: expected an index or a source string, got {self.camera!r}")
        size = self.input_size
        if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_is_int(v) and v > 0 for v in size)):
            raise _fail(where, f"input_size: expected [width, height] in pixels, got {size!r}")
        object.__setattr__(self, "input_size", tuple(size))
        budget = self.latency_budget_ms
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget < float("inf"):
            raise _fail(where, f"latency_budget_ms: expected a positive number, got {budget!r}")
        rate = self.audio.sample_rate
        if not _is_int(rate) or not 8000 <= rate <= 192000:
            raise _fail(where, f"audio.sample_rate: expected an integer rate in Hz (8000-192000), got {rate!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    def session_kwargs(self, target: str, backend: str | None = None, provider: str | None = None,
                       threads: int | None = None) -> dict[str, Any]:
        """``Session`` arguments for a bundle of ``target``: explicit arguments win; the profile's
        backend, provider and options apply where its backend runs that target (a profile made for
        OpenVINO still lends its threads to a TFLite bundle)."""
        kw: dict[str, Any] = {"backend": backend, "provider": provider, "threads": threads or self.threads, "options": None}
        if target in CAN_RUN[BackendName(self.backend)] and backend in (None, self.backend):
            kw.update(backend=self.backend, provider=provider or self.provider, options=dict(self.backend_options))
        return kw


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _fail(where: str, msg: str) -> DeviceProfileError:
    return DeviceProfileError(f"{where}: {msg}")


def parse_profile(data: Any, where: str) -> DeviceProfile:
    """Makes a profile from a YAML mapping; every error names ``where`` and the field.

    Raises:
        DeviceProfileError: An unknown or missing key, or an invalid value (see ``DeviceProfile``).
    """
    if not isinstance(data, dict):
        raise _fail(where, f"a device profile is a mapping of fields, got {type(data).__name__}")
    if "device" in data:  # ``device`` is what profiles called ``provider`` before 0.1.0 settled the word
        if "provider" in data:
            raise _fail(where, "give provider only (device is its older name)")
        data = {("provider" if k == "device" else k): v for k, v in data.items()}
    fields = {f.name for f in dataclasses.fields(DeviceProfile)} - {"source"}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise _fail(where, f"unknown key(s) {unknown}; valid keys are {sorted(fields)}")
    missing = [k for k in ("name", "description", "target", "precision", "backend") if k not in data]
    if missing:
        raise _fail(where, f"missing required key(s) {missing}")
    d = dict(data)
    audio = d.get("audio", {}) or {}
    if not isinstance(audio, dict):
        raise _fail(where, f"audio: expected a mapping, got {audio!r}")
    try:
        check_keys(AudioDefaults, audio, f"{where}: audio")
    except ValueError as e:
        raise DeviceProfileError(str(e)) from None
    d["audio"] = AudioDefaults(**audio)
    return DeviceProfile(**d, source=where)


def as_profile(value: "DeviceProfile | str | Path | None") -> "DeviceProfile | None":
    """A profile from what a user gives: None, a ``DeviceProfile``, a shipped name or a YAML path."""
    if value is None or isinstance(value, DeviceProfile):
        return value
    return load_profile(value)


def builtin_dir() -> Path:
    return Path(str(resources.files("edgemm.devices")))


def list_profiles() -> list[DeviceProfile]:
    """The profiles shipped with edgemm, by name."""
    return [load_profile(p) for p in sorted(builtin_dir().glob("*.yaml"))]


# Profiles no longer shipped, and why: naming one is an error that says so, not "unknown device".
RETIRED = {
    "jetson-nano": "the Jetson Nano's last JetPack (4.6, L4T r32) ships Python 3.6 and NVIDIA builds onnxruntime-gpu "
                   "for it only up to Python 3.8, while edgemm needs Python >= 3.10, so no install route exists; use "
                   "jetson-orin-nano (JetPack 6), or a profile file of your own for a Nano-class board that runs "
                   "Python >= 3.10 (docs/devices.md, 'Install on a device')",
}


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """A shipped profile by name (``raspberry-pi-5``) or a user's YAML file by path.

    Raises:
        DeviceProfileError: Unknown name (the shipped ones are listed), unreadable YAML, invalid fields.
    """
    path = Path(name_or_path)
    if not (path.suffix in {".yaml", ".yml"} or path.is_file()):
        path = builtin_dir() / f"{name_or_path}.yaml"
        if not path.is_file() and str(name_or_path) in RETIRED:
            raise DeviceProfileError(f"device profile {name_or_path!r} was retired: {RETIRED[str(name_or_path)]}")
        if not path.is_file():
            names = sorted(p.stem for p in builtin_dir().glob("*.yaml"))
            raise DeviceProfileError(f"unknown device {str(name_or_path)!r}; shipped profiles: {', '.join(names)} "
                                     "(or give a path to your own .yaml)")
    if not path.is_file():
        raise DeviceProfileError(f"{path}: device profile file not found")
    try:
        data = load_yaml(read_text(path, "device profile"), str(path))
    except ValueError as e:
        raise DeviceProfileError(str(e)) from None
    return parse_profile(data, str(path))
