"""The latency probe of ``compress --latency-budget``: what it exports, and how it applies a device profile."""

import pytest

from edgemm.compress.budget import LatencyBudget
from edgemm.deploy.probe import LatencyProbe, precisions
from edgemm.devices import load_profile, parse_profile
from edgemm.vocab import Precision


def test_precisions_timed_per_profile():
    # precision auto deploys the fastest that verifies: every precision the target takes is timed
    assert [p.value for p in precisions(load_profile("x86-laptop-cpu"))] == ["fp32", "fp16", "int8"]
    assert [p.value for p in precisions(load_profile("raspberry-pi-5"))] == ["int8"]


def test_the_profile_reaches_edgemm_profile_by_name_file_or_fields(tmp_path):
    shipped = LatencyProbe(LatencyBudget(5, load_profile("jetson-orin-nano"), runs=50))
    assert shipped._args(shipped_only=True) == ["--runs", "50", "--layers", "0", "--frame-size", "1280x720",
                                               "--device-profile", "jetson-orin-nano"]
    own = tmp_path / "board.yaml"
    own.write_text("name: board\ndescription: x\ntarget: onnx\nprecision: fp32\nbackend: onnxruntime\nthreads: 3\n"
                   "backend_options: {session.intra_op.allow_spinning: '0'}\n")
    probe = LatencyProbe(LatencyBudget(5, load_profile(own)))
    assert probe._args(shipped_only=False)[-2:] == ["--device-profile", str(own.resolve())]  # its options too
    # a file here is not on a device: over SSH its fields go one by one
    assert probe._args(shipped_only=True)[-6:] == ["--backend", "onnxruntime", "--provider", "CPU", "--threads", "3"]
    made = parse_profile({"name": "x", "description": "x", "target": "tflite", "precision": "int8", "backend": "tflite"},
                         "<python>")
    assert LatencyProbe(LatencyBudget(5, made))._args(shipped_only=False)[-4:] == ["--backend", "tflite", "--provider",
                                                                                   "CPU"]
    assert "this machine (" in probe.where


def test_a_failed_timing_is_one_error_naming_the_bundle(tmp_path):
    import pytest

    from edgemm.deploy.probe import ProbeError

    bundle = tmp_path / "probe-fp32.edgemm"
    bundle.mkdir()  # no manifest: the fresh edgemm profile process refuses it
    probe = LatencyProbe(LatencyBudget(5, load_profile("raspberry-pi-5"), runs=1))
    with pytest.raises(ProbeError, match="latency budget: edgemm profile failed on probe-fp32.edgemm: .*manifest"):
        probe._profile([bundle], probe._args(shipped_only=False))


@pytest.mark.slow
def test_models_are_exported_and_compared_in_one_fresh_process(trained):
    """``LatencyProbe.compare``: each model exported as the profile deploys it, timed against the
    first in interleaved rounds by ``edgemm profile A B …`` in a fresh process."""
    import copy

    from edgemm.compress.prune import build_pruner
    from edgemm.compress.recipe import PruneConfig
    from edgemm.train import load_model

    model, ckpt = load_model(trained("test_concat") / "best.pt")
    pruned = copy.deepcopy(model)
    build_pruner(pruned, PruneConfig(ratio=0.5, round_to=1)).step()
    device = parse_profile({"name": "one-thread", "description": "x", "target": "onnx", "precision": "fp32",
                            "backend": "onnxruntime", "threads": 1}, "<python>")
    probe = LatencyProbe(LatencyBudget(5, device, runs=40, stage="inference"), labels=list(ckpt["labels"]),
                         data=str(ckpt["data"]))
    c = probe.compare([model, pruned], rounds=2)
    assert c["rounds"] == 2 and c["runs"] == 20 and c["stage"] == "inference"  # the budget's runs over the rounds
    assert [r["bundle"].rsplit("/", 1)[-1] for r in c["rows"]] == ["probe-0.edgemm", "probe-1.edgemm"]
    assert c["rows"][0]["ratio"] == 1.0 and len(c["rows"][1]["ratio_rounds"]) == 2


def test_the_probe_exports_as_the_profile_deploys_frontend_included(monkeypatch, tmp_path):
    import edgemm.export

    calls = []
    monkeypatch.setattr(edgemm.export, "export", lambda ckpt, **kw: calls.append(kw))
    for frontend in ("runtime", "graph"):
        device = parse_profile({"name": "b", "description": "x", "target": "tflite", "precision": "int8",
                                "backend": "tflite", "frontend": frontend}, "<python>")
        LatencyProbe(LatencyBudget(5, device))._export(tmp_path / "m.pt", Precision.INT8, tmp_path / "b.edgemm")
    assert [(c["target"], c["precision"], c["frontend"]) for c in calls] == [
        ("tflite", Precision.INT8, "runtime"), ("tflite", Precision.INT8, "graph")]
