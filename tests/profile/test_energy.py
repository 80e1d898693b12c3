"""Energy per inference: each sensor family read from trees laid out as on the device, the
integration and idle subtraction on known samples, and `edgemm profile` on a recorded Jetson tree."""

import json
import os
import stat
import time
from pathlib import Path

import pytest

from edgemm.profile.energy import Sampler, Unavailable, energy_line, find_meter, ina3221, pi5, rapl, summarize

# What a Raspberry Pi 5 prints for `vcgencmd pmic_read_adc` (a subset of its rails, as laid out by the firmware).
PMIC = """\
     3V7_WL_SW_A current(0)=0.00390372A
       3V3_SYS_A current(1)=0.05172870A
      VDD_CORE_A current(7)=0.72000000A
     3V7_WL_SW_V volt(8)=3.73223300V
       3V3_SYS_V volt(9)=3.31153400V
      VDD_CORE_V volt(15)=0.72044000V
         EXT5V_V volt(24)=5.12264000V
"""


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{text}\n")


def orin_tree(root, milliamps=400):
    """JetPack 6 on an Orin Nano: hwmon ina3221 with VDD_IN and two of its sub-rails."""
    hw = root / "sys/class/hwmon/hwmon1"
    write(hw / "name", "ina3221")
    for n, (label, mv, ma) in enumerate((("VDD_IN", 5000, milliamps), ("VDD_CPU_GPU_CV", 4990, 150),
                                         ("VDD_SOC", 4990, 120)), start=1):
        write(hw / f"in{n}_label", label)
        write(hw / f"in{n}_input", mv)
        write(hw / f"curr{n}_input", ma)
    write(root / "sys/class/hwmon/hwmon0/name", "tegra_thermal")
    write(root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "schedutil")
    write(root / "var/lib/nvpmodel/status", "pmode:0001 fmode:quiet")
    return hw


def test_the_jetson_input_rail_alone_is_read_never_its_sub_rails(tmp_path):
    orin_tree(tmp_path)
    meter = find_meter(tmp_path)
    assert meter.method == "ina3221:VDD_IN" and not meter.counter
    assert meter.read() == pytest.approx(5.000 * 0.400)  # not + 4.99 * 0.15 + 4.99 * 0.12

    nano = tmp_path / "nano"
    dev = nano / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    write(dev / "rail_name_0", "POM_5V_IN")
    write(dev / "in_power0_input", 3120)  # mW
    write(dev / "rail_name_1", "POM_5V_GPU")
    write(dev / "in_power1_input", 800)
    meter = ina3221.find(nano)
    assert (meter.method, meter.read()) == ("ina3221:POM_5V_IN", pytest.approx(3.12))


def test_an_ina219_board_monitor_and_the_reasons_when_nothing_is_there(tmp_path):
    write(tmp_path / "sys/class/hwmon/hwmon3/name", "ina219")
    write(tmp_path / "sys/class/hwmon/hwmon3/power1_input", 2_450_000)  # µW
    meter = find_meter(tmp_path)
    assert (meter.method, meter.read()) == ("ina219:hwmon3", pytest.approx(2.45))
    empty = find_meter(tmp_path / "nothing")
    assert isinstance(empty, Unavailable)
    assert "INA3221" in empty.reason and "RAPL" in empty.reason and "vcgencmd" in empty.reason
    assert energy_line(empty.to_dict()).startswith("unavailable: no Jetson INA3221 input rail")


def test_rapl_counts_across_a_wrap_and_says_when_only_root_may_read_it(tmp_path, monkeypatch):
    pkg = tmp_path / "sys/class/powercap/intel-rapl:0"
    write(pkg / "name", "package-0")
    write(pkg / "max_energy_range_uj", 262_143_328_850)
    write(pkg / "energy_uj", 262_143_328_850 - 100)
    write(tmp_path / "sys/class/powercap/intel-rapl:0:0/name", "core")  # a part of the package: not added
    write(tmp_path / "sys/class/powercap/intel-rapl:0:0/energy_uj", 5)
    meter = find_meter(tmp_path)
    assert meter.method == "rapl:package-0" and meter.counter
    write(pkg / "energy_uj", 1_000_050)  # wrapped
    assert meter.read() == pytest.approx((100 + 1_000_050) / 1e6)
    write(pkg / "energy_uj", 3_000_050)
    assert meter.read() == pytest.approx((100 + 3_000_050) / 1e6)

    def denied(domain):
        raise PermissionError(13, "Permission denied", str(domain / "energy_uj"))

    monkeypatch.setattr(rapl.RaplCounter, "_raw", staticmethod(denied))
    gone = rapl.find(tmp_path)
    assert isinstance(gone, Unavailable) and "root only since Linux 5.10" in gone.reason


def test_the_pi5_pmic_rails_are_summed_as_volts_times_amps(tmp_path, monkeypatch):
    expected = 0.00390372 * 3.732233 + 0.0517287 * 3.311534 + 0.72 * 0.72044  # EXT5V_V has no current
    assert pi5.rail_watts(PMIC) == pytest.approx(expected)
    milli = PMIC.replace("current(7)=0.72000000A", "current(7)=720.0mA").replace("volt(15)=0.72044000V", "volt(15)=720.44mV")
    assert pi5.rail_watts(milli) == pytest.approx(expected)
    # Other firmware prints `voltage(N)`, or bare `NAME_A=…A` / `NAME_V=…V` lines: the same watts.
    assert pi5.rail_watts(PMIC.replace(" volt(", " voltage(")) == pytest.approx(expected)
    bare = "\n".join(f"{line.split()[0]}={line.split('=')[1]}" for line in PMIC.splitlines())
    assert bare.splitlines()[2] == "VDD_CORE_A=0.72000000A"
    assert pi5.rail_watts(bare) == pytest.approx(expected)
    with pytest.raises(ValueError, match="no rail with both"):
        pi5.rail_watts("EXT5V_V volt(24)=5.1V\n")
    tool = tmp_path / "bin" / "vcgencmd"  # the firmware tool, as it answers on the board
    write(tool, f"#!/bin/sh\n[ \"$1\" = pmic_read_adc ] || exit 1\ncat <<'END'\n{PMIC}END")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")
    meter = find_meter(tmp_path / "no-sysfs")
    assert (meter.method, meter.read()) == ("pi5-pmic:rails", pytest.approx(expected))


class StepMeter:
    """2 W until ``switch``, then 5 W: the idle power and the power while inferring."""

    method, counter, max_hz = "test:step", False, 1000.0

    def __init__(self):
        self.switch = None

    def read(self):
        return 5.0 if self.switch is not None and time.perf_counter_ns() >= self.switch else 2.0


def test_joules_per_inference_subtract_the_idle_power_measured_before():
    meter = StepMeter()
    with Sampler(meter, hz=500) as sampler:
        idle = (time.perf_counter_ns(), 0)
        time.sleep(0.4)
        idle = (idle[0], time.perf_counter_ns())
        meter.switch = time.perf_counter_ns()
        time.sleep(0.05)
        spans = []
        for _ in range(40):  # 40 "inferences" of 10 ms back to back
            a = time.perf_counter_ns()
            time.sleep(0.01)
            spans.append((a, time.perf_counter_ns()))
    e = summarize(sampler, idle, spans, blocks=4)
    seconds = (spans[-1][1] - spans[0][0]) / 1e9
    assert e["status"] == "measured" and e["method"] == "test:step" and e["blocks"] == 4
    assert e["idle_w"] == pytest.approx(2.0, abs=0.05) and e["mean_w"] == pytest.approx(5.0, abs=0.1)
    assert e["joules_per_inference"] == pytest.approx(3.0 * seconds / 40, rel=0.05)
    assert e["gross_joules_per_inference"] == pytest.approx(5.0 * seconds / 40, rel=0.05)
    assert e["peak_w"] == pytest.approx(5.0) and e["sample_hz"] > 100
    assert "mJ/inference" in energy_line(e)


def test_profile_reports_energy_on_a_jetson_tree_and_unavailable_here(onnx_bundle, tmp_path, monkeypatch, capsys):
    from edgemm.cli import main

    args = ["profile", str(onnx_bundle), "--runs", "20", "--warmup", "2", "--layers", "0", "--json"]
    monkeypatch.setenv("EDGEMM_POWER_ROOT", str(tmp_path / "bare"))
    assert main(args) == 0
    here = json.loads(capsys.readouterr().out)["energy"]
    assert here["status"] == "unavailable" and "RAPL" in here["reason"]

    orin_tree(tmp_path / "orin")
    monkeypatch.setenv("EDGEMM_POWER_ROOT", str(tmp_path / "orin"))
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    e = report["energy"]
    assert e["status"] == "measured" and e["method"] == "ina3221:VDD_IN" and e["seconds"] >= 5.0
    assert e["idle_w"] == pytest.approx(2.0) and e["mean_w"] == pytest.approx(2.0)  # the recorded rail holds 2 W
    assert e["gross_joules_per_inference"] == pytest.approx(2.0 * e["seconds"] / report["runs"], rel=1e-3)
    assert abs(e["joules_per_inference"]) < 1e-9 + 1e-6 * e["gross_joules_per_inference"]
    assert e["power_mode"] == {"cpu_governor": "schedutil", "nvpmodel": "pmode:0001 fmode:quiet"}
    assert main(args + ["--no-energy"]) == 0
    assert json.loads(capsys.readouterr().out)["energy"]["reason"] == "not measured (--no-energy)"


def test_nvml_reads_the_gpus_energy_counter_and_says_why_it_cannot(monkeypatch):
    """The real nvidia-ml-py on this GPU-less machine: NVML's library is missing, and the reason says so.
    Then a driver stand-in that answers as NVML does (millijoules since the driver loaded)."""
    import sys
    import types

    from edgemm.profile.energy import nvml

    missing = nvml.find(Path("/"))
    assert isinstance(missing, Unavailable) and missing.reason.startswith("NVML: ") and "Not Found" in missing.reason

    class NVMLError(Exception):
        pass

    counter = iter([1_000_000, 1_000_000, 1_000_500, 1_001_500, 1_002_500, 1_003_000])  # mJ since the driver loaded
    fake = types.SimpleNamespace(NVMLError=NVMLError, nvmlInit=lambda: None, nvmlDeviceGetCount=lambda: 1,
                                 nvmlDeviceGetHandleByIndex=lambda i: f"gpu{i}",
                                 nvmlDeviceGetTotalEnergyConsumption=lambda handle: next(counter))
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    meter = nvml.find(Path("/"))
    assert (meter.method, meter.counter) == ("nvml:gpu0", True)
    assert [meter.read() for _ in range(4)] == [1000.0, 1000.5, 1001.5, 1002.5]  # joules
    assert find_meter(Path("/nonexistent"), gpu=True).method == "nvml:gpu0"  # a CUDA/TensorRT run: the GPU first
    assert isinstance(nvml.find(Path("/"), index=1), Unavailable)  # one GPU only

    def unsupported(handle):
        raise NVMLError("Not Supported")

    fake.nvmlDeviceGetTotalEnergyConsumption = unsupported  # a GPU older than Volta
    old = nvml.find(Path("/"))
    assert isinstance(old, Unavailable) and old.reason == "nvml:gpu0: unreadable (total energy: Not Supported)"
