"""The int8 debugger finds a layer broken on purpose, and ``--max-drop`` keeps it float until the bundle verifies.

The broken layer: the last convolution of ``test_concat``'s image encoder gets one output channel
with a constant +1000 (its BatchNorm bias), and the fusion projection ignores that channel (its
weights are zeroed). The float model still classifies as before; int8, with one range per tensor,
rounds every other channel of that tensor to zero.
"""

import numpy as np
import pytest
import torch

from edgemm.export import export
from edgemm.export.int8_debug import analyse, branch_of, channel_sqnr
from edgemm.export.source import load_samples, load_source
from edgemm.runtime import read_manifest
from edgemm.train.checkpoint import atomic_torch_save, load_checkpoint
from edgemm.vocab import Branch

BROKEN = "image_encoder.features.12.0"


@pytest.fixture(scope="module")
def broken(trained, tmp_path_factory):
    """``test_concat`` with an outlier channel at the output of ``BROKEN``; returns the checkpoint path."""
    from edgemm.train.checkpoint import load_model

    good = trained("test_concat") / "best.pt"
    model, _ = load_model(good)
    with torch.no_grad():
        model.image_encoder.features[12][1].bias[0] = 1000.0
        model.fusion.proj[0].weight[:, 0] = 0.0
    ckpt = load_checkpoint(good)
    ckpt["state_dict"] = model.state_dict()
    return atomic_torch_save(ckpt, tmp_path_factory.mktemp("broken") / "best.pt")


def test_channel_sqnr_sees_channels_an_outlier_wiped_out():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4, 3, 3)).astype(np.float32)
    assert channel_sqnr([x], [x + 1e-3 * rng.normal(size=x.shape)]) > 50
    wiped = x.copy()
    wiped[:, 1:] = 0.0  # one channel kept, three rounded to zero
    assert channel_sqnr([x], [wiped]) == pytest.approx(0.0, abs=1e-6)


def test_branches_follow_the_model_layout():
    assert branch_of("image_encoder.features.12.0") is Branch.IMAGE
    assert branch_of("audio_encoder.body.4") is Branch.AUDIO
    assert branch_of("fusion.proj.0") is Branch.FUSION and branch_of("head.1") is Branch.HEAD
    assert branch_of("model.audio_encoder.conv") is Branch.AUDIO  # a contract model's own modules
    assert branch_of("model.trunk.0") is Branch.OTHER


def test_debugger_ranks_the_broken_layer_first(broken, easy_manifest, tmp_path):
    from edgemm.export.onnx import to_onnx

    src = load_source(broken)
    calib = load_samples(easy_manifest, src.preprocess, src.labels, ("train",), 64)
    model = src.model.eval()
    report = analyse(to_onnx(model, tmp_path / "fp32.onnx", model.example_inputs(2)), calib, samples=16)
    worst = report.layers[0]
    assert worst.module == BROKEN and worst.branch is Branch.IMAGE
    assert worst.output_sqnr_db < 3 and worst.lost_db > 20, worst
    assert all(r.lost_db < 10 for r in report.layers[1:]), report.layers[1]
    branches = report.by_branch()
    assert {"image", "audio", "fusion", "head"} <= set(branches) and branches["image"]["worst"] == BROKEN
    assert "frontend" not in branches  # the frontend stays float: nothing to measure


@pytest.mark.slow
def test_failed_int8_names_the_layer_and_max_drop_keeps_it_float(broken, tmp_path, capsys, monkeypatch):
    import edgemm.export.onnx as onnx_export
    from edgemm.cli import main

    # The float model goes to ONNX at most once for both jobs below (none if a test before exported it
    # in this process): the debugger and every publish share it.
    exports = []
    to_onnx = onnx_export.to_onnx
    monkeypatch.setattr(onnx_export, "to_onnx", lambda *a, **k: exports.append(a[1]) or to_onnx(*a, **k))
    out = tmp_path / "int8.edgemm"
    code = main(["export", str(broken), "--target", "onnx", "--precision", "int8", "--out", str(out),
                 "--calib-samples", "64", "--verify-samples", "80"])
    err = capsys.readouterr().err
    assert code == 3 and f"int8 hurts most: {BROKEN} (image" in err and "--max-drop 1" in err, err
    failed = read_manifest(out)
    assert failed.verification["status"] == "failed"
    assert failed.quantization["sensitivity"]["worst_layers"][0]["module"] == BROKEN

    m = export(broken, target="onnx", precision="int8", out=out, calib_samples=64, verify_samples=80, max_drop=1.0,
               log=lambda s: None)
    assert len(exports) <= 1, exports
    assert not any(e.exists() for e in exports)  # the job's scratch copy is gone
    v = m.verification
    assert v["status"] == "passed" and v["reference_accuracy"] - v["accuracy"] <= 0.01
    kept = m.quantization["kept_float"]
    assert [k["module"] for k in kept] == [BROKEN] and "dB" in kept[0]["why"]
    assert BROKEN in m.quantization["float_modules"]
    assert read_manifest(out).verification["status"] == "passed"


def test_explain_and_max_drop_are_int8_only(trained, tmp_path):
    with pytest.raises(ValueError, match="int8"):
        export(trained("test_concat"), target="onnx", precision="fp32", explain=True, out=tmp_path / "x")


def test_float_region_takes_the_input_path_the_output_path_and_the_next_layer():
    from edgemm.models.int8 import float_region

    # 0 (layer) -> 1 -> 2 (layer, kept float) -> 3 -> 4 (layer) -> 5; 1 also feeds 6
    ins = {0: [None], 1: [0], 2: [1], 3: [2], 4: [3], 5: [4], 6: [1]}
    outs = {0: [1], 1: [2, 6], 2: [3], 3: [4], 4: [5], 5: [], 6: []}
    assert sorted(float_region([2], ins.get, outs.get, lambda i: i in (0, 2, 4))) == [1, 2, 3, 4]


@pytest.mark.slow
def test_max_drop_keeps_the_broken_layer_float_on_tflite(broken, tmp_path):
    """The same fallback through ai-edge-quantizer's selective recipe (op scopes of the fp32 flatbuffer)."""
    m = export(broken, target="tflite", precision="int8", out=tmp_path / "int8.edgemm", calib_samples=64,
               verify_samples=80, max_drop=1.0, log=lambda s: None)
    assert m.verification["status"] == "passed"
    assert [k["module"] for k in m.quantization["kept_float"]] == [BROKEN]
