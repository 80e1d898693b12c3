"""Helpers shared by tests: write small media files and manifests (importable as ``support``)."""

from __future__ import annotations

import csv
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np


def package_source(dest: Path) -> Path:
    """A private copy of what `pip install` builds edgemm from (pyproject, README, the package).

    setuptools builds in the source tree's ``build/``: two installs of one checkout at once (the
    suite runs on two workers) delete each other's files mid-build.
    """
    root = Path(__file__).resolve().parents[1]
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(root / name, dest / name)
    shutil.copytree(root / "edgemm", dest / "edgemm", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def write_wav(path: Path, wave: np.ndarray, sr: int) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, sr)
    return path


def write_png(path: Path, rgb: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def tone(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_manifest(path: Path, rows: list[list[str]], header=("image", "audio", "label", "split")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


# An easy 4-class set (colour disc + tone, each modality enough on its own): models learn it to high
# accuracy in seconds, so int8 verification by accuracy means something.
CLASSES = {"red_low": ((220, 40, 40), 300.0), "green_mid": ((40, 200, 60), 700.0),
           "blue_high": ((50, 60, 230), 1500.0), "yellow_top": ((230, 220, 40), 3000.0)}


def make_easy_manifest(root: Path, per_class: int = 30, seed: int = 0) -> Path:
    """Writes PNG + WAV files and a manifest CSV (60/20/20 split column) for ``CLASSES``."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, (color, freq) in CLASSES.items():
        for i in range(per_class):
            img = rng.integers(0, 80, (48, 48, 3)).astype(np.int16)
            y, x, r = rng.integers(14, 34), rng.integers(14, 34), rng.integers(8, 14)
            yy, xx = np.ogrid[:48, :48]
            img[(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = color
            sr = 16000
            t = np.arange(sr // 2) / sr
            f = freq * rng.uniform(0.95, 1.05)
            wave = rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * f * t) + rng.normal(0, 0.02, t.size)
            name = f"{label}_{i:03d}"
            write_png(root / f"{name}.png", np.clip(img, 0, 255).astype(np.uint8))
            write_wav(root / f"{name}.wav", wave.astype(np.float32), sr)
            split = "train" if i < per_class * 0.6 else "val" if i < per_class * 0.8 else "test"
            rows.append([f"{name}.png", f"{name}.wav", label, split])
    return write_manifest(root / "easy.csv", rows)


def easy_frame(label: str, rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """A frame like the easy set's images: the class colour's disc on dark noise."""
    img = rng.integers(0, 80, (size, size, 3)).astype(np.int16)
    y, x, r = rng.integers(14, 34), rng.integers(14, 34), rng.integers(8, 14)
    yy, xx = np.ogrid[:size, :size]
    img[(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = CLASSES[label][0]
    return np.clip(img, 0, 255).astype(np.uint8)


def write_easy_clip(path: Path, label: str, seconds: float = 2.0, fps: int = 15, rate: int = 44100,
                    seed: int = 0) -> Path:
    """An H.264 + AAC clip of one easy class: its disc (moving a little) and its tone."""
    from edgemm.data.video import write_clip

    rng = np.random.default_rng(seed)
    frames = [easy_frame(label, np.random.default_rng((seed, i // 5)), 48) for i in range(int(seconds * fps))]
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.4 * np.sin(2 * np.pi * CLASSES[label][1] * t) + rng.normal(0, 0.02, t.size)
    return write_clip(path, frames, fps, wave.astype(np.float32), rate)


def start_pulseaudio(rate: int = 48000) -> subprocess.Popen:
    """A private PulseAudio with a mono null sink whose monitor is the default source (a virtual
    microphone: what is played into ``vsink`` is recorded from device ``pulse``), plus the keep-alive
    writer that keeps its clock running. Returns the keep-alive process; ``stop_pulseaudio`` ends both."""
    subprocess.run(["pulseaudio", "--kill"], capture_output=True)
    subprocess.run(["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "--system=false", "-n",
                    "--load=module-native-protocol-unix",
                    f"--load=module-null-sink sink_name=vsink rate={rate} channels=1",
                    "--load=module-always-sink"], check=True, capture_output=True, timeout=30)
    subprocess.run(["pactl", "set-default-source", "vsink.monitor"], check=True, capture_output=True, timeout=30)
    return subprocess.Popen(["pacat", "--latency-msec=10", "--device=vsink", "--raw", f"--rate={rate}",
                             "--channels=1", "--format=s16le", "/dev/zero"])


def stop_pulseaudio(keepalive: subprocess.Popen) -> None:
    keepalive.kill()
    keepalive.wait()
    subprocess.run(["pulseaudio", "--kill"], capture_output=True)


# --- live media served on this machine: an MJPEG camera over loopback HTTP, a tone into the virtual mic

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    """Whether something listens on the TCP port (read from /proc: probing with a connection would
    use up ffmpeg's one client)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        if any(int(r.split()[1].split(":")[1], 16) == port and r.split()[3] == "0A" for r in rows):
            return True
    return False


def serve_camera(port: int, seconds: float = 30) -> subprocess.Popen:
    """ffmpeg as an HTTP MJPEG camera (320x240, 30 fps test pattern); it serves one client."""
    proc = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
                             f"testsrc2=size=320x240:rate=30:duration={seconds}", "-c:v", "mjpeg", "-q:v", "5",
                             "-f", "mpjpeg", "-listen", "1", f"http://127.0.0.1:{port}/cam.mjpg"])
    deadline = time.monotonic() + 10
    while not listening(port):
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("ffmpeg did not start listening")
        time.sleep(0.05)
    return proc


def play(freq: float, seconds: float, rate: int = 48000, amplitude: float = 0.5) -> subprocess.Popen:
    """Plays a tone into the virtual sink with ``pacat`` (as another application would)."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()
    proc = subprocess.Popen(["pacat", "--device=vsink", "--raw", f"--rate={rate}", "--channels=1",
                             "--format=s16le"], stdin=subprocess.PIPE)
    threading.Thread(target=lambda: (proc.stdin.write(pcm), proc.stdin.close()), daemon=True).start()
    return proc


def green_bar_pixels(rgb: np.ndarray) -> int:
    """Pixels of the live overlay's top-label bar colour (80, 200, 80) in an RGB screenshot."""
    return int((np.abs(rgb.astype(int) - (80, 200, 80)).sum(-1) < 40).sum())
