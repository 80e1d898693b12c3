"""``edgemm doctor``: what this machine can do for edgemm, one line each, with the fix when missing.

Backends and their execution providers or devices, the OpenCV build (windows or headless,
GStreamer), cameras and microphones, thermal zones and power sensors, torch. With a device
profile, that profile's needs are checked too (its backend, provider or device, a GStreamer camera
pipeline, a microphone), and any that is missing makes the report fail.

The file-system reads go through ``root`` so tests run them on fake Jetson and Raspberry Pi trees.
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from edgemm.devices import DeviceProfile
from edgemm.vocab import BackendName

# onnxruntime's provider for each name a profile's ``provider`` chain uses
ORT_PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
                 "openvino": "OpenVINOExecutionProvider", "cpu": "CPUExecutionProvider"}
POWER_SENSORS = ("ina3221", "ina219", "ina226", "ina260")  # hwmon drivers of board power monitors


@dataclass(frozen=True)
class Check:
    """One line of the report.

    Attributes:
        name: What was checked (``onnxruntime``, ``camera``, ``profile jetson-orin-nano: provider``).
        ok: Found and usable.
        detail: What was found.
        fix: How to get it when it is missing (empty when nothing is needed).
        required: Missing it fails the report (a device profile's needs).
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = False

    def line(self) -> str:
        mark = "✅" if self.ok else ("❌" if self.required else "➖")
        return f"{mark} {self.name}: {self.detail}" + (f" — fix: {self.fix}" if self.fix and not self.ok else "")


@dataclass
class Machine:
    """What the checks read: injectable, so fake device trees and module sets can be tested."""

    root: Path = Path("/")
    find_module: Callable[[str], bool] = lambda name: importlib.util.find_spec(name) is not None
    import_module: Callable[[str], Any] = importlib.import_module


def _version(m: Machine, module: str) -> str:
    return str(getattr(m.import_module(module), "__version__", "installed"))


def check_python() -> Check:
    ok = sys.version_info >= (3, 10)
    return Check("python", ok, f"{platform.python_version()} on {platform.machine()}",
                 "" if ok else "edgemm needs Python >= 3.10")


def check_torch(m: Machine) -> Check:
    if not m.find_module("torch"):
        return Check("torch", False, "not installed (fine for `edgemm run`, `profile`, `eval BUNDLE`)",
                     "pip install 'edgemm[compress]' to train, compress or export")
    return Check("torch", True, _version(m, "torch"))


def check_onnxruntime(m: Machine) -> Check:
    if not m.find_module("onnxruntime"):
        return Check("onnxruntime", False, "not installed", "pip install 'edgemm[runtime]' (a Jetson: NVIDIA's "
                                                            "onnxruntime-gpu, docs/devices.md)")
    ort = m.import_module("onnxruntime")
    return Check("onnxruntime", True, f"{ort.__version__}, providers {', '.join(ort.get_available_providers())}")


def check_openvino(m: Machine) -> Check:
    if not m.find_module("openvino"):
        return Check("openvino", False, "not installed", "pip install 'edgemm[openvino]'")
    ov = m.import_module("openvino")
    return Check("openvino", True, f"{ov.__version__}, devices {', '.join(ov.Core().available_devices)}")


def check_litert(m: Machine) -> Check:
    for module, name in (("ai_edge_litert", "LiteRT (ai-edge-litert)"), ("tflite_runtime", "tflite-runtime")):
        if m.find_module(module):
            return Check("tflite", True, name)
    return Check("tflite", False, "no LiteRT interpreter", "pip install 'edgemm[tflite]' (or 'edgemm[tflite-runtime]')")


def check_executorch(m: Machine) -> Check:
    if not m.find_module("executorch"):
        return Check("executorch", False, "not installed", "pip install 'edgemm[executorch]' (brings torch)")
    return Check("executorch", True, "installed")


def opencv_build(m: Machine) -> dict[str, Any] | None:
    """``{"version", "gui", "gstreamer"}`` of the installed OpenCV, or None without one."""
    if not m.find_module("cv2"):
        return None
    cv2 = m.import_module("cv2")
    info = cv2.getBuildInformation()
    return {"version": cv2.__version__, "gui": not re.search(r"GUI:\s+NONE", info),
            "gstreamer": bool(re.search(r"GStreamer:\s+YES", info))}


def check_opencv(m: Machine) -> Check:
    from edgemm._cv2 import INSTALL

    build = opencv_build(m)
    if build is None:
        return Check("opencv", False, "not installed", INSTALL)
    kind = "with windows (--show works)" if build["gui"] else "headless (--show needs edgemm[gui]; --preview works)"
    return Check("opencv", True, f"{build['version']}, {kind}, GStreamer {'yes' if build['gstreamer'] else 'no'}")


def check_cameras(m: Machine) -> Check:
    devices = sorted(p.name for p in (m.root / "dev").glob("video*"))
    if not devices:
        return Check("cameras", False, "no /dev/video* device",
                     "plug in a camera, or use a stream (--camera rtsp://… / http://…) or --video FILE")
    return Check("cameras", True, ", ".join(f"/dev/{d}" for d in devices))


def check_microphones(m: Machine) -> Check:
    if not m.find_module("sounddevice"):
        return Check("microphones", False, "sounddevice not installed", "pip install 'edgemm[mic]'")
    try:
        sd = m.import_module("sounddevice")
        inputs = [d["name"] for d in sd.query_devices() if d.get("max_input_channels", 0) > 0]
    except (OSError, ImportError) as e:  # PortAudio missing or broken
        return Check("microphones", False, f"PortAudio unusable ({e})", "apt install libportaudio2")
    if not inputs:
        return Check("microphones", False, "no input device", "plug in a microphone (or use --video FILE)")
    return Check("microphones", True, ", ".join(inputs[:5]) + (f" (+{len(inputs) - 5})" if len(inputs) > 5 else ""))


def check_thermal(m: Machine) -> Check:
    from edgemm.profile.thermal import read_thermal

    thermal = read_thermal(m.root)
    zones = (thermal or {}).get("celsius", {})
    if not zones:
        return Check("thermal", False, "no readable thermal zone (usual in VMs and containers)")
    return Check("thermal", True, ", ".join(f"{k} {v:.1f} °C" for k, v in zones.items()))


def power_sensors(root: Path) -> list[str]:
    """Readable power sensors: board monitors under hwmon (Jetson INA3221 rails) and RAPL domains."""
    found = []
    for hwmon in sorted((root / "sys/class/hwmon").glob("hwmon*")):
        try:
            name = (hwmon / "name").read_text().strip()
        except OSError:
            continue
        if name in POWER_SENSORS:
            labels = []
            for label in sorted(hwmon.glob("in*_label")):
                try:
                    labels.append(label.read_text().strip())
                except OSError:
                    pass
            found.append(f"{name} ({', '.join(labels) or hwmon.name})")
    for domain in sorted((root / "sys/class/powercap").glob("intel-rapl:*")):
        try:
            (domain / "energy_uj").read_text()
            found.append(f"RAPL {(domain / 'name').read_text().strip()}")
        except OSError:  # root-only since Linux 5.10
            pass
    return found


def check_power(m: Machine) -> Check:
    found = power_sensors(m.root)
    if not found:
        return Check("power", False, "no readable power sensor (Jetson INA3221, RAPL)",
                     "RAPL is readable by root only since Linux 5.10: run as root or add a udev rule")
    return Check("power", True, "; ".join(found))


BACKEND_CHECKS = {BackendName.ONNXRUNTIME: check_onnxruntime, BackendName.OPENVINO: check_openvino,
                  BackendName.TFLITE: check_litert, BackendName.EXECUTORCH: check_executorch}


def machine_checks(m: Machine) -> list[Check]:
    """Everything edgemm can use here, present or not (nothing is required)."""
    return [check_python(), check_torch(m), *(f(m) for f in BACKEND_CHECKS.values()), check_opencv(m),
            check_cameras(m), check_microphones(m), check_thermal(m), check_power(m)]


def _accelerator(profile: DeviceProfile, m: Machine) -> Check | None:
    """The profile's preferred provider (onnxruntime) or device (OpenVINO), if this backend has it."""
    first = profile.provider.split(",")[0].strip()
    where = f"profile {profile.name}: provider"
    if profile.backend == BackendName.ONNXRUNTIME.value and m.find_module("onnxruntime"):
        provider = ORT_PROVIDERS.get(first.lower(), first)
        have = m.import_module("onnxruntime").get_available_providers()
        return Check(where, provider in have, f"{provider} {'available' if provider in have else 'missing'}",
                     "install the onnxruntime build with it (on a Jetson: NVIDIA's onnxruntime-gpu, docs/devices.md); "
                     "without it the run falls back along the profile's chain", required=True)
    if profile.backend == BackendName.OPENVINO.value and m.find_module("openvino"):
        have = m.import_module("openvino").Core().available_devices
        ok = first.upper() in ("AUTO", "CPU") or any(d.startswith(first.upper()) for d in have)
        return Check(where, ok, f"OpenVINO device {first} {'available' if ok else 'missing'} (have {', '.join(have)})",
                     "install the device's driver (intel-opencl-icd for GPU, the NPU driver for NPU)", required=True)
    return None


def profile_checks(profile: DeviceProfile, m: Machine) -> list[Check]:
    """What ``profile`` needs on this machine; each missing need is a required (failing) check."""
    backend = BACKEND_CHECKS[BackendName(profile.backend)](m)
    checks = [Check(f"profile {profile.name}: backend", backend.ok, f"{profile.backend}: {backend.detail}",
                    backend.fix, required=True)]
    accelerator = _accelerator(profile, m)
    if accelerator is not None:
        checks.append(accelerator)
    camera = profile.camera
    build = opencv_build(m)
    if isinstance(camera, str) and "!" in camera:
        ok = bool(build and build["gstreamer"])
        checks.append(Check(f"profile {profile.name}: camera", ok, "a GStreamer pipeline: OpenCV "
                            + ("has GStreamer" if ok else "without GStreamer cannot open it"),
                            "use the system OpenCV (apt install python3-opencv) in a venv made with "
                            "--system-site-packages; PyPI's wheels lack GStreamer", required=True))
    elif isinstance(camera, int) or str(camera).startswith("/dev/"):
        path = m.root / "dev" / f"video{camera}" if isinstance(camera, int) else m.root / str(camera).lstrip("/")
        checks.append(Check(f"profile {profile.name}: camera", path.exists(), f"/{path.relative_to(m.root)} "
                            + ("found" if path.exists() else "not found"), "plug the camera in, or pass --camera",
                            required=True))
    if build is None:
        checks.append(Check(f"profile {profile.name}: opencv", False, "not installed", check_opencv(m).fix,
                            required=True))
    if profile.audio.device is not None:
        mic = check_microphones(m)
        checks.append(Check(f"profile {profile.name}: microphone", mic.ok, mic.detail, mic.fix, required=True))
    return checks


def doctor(profile: DeviceProfile | None = None, machine: Machine | None = None) -> dict[str, Any]:
    """The report: ``checks`` (dicts of ``Check``), ``ok`` (no required check failed), ``missing``."""
    m = machine or Machine()
    checks = machine_checks(m) + (profile_checks(profile, m) if profile is not None else [])
    missing = [c.name for c in checks if c.required and not c.ok]
    return {"checks": [asdict(c) for c in checks], "ok": not missing, "missing": missing,
            "profile": profile.name if profile is not None else None}


def lines(report: dict[str, Any]) -> list[str]:
    out = [Check(**c).line() for c in report["checks"]]
    if report["profile"]:
        missing = ", ".join(name.rpartition(": ")[2] for name in report["missing"])
        out.append(f"profile {report['profile']}: " + ("everything it needs is here" if report["ok"] else
                                                        f"missing: {missing}"))
    return out
