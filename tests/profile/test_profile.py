"""edgemm profile: stage percentiles, per-layer times from each backend's profiler, device profiles."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgemm.cli import main
from edgemm.profile import LatencyStats, ProfileConfig, profile


def _stages_are_plausible(stages: dict) -> None:
    assert {"preprocess", "inference", "postprocess", "end_to_end"} <= set(stages)
    for name, s in stages.items():
        assert 0 < s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"], (name, s)
        assert s["mean_ms"] > 0 and s["std_ms"] >= 0
    # End to end contains the stages, measured around the same calls.
    parts = sum(stages[k]["p50_ms"] for k in ("preprocess", "inference", "postprocess"))
    assert stages["end_to_end"]["p50_ms"] >= 0.9 * parts
    assert stages["end_to_end"]["p50_ms"] >= stages["inference"]["p50_ms"]


def test_latency_stats_percentiles():
    s = LatencyStats.from_ns(np.arange(1, 101) * 1_000_000)  # 1..100 ms
    assert s.n == 100 and s.p50_ms == pytest.approx(50.5) and s.p90_ms == pytest.approx(90.1)
    assert s.p99_ms == pytest.approx(99.01) and s.mean_ms == pytest.approx(50.5)
    with pytest.raises(ValueError, match="no timings"):
        LatencyStats.from_ns([])


def test_the_live_histogram_gives_percentiles_within_a_percent_in_constant_memory():
    """A live run's summary counts timings in log bins (a list of every timing grew a soak run by
    8 MB an hour)."""
    import sys

    from edgemm.runtime.timing import LatencyHistogram

    rng = np.random.default_rng(0)
    ms = rng.lognormal(np.log(3.0), 0.5, 200_000)
    h = LatencyHistogram()
    size = sys.getsizeof(h._counts)
    for v in ms:
        h.add(float(v))
    exact = LatencyStats.from_ms(ms)
    got = h.percentiles()
    assert h.n == len(ms) and sys.getsizeof(h._counts) == size
    for q, want in (("p50", exact.p50_ms), ("p90", exact.p90_ms), ("p99", exact.p99_ms)):
        assert got[q] == pytest.approx(want, rel=0.01)
    assert LatencyHistogram().percentiles() == {"p50": 0.0, "p90": 0.0, "p99": 0.0}


def test_profile_config_rejects_nonsense():
    with pytest.raises(ValueError, match="runs"):
        ProfileConfig(runs=0)


def test_profile_onnx_json_and_layers_match_the_graph(onnx_bundle, capsys):
    import onnx

    assert main(["profile", str(onnx_bundle), "--runs", "40", "--warmup", "5", "--layers", "5", "--threads", "1",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("stages", "load_ms", "peak_rss_mb", "model_bytes", "backend", "precision", "threads"):
        assert key in report, key
    _stages_are_plausible(report["stages"])
    assert report["stages"]["end_to_end"]["n"] == report["runs"] == 40
    assert report["backend"] == "onnxruntime" and report["precision"] == "fp32" and report["threads"] == 1
    assert report["model_bytes"] == (onnx_bundle / "model.onnx").stat().st_size
    assert report["load_ms"] > 0 and report["peak_rss_mb"] > 10 and report["machine"]["cpu"]
    # The slowest layers are real nodes of the exported graph, slowest first.
    layers = report["layers"]
    nodes = {n.name: n.op_type for n in onnx.load(str(onnx_bundle / "model.onnx")).graph.node}
    assert 1 <= len(layers) <= 5
    assert [r["mean_ms"] for r in layers] == sorted((r["mean_ms"] for r in layers), reverse=True)
    assert 0 < sum(r["share"] for r in layers) <= 1.0 + 1e-9
    # onnxruntime may fuse nodes (Conv+Relu -> "..._nchwc"); most top layers keep the graph's names.
    known = [r for r in layers if r["name"] in nodes]
    assert known and all(nodes[r["name"]] == r["op"] for r in known), (layers, list(nodes)[:10])


def test_profile_openvino_counters_and_device_profile(onnx_bundle, tmp_path, capsys):
    """x86-laptop-cpu runs ONNX bundles on OpenVINO: its backend, threads, options and frame size apply."""
    from PIL import Image

    png = tmp_path / "p.png"
    assert main(["profile", str(onnx_bundle), "--device-profile", "x86-laptop-cpu", "--runs", "30", "--warmup", "5",
                 "--layers", "3", "--json", "--plot", str(png)]) == 0
    report = json.loads(capsys.readouterr().out)
    _stages_are_plausible(report["stages"])
    assert report["backend"] == "openvino" and report["device"] == "CPU" and report["threads"] == 4
    assert report["frame_size"] == [1280, 720] and report["device_profile"] == "x86-laptop-cpu"
    assert report["latency_budget_ms"] == 33
    assert report["within_budget"] == (report["stages"]["end_to_end"]["p90_ms"] <= 33)
    assert len(report["layers"]) == 3 and all("(" in r["op"] for r in report["layers"])  # "Convolution (jit_...)"
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 500


def test_profile_bigger_frames_cost_more_preprocessing(onnx_bundle):
    small = profile(onnx_bundle, ProfileConfig(runs=40, warmup=5, layers=0, frame_size=(160, 120), threads=1))
    big = profile(onnx_bundle, ProfileConfig(runs=40, warmup=5, layers=0, frame_size=(1920, 1080), threads=1))
    assert big.stages["preprocess"].p50_ms > small.stages["preprocess"].p50_ms
    assert small.layers == [] and "skipped" in small.layers_note


@pytest.mark.slow
def test_profile_tflite_reports_why_there_are_no_layers(trained, tmp_path):
    from edgemm.export import export

    bundle = tmp_path / "t.edgemm"
    export(trained("test_concat"), target="tflite", out=bundle, verify_samples=8, log=lambda s: None)
    r = profile(bundle, ProfileConfig(runs=20, warmup=2, layers=5))
    _stages_are_plausible({k: v.to_dict() for k, v in r.stages.items()})
    assert r.layers == [] and "benchmark_model" in r.layers_note
    assert r.model_bytes == (bundle / "model.tflite").stat().st_size


def test_profile_missing_bundle_is_a_clear_error(tmp_path, capsys):
    assert main(["profile", str(tmp_path / "nope.edgemm")]) == 1
    assert "nope.edgemm" in capsys.readouterr().err


def test_profile_and_devices_work_without_torch(onnx_bundle):
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None
        from edgemm.profile import profile, ProfileConfig
        from edgemm.devices import list_profiles
        assert len(list_profiles()) >= 5  # (jetson-nano retired)
        r = profile({str(onnx_bundle)!r}, ProfileConfig(runs=5, warmup=1, layers=2))
        assert r.stages["end_to_end"].p50_ms > 0 and r.layers
        from edgemm.deploy import open_session  # the layer above runtime and profile, torch-free too
        s = open_session({str(onnx_bundle)!r}, "x86-laptop-cpu", threads=1)
        assert s.backend.name == "openvino"
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m] is not None)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_bundles_compared_in_interleaved_rounds_with_paired_ratios(onnx_bundle, tmp_path, capsys):
    """``edgemm profile A B --rounds N``: every bundle once per round, each round's p50 over the
    first bundle's in the same round, the median of those; arithmetic checked, not timings."""
    import shutil

    other = tmp_path / "copy.edgemm"
    shutil.copytree(onnx_bundle, other)
    args = ["profile", str(onnx_bundle), str(other), "--runs", "15", "--warmup", "2", "--rounds", "3", "--threads", "1"]
    assert main([*args, "--json", "--out", str(tmp_path / "c.json")]) == 0
    c = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "c.json").read_text()) == c
    assert c["rounds"] == 3 and c["runs"] == 15 and c["stage"] == "inference"
    first, second = c["rows"]
    assert (first["bundle"], second["bundle"]) == (str(onnx_bundle), str(other))
    assert first["ratio_rounds"] == [1.0] * 3 and first["ratio"] == 1.0 and first["ratio_spread"] == 0.0
    assert len(second["p50_ms_rounds"]) == 3 and all(t > 0 for t in second["p50_ms_rounds"])
    assert second["ratio_rounds"] == pytest.approx([b / a for a, b in zip(first["p50_ms_rounds"], second["p50_ms_rounds"])])
    assert second["ratio"] == pytest.approx(float(np.median(second["ratio_rounds"])))
    assert second["ratio_error"] == pytest.approx(1.2533 * second["ratio_spread"] / 3 ** 0.5)  # of the median
    assert second["p50_ms"] == pytest.approx(float(np.median(second["p50_ms_rounds"])))
    assert main([*args, "--stage", "end_to_end"]) == 0
    table = capsys.readouterr().out
    assert "end_to_end p50, 3 interleaved rounds of 15 runs" in table and "| copy.edgemm |" in table
    assert main([*args, "--plot", str(tmp_path / "x.png")]) == 2
    assert "--plot draws one bundle's latency histogram" in capsys.readouterr().err


def test_profile_feeds_consecutive_windows_of_a_live_stream(onnx_bundle, runtime_frontend_bundle):
    """Each profiled prediction's audio window is 1/fps s after the previous one, aligned as edgemm run
    aligns them, so a runtime-frontend bundle is timed as it runs live: computing only the new frames."""
    from edgemm.profile.latency import LiveAudio
    from edgemm.runtime import load

    bundle = runtime_frontend_bundle
    session = load(bundle)
    a = session.preprocess.audio
    live = LiveAudio(session, fps=15.0)
    assert live.step % a.hop_length == 0 and abs(live.step - a.sample_rate / 15) < a.hop_length
    prev, prev_at = live.next()
    for _ in range(200):  # past the periodic signal's wrap (4 s = 120 windows at 15 fps)
        window, at = live.next()
        assert at == prev_at + live.step and len(window) == a.clip_samples
        np.testing.assert_array_equal(window[:-live.step], prev[live.step:])
        prev, prev_at = window, at
    assert LiveAudio(load(onnx_bundle), fps=15.0).step == a.sample_rate // 15  # graph frontend: no alignment

    profile(bundle, ProfileConfig(runs=60, warmup=5, layers=0, fps=15.0))
    for _ in range(60):
        window, at = live.next()
        session.predict_batch([None], [window], audio_starts=[at])
    per_window = live.step // a.hop_length
    assert session._stream.computed == a.n_frames + 59 * per_window
