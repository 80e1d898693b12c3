"""Temperature, clock and throttling read from a sysfs tree laid out as a Jetson and a Raspberry Pi lay it out."""

from pathlib import Path

from edgemm.profile.thermal import read_thermal, summary, throttle_flags


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def test_a_jetson_tree(tmp_path):
    for i, (kind, milli) in enumerate([("CPU-therm", "47500"), ("GPU-therm", "45000"), ("PMIC-Die", "bad")]):
        _write(tmp_path, f"sys/class/thermal/thermal_zone{i}/type", kind)
        _write(tmp_path, f"sys/class/thermal/thermal_zone{i}/temp", milli)
    _write(tmp_path, "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "1190400")
    _write(tmp_path, "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "1510400")
    got = read_thermal(tmp_path)
    assert got == {"celsius": {"CPU-therm": 47.5, "GPU-therm": 45.0}, "cpu_mhz": 1190.4, "cpu_max_mhz": 1510.4}
    before = {"celsius": {"CPU-therm": 41.0, "GPU-therm": 40.0}}
    assert summary(before, got) == "CPU-therm 41.0 → 47.5 °C · CPU clock 1190 of 1510 MHz"


def test_a_raspberry_pi_that_throttled(tmp_path):
    _write(tmp_path, "sys/class/thermal/thermal_zone0/type", "cpu-thermal")
    _write(tmp_path, "sys/class/thermal/thermal_zone0/temp", "82300")
    _write(tmp_path, "sys/devices/platform/soc/soc:firmware/get_throttled", "50005")  # as the firmware writes it
    got = read_thermal(tmp_path)
    assert got["throttled"] == {"now": ["under-voltage", "throttled"], "since_boot": ["under-voltage", "throttled"]}
    assert summary(None, got) == "cpu-thermal 82.3 °C · THROTTLED: under-voltage, throttled"
    assert throttle_flags(0x80000) == {"now": [], "since_boot": ["soft temperature limit"]}
    assert summary(None, {"throttled": throttle_flags(0)}) == "not throttled"


def test_nothing_exposed_is_none(tmp_path):
    assert read_thermal(tmp_path) is None and summary(None, None) == ""
