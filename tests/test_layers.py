"""The layers of docs/architecture.md, enforced: import-linter's contracts in pyproject.toml hold, and
the doc's diagram lists the same layers in the same order."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    """import-linter on ``cwd``'s pyproject.toml, in its own process (its CLI takes over the
    process's standard streams, which pytest's capture then finds closed)."""
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename='pyproject.toml'))"
    env = {**os.environ, **({"PYTHONPATH": str(pythonpath)} if pythonpath else {})}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_the_import_contracts_hold():
    proc = _lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in proc.stdout


def test_the_architecture_diagram_is_the_contracts_order():
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    doc = (ROOT / "docs/architecture.md").read_text()
    diagram = doc.split("## The layers", 1)[1].split("```", 2)[1]
    # each row's first column: a package, or (the bottom rows) comma-separated modules
    rows = [re.split(r"\s{2,}", line.strip())[0] for line in diagram.strip().splitlines() if line[:1].strip()]
    named = [[n.strip() for n in row.split(",") if n.strip()] for row in rows]
    packages = [f"edgemm.{n[0]}" for n in named if len(n) == 1]
    assert packages == layers[:len(packages)], "the diagram's package order differs from pyproject's layers"
    shared = {f"edgemm.{m}" for n in named if len(n) > 1 for m in n}
    contract_shared = {m.strip() for layer in layers[len(packages):] for m in layer.split(":")}
    assert shared == contract_shared


def test_a_layer_that_imports_one_above_it_breaks_the_contract(tmp_path):
    """The contract can fail: a copy of the package where export imports compress is refused."""
    copy = tmp_path / "edgemm"
    shutil.copytree(ROOT / "edgemm", copy, ignore=shutil.ignore_patterns("__pycache__"))
    onnx = copy / "export" / "onnx.py"
    onnx.write_text(onnx.read_text() + "\n\ndef _upward():\n    from edgemm.compress import recipe  # noqa\n")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    proc = _lint_imports(tmp_path, pythonpath=tmp_path)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "edgemm.export is not allowed to import edgemm.compress" in proc.stdout
