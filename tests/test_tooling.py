"""The CI helpers: the dependency tree `scripts/pip_check.py` guards."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pip_check():
    spec = importlib.util.spec_from_file_location("pip_check", ROOT / "scripts" / "pip_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pip_check_guards_edgemm_and_what_its_extras_install():
    tree = _pip_check().closure()
    # edgemm itself, the extras' direct requirements, and their own requirements (transitively).
    assert {"edgemm", "torch", "onnxruntime", "openvino", "torch-pruning", "pytest", "ruff"} <= tree
    assert "numpy" in tree and "filelock" in tree  # filelock only through torch
    assert "pip" not in tree


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/test.sh" in readme
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "bash scripts/test.sh"
