"""The camera source on a real stream: ffmpeg serves a loopback HTTP MJPEG camera, OpenCV reads it."""

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from support import free_port, serve_camera

from edgemm.runtime.sources import open_source
from edgemm.runtime.sources.camera import JETSON_CSI, CameraError

pytestmark = pytest.mark.camera


@pytest.fixture
def camera_url():
    port = free_port()
    proc = serve_camera(port)
    yield f"http://127.0.0.1:{port}/cam.mjpg", port
    proc.kill()
    proc.wait()


def test_reads_frames_from_an_mjpeg_stream_with_increasing_timestamps(camera_url):
    url, _ = camera_url
    frames = []
    with open_source("camera", url) as cam:
        assert cam.live
        for f in cam.packets():
            frames.append(f)
            if len(frames) == 45:
                cam.stop()
    assert all(f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(b.t > a.t for a, b in zip(frames, frames[1:]))
    # Paced by the stream (-re at 30 fps), on the live clock. The first frames can come in a burst
    # (what the server encoded before the reader was ready, once seen in CI): timed after them.
    span = frames[-1].t - frames[25].t
    assert 19 / 30 * 0.7 < span < 19 / 30 * 3, [round(f.t, 3) for f in frames]
    # testsrc2's frame is colourful; the RGB conversion keeps channels distinct.
    assert np.abs(frames[-1].image.astype(int)[..., 0] - frames[-1].image[..., 2]).mean() > 5


def test_reconnects_with_backoff_when_the_stream_drops(camera_url):
    url, port = camera_url
    got, restarted = [], {}
    with open_source("camera", url, max_backoff=0.5) as cam:
        def restart():  # the camera goes away for ~1 s, then comes back on the same address
            time.sleep(0.2)
            subprocess.run(["pkill", "-f", f"127.0.0.1:{port}/cam.mjpg"])
            time.sleep(1.0)
            restarted["proc"] = serve_camera(port)

        for f in cam.packets():
            got.append(f)
            if len(got) == 3:
                threading.Thread(target=restart, daemon=True).start()
            if cam.reconnects and len(got) >= 15:
                cam.stop()
    restarted["proc"].kill()
    assert cam.reconnects >= 1 and len(got) >= 15


def test_edgemm_run_on_a_camera_stream(camera_url, onnx_bundle):
    url, _ = camera_url
    proc = subprocess.run([sys.executable, "-m", "edgemm.cli", "run", str(onnx_bundle), "--camera", url, "--json",
                           "--max-results", "15"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 15
    assert all(r["image_present"] and not r["audio_present"] and r["latency_ms"] > 0 for r in rows)
    assert "summary: " in proc.stderr


def test_unopenable_cameras_are_named():
    with pytest.raises(CameraError, match="camera 7: cannot open"):
        with open_source("camera", "7"):
            pass
    with pytest.raises(CameraError, match="no GStreamer support"):
        with open_source("camera", JETSON_CSI):
            pass
