"""Intel and AMD RAPL through Linux powercap: the CPU packages' energy counters, wrap handled.

``/sys/class/powercap/intel-rapl:N/energy_uj`` (AMD's packages appear under the same name) counts
microjoules and wraps at ``max_energy_range_uj``; the sub-domains (``intel-rapl:N:M``: cores, uncore,
dram) are parts of their package and are not added. Since Linux 5.10 ``energy_uj`` is readable by
root only (CVE-2020-8694): as another user the answer is ``unavailable`` with that reason.
"""

from __future__ import annotations

import re
from pathlib import Path

from edgemm.profile.energy import Unavailable

PACKAGE = re.compile(r"intel-rapl:\d+$")


class RaplCounter:
    """Cumulative joules of every package since the first read, across counter wraps."""

    counter = True
    max_hz = 100.0

    def __init__(self, domains: list[Path]) -> None:
        self.domains = domains
        self.ranges = [int((d / "max_energy_range_uj").read_text()) for d in domains]
        self.method = "rapl:" + "+".join((d / "name").read_text().strip() for d in domains)
        self._last = [self._raw(d) for d in domains]
        self._total_uj = 0

    @staticmethod
    def _raw(domain: Path) -> int:
        return int((domain / "energy_uj").read_text())

    def read(self) -> float:
        for i, d in enumerate(self.domains):
            now = self._raw(d)
            step = now - self._last[i]
            if step < 0:  # the counter wrapped at max_energy_range_uj
                step += self.ranges[i]
            self._total_uj += step
            self._last[i] = now
        return self._total_uj / 1e6


def find(root: Path) -> RaplCounter | Unavailable:
    """A counter over every readable package; else why not."""
    domains = sorted(d for d in (root / "sys/class/powercap").glob("intel-rapl:*") if PACKAGE.search(d.name))
    if not domains:
        return Unavailable("no RAPL package under /sys/class/powercap")
    try:
        return RaplCounter(domains)
    except PermissionError:
        return Unavailable("RAPL energy_uj is readable by root only since Linux 5.10: run as root or "
                           "grant read access (a udev rule or chmod on energy_uj)")
    except (OSError, ValueError) as e:
        return Unavailable(f"RAPL unreadable ({e})")
