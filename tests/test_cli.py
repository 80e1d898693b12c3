import subprocess
import sys


from edgemm.cli import main

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
