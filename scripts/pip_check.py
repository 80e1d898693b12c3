"""``pip check``, failing on every unmet requirement of edgemm or of anything it installs.

A machine may carry unrelated packages whose own pins are broken (a cloud SDK pinning pydantic,
say); those lines are printed but do not fail. An unmet requirement of edgemm[dev] or of any
distribution in its dependency tree fails the run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str = "edgemm", extras: tuple[str, ...] = ("dev",)) -> set[str]:
    """Every distribution ``root[extras]`` pulls in, recursively, as installed here."""
    seen: set[str] = set()
    todo = [(root, set(extras))]
    while todo:
        name, wanted = todo.pop()
        key = _canon(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if key in seen and not wanted:
            continue
        seen.add(key)
        for text in dist.requires or []:
            req = Requirement(text)
            env = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(e) for e in env):
                todo.append((req.name, set(req.extras)))
    return seen


def main() -> int:
    proc = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    if proc.returncode == 0:
        print(proc.stdout.strip())
        return 0
    ours = closure()
    bad = []
    for line in proc.stdout.splitlines():
        owner = line.split(" ", 1)[0]  # the distribution whose requirement is not met
        touches = _canon(owner) in ours
        print(("FAIL  " if touches else "other ") + line)
        if touches:
            bad.append(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
