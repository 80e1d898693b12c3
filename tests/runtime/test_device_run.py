"""edgemm run --device: a device profile's camera, microphone, backend and threads drive a live run."""

import json
import subprocess
import sys
import time

import pytest
import yaml
from support import free_port, play, serve_camera, start_pulseaudio, stop_pulseaudio

pytestmark = [pytest.mark.camera, pytest.mark.mic, pytest.mark.slow]


def test_run_with_a_device_profile_reads_its_camera_and_microphone(onnx_bundle, tmp_path):
    port = free_port()
    camera = serve_camera(port, seconds=30)
    keepalive = start_pulseaudio()
    try:
        time.sleep(0.3)
        profile = tmp_path / "board.yaml"
        profile.write_text(yaml.safe_dump({
            "name": "board", "description": "loopback camera + virtual microphone", "target": "onnx",
            "precision": "fp32", "backend": "openvino", "provider": "CPU", "threads": 1,
            "backend_options": {"PERFORMANCE_HINT": "LATENCY"},
            "camera": f"http://127.0.0.1:{port}/cam.mjpg", "audio": {"device": "pulse", "sample_rate": 44100}}))
        player = play(1000.0, 8.0, amplitude=0.4)
        proc = subprocess.run([sys.executable, "-m", "edgemm.cli", "run", str(onnx_bundle), "--device-profile", str(profile),
                               "--json", "--max-results", "40", "--summary-json", str(tmp_path / "s.json")],
                              capture_output=True, text=True, timeout=120)
        player.kill()
    finally:
        camera.kill()
        stop_pulseaudio(keepalive)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 40
    # Frames from the profile's camera, audio from its microphone, both live in the same results.
    assert all(r["image_present"] for r in rows)
    assert sum(r["audio_present"] for r in rows) >= 20
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["backend"].startswith("openvino"), summary
