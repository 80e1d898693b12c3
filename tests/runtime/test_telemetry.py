"""edgemm run --metrics: the run's counters, scraped while it runs, in the Prometheus text format."""

import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from support import write_easy_clip

    return write_easy_clip(tmp_path_factory.mktemp("telemetry") / "green.mp4", "green_mid", seconds=8.0)


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_are_served_on_loopback_while_the_run_goes_and_their_counters_move(onnx_bundle, clip):
    from edgemm.runtime import load
    from edgemm.runtime.run import Inputs, run

    logged, out = [], {}
    session = load(onnx_bundle)
    th = threading.Thread(target=lambda: out.setdefault("summary", run(
        session, Inputs(video=clip, realtime=True), quiet=True, metrics="0", log=logged.append)), daemon=True)
    th.start()
    deadline = time.monotonic() + 20
    while not any(line.startswith("metrics: ") for line in logged) and time.monotonic() < deadline:
        time.sleep(0.05)
    url = next(line for line in logged if line.startswith("metrics: ")).split("metrics: ")[1]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")  # loopback unless told otherwise
    time.sleep(2.0)
    first = scrape(url)
    time.sleep(2.0)
    second = scrape(url)
    th.join(timeout=30)
    frames, results = ("edgemm_frames_total", ()), ("edgemm_results_total", ())
    assert 0 < first[frames] < second[frames] and 0 < first[results] < second[results]  # live counters
    assert second[("edgemm_latency_ms", (("quantile", "0.5"),))] > 0
    assert second[("edgemm_latency_ms", (("quantile", "0.99"),))] >= second[("edgemm_latency_ms", (("quantile", "0.5"),))]
    assert ("edgemm_stage_p50_ms", (("stage", "inference"),)) in second
    # The clip's audio path: its own latency, and how far audio and frames were apart when paired.
    audio_p50, audio_max = (second[("edgemm_audio_latency_ms", (("quantile", q),))] for q in ("0.5", "1"))
    assert 0 < audio_p50 <= audio_max
    assert ("edgemm_av_skew_ms", (("stat", "mean"),)) in second and second[("edgemm_av_skew_ms", (("stat", "max"),))] >= 0
    assert second[("edgemm_frames_dropped_total", ())] >= 0 and ("edgemm_camera_reconnects_total", ()) in second
    assert any(name == "edgemm_backend_info" and dict(labels)["backend"].startswith("onnxruntime")
               for name, labels in second)
    summary = out["summary"]
    assert summary.frames >= second[frames] and summary.results >= second[results]
    assert summary.audio_latency_ms["max"] >= summary.audio_latency_ms["p50"] > 0
    assert summary.audio_drift_ppm is None  # an 8 s clip: under the 10 s a drift estimate needs
    with pytest.raises(OSError):  # the server is gone with the run
        urllib.request.urlopen(url, timeout=2)


def test_metrics_address_errors_name_the_flag():
    from edgemm.runtime.sinks.preview import parse_address

    with pytest.raises(ValueError, match="--metrics: expected HOST:PORT or PORT"):
        parse_address("localhost:prom", flag="--metrics")


def test_telemetry_every_prints_the_counters_as_json_lines_while_the_run_goes(onnx_bundle, clip, capsys):
    import json

    from edgemm.cli import main

    assert main(["run", str(onnx_bundle), "--video", str(clip), "--realtime", "--json", "--duration", "3.6",
                 "--telemetry-every", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ticks = [line["telemetry"] for line in lines if "telemetry" in line]
    assert len(ticks) >= 3 and any("label" in line for line in lines)
    assert ticks[0]["frames"] < ticks[-1]["frames"] and ticks[0]["results"] < ticks[-1]["results"]
    assert {"drops", "audio_overflows", "latency_ms", "reconnects"} <= set(ticks[-1])
    with pytest.raises(SystemExit) as bad:
        main(["run", str(onnx_bundle), "--video", str(clip), "--telemetry-every", "0"])
    assert bad.value.code == 2 and "--telemetry-every: expected a finite number > 0" in capsys.readouterr().err


@pytest.mark.camera
def test_a_camera_that_goes_away_and_comes_back_shows_up_as_a_reconnect_in_the_metrics(onnx_bundle):
    """`edgemm run --camera URL --metrics`: the camera server is killed and restarted mid-run."""
    import subprocess
    import sys

    from support import free_port, serve_camera

    cam_port, metrics_port = free_port(), free_port()
    camera = serve_camera(cam_port, seconds=60)
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    run = subprocess.Popen([sys.executable, "-m", "edgemm.cli", "run", str(onnx_bundle), "--camera",
                            f"http://127.0.0.1:{cam_port}/cam.mjpg", "--quiet", "--duration", "25",
                            "--metrics", f"127.0.0.1:{metrics_port}"], stderr=subprocess.PIPE, text=True)
    reconnects, scraped, restarted = (0.0, 0.0), {}, None
    try:
        deadline = time.monotonic() + 20
        while run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                scraped = scrape(url)
            except OSError:  # not listening yet
                continue
            if restarted is None and scraped[("edgemm_frames_total", ())] >= 10:
                camera.kill()  # the camera goes away ...
                camera.wait()
                time.sleep(1.0)
                restarted = camera = serve_camera(cam_port, seconds=60)  # ... and comes back on its address
                before = scraped[("edgemm_frames_total", ())]
            if restarted is not None and scraped[("edgemm_camera_reconnects_total", ())] >= 1:
                reconnects = (scraped[("edgemm_camera_reconnects_total", ())], scraped[("edgemm_frames_total", ())])
                if reconnects[1] > before:  # frames flow again after the reconnect
                    break
    finally:
        run.terminate()
        err = run.communicate(timeout=60)[1]
        camera.kill()
    assert restarted is not None, f"the run never reached 10 frames: {err[-2000:]}"
    assert reconnects[0] >= 1 and reconnects[1] > before, f"no reconnect seen in {scraped}: {err[-2000:]}"
