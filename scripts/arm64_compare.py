"""Compares `edgemm run --json` answers on arm64 with x86-64's, bundle by bundle (scripts/arm64_check.sh).

    python scripts/arm64_compare.py WORK_DIR --json OUT.json

WORK_DIR holds, per bundle NAME: NAME.host.jsonl and NAME.arm64.jsonl (`edgemm run --json`) and
NAME.arm64.profile.json (`edgemm profile --json`, emulated). A bundle agrees when every frame has
the same label on both and no class score differs by more than --max-score-diff. Prints a table and,
last, `arm64: N/M bundles agree with x86`; exits 1 unless all agree.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path


def _results(path: Path) -> list[dict]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if "label" in r]  # not the summary


def compare(work: Path, name: str, max_score_diff: float) -> dict:
    """One bundle's row: frames, labels that match, the largest score difference, emulated p50."""
    host, arm = _results(work / f"{name}.host.jsonl"), _results(work / f"{name}.arm64.jsonl")
    manifest = json.loads((work / name / "manifest.json").read_text())
    row = {"bundle": name, "target": manifest["target"], "precision": manifest["precision"],
           "frames_x86": len(host), "frames_arm64": len(arm)}
    pairs = list(zip(host, arm))
    row["same_labels"] = sum(h["label"] == a["label"] for h, a in pairs)
    row["max_score_diff"] = max((abs(h["scores"][k] - a["scores"][k]) for h, a in pairs for k in h["scores"]),
                                default=float("nan"))
    profile = work / f"{name}.arm64.profile.json"
    if profile.is_file():
        row["emulated_inference_p50_ms"] = json.loads(profile.read_text())["stages"]["inference"]["p50_ms"]
    row["agrees"] = (len(host) == len(arm) > 0 and row["same_labels"] == len(host)
                     and row["max_score_diff"] <= max_score_diff)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("work", type=Path)
    p.add_argument("--json", type=Path, required=True, help="where the rows go")
    p.add_argument("--max-score-diff", type=float, default=0.02)
    p.add_argument("--board", default="", help="what the arm64 side was (printed and stored)")
    a = p.parse_args()
    names = sorted(d.name for d in a.work.iterdir() if d.is_dir() and (d / "manifest.json").is_file())
    rows = [compare(a.work, n, a.max_score_diff) for n in names]
    print("| bundle | target | precision | frames | labels as on x86-64 | largest score difference | "
          "emulated inference p50 |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in rows:
        p50 = r.get("emulated_inference_p50_ms")
        print(f"| {r['bundle']} | {r['target']} | {r['precision']} | {r['frames_arm64']} | "
              f"{r['same_labels']}/{r['frames_x86']} | {r['max_score_diff']:.4f} | "
              + (f"{p50:.1f} ms |" if p50 is not None else "— |"))
    agree = sum(r["agrees"] for r in rows)
    a.json.write_text(json.dumps({"board": a.board, "x86": platform.processor() or platform.machine(),
                                  "max_score_diff": a.max_score_diff, "rows": rows}, indent=2))
    print(f"arm64: {agree}/{len(rows)} bundles agree with x86")
    return 0 if rows and agree == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
