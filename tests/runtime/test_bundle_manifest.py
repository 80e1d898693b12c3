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
                    inputs=[TensorSpec("image", "image", "image", ["batch", 3, 16, 16], "float32", "NCHW", {"size": 16})],
                    outputs=[TensorSpec("logits", "logits", "scores", ["batch", 2], "float32", "NC")],
                    preprocess={"image": {"size": 16}}, verification={"status": "passed"})


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
    (lambda d: d["inputs"][0].update(colour="rgb"), r"'inputs\[0\]': unknown key\(s\) \['colour'\]"),
    (lambda d: d.update(files={"weights": "model.onnx"}), 'no "model" entry'),
    (lambda d: d.update(files={"model": "missing.onnx"}), "files.model = 'missing.onnx' does not exist"),
    # issue 18: what a hand-edited or hostile manifest gets
    (lambda d: d.update(schema_version=0), "schema_version 0 is not supported"),
    (lambda d: d.update(labels=["a", "b", "c"]), "lists 3 labels but the model's output has 2 scores"),
    (lambda d: d.update(labels=["a"]), "lists 1 labels but the model's output has 2 scores"),
    (lambda d: d.update(files={"model": "../other.edgemm/model.onnx"}), "points outside the bundle"),
    (lambda d: d.update(files={"model": "/etc/passwd"}), "expected a file name relative to the bundle"),
    (lambda d: d["preprocess"].update(audio={"sample_rate": "16000"}),
     r"preprocess: audio.sample_rate: expected a whole number, got '16000'"),
    (lambda d: d["preprocess"]["image"].update(mean=[float("nan"), 0.5, 0.5]), "preprocess: image.mean: expected a list"),
    (lambda d: d["preprocess"]["image"].update(size=1000000), r"image.size must be a whole number in \[16, 2048\]"),
    # issue 34: fields of the wrong type were raw tracebacks
    (lambda d: d.update(checksums=["x"]), "field 'checksums' must be an object, not list"),
    (lambda d: d.update(checksums={"model": 5}), "field 'checksums.model' must be an object with bytes and sha256"),
    (lambda d: d.update(verification="passed"), "field 'verification' must be an object, not str"),
    (lambda d: d.update(runtime=3), "field 'runtime' must be an object, not int"),
    (lambda d: d.update(target="onnx2"), r"field 'target' is 'onnx2'; expected one of \['onnx'"),
    (lambda d: d.update(precision="int3"), r"field 'precision' is 'int3'; expected one of \['fp32'"),
    (lambda d: d.update(outputs="logits"), "field 'outputs' must be a list, not str"),
    (lambda d: d["inputs"][0].update(dtype="float99"), r"field 'inputs\[0\].dtype' is 'float99'"),
    (lambda d: d["inputs"][0].update(shape="1x3"), r"field 'inputs\[0\].shape' is '1x3'"),
    (lambda d: d.update(batch=-1), "field 'batch' is -1; expected a positive integer"),
    (lambda d: d.update(frontend="gpu"), r"frontend: 'gpu' is not one of \['graph', 'runtime'\]"),
    (lambda d: d.update(frontend=1), "field 'frontend' must be a text, not int"),
])
def test_bad_manifest_names_the_field(tmp_path, edit, message):
    d = _bundle(tmp_path)
    raw = json.loads((d / MANIFEST).read_text())
    edit(raw)
    (d / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(BundleError, match=message) as e:
        read_manifest(d)
    assert str(d) in str(e.value)


def _with_audio(runs_in: str) -> Manifest:
    m = _manifest()
    m.inputs.append(TensorSpec("audio", "audio", "audio", ["batch", 1, 64, 98], "float32", "NCFT",
                               {"frontend": {"type": "log-mel", "runs_in": runs_in}}))
    return m


def test_where_the_frontend_runs_is_a_field_older_bundles_say_in_their_audio_input(tmp_path):
    from edgemm.vocab import FrontendPlace

    d = _bundle(tmp_path, _with_audio("runtime"))
    d_raw = json.loads((d / MANIFEST).read_text())
    assert d_raw["frontend"] == "graph"  # the field as written (its default) disagrees with the description
    with pytest.raises(BundleError, match="frontend 'graph' disagrees with its audio input, whose log-mel runs in 'runtime'"):
        read_manifest(d)
    d_raw.pop("frontend")  # a bundle written before the field: the description decides
    (d / MANIFEST).write_text(json.dumps(d_raw))
    assert read_manifest(d).frontend is FrontendPlace.RUNTIME
    d_raw["frontend"] = "runtime"
    (d / MANIFEST).write_text(json.dumps(d_raw))
    assert read_manifest(d).frontend is FrontendPlace.RUNTIME
    (tmp_path / "plain").mkdir()
    assert read_manifest(_bundle(tmp_path / "plain")).frontend is FrontendPlace.GRAPH  # says neither: in the graph


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


def test_a_symlink_out_of_the_bundle_is_refused(tmp_path):
    d = _bundle(tmp_path)
    (tmp_path / "elsewhere.onnx").write_bytes(b"x")
    (d / "model.onnx").unlink()
    (d / "model.onnx").symlink_to(tmp_path / "elsewhere.onnx")
    with pytest.raises(BundleError, match="points outside the bundle"):
        read_manifest(d)


def test_a_damaged_model_file_is_named_with_what_was_expected(tmp_path):
    from edgemm.runtime.manifest import file_checksum

    d = _bundle(tmp_path)
    (d / "model.onnx").write_bytes(b"0123456789")
    m = _manifest()
    m.checksums = {"model": file_checksum(d / "model.onnx")}
    write_manifest(m, d)
    assert read_manifest(d).checksums["model"]["bytes"] == 10
    (d / "model.onnx").write_bytes(b"01234")  # an interrupted copy
    with pytest.raises(BundleError, match=r"model.onnx is damaged \(expected 10 bytes, sha256 [0-9a-f]{16}…; found 5 bytes\)"):
        read_manifest(d)
    (d / "model.onnx").write_bytes(b"0123456780")  # same size, other bytes
    with pytest.raises(BundleError, match="found 10 bytes, sha256"):
        read_manifest(d)


@pytest.mark.parametrize("text, message", [
    ("[" * 5000 + "]" * 5000, "nested deeper than 64 levels"),
    ('{"a": ' * 100 + "1" + "}" * 100, "nested deeper than 64 levels"),
])
def test_manifest_json_is_bounded(tmp_path, text, message):
    d = _bundle(tmp_path)
    (d / MANIFEST).write_text(text)
    with pytest.raises(BundleError, match=message):
        read_manifest(d)
