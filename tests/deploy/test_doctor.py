"""`edgemm doctor`: this machine as it is, and fake Jetson / Raspberry Pi trees with the modules they would have."""

import json
import types

import pytest

from edgemm.cli import main
from edgemm.deploy.doctor import Machine, doctor, lines
from edgemm.devices import load_profile


def _write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _machine(root, modules):
    return Machine(root=root, find_module=lambda name: name in modules, import_module=lambda name: modules[name])


def _cv2(gstreamer: bool, gui: bool = True):
    info = f"  GUI: {'GTK3' if gui else 'NONE'}\n  Video I/O:\n    GStreamer: {'YES (1.20)' if gstreamer else 'NO'}\n"
    return types.SimpleNamespace(__version__="4.8.0", getBuildInformation=lambda: info)


def _sounddevice(inputs):
    return types.SimpleNamespace(query_devices=lambda: [{"name": n, "max_input_channels": 1} for n in inputs])


@pytest.fixture
def jetson(tmp_path):
    """A Jetson Orin's /dev and /sys: a CSI camera node, thermal zones, the INA3221 power monitor."""
    _write(tmp_path, "dev/video0", "")
    _write(tmp_path, "sys/class/thermal/thermal_zone0/type", "CPU-therm\n")
    _write(tmp_path, "sys/class/thermal/thermal_zone0/temp", "45500\n")
    _write(tmp_path, "sys/class/thermal/thermal_zone1/type", "GPU-therm\n")
    _write(tmp_path, "sys/class/thermal/thermal_zone1/temp", "43000\n")
    _write(tmp_path, "sys/class/hwmon/hwmon1/name", "ina3221\n")
    _write(tmp_path, "sys/class/hwmon/hwmon1/in1_label", "VDD_IN\n")
    _write(tmp_path, "sys/class/hwmon/hwmon1/in2_label", "VDD_CPU_GPU_CV\n")
    return tmp_path


def test_a_jetson_with_nvidias_builds_has_everything_its_profile_needs(jetson):
    ort = types.SimpleNamespace(__version__="1.20.0", get_available_providers=lambda: [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    m = _machine(jetson, {"onnxruntime": ort, "cv2": _cv2(gstreamer=True), "sounddevice": _sounddevice(["USB mic"])})
    report = doctor(load_profile("jetson-orin-nano"), m)
    assert report["ok"] and report["missing"] == []
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["thermal"]["detail"] == "CPU-therm 45.5 °C, GPU-therm 43.0 °C"
    assert by_name["power"]["detail"] == "ina3221 (VDD_IN, VDD_CPU_GPU_CV)"
    assert by_name["cameras"]["detail"] == "/dev/video0" and by_name["torch"]["ok"] is False
    assert "GStreamer yes" in by_name["opencv"]["detail"]
    assert lines(report)[-1] == "profile jetson-orin-nano: everything it needs is here"


def test_a_jetson_with_pypis_wheels_is_told_what_shadows_nvidias(jetson):
    ort = types.SimpleNamespace(__version__="1.20.0", get_available_providers=lambda: ["CPUExecutionProvider"])
    m = _machine(jetson, {"onnxruntime": ort, "cv2": _cv2(gstreamer=False), "sounddevice": _sounddevice([])})
    report = doctor(load_profile("jetson-orin-nano"), m)
    assert not report["ok"]
    assert report["missing"] == ["profile jetson-orin-nano: provider", "profile jetson-orin-nano: camera",
                                 "profile jetson-orin-nano: microphone"]
    text = "\n".join(lines(report))
    assert "❌ profile jetson-orin-nano: provider: TensorrtExecutionProvider missing — fix: " in text
    assert "NVIDIA's onnxruntime-gpu" in text and "PyPI's wheels lack GStreamer" in text
    assert text.endswith("profile jetson-orin-nano: missing: provider, camera, microphone")


def test_a_raspberry_pi_without_litert_or_camera(tmp_path):
    _write(tmp_path, "sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
    _write(tmp_path, "sys/class/thermal/thermal_zone0/temp", "61200\n")
    m = _machine(tmp_path, {"cv2": _cv2(gstreamer=False, gui=False), "sounddevice": _sounddevice(["USB Audio"])})
    report = doctor(load_profile("raspberry-pi-5"), m)
    assert report["missing"] == ["profile raspberry-pi-5: backend", "profile raspberry-pi-5: camera"]
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["thermal"]["detail"] == "cpu-thermal 61.2 °C" and by_name["power"]["ok"] is False
    assert "headless" in by_name["opencv"]["detail"]
    assert "pip install 'edgemm[tflite]'" in by_name["profile raspberry-pi-5: backend"]["fix"]
    with_litert = _machine(tmp_path, {"cv2": _cv2(False, False), "sounddevice": _sounddevice(["USB Audio"]),
                                      "ai_edge_litert": object()})
    _write(tmp_path, "dev/video0", "")
    assert doctor(load_profile("raspberry-pi-5"), with_litert)["ok"]


def test_doctor_on_this_machine(capsys):
    assert main(["doctor"]) == 0  # nothing is required without a profile
    out = capsys.readouterr().out
    assert "✅ onnxruntime: " in out and "CPUExecutionProvider" in out and "✅ python: " in out
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and {"onnxruntime", "openvino", "tflite", "opencv", "cameras", "power"} <= {
        c["name"] for c in report["checks"]}
    # this machine has no TensorRT, no GStreamer OpenCV: the Jetson profile's needs are missing, by name
    assert main(["doctor", "--device-profile", "jetson-orin-nano"]) == 1
    out = capsys.readouterr().out
    assert "❌ profile jetson-orin-nano: provider: TensorrtExecutionProvider missing" in out
    assert "❌ profile jetson-orin-nano: camera" in out
