"""Soak and fault injection: `edgemm run` for a long time on a live camera + microphone, with faults.

Runs `edgemm run BUNDLE --camera <loopback MJPEG> --mic pulse --json` for `--minutes`, on this
machine's loopback camera (ffmpeg serving a test pattern over HTTP on 127.0.0.1) and virtual
microphone (a private PulseAudio null sink with a tone playing into it), and meanwhile:
- samples the run's resident memory (RSS, /proc) every 5 s;
- at 1/3 of the time kills the camera server and restarts it 3 s later (the camera must reconnect);
- at 1/2 suspends the microphone's source for 3 s (PulseAudio `suspend-source`), then resumes it;
- at the end stops the run with SIGINT (Ctrl-C) and reads its summary.
Then, separately, fills the disk under `--save`: a run recording into a 200 KiB tmpfs (root only)
must end with one error line, a non-zero exit, and nothing half-written left at the target path.

Reported: RSS growth from the first minute to the end, p50/p99 latency per minute (first half
against second half), results per second, camera reconnects, audio gaps, exit codes.

    python benchmarks/soak.py BUNDLE --minutes 30 --json benchmarks/results/soak_xeon.json

Prints one table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # edgemm from this checkout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_camera(port: int) -> subprocess.Popen:
    """ffmpeg as an HTTP MJPEG camera (320x240, 30 fps); it serves one client, then exits."""
    proc = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
                             "-c:v", "mjpeg", "-q:v", "5", "-f", "mpjpeg", "-listen", "1",
                             f"http://127.0.0.1:{port}/cam.mjpg"])
    time.sleep(0.5)
    return proc


def start_microphone(rate: int = 48000) -> list[subprocess.Popen]:
    """A private PulseAudio whose default source is a null sink's monitor, a keep-alive writer and a
    440 Hz tone playing into it for as long as the soak lasts."""
    subprocess.run(["pulseaudio", "--kill"], capture_output=True)
    subprocess.run(["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "--system=false", "-n",
                    "--load=module-native-protocol-unix", f"--load=module-null-sink sink_name=vsink rate={rate} channels=1",
                    "--load=module-always-sink"], check=True, capture_output=True, timeout=30)
    subprocess.run(["pactl", "set-default-source", "vsink.monitor"], check=True, capture_output=True, timeout=30)
    keepalive = subprocess.Popen(["pacat", "--latency-msec=10", "--device=vsink", "--raw", f"--rate={rate}",
                                  "--channels=1", "--format=s16le", "/dev/zero"])
    tone = subprocess.Popen(["pacat", "--device=vsink", "--raw", f"--rate={rate}", "--channels=1", "--format=s16le"],
                            stdin=subprocess.PIPE)
    second = (0.3 * 32767 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype("<i2").tobytes()

    def feed():
        try:
            while True:
                tone.stdin.write(second)
        except (BrokenPipeError, ValueError, OSError):
            pass

    threading.Thread(target=feed, daemon=True).start()
    return [keepalive, tone]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def _slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares growth of RSS in MB per hour (a leak grows steadily; warm-up does not)."""
    if len(points) < 3:
        return math.nan
    t, v = np.array(points).T
    return float(np.polyfit(t, v, 1)[0] * 3600)


def soak(bundle: Path, minutes: float, threads: int | None, video: Path | None = None) -> dict:
    """``video``: soak on this file, paced in real time (no faults), instead of the live camera + mic."""
    seconds = minutes * 60
    port = free_port()
    audio, camera = ([], None) if video else (start_microphone(), serve_camera(port))
    summary_path = Path(tempfile.mkdtemp()) / "summary.json"
    source = ["--video", str(video), "--realtime"] if video else [
        "--camera", f"http://127.0.0.1:{port}/cam.mjpg", "--mic", "pulse"]
    cmd = [sys.executable, "-m", "edgemm.cli", "run", str(bundle), *source, "--json", "--summary-json", str(summary_path)]
    if threads:
        cmd += ["--threads", str(threads)]
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results: list[tuple[float, float, bool, bool]] = []  # (wall s, latency ms, image present, audio present)
    t0 = time.monotonic()

    def read():
        for line in run.stdout:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "latency_ms" in r:
                results.append((time.monotonic() - t0, r["latency_ms"], r["image_present"], r["audio_present"]))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stderr: list[str] = []
    threading.Thread(target=lambda: stderr.extend(run.stderr), daemon=True).start()
    rss: list[tuple[float, float]] = []
    events: list[dict] = []
    faults = {} if video else {"camera": seconds / 3, "microphone": seconds / 2}
    while time.monotonic() - t0 < seconds and run.poll() is None:
        now = time.monotonic() - t0
        value = rss_mb(run.pid)
        if value is not None:
            rss.append((now, value))
        if "camera" in faults and now >= faults["camera"]:
            faults.pop("camera")
            camera.kill()
            camera.wait()
            time.sleep(3)
            camera = serve_camera(port)
            events.append({"fault": "camera server killed, restarted after 3 s", "at_s": round(now, 1)})
        if "microphone" in faults and now >= faults["microphone"]:
            faults.pop("microphone")
            subprocess.run(["pactl", "suspend-source", "vsink.monitor", "1"], capture_output=True, timeout=30)
            time.sleep(3)
            subprocess.run(["pactl", "suspend-source", "vsink.monitor", "0"], capture_output=True, timeout=30)
            events.append({"fault": "microphone source suspended for 3 s", "at_s": round(now, 1)})
        time.sleep(5)
    crashed = run.poll() is not None
    if not crashed:
        run.send_signal(signal.SIGINT)
    try:
        code = run.wait(timeout=60)
        hung = None
    except subprocess.TimeoutExpired:  # a run that does not stop on Ctrl-C: dump its threads, then kill it
        signals = {}
        for task in Path(f"/proc/{run.pid}/task").iterdir():  # is SIGINT still pending, and blocked where?
            status = (task / "status").read_text().splitlines()
            comm = (task / "comm").read_text().strip()
            signals[f"{task.name} {comm}"] = {k: v.strip() for k, _, v in (line.partition(":") for line in status)
                                              if k in ("SigPnd", "ShdPnd", "SigBlk")}
        events.append({"fault": "hung after SIGINT", "thread_signal_masks": signals})
        run.send_signal(signal.SIGUSR1)  # edgemm's CLI prints every thread's stack on SIGUSR1
        time.sleep(3)
        run.kill()
        code = run.wait()
        hung = "did not exit within 60 s of SIGINT; thread stacks (SIGUSR1) are in stderr_tail"
    reader.join(timeout=10)
    if camera is not None:
        camera.kill()
        for p in audio:
            p.kill()
        subprocess.run(["pulseaudio", "--kill"], capture_output=True)
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None

    per_minute = []
    for m in range(int(math.ceil(seconds / 60))):
        lat = [r[1] for r in results if m * 60 <= r[0] < (m + 1) * 60]
        per_minute.append({"minute": m + 1, "results": len(lat), "p50_ms": percentile(lat, 50),
                           "p99_ms": percentile(lat, 99)})
    half = seconds / 2
    first = [r[1] for r in results if 60 <= r[0] < half]
    second = [r[1] for r in results if r[0] >= half]
    start_rss = next((v for t, v in rss if t >= 60), rss[0][1] if rss else math.nan)
    end_rss = rss[-1][1] if rss else math.nan
    return {
        "minutes": minutes, "exit_code": code, "crashed": crashed, "hung_on_exit": hung,
        "stopped_by": "SIGINT" if not crashed else "itself",
        "results": len(results), "results_per_second": len(results) / max(results[-1][0], 1e-9) if results else 0.0,
        "rss_mb_after_1_min": start_rss, "rss_mb_end": end_rss, "rss_mb_max": max((v for _, v in rss), default=math.nan),
        "rss_growth_pct": 100 * (end_rss - start_rss) / start_rss if rss else math.nan,
        "p50_ms_first_half": percentile(first, 50), "p99_ms_first_half": percentile(first, 99),
        "p50_ms_second_half": percentile(second, 50), "p99_ms_second_half": percentile(second, 99),
        "results_without_image": sum(1 for r in results if not r[2]),
        "results_without_audio": sum(1 for r in results if not r[3]),
        "rss_mb_per_hour_after_1_min": _slope_per_hour([(t, v) for t, v in rss if t >= 60]),
        "rss_mb": [(round(t, 1), round(v, 2)) for t, v in rss],
        "faults": events, "summary": summary, "per_minute": per_minute,
        "stderr_tail": "".join(stderr[-120:] if hung else stderr[-5:]),
    }


def disk_full(bundle: Path, video: Path) -> dict:
    """A run recording into a 200 KiB tmpfs: one error line, non-zero exit, no file at the target."""
    if os.geteuid() != 0:
        return {"skipped": "needs root to mount a small tmpfs"}
    mount = Path(tempfile.mkdtemp())
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)], check=True)
    try:
        target = mount / "out.mp4"
        proc = subprocess.run([sys.executable, "-m", "edgemm.cli", "run", str(bundle), "--video", str(video),
                               "--quiet", "--save", str(target)], capture_output=True, text=True, timeout=600)
        errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
        return {"exit_code": proc.returncode, "error_lines": errors, "traceback": "Traceback" in proc.stderr,
                "target_exists": target.exists(), "left_in_directory": sorted(p.name for p in mount.iterdir())}
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def long_video(root: Path) -> Path:
    """A 20 s H.264 + AAC clip of the default classes (what --save then records, larger than 200 KiB)."""
    from edgemm.data.synthetic import SyntheticConfig, make_video_folder

    folder = make_video_folder(root, clips_per_class=1, seconds=20.0, cfg=SyntheticConfig(samples_per_class=3))
    return next(folder.rglob("*.mp4"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--video", type=Path, default=None,
                   help="soak on this file in real time instead of the live camera + microphone (no faults)")
    p.add_argument("--no-disk-full", action="store_true", help="skip the disk-full run")
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/soak.json"))
    a = p.parse_args()
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")
    result = {"meta": {"cpu": cpu, "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d"), "bundle": str(a.bundle)},
              "soak": soak(a.bundle, a.minutes, a.threads, a.video)}
    if a.no_disk_full:
        result["disk_full"] = {"skipped": "--no-disk-full"}
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result["disk_full"] = disk_full(a.bundle, long_video(Path(tmp)))
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(result, indent=2))
    s, d = result["soak"], result["disk_full"]
    print(f"\n| soak ({a.minutes:g} min, {a.video or 'live camera + mic'}) | value |\n|---|---|")
    for key in ("exit_code", "crashed", "hung_on_exit", "results", "results_per_second", "rss_mb_after_1_min", "rss_mb_end",
                "rss_growth_pct", "rss_mb_per_hour_after_1_min", "p50_ms_first_half", "p50_ms_second_half",
                "p99_ms_first_half", "p99_ms_second_half", "results_without_image", "results_without_audio"):
        v = s[key]
        print(f"| {key} | {v:.2f} |" if isinstance(v, float) else f"| {key} | {v} |")
    summary = s["summary"] or {}
    print(f"| camera reconnects (summary) | {summary.get('reconnects')} |")
    print(f"| audio gaps (summary) | {summary.get('audio_gaps')} |")
    print(f"| audio clock resyncs (summary) | {summary.get('audio_resyncs')} |")
    for e in s["faults"]:
        print(f"| fault at {e['at_s']} s | {e['fault']} |")
    print(f"| disk full under --save | exit {d.get('exit_code')}, error lines {d.get('error_lines')}, traceback "
          f"{d.get('traceback')}, target written {d.get('target_exists')}, left {d.get('left_in_directory')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
