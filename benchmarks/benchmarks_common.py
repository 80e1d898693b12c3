"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_json(path: Path, results: dict) -> None:
    """Writes a benchmark's results (indented JSON), making the folder."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))


def print_table(title: str, header: list[str], align: str, rows: list[list]) -> None:
    """Prints ``title`` and a Markdown table; ``align`` has one character per column: ``l`` or ``r``."""
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if c == "l" else "---:" for c in align) + "|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


def _heldout_csv(seed: int, samples_per_class: int) -> Path:
    import tempfile

    from edgemm.data.synthetic import SyntheticConfig, make_default

    return make_default(SyntheticConfig(samples_per_class=samples_per_class, seed=seed),
                        root=Path(tempfile.gettempdir()) / "edgemm-heldout")


def heldout_set(preprocess, labels: list[str], *, seed: int = 2, samples_per_class: int = 300):
    """Every sample of a generated set drawn with another seed: data no run has trained or selected on.

    Args:
        preprocess: The model's preprocessing.
        labels: The checkpoint's label order.
        seed: Generator seed (the default set uses 0).
        samples_per_class: Size of the set (300 gives n = 3000, a 95 % interval of about ±0.9 pts).
    """
    from torch.utils.data import ConcatDataset

    from edgemm.data import open_dataset

    splits = open_dataset(_heldout_csv(seed, samples_per_class), preprocess, labels=labels)
    return ConcatDataset([splits.train, splits.val, splits.test])


def intact_mask(dataset, *, seed: int = 2, samples_per_class: int = 300):
    """Per sample of ``heldout_set(...)`` (same seed and size), whether both modalities are intact.

    On the others (10 %) the best any model can do is a coin flip between two classes, which adds
    noise to every comparison.
    """
    import csv

    import numpy as np

    csv_path = _heldout_csv(seed, samples_per_class)
    with csv_path.open(newline="") as f:
        intact = {(csv_path.parent / row["image"]).resolve() for row in csv.DictReader(f) if row["corrupt"] == "none"}
    return np.array([Path(r.image).resolve() in intact for part in dataset.datasets for r in part.records])
