"""`edgemm run` on video files (PyAV, H.264 + AAC): labels, training-identical windows, recording, no torch."""

import json
import subprocess
import sys
import textwrap
import time
from collections import Counter

import numpy as np
import pytest

from edgemm.runtime.sources import open_source
from edgemm.runtime.sources.video_file import VideoFileError
from edgemm.runtime.sync import AudioChunk, Frame, Sync


def _json_lines(text):
    """The per-result lines of ``--json`` output (a file run ends with one ``{"summary": ...}`` line)."""
    return [row for row in _all_json(text) if "summary" not in row]


def _all_json(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_video_source_gives_the_training_frames_and_audio_windows(easy_clips):
    """What the runtime pairs for each frame is what the video-folder data set trains on."""
    from edgemm.data.preprocess import AudioConfig, window_at
    from edgemm.data.video import decode_clip

    path = easy_clips["blue_high"]
    clip = decode_clip(path, 8000)
    cfg = AudioConfig(sample_rate=8000, clip_seconds=0.5, n_fft=256, win_length=200, hop_length=100, n_mels=24,
                      f_min=50.0, f_max=4000.0)
    sync = Sync(8000, cfg.clip_samples, latest_only=False, audio_wait=None)
    frames = []
    with open_source("video", path, 8000) as src:
        assert src.streams == {"video", "audio"}
        for p in src.packets():
            if isinstance(p, Frame):
                sync.put_frame(p)
                frames.append(sync.next(timeout=1))
            else:
                assert isinstance(p, AudioChunk) and p.sample_rate == 8000
                sync.put_audio(p)
    assert len(frames) == len(clip.frames) == 30
    assert all(b.t > a.t for a, b in zip(frames, frames[1:]))
    for k in (0, 7, 29):
        np.testing.assert_array_equal(frames[k].image, clip.frames[k])
        np.testing.assert_allclose(frames[k].audio, window_at(clip.audio, clip.times[k] - clip.audio_start, cfg),
                                   atol=1e-7)


def test_edgemm_run_on_video_files_predicts_their_labels(onnx_bundle, easy_clips, tmp_path, capsys):
    from edgemm.cli import main

    for label, path in easy_clips.items():
        assert main(["run", str(onnx_bundle), "--video", str(path), "--json", "--summary-json",
                     str(tmp_path / "s.json")]) == 0
        out = capsys.readouterr().out
        rows = _json_lines(out)
        assert len(rows) == 30  # every frame, none dropped, when reading a file as fast as possible
        assert {"t", "label", "score", "scores", "latency_ms"} <= set(rows[0])
        assert all(r["latency_ms"] > 0 and r["image_present"] for r in rows)
        # At t = 0 no audio has played yet: that window is silent, so audio counts as absent.
        assert not rows[0]["audio_present"] and all(r["audio_present"] for r in rows[1:])
        assert rows[0]["t"] == pytest.approx(0.0, abs=1e-3) and rows[-1]["t"] == pytest.approx(29 / 15, abs=1e-3)
        votes = Counter(r["label"] for r in rows[8:])  # from the first full audio window on
        assert votes.most_common(1)[0][0] == label, (label, votes)
        summary = json.loads((tmp_path / "s.json").read_text())
        assert summary["results"] == 30 and summary["drops"] == 0
        # The last line is the answer for the whole file: the mean of every result's probabilities.
        last = _all_json(out)[-1]["summary"]
        assert last == summary and summary["clip"]["label"] == label and summary["clip"]["results"] == 30
        mean = {k: np.mean([r["scores"][k] for r in rows]) for k in rows[0]["scores"]}  # smoothing is off
        assert max(mean, key=mean.get) == label
        assert summary["latency_ms"]["p50"] <= summary["latency_ms"]["p90"] <= summary["latency_ms"]["p99"]


def test_separate_audio_file_and_video_without_audio(onnx_bundle, easy_clips, tmp_path, capsys):
    """--audio-file gives the same results as the clip's own track; --no-audio runs image-only."""
    import av
    import soundfile as sf

    from edgemm.cli import main

    clip = easy_clips["green_mid"]
    with av.open(str(clip)) as c:
        rate = c.streams.audio[0].rate
        wave = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    sf.write(tmp_path / "track.wav", wave, rate, subtype="FLOAT")
    with av.open(str(clip)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    # A silent-film copy: same frames, no audio track.
    silent = tmp_path / "silent.mp4"
    with av.open(str(silent), "w") as c:
        v = c.add_stream("libx264", rate=15)
        v.width, v.height, v.pix_fmt = 48, 48, "yuv420p"
        for f in frames:
            c.mux(v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(v.encode())

    assert main(["run", str(onnx_bundle), "--video", str(clip), "--json", "--no-liveness"]) == 0
    own = _json_lines(capsys.readouterr().out)
    assert main(["run", str(onnx_bundle), "--video", str(clip), "--audio-file", str(tmp_path / "track.wav"),
                 "--json", "--no-liveness"]) == 0
    separate = _json_lines(capsys.readouterr().out)
    assert [r["raw_label"] for r in own[8:]] == [r["raw_label"] for r in separate[8:]]
    for a, b in zip(own[8:], separate[8:]):
        assert max(abs(a["scores"][k] - b["scores"][k]) for k in a["scores"]) < 0.05

    assert main(["run", str(onnx_bundle), "--video", str(silent), "--json"]) == 1
    assert "has no audio track" in capsys.readouterr().err
    assert main(["run", str(onnx_bundle), "--video", str(silent), "--no-audio", "--json"]) == 0
    rows = _json_lines(capsys.readouterr().out)
    assert len(rows) == 30 and not any(r["audio_present"] for r in rows) and all(r["image_present"] for r in rows)


def test_bad_inputs_are_named(onnx_bundle, tmp_path, capsys):
    from edgemm.cli import main

    assert main(["run", str(onnx_bundle), "--video", str(tmp_path / "nope.mp4")]) == 1
    assert "nope.mp4: no such file" in capsys.readouterr().err
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(VideoFileError, match="junk.mp4: cannot open"):
        with open_source("video", tmp_path / "junk.mp4", 8000):
            pass
    assert main(["run", str(onnx_bundle)]) == 2  # a usage error (docs/errors.md)
    assert "nothing to read" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"source: 'kinect' is not one of \['camera', 'microphone', 'video'\]"):
        open_source("kinect", 0)


def test_batched_file_run_gives_the_one_by_one_results(onnx_bundle, easy_clips):
    """Files read as fast as possible go through the model several frames per call; every result is
    the one a frame-by-frame run gives (same order, same smoothing, same whole-file answer)."""
    from edgemm.runtime import load
    from edgemm.runtime.pipeline import Pipeline, RunConfig

    class Collect:
        def __init__(self):
            self.rows = []

        def put(self, r):
            self.rows.append(r)

        def close(self):
            pass

    session = load(onnx_bundle)
    sizes = []
    real = session.predict_batch

    def counting(images, audios, sample_rate=None, audio_starts=None, times=None):
        sizes.append(len(images))
        return real(images, audios, sample_rate, audio_starts, times)

    session.predict_batch = counting
    runs = {}
    for batch in (1, 8):
        sizes.clear()
        sink = Collect()
        with open_source("video", easy_clips["green_mid"], session.preprocess.audio.sample_rate) as src:
            summary = Pipeline(session, [src], RunConfig(batch=batch, smooth=3), sinks=[sink]).run()
        runs[batch] = (sink.rows, summary, list(sizes))
    one, many = runs[1], runs[8]
    assert max(one[2]) == 1 and max(many[2]) > 1, many[2]  # batches really formed (frames decode ahead)
    assert len(one[0]) == len(many[0]) == 30
    for a, b in zip(one[0], many[0]):
        assert (a.t, a.label, a.raw_label, a.audio_present) == (b.t, b.label, b.raw_label, b.audio_present)
        np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), atol=1e-5)
    assert one[1].clip["label"] == many[1].clip["label"] == "green_mid"


def test_a_runtime_frontend_bundle_computes_each_frame_once_and_labels_files_as_the_graph_one(
        onnx_bundle, runtime_frontend_bundle, easy_clips):
    """--frontend runtime in a file run: audio windows end on a hop, so consecutive results share STFT
    frames, which are computed once; the results are the graph-frontend bundle's."""
    from edgemm.runtime import load
    from edgemm.runtime.pipeline import Pipeline, RunConfig

    bundle = runtime_frontend_bundle
    answers = {}
    for path in (onnx_bundle, bundle):
        session = load(path)
        for label in ("green_mid", "red_low"):
            with open_source("video", easy_clips[label], session.preprocess.audio.sample_rate) as src:
                answers[path, label] = Pipeline(session, [src], RunConfig(batch=4)).run().clip
    for label in ("green_mid", "red_low"):
        ours, theirs = answers[bundle, label], answers[onnx_bundle, label]
        assert ours["label"] == theirs["label"] == label and abs(ours["score"] - theirs["score"]) < 0.02
    # 15 fps against 80 hops/s: a window shares all but 5-6 of its 38 frames with the previous one, so
    # about 1/6 of the frames are computed (the first window of each file is computed whole)
    stream = session._stream
    assert 0 < stream.computed < 0.2 * (stream.computed + stream.reused), (stream.computed, stream.reused)


def test_realtime_pacing_follows_media_time(onnx_bundle, easy_clips):
    """--realtime plays the file like a live camera: no faster than its own clock."""
    from edgemm.runtime import load
    from edgemm.runtime.run import Inputs, run

    t0 = time.perf_counter()
    summary = run(load(onnx_bundle), Inputs(video=easy_clips["red_low"], realtime=True), quiet=True,
                  log=lambda s: None)
    assert time.perf_counter() - t0 >= 29 / 15 * 0.9
    assert summary.results + summary.drops == 30 and summary.results >= 15


@pytest.mark.slow
def test_save_writes_h264_with_the_audio(onnx_bundle, easy_clips, tmp_path):
    import av

    from edgemm.runtime import load
    from edgemm.runtime.run import Inputs, run

    out = tmp_path / "annotated.mp4"
    summary = run(load(onnx_bundle), Inputs(video=easy_clips["yellow_top"]), save=out, quiet=True, log=lambda s: None)
    assert out.is_file() and not list(tmp_path.glob(".*partial*"))
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and a.codec_context.name == "aac" and a.rate == 8000
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        c.seek(0)
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    # a file read as fast as possible is recorded whole: every result a frame, the audio throughout
    assert len(frames) == summary.results and frames[0].shape[1] == 640  # overlay width
    assert len(audio) >= 8000 * (len(frames) - 1) / 15
    spectrum = np.abs(np.fft.rfft(audio[2000:6000]))
    assert np.fft.rfftfreq(4000, 1 / 8000)[spectrum.argmax()] == pytest.approx(3000, abs=30)


@pytest.mark.parametrize("kind", ["graph", "runtime"])
def test_run_works_with_torch_absent(kind, onnx_bundle, runtime_frontend_bundle, easy_clips):
    """Also a bundle whose runtime computes the log-mel: edgemm.data.logmel is numpy only."""
    bundle = onnx_bundle if kind == "graph" else runtime_frontend_bundle
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any "import torch" now raises ImportError
        from edgemm.cli import main
        code = main(["run", {str(bundle)!r}, "--video", {str(easy_clips['green_mid'])!r}, "--json"])
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m] is not None)
        sys.exit(code)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _json_lines(proc.stdout)
    assert len(rows) == 30 and Counter(r["label"] for r in rows[8:]).most_common(1)[0][0] == "green_mid"
    assert "summary: 30 frames, 30 results" in proc.stderr


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_ctrl_c_and_kill_stop_cleanly_with_a_summary_and_the_recording(signame, onnx_bundle, easy_clips, tmp_path):
    """SIGINT (Ctrl-C) or SIGTERM during a real-time run: exit 0, the results so far, the summary line,
    and the recording kept (SIGTERM used to kill the process and lose it)."""
    import signal
    import time

    saved = tmp_path / "out.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "edgemm.cli", "run", str(onnx_bundle), "--video",
                             str(easy_clips["green_mid"]), "--realtime", "--json", "--save", str(saved)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()  # the run is live once a result is out
    assert first, proc.stderr.read()[-2000:]
    time.sleep(0.3)
    proc.send_signal(getattr(signal, signame))
    out, err = proc.communicate(timeout=30)
    rows = _json_lines(first + out)
    assert proc.returncode == 0, err[-2000:]
    assert 1 <= len(rows) < 30  # stopped before the 2-s clip ended
    import re

    summary = re.search(r"summary: (\d+) frames, (\d+) results", err)
    assert summary and int(summary.group(2)) == len(rows) and int(summary.group(1)) >= len(rows), err[-500:]
    assert "Traceback" not in err and f"{signame}: stopping" in err
    import av

    with av.open(str(saved)) as f:  # a whole file: its container closed, one video frame per result
        assert f.streams.video and sum(1 for _ in f.decode(video=0)) == len(rows)
