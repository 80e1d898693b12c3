"""Your own student under your own teacher: compress, reload the pruned checkpoint, export, run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgemm.cli import main

pytestmark = pytest.mark.slow

USER = Path(__file__).resolve().parents[1] / "models" / "user" / "av_models.py"
RECIPE = """
teacher: {epochs: 2, min_steps: 0, lr: 0.002, pretrained: none, precision: fp32}
stages:
  - {type: distill, epochs: 1, batch_size: 8}
  - {type: prune, ratio: 0.25, steps: 1, finetune_epochs: 1, round_to: 4}
  - {type: ptq, calibration_samples: 32}
"""


def test_compress_a_user_student_under_a_user_teacher_then_export_and_run(small_manifest, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    out = tmp_path / "out"
    args = ["compress", "--data", str(small_manifest), "--recipe", str(recipe), "--out", str(out), "--device", "cpu",
            "--student", f"{USER}:no_flags", "--teacher", f"{USER}:resnet_waveform", "--no-baseline", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in report["stages"]] == ["distill", "prune", "ptq"]
    distill, pruned, ptq = report["stages"]
    assert pruned["params"] < distill["params"] and ptq["int8_bytes"] < ptq["fp32_bytes"]
    assert report["teacher"]["trained_now"] and "av_models_resnet_waveform-" in report["teacher"]["path"]
    assert report["recipe"]["student"] == f"{USER}:no_flags"

    # The pruned student rebuilds from plain data: the reference, its kwargs and the layer shapes. The
    # checkpoint names code: in Python, as on the command line, it loads once the user names it.
    from edgemm.train import load_model
    from edgemm.trust import UntrustedModelCode, trust_reference

    with pytest.raises(UntrustedModelCode, match="its model is code"):
        load_model(out / "model.pt")
    trust_reference(f"{USER}:no_flags")
    model, ckpt = load_model(out / "model.pt")
    assert ckpt["model"]["name"] == f"{USER}:no_flags" and ckpt["quantization"]["stage"] == "ptq"
    assert sum(p.numel() for p in model.parameters()) == ptq["params"] == pruned["params"]

    # Export and the torch-free runtime treat it like a zoo model.
    from edgemm.deploy import export
    from edgemm.runtime import load

    for target, precision in (("onnx", "int8"), ("openvino", "fp32")):
        m = export(out, target=target, precision=precision, verify_samples=32, log=lambda s: None)
        assert m.verified, m.verification
        # beside the checkpoint, named FILE_FUNCTION (the reference is a path: not beside the model's file)
        assert m.location == out / f"av_models_no_flags-{target}-{precision}.edgemm"
    # Its model card carries the compress report's stages (the lineage) beside the bundle's own figures.
    assert [r["name"] for r in m.card["lineage"]["stages"]] == ["distill", "prune", "ptq"]
    card = (m.location / "MODEL_CARD.md").read_text()
    assert f"| ptq | {ptq['accuracy']:.3f} | {ptq['accuracy_image_only']:.3f} |" in card
    assert f"| teacher {USER}:resnet_waveform | {report['teacher']['accuracy']:.3f} |" in card
    session = load(m.location)
    image, audio, _, _ = (t.numpy() for t in model.example_inputs(2))
    rng = np.random.default_rng(0)
    image, audio = rng.standard_normal(image.shape, np.float32), 0.1 * rng.standard_normal(audio.shape, np.float32)
    ones = np.ones(2, np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(image), torch.from_numpy(audio)).numpy()
    np.testing.assert_allclose(session.run(image, audio, ones, ones), want, rtol=1e-3, atol=1e-3)
