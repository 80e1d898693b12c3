"""Raspberry Pi 5: the PMIC's rails from ``vcgencmd pmic_read_adc``, summed as volts x amps per rail.

The firmware prints one line per reading, ``NAME_A current(N)=0.72000000A`` and
``NAME_V volt(N)=0.72044000V`` (other firmware: ``voltage(N)``, or the bare ``NAME_A=0.72A`` /
``NAME_V=0.72V``; all are read); a rail counts when both its current and its voltage are printed
(``EXT5V_V``, the input voltage, has no current and is left out). Units are read from the suffix
(``A``/``mA``, ``V``/``mV``). The sum is what the SoC's rails draw: it leaves out the PMIC's own
conversion losses and USB/HAT loads, so it is below wall power — reported as measured, with no
correction factor made up for it (the method says ``pi5-pmic:rails``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from edgemm.profile.energy import Unavailable, readable

LINE = re.compile(r"^\s*([^\s=]+?)_([AV])(?:\s+(?:current|voltage|volt)\(\d+\))?\s*=\s*([-+0-9.eE]+)\s*(m?)([AV])\s*$")


def rail_watts(text: str) -> float:
    """Sum of volts x amps over the rails ``text`` (one ``pmic_read_adc`` output) gives both for.

    Raises:
        ValueError: If no rail has both a current and a voltage.
    """
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        rail, kind, value, milli, unit = m.groups()
        if kind != unit:
            continue
        (amps if kind == "A" else volts)[rail] = float(value) / (1000.0 if milli else 1.0)
    both = amps.keys() & volts.keys()
    if not both:
        raise ValueError("vcgencmd pmic_read_adc printed no rail with both a current and a voltage")
    return sum(amps[r] * volts[r] for r in both)


class PmicRails:
    counter = False
    max_hz = 10.0  # one firmware mailbox round trip per reading
    method = "pi5-pmic:rails"

    def __init__(self, command: str) -> None:
        self.command = command

    def read(self) -> float:
        try:
            done = subprocess.run([self.command, "pmic_read_adc"], capture_output=True, text=True, timeout=5)
        except subprocess.TimeoutExpired:
            raise OSError("vcgencmd pmic_read_adc did not answer in 5 s") from None
        if done.returncode:
            raise OSError(f"vcgencmd pmic_read_adc exited {done.returncode}: {done.stderr.strip()[:200]}")
        return rail_watts(done.stdout)


def find(root: Path) -> PmicRails | Unavailable:
    """The PMIC through ``vcgencmd`` when it is on PATH and answers; else why not."""
    command = shutil.which("vcgencmd")
    if command is None:
        return Unavailable("no vcgencmd (Raspberry Pi 5 PMIC)")
    return readable(PmicRails(command))
