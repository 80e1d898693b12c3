"""A Jetson's board input rail from its INA3221 monitor: the whole module's power, never a sum of rails.

Orin (JetPack 5/6): hwmon ``ina3221`` with ``inN_label`` ``VDD_IN``, bus voltage ``inN_input`` (mV)
and current ``currN_input`` (mA). Nano, TX2, Xavier (JetPack 4): iio ``ina3221x`` with
``rail_name_N`` ``POM_5V_IN`` (or ``VDD_IN``) and ``in_power{N}_input`` (mW). The other rails
(``VDD_CPU_GPU_CV``, ``VDD_SOC`` …) are parts of the input rail: summing them into it double counts.
"""

from __future__ import annotations

from pathlib import Path

from edgemm.profile.energy import SysfsPower, Unavailable, readable

INPUT_RAILS = ("VDD_IN", "POM_5V_IN")


class HwmonRail:
    """Watts of one labelled hwmon channel: voltage (mV) x current (mA)."""

    counter = False
    max_hz = 200.0

    def __init__(self, volts: Path, amps: Path, label: str) -> None:
        self.volts, self.amps = volts, amps
        self.method = f"ina3221:{label}"

    def read(self) -> float:
        return int(self.volts.read_text()) * int(self.amps.read_text()) / 1e6


def _text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def find(root: Path) -> HwmonRail | SysfsPower | Unavailable:
    """The input rail of the first INA3221 that has one, readable; else why not."""
    for hwmon in sorted((root / "sys/class/hwmon").glob("hwmon*")):
        if _text(hwmon / "name") != "ina3221":
            continue
        for label_file in sorted(hwmon.glob("in*_label")):
            label = _text(label_file)
            if label in INPUT_RAILS:
                n = label_file.name[2:-len("_label")]
                rail = HwmonRail(hwmon / f"in{n}_input", hwmon / f"curr{n}_input", label)
                return readable(rail)
    for device in sorted((root / "sys/bus/i2c/drivers/ina3221x").glob("*/iio:device*")):
        for name_file in sorted(device.glob("rail_name_*")):
            label = _text(name_file)
            if label in INPUT_RAILS:
                power = device / f"in_power{name_file.name.rsplit('_', 1)[1]}_input"  # mW
                return readable(SysfsPower(power, 1e3, f"ina3221:{label}"))
    return Unavailable("no Jetson INA3221 input rail (VDD_IN / POM_5V_IN)")
