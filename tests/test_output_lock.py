"""One run per output directory: a second edgemm run on the same --out is a clear error; a lock left
by a killed run is taken over; nothing is left behind."""

import json
import os
import subprocess
import sys
import time

import pytest

from edgemm.atomic import LOCK, OutputLocked, output_lock


def test_a_second_run_on_the_same_directory_is_refused_naming_the_first(tmp_path):
    with output_lock(tmp_path / "run", "edgemm compress (out=run)"):
        held = json.loads((tmp_path / "run" / LOCK).read_text())
        assert held["pid"] == os.getpid() and held["command"] == "edgemm compress (out=run)"
        with pytest.raises(OutputLocked, match=rf"run is in use by another edgemm run \(PID {os.getpid()} on .*: "
                                               r"edgemm compress \(out=run\)\)"):
            with output_lock(tmp_path / "run", "edgemm compress (out=run)"):
                pass
    assert not (tmp_path / "run").exists()  # created for the run, left empty: removed


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_notice(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK).write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename, "command": "x"}))
    (tmp_path / "best.pt").write_text("kept")
    notes = []
    with output_lock(tmp_path, "edgemm train", log=notes.append):
        assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    assert notes == [f"{tmp_path}: taking over the lock of an edgemm run that is gone (PID {int(dead.stdout)})"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]  # the user's directory and files stay


def test_two_compress_runs_on_one_out_the_later_fails(tmp_path, small_manifest):
    """The probe's race: two `edgemm compress` on the same --out started together; one must fail clearly."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("student: test_gated\nteacher: {model: test_gated, epochs: 1, min_steps: 2}\n"
                      "stages:\n  - {type: distill, epochs: 1, batch_size: 8}\n")
    cmd = [sys.executable, "-m", "edgemm.cli", "compress", "--data", str(small_manifest), "--recipe", str(recipe),
           "--out", str(tmp_path / "out"), "--device", "cpu", "--no-baseline"]
    env = {**os.environ, "EDGEMM_CACHE": str(tmp_path / "cache")}
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for _ in range(600):  # until the first run holds the lock
        if (tmp_path / "out" / LOCK).exists():
            break
        first.poll()
        assert first.returncode is None, first.communicate()[1][-2000:]
        time.sleep(0.05)
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert second.returncode == 1 and "is in use by another edgemm run" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1 and not (tmp_path / "out" / LOCK).exists()


def test_temp_folders_of_killed_runs_are_removed_at_the_next_start(tmp_path, monkeypatch):
    """SIGKILL leaves `edgemm-export-*` / `edgemm-budget-*` in the temp directory: the next run removes
    those whose process is gone, never a live one's."""
    import tempfile

    from edgemm.atomic import scratch, scratch_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    litter = tmp_path / f"edgemm-export-{int(dead.stdout)}-x1y2"
    live = tmp_path / f"edgemm-export-{os.getpid()}-a1b2"
    for d in (litter, live):
        (d / "float.onnx").parent.mkdir()
        (d / "float.onnx").write_bytes(b"x")
    fresh = scratch_dir("export")
    assert not litter.exists() and live.exists() and fresh.name.startswith(f"edgemm-export-{os.getpid()}-")
    with scratch("budget") as tmp:
        assert tmp.is_dir() and tmp.parent == tmp_path
    assert not tmp.exists()


def test_an_out_below_a_file_is_one_line(tmp_path):
    from edgemm.atomic import OutputError, output_lock

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"--out .*notes.txt/run: cannot create the directory \(Not a directory\)"):
        with output_lock(tmp_path / "notes.txt" / "run", "edgemm train"):
            pass
    assert (tmp_path / "notes.txt").read_text() == "mine"
