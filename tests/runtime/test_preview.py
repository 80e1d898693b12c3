"""The live web preview (headless Chromium renders it) and the --show window (under Xvfb)."""

import json
import shutil
import subprocess
import threading
import time
import urllib.request

import numpy as np
import pytest
from support import green_bar_pixels

from edgemm.runtime.sinks.preview import parse_address


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    from support import write_easy_clip

    return write_easy_clip(tmp_path_factory.mktemp("long") / "green.mp4", "green_mid", seconds=12.0)


def start_run(bundle, clip, **kw):
    """``edgemm.runtime.run.run`` on a real-time clip in a thread; returns (thread, logged lines, result)."""
    from edgemm.runtime import load
    from edgemm.runtime.run import Inputs, run

    logged, out = [], {}
    session = load(bundle)
    th = threading.Thread(target=lambda: out.setdefault("summary", run(
        session, Inputs(video=clip, realtime=True), quiet=True, log=logged.append, **kw)), daemon=True)
    th.start()
    return th, logged, out


def test_parse_address():
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    with pytest.raises(ValueError, match="expected HOST:PORT or PORT"):
        parse_address("localhost:http")


def chromium_screenshot(url: str, shot, profile) -> subprocess.CompletedProcess:
    """Headless Chromium's screenshot of ``url`` (the flags shared/ENVIRONMENT.md measured)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                           f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=700,1000", url],
                          capture_output=True, text=True, timeout=90)


@pytest.mark.browser
def test_preview_page_renders_the_annotated_stream_in_headless_chromium(onnx_bundle, long_clip, tmp_path):
    from PIL import Image

    # Chromium's first start on a fresh machine can outlast the 12 s clip; with the run over, the page
    # is a connection error and no screenshot is written. Start it once before the clip plays.
    chromium_screenshot("data:text/html,<p>warm-up</p>", tmp_path / "warm.png", tmp_path / "profile")
    th, logged, _ = start_run(onnx_bundle, long_clip, preview="127.0.0.1:0")
    deadline = time.monotonic() + 20
    while not any(line.startswith("preview: ") for line in logged) and time.monotonic() < deadline:
        time.sleep(0.05)
    url = next(line for line in logged if line.startswith("preview: ")).split("preview: ")[1]
    assert url.startswith("http://127.0.0.1:")  # loopback unless told otherwise
    time.sleep(1.0)
    scores = json.loads(urllib.request.urlopen(url + "scores", timeout=10).read())
    assert {"t", "label", "scores", "latency_ms"} <= set(scores) and scores["label"] == "green_mid"
    telemetry = json.loads(urllib.request.urlopen(url + "telemetry", timeout=10).read())  # the run's counters so far
    assert telemetry["frames"] > 0 and telemetry["results"] > 0 and telemetry["latency_ms"]["p50"] > 0
    with urllib.request.urlopen(url + "stream.mjpg", timeout=10) as stream:
        assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        head = stream.read(4096)
    assert b"--frame" in head and b"\xff\xd8" in head  # a JPEG part
    shot = tmp_path / "page.png"
    done = chromium_screenshot(url, shot, tmp_path / "profile")
    running = th.is_alive()
    th.join(timeout=30)
    assert shot.exists(), (f"chromium exited {done.returncode} without a screenshot (run still going: {running}): "
                           f"{done.stderr[-1500:]}")
    page = np.asarray(Image.open(shot).convert("RGB"))
    assert green_bar_pixels(page) > 500  # the overlay's score bar is on the page, so is the stream
    assert (page.reshape(-1, 3) == (17, 17, 17)).all(-1).sum() > 10000  # the page's own background
