"""Temperature, clock and throttling, where the device exposes them (Jetson, Raspberry Pi, most Linux).

A small board that heats up clocks down, and its latency with it: a profile that does not say so
cannot be compared with the next one. Read from Linux's sysfs, torch-free and without tools:
thermal zones (``/sys/class/thermal``, named ``CPU-therm``, ``GPU-therm`` on a Jetson,
``cpu-thermal`` on a Raspberry Pi), the first CPU's current and maximum clock (cpufreq), and the
Raspberry Pi firmware's throttling flags (what ``vcgencmd get_throttled`` prints).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Raspberry Pi firmware ``get_throttled`` bits: now (0-3) and since boot (16-19).
THROTTLE_BITS = {0: "under-voltage", 1: "frequency capped", 2: "throttled", 3: "soft temperature limit"}
PI_THROTTLED = "sys/devices/platform/soc/soc:firmware/get_throttled"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:  # a zone that cannot be read (permissions, a sensor that is off) is left out
        return None


def throttle_flags(value: int) -> dict[str, list[str]]:
    """The Raspberry Pi ``get_throttled`` word as names: what holds ``now`` and what happened ``since_boot``."""
    return {"now": [n for b, n in THROTTLE_BITS.items() if value >> b & 1],
            "since_boot": [n for b, n in THROTTLE_BITS.items() if value >> (b + 16) & 1]}


def read_thermal(root: Path = Path("/")) -> dict[str, Any] | None:
    """Zone temperatures in °C, the CPU clock in MHz and the throttling flags; None where the
    machine exposes none of them (most VMs and containers, macOS, Windows)."""
    zones: dict[str, float] = {}
    for zone in sorted((root / "sys/class/thermal").glob("thermal_zone*")):
        temp = _read(zone / "temp")
        if temp and temp.lstrip("-").isdigit():
            zones[_read(zone / "type") or zone.name] = int(temp) / 1000
    out: dict[str, Any] = {}
    if zones:
        out["celsius"] = zones
    freq = root / "sys/devices/system/cpu/cpu0/cpufreq"
    cur, top = _read(freq / "scaling_cur_freq"), _read(freq / "cpuinfo_max_freq")
    if cur and top and cur.isdigit() and top.isdigit():
        out["cpu_mhz"], out["cpu_max_mhz"] = int(cur) / 1000, int(top) / 1000
    word = _read(root / PI_THROTTLED)
    if word:
        try:
            out["throttled"] = throttle_flags(int(word, 16))
        except ValueError:
            pass
    return out or None


def summary(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """One line for the Markdown report: hottest zone before -> after, clock, throttling now."""
    if not after:
        return ""
    parts = []
    if after.get("celsius"):
        hot = max(after["celsius"], key=after["celsius"].get)
        start = (before or {}).get("celsius", {}).get(hot)
        parts.append(f"{hot} {'' if start is None else f'{start:.1f} → '}{after['celsius'][hot]:.1f} °C")
    if "cpu_mhz" in after:
        parts.append(f"CPU clock {after['cpu_mhz']:.0f} of {after['cpu_max_mhz']:.0f} MHz")
    if "throttled" in after:
        now = after["throttled"]["now"]
        parts.append("THROTTLED: " + ", ".join(now) if now else "not throttled")
    return " · ".join(parts)
