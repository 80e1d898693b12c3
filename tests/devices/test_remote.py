"""``edgemm profile --remote ssh://…`` against a real OpenSSH server on 127.0.0.1 (Debian's openssh-server).

The server is private to the test: a throw-away host key and user key, its own port, its own
configuration; the "device" is this machine, with nothing installed beyond what is already here.
The client reads only the SSH configuration the test writes (``--ssh-config``).
"""

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgemm.cli import main

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


class Server:
    """A private sshd; ``config`` is a client configuration with its host alias ``device``."""

    def __init__(self, root: Path, path_env: str) -> None:
        self.root, self.port = root, _free_port()
        root.mkdir(parents=True, exist_ok=True)
        for key in ("host", "user", "stranger"):
            _keygen(root / key)
        (root / "authorized_keys").write_text((root / "user.pub").read_text())
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {root / 'host'}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            f"PasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\n"
            f"PidFile {root / 'sshd.pid'}\nSetEnv PATH={path_env}\nSubsystem sftp internal-sftp\n")
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation directory
        subprocess.run([SSHD, "-f", str(root / "sshd_config"), "-E", str(root / "sshd.log")], check=True)
        deadline = time.monotonic() + 10
        while True:  # sshd daemonises before it listens
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError((root / "sshd.log").read_text()) from None
                time.sleep(0.05)
        self.config = self.client_config("user")

    def client_config(self, key: str) -> Path:
        path = self.root / f"client-{key}.conf"
        path.write_text(f"Host device\n  HostName 127.0.0.1\n  Port {self.port}\n  User {_user()}\n"
                        f"  IdentityFile {self.root / key}\n  IdentitiesOnly yes\n"
                        f"  UserKnownHostsFile {self.root / 'known_hosts'}\n  StrictHostKeyChecking accept-new\n")
        return path

    def stop(self) -> None:
        pid = self.root / "sshd.pid"
        if pid.is_file():
            subprocess.run(["kill", pid.read_text().strip()], check=False)


def _user() -> str:
    import getpass

    return getpass.getuser()


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    """An sshd whose sessions find this Python's ``edgemm`` on PATH (what `pip install` put there)."""
    server = Server(tmp_path_factory.mktemp("sshd"), f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin")
    yield server
    server.stop()


def _profile(bundle, server_config, *extra) -> list[str]:
    return ["profile", str(bundle), "--remote", "ssh://device", "--ssh-config", str(server_config), "--runs", "20",
            "--warmup", "2", "--layers", "0", *extra]


def test_profile_runs_on_the_device_and_reports_its_timings(device, onnx_bundle, capsys, tmp_path):
    assert main([*_profile(onnx_bundle, device.config), "--json", "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["remote"]["url"] == "ssh://device" and report["remote"]["edgemm_version"]
    assert report["runs"] >= 20 and report["threads"] == 1 and report["stages"]["inference"]["p50_ms"] > 0
    assert report["machine"]["cpu"] and report["machine"]["os"].startswith("Linux")
    assert report["bundle"] == str(onnx_bundle)
    assert not Path(report["remote"]["bundle_there"]).exists()  # the copy on the device was removed
    # The Markdown form says where it was measured.
    assert main(_profile(onnx_bundle, device.config)) == 0
    assert "measured on ssh://device" in capsys.readouterr().out


def test_bundles_are_compared_on_the_device(device, onnx_bundle, capsys, tmp_path):
    import shutil

    other = tmp_path / "other.edgemm"
    shutil.copytree(onnx_bundle, other)
    args = ["profile", str(onnx_bundle), str(other), "--remote", "ssh://device", "--ssh-config", str(device.config),
            "--runs", "10", "--warmup", "2", "--rounds", "2", "--json"]
    assert main(args) == 0
    c = json.loads(capsys.readouterr().out)
    assert [r["bundle"] for r in c["rows"]] == [str(onnx_bundle), str(other)]  # the local paths, in order
    assert c["remote"]["url"] == "ssh://device" and len(c["remote"]["bundles_there"]) == 2
    assert not any(Path(p).exists() for p in c["remote"]["bundles_there"])  # removed on the device
    assert c["rounds"] == 2 and len(c["rows"][1]["ratio_rounds"]) == 2 and c["rows"][0]["ratio"] == 1.0
    twin = tmp_path / "twin" / onnx_bundle.name  # same directory name: one would overwrite the other there
    shutil.copytree(onnx_bundle, twin)
    assert main([*args[:1], str(onnx_bundle), str(twin), *args[3:]]) == 2
    assert "same directory name" in capsys.readouterr().err


@pytest.mark.parametrize("case, message", [
    ("unreachable", "unreachable"),
    ("stranger key", "authentication refused"),
    ("no edgemm there", "edgemm is not installed on the device"),
    ("other version", "the device has edgemm"),
    ("device error", "edgemm profile failed on the device"),
    ("hangs", "did not finish in 0.01 s"),
])
def test_each_failure_is_one_line_naming_the_host(case, message, device, onnx_bundle, capsys,
                                                  monkeypatch, tmp_path):
    config, extra = device.config, []
    if case == "unreachable":
        config = tmp_path / "nowhere.conf"
        config.write_text(f"Host device\n  HostName 127.0.0.1\n  Port {_free_port()}\n")
    elif case == "stranger key":
        config = device.client_config("stranger")
    elif case == "no edgemm there":
        extra = ["--remote-edgemm", "/opt/nowhere/bin/edgemm"]
    elif case == "other version":
        monkeypatch.setattr("edgemm.devices.remote.__version__", "9.9.9")
    elif case == "device error":
        extra = ["--backend", "tflite"]  # an ONNX bundle: the device's edgemm refuses it
    else:
        extra = ["--remote-timeout", "0.01"]
    assert main([*_profile(onnx_bundle, config), *extra]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ssh://device" in err[0] and message in err[0], err
    if case in ("no edgemm there", "other version"):
        assert "pip install 'edgemm[runtime,headless]" in err[0]


def test_bad_remote_urls_and_options_are_usage_errors(onnx_bundle, capsys):
    for url in ("device", "http://device", "ssh://", "ssh://host:port", "ssh://host/path"):
        assert main(["profile", str(onnx_bundle), "--remote", url]) == 2, url
        assert "expected ssh://[user@]host[:port]" in capsys.readouterr().err
    assert main(["profile", str(onnx_bundle), "--remote", "ssh://device", "--plot", "x.png"]) == 2
    assert "--plot" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_times_every_bundle_on_the_device(device, trained, tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench", str(trained("test_concat")), "--targets", "onnx", "--precisions", "fp32,int8", "--runs", "10",
            "--threads", "1", "--out", str(out), "--remote", "ssh://device", "--ssh-config", str(device.config)]
    assert main([*args, "--json"]) == 0
    rows = {(r["target"], r["precision"]): r for r in json.loads(capsys.readouterr().out)["rows"]}
    for key in (("onnx", "fp32"), ("onnx", "int8")):
        r = rows[key]
        assert r["status"] == "ok" and r["backend"].endswith("on ssh://device") and r["inference"]["p50_ms"] > 0
        assert r["speedup"] is None  # PyTorch ran here, the bundles there: no ratio across machines
    assert rows[("pytorch", "fp32")]["speedup"] == 1.0
    assert main([*args, "--fail-under", "speedup=1.0"]) == 4
    assert "speedup not measured (timed on ssh://device)" in capsys.readouterr().err


def test_a_shipped_device_profile_applies_on_the_device(device, onnx_bundle, capsys, tmp_path):
    # the device's edgemm opens the bundle as the Jetson profile says: TensorRT -> CUDA -> CPU; this
    # "device" has only the CPU provider, and the report says which provider ran the nodes
    assert main([*_profile(onnx_bundle, device.config, "--layers", "3", "--device-profile", "jetson-orin-nano"),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["device_profile"] == "jetson-orin-nano" and report["latency_budget_ms"] == 33
    assert report["device"] == "CPUExecutionProvider" and set(report["providers"]) == {"CPUExecutionProvider"}
    own = tmp_path / "mine.yaml"  # a profile file here is not on the device
    own.write_text("name: mine\ndescription: x\ntarget: onnx\nprecision: fp32\nbackend: onnxruntime\n")
    assert main([*_profile(onnx_bundle, device.config), "--device-profile", str(own)]) == 2
    assert "give a shipped profile name (intel-igpu," in capsys.readouterr().err


@pytest.mark.slow
def test_compress_to_a_latency_budget_measured_on_the_device(device, trained, easy_manifest, tmp_path, capsys):
    (tmp_path / "recipe.yaml").write_text("student: test_gated\nstages:\n  - {type: distill, epochs: 1, batch_size: 8}\n"
                                          "  - {type: prune, ratio: 0.5, steps: 1, finetune_epochs: 1}\n")
    (tmp_path / "cpu.yaml").write_text("name: one-thread\ndescription: x\ntarget: onnx\nprecision: fp32\n"
                                       "backend: onnxruntime\nthreads: 1\ninput_size: [160, 120]\n")
    out = tmp_path / "out"
    args = ["compress", "--teacher", str(trained("test_attention") / "best.pt"), "--data", str(easy_manifest), "--recipe",
            str(tmp_path / "recipe.yaml"), "--out", str(out), "--device", "cpu", "--no-baseline",
            "--device-profile", str(tmp_path / "cpu.yaml"), "--latency-budget", "0.0001", "--max-ratio", "0.2",
            "--step-ratio", "0.2", "--budget-runs", "10", "--remote", "ssh://device", "--ssh-config", str(device.config)]
    assert main(args) == 1  # no model runs in 0.1 µs: the report says so, and how close it came
    assert "misses the 0.0001 ms budget" in capsys.readouterr().err
    lb = json.loads((out / "report.json").read_text())["latency_budget"]
    assert lb["measured_on"] == "ssh://device" and lb["remote"] == "ssh://device"
    assert [s["step"] for s in lb["steps"]] == [0, 1] and lb["steps"][1]["params"] < lb["steps"][0]["params"]
    assert all(s["backend"] == "onnxruntime" and s["latency_ms"] > 0 for s in lb["steps"] + [lb["final"]])
    # a device that cannot be reached fails before any training
    args[-1] = str(tmp_path / "nowhere.conf")
    (tmp_path / "nowhere.conf").write_text(f"Host device\n  HostName 127.0.0.1\n  Port {_free_port()}\n")
    assert main([*args[:args.index("--out") + 1], str(tmp_path / "out2"), *args[args.index("--out") + 2:]]) == 1
    err = capsys.readouterr().err
    assert "ssh://device: unreachable" in err and not list((tmp_path / "out2").rglob("*.pt"))
