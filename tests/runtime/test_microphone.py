"""The microphone source on a real OS audio path: PulseAudio virtual source → PortAudio → sounddevice."""

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from support import play, start_pulseaudio, stop_pulseaudio

from edgemm.runtime.sources import open_source
from edgemm.runtime.sources.microphone import MicrophoneError, input_devices, resolve_device

pytestmark = pytest.mark.mic


def test_a_microphone_that_appears_after_portaudio_started_is_found():
    # PortAudio lists devices once; CI once ran `edgemm doctor` in-process before this module
    # started its sound server, and every test here then saw "input devices: none".
    subprocess.run(["pulseaudio", "--kill"], capture_output=True)
    time.sleep(0.3)
    assert not [d for d in input_devices() if "pulse" in d["name"]]
    keepalive = start_pulseaudio()
    try:
        assert isinstance(resolve_device("pulse"), int)
    finally:
        stop_pulseaudio(keepalive)


@pytest.fixture(scope="module")
def virtual_mic():
    keepalive = start_pulseaudio()
    try:
        time.sleep(0.3)
        # The first capture after PulseAudio starts can stall while its null sink's clock settles (one
        # module run in two here: a gap re-stamped a chunk); the tests are about a running source.
        record("pulse", 0.5)
        yield "pulse"
    finally:  # also when the warm-up capture fails: no sound server left running
        stop_pulseaudio(keepalive)


def record(device, seconds, sample_rate=16000):
    chunks = []
    with open_source("microphone", device, sample_rate=sample_rate) as mic:
        stop = threading.Timer(seconds, mic.stop)  # also when the sound server stops delivering
        stop.start()
        try:
            chunks.extend(mic.packets())
        finally:
            stop.cancel()
        return chunks, mic


@pytest.mark.parametrize("freq", [440.0, 1800.0])
def test_records_a_tone_played_into_the_virtual_source_at_its_frequency(virtual_mic, freq):
    player = play(freq, 2.5)
    time.sleep(0.3)
    chunks, mic = record(virtual_mic, 1.5)
    player.wait(timeout=10)
    assert mic.rate > 16000 and chunks[0].t is not None and all(c.t is None for c in chunks[1:])
    assert all(c.sample_rate == 16000 for c in chunks)
    x = np.concatenate([c.samples for c in chunks])
    assert len(x) >= 16000  # at least ~1 s came through, resampled 48 kHz -> 16 kHz
    seg = x[len(x) // 4: len(x) // 4 + 8000]
    peak = np.fft.rfftfreq(len(seg), 1 / 16000)[np.abs(np.fft.rfft(seg * np.hanning(len(seg)))).argmax()]
    assert peak == pytest.approx(freq, abs=8)
    assert 0.2 < np.sqrt(np.mean(seg ** 2)) * np.sqrt(2) < 0.8  # the amplitude survives too
    assert mic.overflows == 0


def test_device_chosen_by_name_substring_and_bad_names_list_the_inputs(virtual_mic):
    index = resolve_device("PULSE")
    assert isinstance(index, int)
    with pytest.raises(MicrophoneError, match=r"no input device matches 'no-such-mic'; input devices: .*pulse"):
        resolve_device("no-such-mic")
    with pytest.raises(MicrophoneError, match="is not an input device"):
        resolve_device(999)


def test_edgemm_run_on_the_live_microphone_is_audio_only_and_hears_the_tone(virtual_mic, onnx_bundle):
    """A 3 kHz tone played into the virtual mic: audio-only results every hop, and the same answer the
    bundle gives for that tone fed to it directly (what the microphone path must not change)."""
    from edgemm.runtime import load

    session = load(onnx_bundle)
    sr = session.preprocess.audio.sample_rate
    clean = 0.4 * np.sin(2 * np.pi * 3000.0 * np.arange(session.preprocess.audio.clip_samples) / sr)
    expected = session.predict(audio=clean.astype(np.float32))
    player = play(3000.0, 4.0, amplitude=0.4)
    proc = subprocess.run([sys.executable, "-m", "edgemm.cli", "run", str(onnx_bundle), "--mic", virtual_mic,
                           "--json", "--duration", "2.5", "--hop", "0.1"], capture_output=True, text=True, timeout=120)
    player.wait(timeout=10)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) >= 8
    ts = [r["t"] for r in rows]
    assert all(b > a for a, b in zip(ts, ts[1:]))
    live = [r for r in rows if r["audio_present"]]
    assert live and not any(r["image_present"] for r in rows)
    full = [r for r in live if r["audio_dbfs"] > -12.5]  # windows entirely inside the tone (0.4 -> -11 dBFS)
    assert len(full) >= 5
    assert sum(r["raw_label"] == expected.label for r in full) >= 0.8 * len(full)
    assert np.mean([r["scores"][expected.label] for r in full]) == pytest.approx(expected.score, abs=0.1)
    assert "audio overflows" in proc.stderr


def test_a_muted_microphone_counts_as_absent(virtual_mic, onnx_bundle):
    from edgemm.runtime import load
    from edgemm.runtime.pipeline import Pipeline, RunConfig

    seen = []

    class Collect:
        def put(self, r):
            seen.append(r)

        def close(self):
            pass

    session = load(onnx_bundle)
    with open_source("microphone", virtual_mic, sample_rate=session.preprocess.audio.sample_rate) as mic:
        Pipeline(session, [mic], RunConfig(max_seconds=1.2, hop=0.2), [Collect()]).run()
    assert seen and all(not r.audio_present and r.label is None for r in seen)  # nothing is playing: silence


def test_a_microphone_whose_source_stops_for_a_while_keeps_going(virtual_mic):
    """The PulseAudio source is suspended for 1 s mid-recording (as when another program grabs the
    device or a USB microphone is reset): no exception, and chunks arrive again after it resumes."""
    import threading

    times, pactl = [], []

    def suspend(flag: str) -> None:
        # A null sink's monitor cannot be suspended on its own ("Invalid argument"); suspending the
        # sink suspends the monitor the microphone records from.
        done = subprocess.run(["pactl", "suspend-sink", "vsink", flag], capture_output=True, text=True, timeout=30)
        pactl.append((flag, done.returncode, done.stderr.strip()))

    with open_source("microphone", virtual_mic, sample_rate=16000) as mic:
        def fault():
            time.sleep(0.6)
            suspend("1")
            time.sleep(1.0)
            suspend("0")

        faulting = threading.Thread(target=fault, daemon=True)
        faulting.start()
        watchdog = threading.Timer(8.0, mic.stop)  # a stream that never delivers again fails, not hangs
        watchdog.start()
        start = time.monotonic()
        for _ in mic.packets():
            times.append(time.monotonic() - start)
            if times[-1] > 3.5:
                mic.stop()
        watchdog.cancel()
        faulting.join(timeout=30)
    assert [(flag, code) for flag, code, _ in pactl] == [("1", 0), ("0", 0)], f"the fault was not injected: {pactl}"
    assert any(t < 0.6 for t in times) and any(t > 2.0 for t in times)  # before the fault and after it
    assert max(b - a for a, b in zip(times, times[1:])) > 0.7  # and the source really went quiet between
