"""``try_export``: what --precision auto and edgemm bench make of each export, failures included."""

import pytest

import edgemm.export as export_pkg
from edgemm.deploy.attempt import try_export
from edgemm.export import ExportConfig, ExportError, VerificationFailed
from edgemm.runtime.manifest import Manifest, write_manifest


def _manifest(status: str, **verification) -> Manifest:
    return Manifest(name="m", labels=["a"], target="onnx", precision="int8", files={"model": "m.onnx"}, inputs=[],
                    outputs=[], preprocess={}, verification={"status": status, **verification})


@pytest.mark.parametrize("outcome", ["passed", "failed", "error"])
def test_each_outcome_is_an_attempt_with_its_status(outcome, tmp_path, monkeypatch):
    out = tmp_path / "m.edgemm"

    def fake_export(checkpoint, config, *, out, log):
        assert (config.target.value, config.precision.value) == ("onnx", "int8")
        if outcome == "error":
            raise ExportError("tflite has no fp16 of this model")
        if outcome == "failed":
            out.mkdir()
            (out / "m.onnx").write_bytes(b"")
            write_manifest(_manifest("failed", message="top-1 agreement 0.91 < 0.98"), out)
            raise VerificationFailed(out, "top-1 agreement 0.91 < 0.98")
        return _manifest("passed", top1_agreement=1.0)

    monkeypatch.setattr(export_pkg, "export", fake_export)
    tried = try_export("run/best.pt", ExportConfig(target="onnx", precision="int8"), out=out, log=lambda s: None)
    assert tried.verified is (outcome == "passed")
    assert tried.bundle == (None if outcome == "error" else out)  # a failed verification's bundle is kept
    assert tried.status == {"passed": "passed", "failed": "failed verification: top-1 agreement 0.91 < 0.98",
                            "error": "export failed: tflite has no fp16 of this model"}[outcome]
