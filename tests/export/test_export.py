"""Every test model exports to a bundle that verifies in its own runtime: every target × precision for two
fusions, int8 on every target for the others."""

import json
import re
from collections import Counter

import numpy as np
import pytest

from edgemm.export import VerificationFailed, export
from edgemm.export.formats import FORMATS, Precision, Target, offers
from edgemm.models import list_models
from edgemm.runtime import load, read_manifest

TARGETS = [t.value for t in Target]
PRECISIONS = [p.value for p in Precision]


def element_types(bundle, manifest) -> Counter:
    """Element types of the weights stored in the model file, read with each format's own library."""
    model = bundle / manifest.files["model"]
    if manifest.target == "onnx":
        import onnx

        return Counter(onnx.TensorProto.DataType.Name(t.data_type) for t in onnx.load(str(model)).graph.initializer)
    if manifest.target == "openvino":
        xml = model.read_text()
        return Counter(re.findall(r'<layer[^>]*type="Const"[^>]*>\s*<data[^>]*element_type="(\w+)"', xml))
    from ai_edge_litert.interpreter import Interpreter

    return Counter(np.dtype(t["dtype"]).name for t in Interpreter(model_path=str(model)).get_tensor_details())


def activation_types(model_path) -> set[str]:
    """Element types the ONNX file quantizes activations to (its QuantizeLinear zero points: QDQ
    stores weights already quantized, so only activations pass through QuantizeLinear)."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    init = {t.name: t.data_type for t in graph.initializer}
    return {onnx.TensorProto.DataType.Name(init[n.input[2]]) for n in graph.node
            if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in init}


# The whole target x precision matrix for the two fusions whose ops cover the others' (attention:
# matmul, softmax; gated: sigmoid gates, products; both concatenate and project), and int8 on every
# target for the rest (the conversion that rewrites the graph most). The full 45-case matrix took
# about 19 of the suite's 38 minutes on 2 cores.
FULL_MATRIX = ("test_attention", "test_gated")
CASES = [(name, target, precision) for name in list_models("test_*") for target in TARGETS for precision in PRECISIONS
         if (name in FULL_MATRIX or precision == Precision.INT8.value)
         and offers(target, precision)
         and (target != Target.EXECUTORCH.value or name == "test_attention")]  # ~1 min per ExecuTorch export


@pytest.mark.slow
@pytest.mark.parametrize("name, target, precision", CASES)
def test_every_test_model_exports_and_verifies(name, target, precision, trained, easy_manifest, tmp_path):
    run = trained(name)
    out = tmp_path / "b.edgemm"
    manifest = export(run, target=target, precision=precision, out=out, calib_samples=128, verify_samples=160,
                      log=lambda s: None)
    v = manifest.verification
    assert v["status"] == "passed", v["message"]
    assert v["samples"] == 160 and set(v["conditions"]) == {"fused", "image_only", "audio_only"}
    if precision == "fp32":
        assert v["top1_agreement"] == 1.0 and v["max_abs_logit_diff"] <= 1e-4
    # What is on disk is what the manifest says, readable without torch-side state.
    back = read_manifest(out)
    assert back == manifest and back.target == target and back.precision == precision
    assert [t.name for t in back.inputs] == ["image", "audio", "image_present", "audio_present"]
    from edgemm.train import load_model

    preprocess = load_model(run / "best.pt")[1]["preprocess"]
    assert back.input("image").preprocessing["std"] == list(preprocess["image"]["std"])
    assert back.input("audio").preprocessing["sample_rate"] == preprocess["audio"]["sample_rate"] == 8000
    assert back.outputs[0].shape[-1] == len(back.labels) == 4
    assert back.source["sha256"] and back.source["model"]["name"] == name
    assert (back.batch == "dynamic") == FORMATS[Target(target)].dynamic_batch
    # The weights really are in the precision asked for.
    if target == "executorch":  # XNNPACK's weights are opaque inside the .pte: the whole file is smaller than
        # the float weights alone only if they are int8 (test_attention: 0.80 of them; its graph, per-channel
        # scales and quantize ops take ~195 kB)
        float_bytes = 4 * sum(p.numel() for p in load_model(run / "best.pt")[0].parameters())
        size = (out / "model.pte").stat().st_size
        assert size < 0.9 * float_bytes if precision == "int8" else size > float_bytes, (size, float_bytes)
    else:
        types = element_types(out, back)
        low = {"fp16": {"FLOAT16", "f16", "float16"}, "int8": {"INT8", "i8", "u8", "int8"}}.get(precision, set())
        assert precision == "fp32" or sum(types[t] for t in low) > 0, types
    if target == "onnx" and precision == "int8":  # calibrated: uint8 activations, which onnxruntime's x86 kernels fuse
        assert back.quantization["method"] == "ptq" and activation_types(out / "model.onnx") == {"UINT8"}
    assert (back.quantization is not None) == (precision == "int8")
    if target == "onnx":  # no exporter debug metadata (stack traces with this machine's paths) is shipped
        assert b"pkg.torch.onnx.stack_trace" not in (out / "model.onnx").read_bytes()
    # The runtime opens it and labels raw test-split files (PNG + WAV) of the easy set's classes.
    import soundfile as sf
    from PIL import Image

    session = load(out)
    hits = 0
    for label in back.labels:
        stem = easy_manifest.parent / f"{label}_095"
        wave, sr = sf.read(stem.with_suffix(".wav"), dtype="float32")
        pred = session.predict(image=np.asarray(Image.open(stem.with_suffix(".png")).convert("RGB")), audio=wave,
                               sample_rate=sr)
        hits += pred.label == label
    assert hits >= 3, f"{hits}/4 raw test files labelled correctly"


def test_unsupported_precision_and_target_are_named(trained, tmp_path):
    with pytest.raises(ValueError, match="--target.*onnx"):
        export(trained("test_concat"), target="coreml", out=tmp_path / "x")
    with pytest.raises(ValueError, match="--precision"):
        export(trained("test_concat"), target="onnx", precision="int4", out=tmp_path / "x")


@pytest.mark.slow
def test_verification_failure_keeps_the_bundle_marked_failed_and_exits_3(trained, tmp_path, monkeypatch, capsys):
    import edgemm.export.bundle as bundle_mod
    from edgemm.cli import main

    real = bundle_mod.torch_runner

    def drifting(model):  # a reference that differs from what was exported by 0.01 on class 0
        run = real(model)
        return lambda *a: run(*a) + np.eye(1, 4, 0, dtype=np.float32) * 0.01

    monkeypatch.setattr(bundle_mod, "torch_runner", drifting)
    out = tmp_path / "bad.edgemm"
    code = main(["export", str(trained("test_concat")), "--target", "onnx", "--out", str(out), "--verify-samples", "8"])
    assert code == 3
    err = capsys.readouterr().err
    assert "verification failed" in err and "output 'logits' diverges first at sample 0 (fused)" in err
    m = read_manifest(out)
    assert m.verification["status"] == "failed" and not m.verified
    assert m.verification["max_abs_logit_diff"] == pytest.approx(0.01, abs=1e-4)
    with pytest.warns(UserWarning, match="failed verification"):
        load(out)
    # And the same through the API.
    with pytest.raises(VerificationFailed, match="diverges first"):
        export(trained("test_concat"), target="onnx", out=out, verify_samples=8, log=lambda s: None)


def test_cli_export_then_eval_bundle_matches_checkpoint_eval(trained, easy_clips, tmp_path, monkeypatch, capsys):
    """No checkpoint means the latest `edgemm compress` output; eval gives the same keys for a bundle."""
    import shutil

    from edgemm.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["export", "--target", "onnx"]) == 1
    assert "run `edgemm compress`" in capsys.readouterr().err
    (tmp_path / "runs/compress").mkdir(parents=True)
    shutil.copy(trained("test_weighted") / "best.pt", tmp_path / "runs/compress/model.pt")
    assert main(["export", "--target", "onnx", "--json", "--verify-samples", "80"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    bundle = tmp_path / "runs/compress/test_weighted-onnx-fp32.edgemm"
    assert manifest["verification"]["status"] == "passed" and (bundle / "model.onnx").is_file()
    assert main(["eval", str(bundle), "--json"]) == 0
    from_bundle = json.loads(capsys.readouterr().out)
    assert main(["eval", "runs/compress/model.pt", "--json"]) == 0
    from_ckpt = json.loads(capsys.readouterr().out)
    assert set(from_bundle) == set(from_ckpt)
    for key in ("accuracy", "accuracy_image_only", "accuracy_audio_only", "n"):
        assert from_bundle[key] == from_ckpt[key], key
    assert from_bundle["loss"] == pytest.approx(from_ckpt["loss"], abs=1e-4)
    # The model card: verification ran on the whole test split here, so its figures are edgemm eval's.
    card = (bundle / manifest["card"]["file"]).read_text()
    assert manifest["verification"]["samples"] == from_bundle["n"]
    v = manifest["verification"]["conditions"]
    for cond, key in (("fused", "accuracy"), ("image_only", "accuracy_image_only"), ("audio_only", "accuracy_audio_only")):
        assert v[cond]["accuracy"] == from_bundle[key]
    assert (f"accuracy {from_bundle['accuracy']:.3f} on {from_bundle['n']} held-out samples (camera only "
            f"{from_bundle['accuracy_image_only']:.3f}, microphone only {from_bundle['accuracy_audio_only']:.3f})") in card
    assert sum(c["n"] for c in manifest["verification"]["per_class"].values()) == from_bundle["n"]
    assert main(["eval", str(bundle), "--card"]) == 0  # this evaluation, added to the card
    assert f"| {from_bundle['n']} | {from_bundle['accuracy']:.3f} |" in (bundle / "MODEL_CARD.md").read_text()
    assert main(["eval", "runs/compress/model.pt", "--card"]) == 2  # a checkpoint has no card
    assert main(["run", str(bundle), "--video", str(easy_clips["green_mid"]), "--quiet"]) == 0
    assert "model: test_weighted: 4 classes, onnx fp32; accuracy" in capsys.readouterr().err  # the card's line
    # Calibration, on the validation split: the runtime's scores are softmax(logits / T).
    cal = manifest["calibration"]
    assert " val " in f" {cal['data']} " and cal["nll_after"] <= cal["nll_before"] and cal["temperature"] > 0
    assert f"temperature **{cal['temperature']:.3g}**" in card
    session = load(bundle)
    rng = np.random.default_rng(0)
    frame, wave = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), 0.1 * rng.standard_normal(16000).astype(np.float32)
    pred = session.predict(image=frame, audio=wave)
    session.temperature = 1.0  # the raw softmax, whose log is the logits up to a constant
    z = np.log([session.predict(image=frame, audio=wave).scores[c] for c in session.labels]) / cal["temperature"]
    np.testing.assert_allclose([pred.scores[c] for c in session.labels], np.exp(z - z.max()) / np.exp(z - z.max()).sum(),
                               rtol=1e-6)
    assert main(["run", str(bundle), "--video", str(easy_clips["green_mid"]), "--quiet", "--threshold", "auto"]) == 0
    raw = json.loads((bundle / "manifest.json").read_text())
    raw["calibration"] = None
    (bundle / "manifest.json").write_text(json.dumps(raw))
    assert main(["run", str(bundle), "--video", str(easy_clips["green_mid"]), "--threshold", "auto"]) == 2
    err = capsys.readouterr().err
    assert "--threshold auto: " in err and "has no calibration" in err


def test_converter_error_names_the_operator_and_layer():
    from edgemm.export.errors import ExportError, converting
    from edgemm.models import create_model

    model = create_model("test_concat", num_classes=3).eval()
    with pytest.raises(ExportError) as e:
        with converting("tflite", model, model.example_inputs(1)):
            raise RuntimeError("Lowering failed: no rule for aten.log.default\n  long converter stack ...")
    msg = str(e.value)
    assert msg.startswith("tflite: cannot convert operator aten.log.default in layer(s) frontend")
    assert "long converter stack" not in msg


@pytest.mark.slow
@pytest.mark.parametrize("target, precision", [("onnx", "fp32"), ("openvino", "fp32"), ("tflite", "fp32"),
                                               ("executorch", "fp32"), ("onnx", "int8")])
def test_a_runtime_frontend_bundle_takes_log_mel_and_agrees_with_the_waveform_model(target, precision, trained,
                                                                                      easy_manifest, tmp_path):
    """--frontend runtime: the graph takes the log-mel, the runtime computes it with numpy's FFT, and
    verification (bundle fed waveforms vs the PyTorch model that takes them) holds fp32 to 1e-4."""
    run = trained("test_gated")
    out = tmp_path / "runtime.edgemm"
    manifest = export(run, target=target, precision=precision, out=out, calib_samples=64, verify_samples=64,
                      frontend="runtime", log=lambda s: None)
    v = manifest.verification
    assert v["status"] == "passed", v["message"]
    if precision == "fp32":
        assert v["top1_agreement"] == 1.0 and v["max_abs_logit_diff"] <= 1e-4
    back = read_manifest(out)
    audio = back.input("audio")
    assert back.frontend.value == "runtime" and audio.preprocessing["frontend"]["runs_in"] == "runtime"
    from edgemm.train import load_model

    cfg = load_model(run / "best.pt")[0].preprocess.audio
    assert audio.shape[1:] == [1, cfg.n_mels, cfg.n_frames]
    session = load(out)
    assert session.logmel is not None
    # The same raw files give the graph-frontend bundle's scores.
    graph = load(export(run, target=target, precision="fp32", out=tmp_path / "graph.edgemm", verify=False,
                        log=lambda s: None).location)
    assert graph.temperature == 1.0 != session.temperature  # not verified: not calibrated either
    graph.temperature = session.temperature  # the same logits must then give the same scores
    import soundfile as sf

    for label in back.labels:
        wave, sr = sf.read((easy_manifest.parent / f"{label}_095").with_suffix(".wav"), dtype="float32")
        ours, theirs = session.predict(audio=wave, sample_rate=sr), graph.predict(audio=wave, sample_rate=sr)
        assert ours.label == theirs.label
        if precision == "fp32":
            assert max(abs(ours.scores[k] - theirs.scores[k]) for k in back.labels) < 1e-4


def test_runtime_frontend_needs_an_edgemm_frontend(tmp_path):
    """A model that takes the waveform itself has no log-mel to move: a one-line error says so."""
    import torch

    from edgemm.data.preprocess import PreprocessConfig
    from edgemm.models.contract import ContractModel
    from edgemm.models.frontend import without_frontend

    class Wave(torch.nn.Module):
        def forward(self, image, audio, image_present, audio_present):
            return torch.stack([audio.mean(1), image.mean((1, 2, 3))], 1)

    with pytest.raises(ValueError, match="has no edgemm log-mel frontend"):
        without_frontend(ContractModel(Wave(), PreprocessConfig(), "waveform"))
    body = without_frontend(ContractModel(Wave(), PreprocessConfig(), "logmel"))
    assert body.example_inputs(2)[1].shape == (2, 1, 64, PreprocessConfig().audio.n_frames)
