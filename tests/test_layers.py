"""The layers of docs/architecture.md, enforced: import-linter's contracts in pyproject.toml hold, and
the doc's diagram lists the same layers in the same order."""

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_import_contracts_hold(monkeypatch, capsys):
    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0, capsys.readouterr().out[-3000:]


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
    import os
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "edgemm"
    shutil.copytree(ROOT / "edgemm", copy, ignore=shutil.ignore_patterns("__pycache__"))
    onnx = copy / "export" / "onnx.py"
    onnx.write_text(onnx.read_text() + "\n\ndef _upward():\n    from edgemm.compress import recipe  # noqa\n")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename='pyproject.toml'))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "edgemm.export is not allowed to import edgemm.compress" in proc.stdout
