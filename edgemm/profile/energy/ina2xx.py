"""A board power monitor (INA219, INA226, INA260 …) through Linux hwmon: ``power1_input`` in µW."""

from __future__ import annotations

from pathlib import Path

from edgemm.profile.energy import Unavailable

DRIVERS = ("ina209", "ina219", "ina220", "ina226", "ina230", "ina231", "ina238", "ina260")


class HwmonPower:
    counter = False
    max_hz = 200.0

    def __init__(self, power: Path, name: str) -> None:
        self.power = power
        self.method = f"{name}:{power.parent.name}"

    def read(self) -> float:
        return int(self.power.read_text()) / 1e6


def find(root: Path) -> HwmonPower | Unavailable:
    """The first readable INA2xx hwmon node; else why not."""
    for hwmon in sorted((root / "sys/class/hwmon").glob("hwmon*")):
        try:
            name = (hwmon / "name").read_text().strip()
        except OSError:
            continue
        if name in DRIVERS:
            meter = HwmonPower(hwmon / "power1_input", name)
            try:
                meter.read()
            except (OSError, ValueError) as e:
                return Unavailable(f"{meter.method}: unreadable ({e})")
            return meter
    return Unavailable("no INA2xx board monitor under hwmon")
