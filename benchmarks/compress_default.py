"""`edgemm compress` from nothing on the embedded default set: wall time and the full report.

Usage:
    python benchmarks/compress_default.py [--out runs/bench-compress] [--json benchmarks/results/compress_default.json]
        [--seed N] [--fresh-cache]

Trains the recipe's teacher unless one is cached for this data (pass --fresh-cache to time that
too), runs the default recipe, prints report.md and writes report + timing as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from edgemm.compress import compress


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/bench-compress"))
    p.add_argument("--recipe", type=Path, default=None)
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/compress_default.json"))
    p.add_argument("--seed", type=int, default=0, help="seed of the teacher and every stage (the data stays the same)")
    p.add_argument("--fresh-cache", action="store_true", help="use an empty cache (teacher trained and timed too)")
    a = p.parse_args()
    if a.fresh_cache:
        os.environ["EDGEMM_CACHE"] = tempfile.mkdtemp(prefix="edgemm-bench-")
    from benchmarks_common import cpu_name  # noqa: E402  (benchmarks/ is the script's directory)

    t0 = time.perf_counter()
    report = compress(out=a.out, recipe=a.recipe, resume=True, seed=a.seed)
    wall = time.perf_counter() - t0
    print((a.out / "report.md").read_text())
    print(f"wall time {wall / 60:.1f} min on {cpu_name()}, {torch.get_num_threads()} threads")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"meta": {"cpu": cpu_name(), "threads": torch.get_num_threads(),
                                            "torch": torch.__version__, "wall_seconds": wall,
                                            "fresh_cache": a.fresh_cache, "seed": a.seed}, "report": report}, indent=2))
    print(f"written {a.json}")


if __name__ == "__main__":
    main()
