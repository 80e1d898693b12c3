"""edgemm bench: one row per target × precision, measured on the whole split; failures are rows."""

import dataclasses
import json

import pytest

from edgemm.cli import main
from edgemm.deploy.bench import BenchConfig, parse_floor
from edgemm.export.formats import FORMATS, Target


@pytest.mark.slow
def test_bench_rows_table_json_and_failure_row(trained, easy_manifest, tmp_path, monkeypatch, capsys):
    run = trained("test_concat")
    # TFLite as on a machine without its export extras: the exporter module cannot be imported.
    monkeypatch.setitem(FORMATS, Target.TFLITE, dataclasses.replace(FORMATS[Target.TFLITE], module="edgemm.export._absent"))
    import edgemm.export.onnx as onnx_export

    exports = []  # torch.onnx's export of the float model, counted
    to_onnx = onnx_export.to_onnx
    monkeypatch.setattr(onnx_export, "to_onnx", lambda *a, **k: exports.append(a[1]) or to_onnx(*a, **k))
    out = tmp_path / "bench"
    args = ["bench", str(run), "--targets", "onnx,openvino,tflite", "--precisions", "fp32,int8", "--runs", "20",
            "--device-profile", "x86-laptop-cpu", "--threads", "1", "--out", str(out)]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # The four ONNX / OpenVINO bundles are made from one float ONNX export (none if a test before made
    # it in this process), not one each.
    assert len(exports) <= 1, exports
    rows = {(r["target"], r["precision"]): r for r in report["rows"]}
    assert set(rows) == {("pytorch", "fp32"), *((t, p) for t in ("onnx", "openvino", "tflite") for p in ("fp32", "int8"))}
    n_test = sum(1 for line in easy_manifest.read_text().splitlines()[1:] if ",test" in line)
    for key in (("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32"), ("openvino", "int8")):
        r = rows[key]
        assert r["status"] == "ok" and r["parity"].startswith("passed"), r
        assert r["n"] == n_test == 80  # the whole split, not a handful
        assert 0 < r["inference"]["p50_ms"] <= r["inference"]["p90_ms"] <= r["inference"]["p99_ms"]
        assert r["end_to_end"]["p50_ms"] >= r["inference"]["p50_ms"] and r["speedup"] > 0
        assert r["size_mb"] > 0 and (tmp_path / "bench" / r["bundle"].split("/")[-1] / "manifest.json").is_file()
    # fp32 bundles answer like PyTorch on the whole split; int8 is smaller than fp32.
    assert rows[("onnx", "fp32")]["accuracy"] == pytest.approx(rows[("pytorch", "fp32")]["accuracy"])
    assert rows[("onnx", "int8")]["size_mb"] < rows[("onnx", "fp32")]["size_mb"]  # the float frontend dominates a test model
    assert rows[("pytorch", "fp32")]["speedup"] == 1.0
    # The device profile (OpenVINO on CPU) runs the ONNX and OpenVINO bundles; --threads 1 wins over its 4.
    assert all(rows[(t, p)]["backend"] == "openvino (CPU, threads 1)" for t in ("onnx", "openvino") for p in ("fp32", "int8"))
    assert all(isinstance(rows[(t, "fp32")]["within_budget"], bool) for t in ("onnx", "openvino"))
    # No power sensor on this machine: each format says so (tests/profile/test_energy.py measures on recorded trees).
    assert rows[("onnx", "int8")]["energy"]["status"] == "unavailable" and "RAPL" in rows[("onnx", "int8")]["energy"]["reason"]
    for p in ("fp32", "int8"):
        r = rows[("tflite", p)]
        assert r["status"] == "export-failed" and "edgemm[export-tflite]" in r["reason"] and r["accuracy"] is None
    assert (out / "bench.png").stat().st_size > 1000 and json.loads((out / "bench.json").read_text())["rows"]
    # The profile computes the log-mel in the runtime (its `frontend: runtime`): so do the bundles.
    assert report["frontend"] == "runtime"
    assert rows[("onnx", "int8")]["bundle"].endswith("test_concat-onnx-int8-runtime-frontend.edgemm")
    # A second run reuses the bundles of the same checkpoint and prints the Markdown table.
    bundle = out / "test_concat-onnx-int8-runtime-frontend.edgemm"
    mtime = (bundle / "manifest.json").stat().st_mtime
    assert main([*args[:3], "onnx", "--precisions", "int8", "--runs", "5", "--out", str(out), "--frontend", "runtime"]) == 0
    table = capsys.readouterr()
    assert "| ✅ | onnx | int8 |" in table.out and "reusing" in table.err
    assert "- energy: unavailable: no Jetson INA3221 input rail" in table.out
    assert (bundle / "manifest.json").stat().st_mtime == mtime
    # --fail-under for CI: a floor no format reaches fails the command and names each format (on the
    # bundles of the first run: the floors judge rows, whichever export made them).
    again = [*args[:3], "onnx", "--runs", "5", "--out", str(out), "--frontend", "runtime"]
    assert main([*again, "--precisions", "fp32,int8", "--fail-under", "accuracy=1.01"]) == 4
    err = capsys.readouterr().err
    assert "onnx fp32: accuracy" in err and "onnx int8: accuracy" in err and "< 1.01" in err
    assert main([*again, "--precisions", "fp32", "--fail-under", "accuracy=0.0"]) == 0
    # Every run is appended to the history, oldest first.
    history = [json.loads(line) for line in (out / "bench.jsonl").read_text().splitlines()]
    assert len(history) == 4 and [len(h["rows"]) for h in history] == [7, 2, 3, 2] and history[0]["time"]


def test_fail_under_parses_and_names_bad_floors():
    assert parse_floor("speedup=1.3") == ("speedup", 1.3)
    with pytest.raises(ValueError, match="metric must be one of"):
        parse_floor("latency=3")
    with pytest.raises(ValueError, match="METRIC=NUMBER"):
        parse_floor("accuracy=high")


def test_fail_under_inferences_per_joule_gates_on_measured_energy():
    from edgemm.deploy.bench import BenchReport, BenchRow, below_floors
    from edgemm.vocab import BenchStatus

    def row(precision, energy):
        return BenchRow("onnx", precision, BenchStatus.OK, accuracy=0.9, speedup=1.0, energy=energy)

    measured = {"status": "measured", "joules_per_inference": 0.004}
    report = BenchReport("ckpt", "data", "test", [
        row("torch", None), row("fp32", measured), row("int8", {**measured, "joules_per_inference": 0.002}),
        row("fp16", {"status": "unavailable", "reason": "no Jetson INA3221 input rail"}), row("bf16", None)])
    assert report.rows[1].inferences_per_joule == pytest.approx(250.0)
    assert below_floors(report, [parse_floor("inferences_per_joule=300")]) == [
        "onnx fp32: inferences_per_joule 250.0000 < 300",  # int8, at 500 per joule, passes
        "onnx fp16: inferences_per_joule not measured (energy unavailable: no Jetson INA3221 input rail)",
        "onnx bf16: inferences_per_joule not measured (energy not measured (--no-energy))"]


def test_bench_config_names_bad_choices():
    with pytest.raises(ValueError, match=r"--targets: \['coreml'\] given; choose from"):
        BenchConfig(targets=("onnx", "coreml"))
    with pytest.raises(ValueError, match="--precisions"):
        BenchConfig(precisions=())


def test_table_says_why_a_lower_precision_was_not_worth_it():
    from edgemm.deploy.bench import BenchReport, BenchRow, to_markdown
    from edgemm.vocab import BenchStatus

    def row(target, precision, p50):
        return BenchRow(target, precision, BenchStatus.OK, size_mb=1.0, accuracy=0.9, accuracy_image_only=0.5,
                        accuracy_audio_only=0.5, inference={"p50_ms": p50, "p90_ms": p50}, speedup=1.0,
                        parity="passed")

    report = BenchReport("ckpt", "data", "test", [row("onnx", "fp32", 0.60), row("onnx", "int8", 0.78),
                                                  row("openvino", "fp32", 0.90), row("openvino", "int8", 0.60)])
    table = to_markdown(report)
    assert "| onnx | int8 | 1.00 |" in table and "| 0.77× |" in table and "| 1.50× |" in table
    why = [line for line in table.splitlines() if line.startswith("- ")]
    assert len(why) == 1 and why[0].startswith("- onnx int8 runs at 0.77× fp32's speed") and "auto" in why[0]


def test_bench_names_a_factory_models_bundles_under_out(tmp_path, monkeypatch):
    """A model built from the user's file: its bundles go under --out, named FILE_FUNCTION, not beside the file."""
    import types

    import edgemm.export as export_pkg
    from edgemm.deploy.bench import export_or_reuse
    from edgemm.export.bundle import bundle_name
    from edgemm.runtime.manifest import Manifest

    user = tmp_path / "mine" / "net.py"
    written = []

    def fake_export(checkpoint, config, *, out, log):
        assert (config.target.value, config.precision.value, config.frontend.value) == ("onnx", "int8", "graph")
        written.append(out)
        return Manifest(name="m", labels=["a"], target="onnx", precision="int8", files={"model": "m.onnx"},
                        inputs=[], outputs=[], preprocess={}, verification={"status": "passed"})

    monkeypatch.setattr(export_pkg, "export", fake_export)
    source = types.SimpleNamespace(name=f"{user}:make", checkpoint=tmp_path / "run" / "best.pt", sha256="x")
    tried = export_or_reuse(source, "onnx", "int8", tmp_path / "bench", log=lambda s: None)
    assert tried.bundle == written[0] == tmp_path / "bench" / "net_make-onnx-int8.edgemm"
    assert tried.verified and tried.status == "passed"
    assert bundle_name(f"{user}:make", "tflite", "fp32", "runtime") == "net_make-tflite-fp32-runtime-frontend.edgemm"
