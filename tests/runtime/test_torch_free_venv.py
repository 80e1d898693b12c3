"""The runtime installed on its own: a fresh venv with `pip install edgemm[runtime]` has no torch and
still profiles a bundle and runs `edgemm run` on a video file."""

import json
import shutil
import subprocess
import venv
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_runtime_extra_installs_and_runs_in_a_venv_without_torch(onnx_bundle, easy_clips, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", f"{ROOT}[runtime]"],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    probe = subprocess.run([str(py), "-c", "import importlib.util as u; print(u.find_spec('torch') is None)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "True"  # the runtime extra did not pull torch in
    edgemm = env_dir / "bin" / "edgemm"
    run = subprocess.run([str(edgemm), "run", str(onnx_bundle), "--video", str(easy_clips["green_mid"]), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    rows, last = lines[:-1], lines[-1]
    assert len(rows) == 30 and Counter(r["label"] for r in rows[8:]).most_common(1)[0][0] == "green_mid"
    assert last["summary"]["clip"]["label"] == "green_mid"  # the whole file's answer, last
    prof = subprocess.run([str(edgemm), "profile", str(onnx_bundle), "--runs", "20", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert prof.returncode == 0, prof.stderr[-3000:]
    assert json.loads(prof.stdout)["stages"]["end_to_end"]["p50_ms"] > 0
    # An ExecuTorch bundle needs torch (ExecuTorch's Python runtime links libtorch): one clear line, exit 1.
    pte = tmp_path / "pte.edgemm"
    shutil.copytree(onnx_bundle, pte)
    (pte / "model.onnx").rename(pte / "model.pte")
    manifest = json.loads((pte / "manifest.json").read_text())
    manifest.update(target="executorch", files={"model": "model.pte"}, batch=1)
    for i, tensor in enumerate(manifest["inputs"]):
        tensor["tensor"] = f"input_{i}"
    manifest["outputs"][0]["tensor"] = "output_0"
    (pte / "manifest.json").write_text(json.dumps(manifest))
    run = subprocess.run([str(edgemm), "run", str(pte), "--video", str(easy_clips["green_mid"]), "--json"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert "executorch" in run.stderr and "torch" in run.stderr and "C++ runtime" in run.stderr, run.stderr
