"""No code runs from a file a user merely opens: a checkpoint or recipe that names model code is
refused unless the user named that code or passed --trust-model-code (edgemm.trust)."""

import csv
import json

import pytest
import torch

from edgemm.cli import main
from edgemm.models import create_model
from edgemm.train.checkpoint import load_model, make_checkpoint
from edgemm.trust import UntrustedModelCode, check_stored_reference, trust_reference


def _labels(manifest):
    with open(manifest) as f:
        return sorted({row["label"] for row in csv.DictReader(f)})


def _forged(path, name, kwargs, labels=tuple("0123456789")):
    """A checkpoint in edgemm's format (plain data: loads with weights_only) whose model names code."""
    ckpt = make_checkpoint(create_model("test_gated", num_classes=len(labels)), labels=list(labels))
    ckpt["model"] = {"name": name, "kwargs": kwargs}
    ckpt.pop("layers", None)
    torch.save(ckpt, path)
    return path


def test_a_checkpoint_naming_a_shell_function_runs_nothing(tmp_path, small_manifest, capsys):
    marker = tmp_path / "pwned"
    ckpt = _forged(tmp_path / "evil.pt", "subprocess:getoutput", {"cmd": f"touch {marker}"})
    code = main(["eval", str(ckpt), "--data", str(small_manifest)])
    err = capsys.readouterr().err
    assert code == 1 and not marker.exists()
    assert err.startswith(f"edgemm eval: error: {ckpt}: its model is code, 'subprocess:getoutput'")
    assert "--trust-model-code" in err and len(err.strip().splitlines()) == 1
    # every load goes through the same check: export and compress --teacher too
    assert main(["export", str(ckpt), "--target", "onnx"]) == 1
    assert main(["compress", "--teacher", str(ckpt), "--data", str(small_manifest), "--out", str(tmp_path / "c")]) == 1
    assert not marker.exists() and not (tmp_path / "c").exists()


def _model_file(tmp_path, marker):
    src = tmp_path / "elsewhere" / "m.py"
    src.parent.mkdir()
    src.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                   "from edgemm.models import create_model\n"
                   "def tiny(**kw):\n    return create_model('test_gated', **kw)\n")
    return src


def test_a_checkpoint_naming_a_model_file_loads_only_when_the_user_opts_in(tmp_path, small_manifest, capsys):
    marker = tmp_path / "imported"
    src = _model_file(tmp_path, marker)
    labels = _labels(small_manifest)
    ckpt = _forged(tmp_path / "m.pt", f"{src}:tiny", {"num_classes": len(labels)}, labels)
    assert main(["eval", str(ckpt), "--data", str(small_manifest), "--json"]) == 1
    assert "its model is code" in capsys.readouterr().err and not marker.exists()

    assert main(["eval", str(ckpt), "--data", str(small_manifest), "--json", "--trust-model-code"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] > 0 and marker.read_text() == "ran"


def test_python_callers_name_the_code_they_trust(tmp_path, monkeypatch):
    src = _model_file(tmp_path, tmp_path / "imported")
    ckpt = _forged(tmp_path / "m.pt", f"{src}:tiny", {"num_classes": 10})
    with pytest.raises(UntrustedModelCode, match=r"m.pt: its model is code"):
        load_model(ckpt)
    trust_reference(f"{src}:tiny")
    model, _ = load_model(ckpt)
    assert model.edgemm_spec["name"] == f"{src}:tiny"
    check_stored_reference("av_student", "anything")  # registered names are not code from a file
    monkeypatch.setenv("EDGEMM_TRUST_MODEL_CODE", "1")
    check_stored_reference("other.py:f", "x")


def test_a_recipe_naming_code_needs_the_same_opt_in(tmp_path, small_manifest, capsys):
    marker = tmp_path / "imported"
    src = _model_file(tmp_path, marker)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"student: {src}:tiny\nstages:\n  - {{type: distill, epochs: 1}}\n")
    args = ["compress", "--data", str(small_manifest), "--recipe", str(recipe), "--out", str(tmp_path / "c")]
    assert main(args) == 1
    assert "recipe student: its model is code" in capsys.readouterr().err and not marker.exists()


def test_a_model_file_that_exits_on_import_is_an_error_naming_it(tmp_path, small_manifest, capsys):
    src = tmp_path / "quits.py"
    src.write_text("import sys\nsys.exit(0)\n")
    assert main(["train", "--model", f"{src}:make", "--data", str(small_manifest), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert f"{src}: the model file called exit(0) while being imported" in err
    assert main(["check", f"{src}:make"]) != 0


@pytest.mark.parametrize("source, message", [
    ("def make(:\n", "{src}: importing the model file failed: SyntaxError: invalid syntax (bad.py, line 1)"),
    ("import torch\n\nraise KeyError('no weights here')\n",
     "{src}: importing the model file failed: KeyError: 'no weights here' (bad.py, line 3)"),
    ("def make(num_classes, **kw):\n    raise RuntimeError('boom')\n",
     "{src}:make: the factory raised RuntimeError: boom (bad.py, line 2)"),
])
def test_a_model_file_that_fails_is_one_line_naming_it_in_train_and_compress(tmp_path, small_manifest, capsys,
                                                                             source, message):
    src = tmp_path / "bad.py"
    src.write_text(source)
    expected = message.format(src=src)
    commands = [["train", "--model", f"{src}:make"]]
    if "factory" not in message:  # compress resolves its models before training a teacher (a factory runs after)
        commands.append(["compress", "--student", f"{src}:make", "--no-baseline"])
    for argv in commands:
        assert main([*argv, "--data", str(small_manifest), "--out", str(tmp_path / argv[0])]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"edgemm {argv[0]}: error: ") and err[-1].endswith(expected), err
        assert not any("Traceback" in line for line in err)
