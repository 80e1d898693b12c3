"""`tflite-runtime`, the interpreter older device images carry: a fresh venv with
`edgemm[runtime,headless,tflite-runtime]` (no ai-edge-litert, no torch) runs TFLite bundles with
LiteRT's answers."""

import json
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
from support import package_source


def _run(edgemm, bundle, clip):
    proc = subprocess.run([str(edgemm), "run", str(bundle), "--video", str(clip), "--json"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()][:-1]  # per-frame rows (the summary is last)


@pytest.mark.slow
def test_tflite_runtime_gives_litert_answers(trained, easy_clips, tmp_path):
    from edgemm.export import export

    bundles = {p: export(trained("test_concat"), target="tflite", precision=p, out=tmp_path / f"{p}.edgemm",
                         verify_samples=16, calib_samples=32, log=lambda s: None).location for p in ("fp32", "int8")}
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    source = package_source(tmp_path / "src")
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", f"{source}[runtime,headless,tflite-runtime]"],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    probe = subprocess.run([str(py), "-c", "import importlib.util as u; print([u.find_spec(m) is not None for m in "
                            "('tflite_runtime', 'ai_edge_litert', 'torch')])"], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "[True, False, False]"
    which = subprocess.run([str(py), "-c", "from edgemm.runtime.backends import tflite; print(tflite.INTERPRETER)"],
                           capture_output=True, text=True, check=True)
    assert which.stdout.strip() == "tflite_runtime"
    clip = easy_clips["green_mid"]
    here = Path(sys.executable).parent / "edgemm"  # this environment: LiteRT
    for precision, bundle in bundles.items():
        theirs, ours = _run(env_dir / "bin" / "edgemm", bundle, clip), _run(here, bundle, clip)
        assert len(theirs) == len(ours) == 30
        assert [r["label"] for r in theirs] == [r["label"] for r in ours], precision
        a = np.array([[r["scores"][k] for k in sorted(r["scores"])] for r in theirs])
        b = np.array([[r["scores"][k] for k in sorted(r["scores"])] for r in ours])
        np.testing.assert_allclose(a, b, atol=2e-5 if precision == "fp32" else 2e-2, err_msg=precision)
