"""What a user sees when something is wrong: one line, the documented exit code, ``--debug`` for the
traceback; outputs that never create directories on the fly; what killed runs left is cleaned up."""

import os
import socket
import subprocess
import sys

import pytest

from edgemm.atomic import atomic_write_text, remove_leftovers
from edgemm.cli import main
from edgemm.errors import EdgemmError, UsageError


def _edgemm(*args, env=None):
    return subprocess.run([sys.executable, "-m", "edgemm.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_run_without_input_is_a_usage_error(onnx_bundle, capsys):
    assert main(["run", str(onnx_bundle)]) == 2
    assert capsys.readouterr().err.strip() == "edgemm run: error: nothing to read: give --camera, --mic and/or --video"


@pytest.mark.parametrize("args, message", [
    (["run", "b.edgemm", "--threads", "-3"], "argument --threads: expected a whole number >= 1, got '-3'"),
    (["bench", "b.edgemm", "--runs", "0"], "argument --runs: expected a whole number >= 1, got '0'"),
    (["run", "b.edgemm", "--threshold", "nan"], "argument --threshold: expected a finite number, got 'nan'"),
    (["profile", "b.edgemm", "--remote", "ssh://h", "--remote-timeout", "-5"],
     "argument --remote-timeout: expected a finite number > 0, got '-5'"),
])
def test_bad_numbers_are_usage_errors_before_anything_runs(args, message):
    proc = _edgemm(*args)
    assert proc.returncode == 2 and message in proc.stderr


def test_debug_shows_the_traceback_instead_of_one_line(tmp_path):
    missing = str(tmp_path / "missing.pt")
    plain = _edgemm("eval", missing)
    assert plain.returncode == 1
    assert plain.stderr.strip().splitlines() == [f"edgemm eval: error: checkpoint not found: {missing}"]
    for proc in (_edgemm("--debug", "eval", missing), _edgemm("eval", missing, env={"EDGEMM_DEBUG": "1"})):
        assert proc.returncode == 1
        assert "Traceback (most recent call last)" in proc.stderr and "FileNotFoundError" in proc.stderr


def test_every_component_error_is_one_edgemm_error():
    from edgemm.data.errors import DataError
    from edgemm.export import ExportError, VerificationFailed
    from edgemm.runtime.backends import BackendUnavailable
    from edgemm.runtime.manifest import BundleError
    from edgemm.runtime.sources.camera import CameraError
    from edgemm.runtime.sources.microphone import MicrophoneError
    from edgemm.train.loop import TrainingDiverged

    for cls in (DataError, ExportError, BackendUnavailable, BundleError, CameraError, MicrophoneError,
                TrainingDiverged, VerificationFailed):
        assert issubclass(cls, EdgemmError), cls
    assert VerificationFailed.exit_code == 3 and UsageError.exit_code == 2 and BundleError.exit_code == 1
    assert issubclass(BundleError, ValueError) and issubclass(CameraError, RuntimeError)  # old bases kept


def test_a_preview_port_in_use_is_named():
    from edgemm.runtime.sinks.preview import PreviewSink

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UsageError, match=rf"--preview: 127.0.0.1:{port} is already in use; choose another port"):
            PreviewSink(port=port)


def test_outputs_into_a_missing_directory_are_refused_not_created(tmp_path):
    from edgemm.plotting import pyplot, save
    from edgemm.runtime.sinks.recorder import RecorderSink

    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError, match=rf"--save: cannot write {missing / 'x.mp4'}: directory {missing} "
                                                "does not exist"):
        RecorderSink(missing / "x.mp4", 16000)
    fig = pyplot().figure()
    with pytest.raises(FileNotFoundError, match="--plot: cannot write"):
        save(fig, missing / "p.png")
    assert not (tmp_path / "no").exists()
    assert save(pyplot().figure(), tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".p.png.*"))


def test_what_killed_runs_left_is_removed_and_live_writers_are_left_alone(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    stale_part = tmp_path / f".report.json.{dead}.abc.part.json"
    stale_part.write_text("{")
    live_part = tmp_path / f".report.json.{alive}.def.part.json"
    live_part.write_text("{")
    stale_staging = tmp_path / f".staging-m.edgemm-{dead}-xyz"
    stale_staging.mkdir()
    (stale_staging / "model.onnx").write_bytes(b"half")
    atomic_write_text(tmp_path / "report.json", "{}")  # the next write of the same file sweeps
    assert not stale_part.exists() and live_part.exists()
    assert remove_leftovers(tmp_path, ".staging-m.edgemm-") == [stale_staging] and not stale_staging.exists()
    assert (tmp_path / "report.json").read_text() == "{}"


def test_data_make_video_without_out_uses_the_cache(capsys):
    assert main(["data", "make", "--video", "--clips-per-class", "1", "--samples-per-class", "3"]) == 0
    folder = capsys.readouterr().out.strip().splitlines()[-1]
    assert folder.startswith(os.environ["EDGEMM_CACHE"]) and os.path.isdir(folder)


def test_what_issue_34_found_is_one_line_naming_the_input(onnx_bundle, tmp_path, capsys):
    """Each of these was a raw traceback or named the wrong thing."""
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"stages:\n  - type: distill\x00\n")
    cases = [
        (["run", str(onnx_bundle), "--video", str(tmp_path)], f"{tmp_path}: a directory; expected a video file"),
        (["profile", str(onnx_bundle), "--out", str(tmp_path / "no" / "p.json")],
         f"--out: cannot write {tmp_path / 'no' / 'p.json'}: directory {tmp_path / 'no'} does not exist"),
        (["compress", "--print-recipe", "--recipe", str(tmp_path)], "expected a recipe file, found a directory"),
        (["compress", "--print-recipe", "--recipe", str(nul)],
         f"{nul}: not valid YAML (unacceptable character #x0000: special characters are not allowed in"),
        (["eval", "default", "--device", "cuda:7"], "--device cuda:7: this machine has"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)
