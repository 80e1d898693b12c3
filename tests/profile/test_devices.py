"""Device profiles: the shipped ones load and make sense; a user's file validates with clear errors."""

import json

import pytest
import yaml

from edgemm.cli import main
from edgemm.devices import DeviceProfileError, list_profiles, load_profile
from edgemm.runtime.backends import CAN_RUN, BackendName

REQUIRED = {"jetson-orin-nano", "raspberry-pi-5", "x86-laptop-cpu", "intel-igpu", "intel-npu"}
GOOD = {"name": "mine", "description": "my board", "target": "onnx", "precision": "int8", "backend": "onnxruntime",
        "threads": 2, "camera": "rtsp://127.0.0.1:8554/cam", "audio": {"device": 3, "sample_rate": 16000},
        "input_size": [640, 480], "latency_budget_ms": 40}


def test_shipped_profiles_cover_the_devices_and_are_consistent():
    profiles = {p.name: p for p in list_profiles()}
    assert REQUIRED <= set(profiles)
    for p in profiles.values():
        assert p.target in CAN_RUN[BackendName(p.backend)] and p.latency_budget_ms > 0 and p.description
    assert "nvarguscamerasrc" in profiles["jetson-orin-nano"].camera  # the CSI camera through GStreamer
    assert profiles["jetson-orin-nano"].provider == "TensorRT,CUDA,CPU"  # TensorRT, then CUDA, then the CPU
    assert profiles["raspberry-pi-5"].target == "tflite"
    assert profiles["intel-npu"].provider == "NPU" and profiles["intel-igpu"].provider == "GPU"


def test_the_retired_jetson_nano_profile_says_why():
    with pytest.raises(DeviceProfileError, match=r"'jetson-nano' was retired: .*Python 3.6.*jetson-orin-nano"):
        load_profile("jetson-nano")


def test_user_profile_loads(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    p = load_profile(path)
    assert (p.name, p.threads, p.input_size, p.audio.device, p.audio.sample_rate) == ("mine", 2, (640, 480), 3, 16000)
    assert p.provider == "CPU" and p.source == str(path)
    older = tmp_path / "older.yaml"  # `device` is what profiles called `provider` before
    older.write_text(yaml.safe_dump({**GOOD, "device": "GPU"}))
    assert load_profile(older).provider == "GPU"
    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump({**GOOD, "device": "GPU", "provider": "CPU"}))
    with pytest.raises(DeviceProfileError, match="give provider only"):
        load_profile(both)


@pytest.mark.parametrize("change, message", [
    ({"colour": "red"}, r"unknown key\(s\) \['colour'\]"),
    ({"precision": "int4"}, r"precision: 'int4' is not one of \['fp32', 'fp16', 'int8', 'auto'\]"),
    ({"backend": "tensorrt"}, r"'tensorrt' is not one of"),
    ({"backend": "tflite"}, r"backend 'tflite' cannot run 'onnx' bundles"),
    ({"threads": 0}, r"threads: expected a positive integer"),
    ({"input_size": [640]}, r"input_size: expected \[width, height\]"),
    ({"latency_budget_ms": -1}, r"latency_budget_ms: expected a positive number"),
    ({"audio": {"rate": 16000}}, r"audio: unknown key\(s\) \['rate'\]"),
    ({"audio": {"sample_rate": 44}}, r"audio.sample_rate: expected an integer rate"),
    ({"target": None}, r"target: None is not one of"),
    ({"frontend": "gpu"}, r"frontend: 'gpu' is not one of \['graph', 'runtime'\]"),
])
def test_invalid_user_profile_names_file_and_field(tmp_path, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**GOOD, **change}))
    with pytest.raises(DeviceProfileError, match=message) as e:
        load_profile(path)
    assert str(path) in str(e.value)


def test_missing_keys_unknown_names_and_broken_yaml(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"name": "x"}))
    with pytest.raises(DeviceProfileError, match=r"missing required key\(s\) \['description', 'target'"):
        load_profile(path)
    path.write_text("name: [unclosed")
    with pytest.raises(DeviceProfileError, match="not valid YAML"):
        load_profile(path)
    path.write_text("- a list\n")
    with pytest.raises(DeviceProfileError, match="a mapping"):
        load_profile(path)
    with pytest.raises(DeviceProfileError, match="shipped profiles: .*raspberry-pi-5"):
        load_profile("jetson-xavier")


def test_devices_command(tmp_path, capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in REQUIRED)
    assert main(["devices", "raspberry-pi-5", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["target"] == "tflite" and shown["input_size"] == [640, 480]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**GOOD, "precision": "int4"}))
    assert main(["devices", str(bad)]) == 1
    assert "precision" in capsys.readouterr().err
