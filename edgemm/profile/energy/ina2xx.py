"""A board power monitor (INA219, INA226, INA260 …) through Linux hwmon: ``power1_input`` in µW."""

from __future__ import annotations

from pathlib import Path

from edgemm.profile.energy import SysfsPower, Unavailable, readable

DRIVERS = ("ina209", "ina219", "ina220", "ina226", "ina230", "ina231", "ina238", "ina260")


def find(root: Path) -> SysfsPower | Unavailable:
    """The first readable INA2xx hwmon node; else why not."""
    for hwmon in sorted((root / "sys/class/hwmon").glob("hwmon*")):
        try:
            name = (hwmon / "name").read_text().strip()
        except OSError:
            continue
        if name in DRIVERS:
            return readable(SysfsPower(hwmon / "power1_input", 1e6, f"{name}:{hwmon.name}"))
    return Unavailable("no INA2xx board monitor under hwmon")
