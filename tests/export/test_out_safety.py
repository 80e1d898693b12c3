"""`--out` never deletes what edgemm did not write; gates reject numbers that can never fail."""

import os

import pytest

from edgemm.cli import main
from edgemm.models import create_model
from edgemm.runtime.manifest import check_replaceable, publish
from edgemm.train.checkpoint import atomic_torch_save, make_checkpoint


@pytest.fixture
def checkpoint(tmp_path):
    model = create_model("test_gated", num_classes=3)
    return atomic_torch_save(make_checkpoint(model, labels=["a", "b", "c"]), tmp_path / "m.pt")


def test_export_refuses_an_out_directory_that_is_not_a_bundle(checkpoint, tmp_path, capsys):
    user = tmp_path / "photos"
    user.mkdir()
    (user / "holiday.jpg").write_bytes(b"precious")
    assert main(["export", str(checkpoint), "--target", "onnx", "--out", str(user), "--no-verify"]) == 1
    err = capsys.readouterr().err
    assert f"--out {user}: it is a directory that is not a bundle (no manifest.json)" in err
    assert (user / "holiday.jpg").read_bytes() == b"precious" and sorted(p.name for p in user.iterdir()) == ["holiday.jpg"]


def test_export_refuses_an_out_path_that_is_a_file(checkpoint, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert main(["export", str(checkpoint), "--target", "onnx", "--out", str(notes), "--no-verify"]) == 1
    assert f"--out {notes}: it is a file" in capsys.readouterr().err
    assert notes.read_text() == "mine" and not list(tmp_path.glob(".old-*"))


@pytest.mark.slow
def test_an_existing_bundle_is_replaced_and_nothing_else_is_touched(checkpoint, tmp_path):
    out = tmp_path / "b.edgemm"
    assert main(["export", str(checkpoint), "--target", "onnx", "--out", str(out), "--no-verify"]) == 0
    with (out / "manifest.json").open() as first:  # held open, its inode cannot be reused
        assert main(["export", str(checkpoint), "--target", "onnx", "--out", str(out), "--no-verify"]) == 0
        # a new bundle in the same place (the same content: the float ONNX export is reused in-process)
        assert (out / "manifest.json").stat().st_ino != os.fstat(first.fileno()).st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.edgemm", "m.pt"]
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(FileExistsError, match="not a bundle"):  # the last line of defence, whoever calls it
        publish(staging, tmp_path)
    assert check_replaceable(tmp_path / "free") == tmp_path / "free"


@pytest.mark.parametrize("args, message", [
    (["export", "m.pt", "--target", "onnx", "--precision", "int8", "--max-drop", "nan"], "expected a finite number"),
    (["export", "m.pt", "--target", "onnx", "--precision", "int8", "--max-drop", "-1"], "expected a finite number >= 0"),
])
def test_gates_reject_numbers_that_can_never_fail(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_bench_floor_must_be_finite():
    from edgemm.deploy.bench import parse_floor

    assert parse_floor("accuracy=0.9") == ("accuracy", 0.9)
    for bad in ("accuracy=nan", "accuracy=inf"):
        with pytest.raises(ValueError, match="the floor must be a finite number"):
            parse_floor(bad)


@pytest.mark.slow
def test_a_failed_re_export_leaves_the_good_bundle_in_place(trained, tmp_path, monkeypatch, capsys):
    import numpy as np

    import edgemm.export.bundle as bundle_mod
    from edgemm.runtime.manifest import read_manifest

    out, run = tmp_path / "m.edgemm", trained("test_concat")
    argv = ["export", str(run), "--target", "onnx", "--out", str(out), "--verify-samples", "8"]
    assert main(argv) == 0
    good = {p.name: p.read_bytes() for p in out.iterdir()}
    real = bundle_mod.torch_runner
    monkeypatch.setattr(bundle_mod, "torch_runner",  # a reference the export disagrees with: verification fails
                        lambda model: (lambda *a: real(model)(*a) + np.eye(1, 4, 0, dtype=np.float32) * 0.01))
    assert main(argv) == 3
    err = capsys.readouterr().err
    failed = tmp_path / "m.failed.edgemm"
    assert f"the failed bundle is kept at {failed}" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == good and read_manifest(out).verified
    assert read_manifest(failed).verification["status"] == "failed"
    assert main(argv) == 3  # a failed bundle replaces only a failed one
    assert {p.name: p.read_bytes() for p in out.iterdir()} == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.edgemm", "m.failed.edgemm"]
