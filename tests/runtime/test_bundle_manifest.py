"""The bundle manifest: JSON round trip, validation that names the bad field, atomic publishing."""

import json

import pytest

from edgemm.runtime.manifest import (
    MANIFEST,
    SCHEMA_VERSION,
    BundleError,
    Manifest,
    TensorSpec,
    is_bundle,
    publish,
    read_manifest,
    write_manifest,
)


def _manifest() -> Manifest:
    return Manifest(name="m", labels=["a", "b"], target="onnx", precision="fp32", files={"model": "model.onnx"},
                    inputs=[TensorSpec("image", "image", "image", ["batch", 3, 8, 8], "float32", "NCHW", {"size": 8})],
                    outputs=[TensorSpec("logits", "logits", "scores", ["batch", 2], "float32", "NC")],
                    preprocess={"image": {"size": 8}}, verification={"status": "passed"})


def _bundle(tmp_path, manifest=None):
    d = tmp_path / "m.edgemm"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"x")
    write_manifest(manifest or _manifest(), d)
    return d


def test_round_trip_through_json(tmp_path):
    d = _bundle(tmp_path)
    assert is_bundle(d) and not is_bundle(tmp_path)
    raw = json.loads((d / MANIFEST).read_text())
    assert raw["schema"] == "edgemm-bundle" and raw["schema_version"] == SCHEMA_VERSION
    back = read_manifest(d)
    assert back == _manifest() and back.verified
    assert back.input("image").layout == "NCHW"
    with pytest.raises(KeyError, match="no input 'audio'"):
        back.input("audio")
    assert not list(d.glob(".manifest.*"))  # the temporary file was renamed into place


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("labels"), r"lacks required field\(s\) \['labels'\]"),
    (lambda d: d.update(schema="something-else"), "not an edgemm bundle manifest"),
    (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), "schema_version 2 is not supported"),
    (lambda d: d["inputs"][0].update(colour="rgb"), "bad input/output entry"),
    (lambda d: d.update(files={"weights": "model.onnx"}), 'no "model" entry'),
    (lambda d: d.update(files={"model": "missing.onnx"}), "files.model = 'missing.onnx' does not exist"),
])
def test_bad_manifest_names_the_field(tmp_path, edit, message):
    d = _bundle(tmp_path)
    raw = json.loads((d / MANIFEST).read_text())
    edit(raw)
    (d / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(BundleError, match=message) as e:
        read_manifest(d)
    assert str(d) in str(e.value)


def test_malformed_json_and_missing_manifest(tmp_path):
    with pytest.raises(BundleError, match="not a bundle directory"):
        read_manifest(tmp_path)
    d = _bundle(tmp_path)
    (d / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="malformed JSON"):
        read_manifest(d)


def test_publish_replaces_an_old_bundle_only_when_the_new_one_is_complete(tmp_path):
    old = _bundle(tmp_path)
    (old / "stale.bin").write_bytes(b"old")
    staging = tmp_path / ".staging"
    staging.mkdir()
    (staging / "model.onnx").write_bytes(b"new")
    m = _manifest()
    m.precision = "int8"
    write_manifest(m, staging)
    publish(staging, old)
    assert read_manifest(old).precision == "int8"
    assert not (old / "stale.bin").exists() and not staging.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.edgemm"]
