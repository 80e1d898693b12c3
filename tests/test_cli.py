import json
import os
import subprocess
import sys

from edgemm._stdio import stdout_to_stderr
from edgemm.cli import main
from edgemm.cli._common import print_json

SUBCOMMANDS = ["train", "eval", "compress", "export", "run", "profile", "bench", "devices", "data"]


def test_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "edgemm.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for name in SUBCOMMANDS:
        assert f"    {name} " in out, name


def test_unknown_model_is_a_clear_error(small_manifest, tmp_path, capsys):
    assert main(["train", "--model", "resnet9000", "--data", str(small_manifest), "--out", str(tmp_path)]) == 1
    assert "unknown model 'resnet9000'; registered:" in capsys.readouterr().err


def test_data_make_writes_the_default_set(tmp_path, capsys):
    assert main(["data", "make", "--out", str(tmp_path), "--samples-per-class", "3"]) == 0
    manifest = capsys.readouterr().out.strip()
    lines = open(manifest).read().splitlines()
    assert lines[0] == "image,audio,label,split,corrupt" and len(lines) == 31


def test_models_lists_the_registry_and_says_when_nothing_matches(capsys):
    assert main(["models", "av_*"]) == 0
    names = capsys.readouterr().out.split()
    assert {"av_student", "av_teacher", "av_teacher_resnet18"} <= set(names) and all(n.startswith("av_") for n in names)
    assert main(["models", "--json", "test_*"]) == 0
    assert json.loads(capsys.readouterr().out) == ["test_attention", "test_concat", "test_gated", "test_late",
                                                    "test_weighted"]
    assert main(["models", "nothing_like_this*"]) == 1
    assert "no registered model matches 'nothing_like_this*'" in capsys.readouterr().out


def test_json_mode_moves_library_chatter_off_stdout(capfd):
    # What a converter does: write to file descriptor 1 from native code, and print from Python.
    with stdout_to_stderr():
        os.write(1, b"native progress line\n")
        print("python progress line")
    print_json({"ok": True})
    out, err = capfd.readouterr()
    assert json.loads(out) == {"ok": True}
    assert "native progress line" in err and "python progress line" in err


def test_json_output_of_a_command_is_one_document(capfd):
    assert main(["devices", "--json"]) == 0
    out = capfd.readouterr().out
    assert [p["name"] for p in json.loads(out)] and out.count("\n") == 1


def test_interrupt_messages_name_what_resumes():
    from edgemm.cli import _interrupted

    assert "edgemm train --resume" in _interrupted("train")
    assert "edgemm compress --resume` reuses the stages" in _interrupted("compress")
    assert "--resume" not in _interrupted("export") and "nothing was published" in _interrupted("export")
