"""--precision auto: each precision exported and measured; the fastest verified one is published."""

import pytest
import yaml

from edgemm.cli import main
from edgemm.deploy import AutoConfig, export
from edgemm.export.errors import ExportError
from edgemm.export.verify import Tolerance
from edgemm.runtime import read_manifest
from edgemm.vocab import Precision


@pytest.mark.slow
def test_auto_keeps_the_fastest_verified_precision_and_records_why(trained, tmp_path):
    out = tmp_path / "auto.edgemm"
    m = export(trained("test_concat"), target="onnx", precision="auto", out=out, verify_samples=64,
               auto=AutoConfig(candidates=("fp32", "int8"), runs=30, threads=1), log=lambda s: None)
    sel = m.selection
    assert [c["precision"] for c in sel["candidates"]] == ["fp32", "int8"]
    measured = [c for c in sel["candidates"] if "inference_p50_ms" in c]
    assert measured and all(c["status"] == "passed" and c["inference_p50_ms"] > 0 and c["threads"] == 1
                            for c in measured)
    fastest = min(measured, key=lambda c: c["inference_p50_ms"])
    assert sel["chosen"] == fastest["precision"] == m.precision
    back = read_manifest(out)  # what is on disk is the chosen bundle, with the measurements
    assert back.precision == sel["chosen"] and back.selection == sel and back.verified
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".auto-")]  # candidates cleaned up


@pytest.mark.slow
def test_auto_fails_clearly_when_nothing_verifies(trained, tmp_path):
    # int8: a drop below -101 pts is impossible (an accuracy gain is at most 100 pts)
    impossible = Tolerance(max_abs_logit=-1.0, min_top1_agreement=2.0, min_top1_agreement_fp16=2.0,
                           int8_accuracy_points=-101.0)
    with pytest.raises(ExportError, match=r"no precision both exported and verified for onnx: fp32: failed verification.*"
                                          r"int8: failed verification"):
        export(trained("test_concat"), target="onnx", precision="auto", out=tmp_path / "a.edgemm", verify_samples=16,
               tolerance=impossible, auto=AutoConfig(candidates=("fp32", "int8"), runs=5), log=lambda s: None)
    assert not (tmp_path / "a.edgemm").exists()


@pytest.mark.slow
def test_export_takes_target_and_precision_from_a_device_profile(trained, tmp_path, capsys):
    profile = tmp_path / "board.yaml"
    profile.write_text(yaml.safe_dump({"name": "board", "description": "test board", "target": "onnx",
                                       "precision": "int8", "backend": "onnxruntime", "threads": 1,
                                       "frontend": "runtime"}))
    out = tmp_path / "b.edgemm"
    assert main(["export", str(trained("test_concat")), "--device-profile", str(profile), "--out", str(out),
                 "--verify-samples", "32"]) == 0
    m = read_manifest(out)
    assert (m.target, m.precision, m.source["device"], m.frontend.value) == ("onnx", "int8", "board", "runtime")
    # --frontend on the command line wins over the profile's
    assert main(["export", str(trained("test_concat")), "--device-profile", str(profile), "--out", str(out),
                 "--verify-samples", "32", "--precision", "fp32", "--frontend", "graph"]) == 0
    assert read_manifest(out).frontend.value == "graph"
    assert main(["export", str(trained("test_concat")), "--out", str(tmp_path / "c.edgemm")]) == 1
    assert "--target is required" in capsys.readouterr().err


def test_auto_config_checks_its_fields():
    assert AutoConfig(candidates=("int8",)).candidates == (Precision.INT8,)
    with pytest.raises(ValueError, match=r"auto candidates: 'int4' is not one of \['fp32', 'fp16', 'int8'\]"):
        AutoConfig(candidates=("int4",))
    with pytest.raises(ValueError, match="at least one"):
        AutoConfig(candidates=())


def test_plain_export_points_auto_to_the_deploy_layer(trained, tmp_path):
    from edgemm.export import export as export_bundle

    with pytest.raises(ValueError, match=r"edgemm.deploy.export\(..., precision='auto'\)"):
        export_bundle(trained("test_concat"), target="onnx", precision="auto", out=tmp_path / "x")


def test_old_device_flag_on_export_names_the_new_one(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--target", "onnx", "--device", "raspberry-pi-5"])
    err = capsys.readouterr().err
    assert "--device is now --device-profile" in err and "--device-profile raspberry-pi-5" in err
