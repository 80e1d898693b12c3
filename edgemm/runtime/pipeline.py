"""The live loop: sources → ``Sync`` → session → smoothing → sinks, each source on its own thread.

Capture never waits for inference (live sources feed a latest-frame ``Sync`` that drops and counts
stale frames), and inference never waits for display (sinks that draw or stream take the newest
result on their own thread). Files read as fast as possible keep every frame instead, so a clip
evaluates deterministically.

    >>> session = load("model.edgemm")
    >>> with open_source("video", "clip.mp4", sample_rate=16000) as src:
    ...     summary = Pipeline(session, [src], sinks=[ConsoleSink()]).run()
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from edgemm._cv2 import import_cv2
from edgemm.runtime.session import Session
from edgemm.runtime.smoothing import Smoother, SmoothMode
from edgemm.runtime.sync import Frame, Sync
from edgemm.runtime.timing import LatencyHistogram, SkewStats


@dataclass(frozen=True)
class RunConfig:
    """How ``edgemm run`` turns a stream into results.

    Args:
        smooth: Smoothing window K (1 = off).
        smooth_mode: ``ema`` over scores or ``majority`` over labels.
        threshold: Report no label when the (smoothed) top score is below this.
        hop: Seconds between results when only audio is live.
        audio_wait: Longest a frame waits (s) for the microphone to catch up to its timestamp.
        liveness: Treat a silent microphone / covered camera as an absent modality.
        audio_floor_dbfs: RMS level below which the audio window counts as silent.
        image_min_std: Pixel standard deviation (0-255) below which a frame counts as covered.
        max_results: Stop after this many results (``None``: run until the media ends or Ctrl-C).
        max_seconds: Stop after this much wall time.
        batch: Files read as fast as possible: up to this many decoded frames that are waiting go
            through the model in one call (a fixed-batch bundle runs them one by one). Live input
            is always predicted one frame at a time, the newest.
    """

    smooth: int = 1
    smooth_mode: SmoothMode = SmoothMode.EMA
    threshold: float = 0.0
    hop: float = 0.25
    audio_wait: float = 0.25
    liveness: bool = True
    audio_floor_dbfs: float = -60.0
    image_min_std: float = 3.0
    max_results: int | None = None
    max_seconds: float | None = None
    batch: int = 8

    def __post_init__(self) -> None:
        from edgemm.config import parse_enum

        object.__setattr__(self, "smooth_mode", parse_enum(SmoothMode, self.smooth_mode, "smooth_mode"))
        if self.hop <= 0:
            raise ValueError(f"hop must be > 0 s, got {self.hop}")
        if self.audio_wait < 0:
            raise ValueError(f"audio_wait must be >= 0 s, got {self.audio_wait}")
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")


@dataclass
class Result:
    """One live result. ``to_json`` is what ``edgemm run --json`` prints per inference."""

    t: float
    label: str | None
    score: float
    scores: dict[str, float]
    latency_ms: float
    stages: dict[str, float]
    image_present: bool
    audio_present: bool
    audio_dbfs: float | None
    raw_label: str | None
    frame: np.ndarray | None = field(default=None, repr=False)
    audio: np.ndarray | None = field(default=None, repr=False)
    audio_latency_ms: float | None = None  # from the capture of the audio window's last sample
    av_skew_ms: float | None = None  # newest audio minus the frame's time when paired (audio ahead: > 0)
    events: tuple[str, ...] = ()  # with --events: the classes with an event in progress (``EventSink`` marks them)

    def to_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 4), "label": self.label, "score": round(self.score, 5),
                "scores": {k: round(v, 5) for k, v in self.scores.items()}, "latency_ms": round(self.latency_ms, 3),
                "stages_ms": {k: round(v, 3) for k, v in self.stages.items()},
                "image_present": self.image_present, "audio_present": self.audio_present,
                "audio_dbfs": None if self.audio_dbfs is None else round(self.audio_dbfs, 1),
                "raw_label": self.raw_label, "audio_latency_ms": _round(self.audio_latency_ms),
                "av_skew_ms": _round(self.av_skew_ms), "events": list(self.events)}


def _round(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 3)


@dataclass
class Summary:
    """What a run did; printed on exit (Ctrl-C included)."""

    frames: int
    results: int
    drops: int
    audio_overflows: int
    audio_gaps: int
    seconds: float
    latency_ms: dict[str, float]
    stages_ms: dict[str, float]
    backend: str = ""  # "openvino (CPU)": what ran the model
    reconnects: int = 0  # times a live camera was reopened after it stopped delivering frames
    audio_resyncs: int = 0  # times the audio's time axis followed the microphone's clock drift
    clip: dict[str, Any] | None = None  # files: one answer for the whole file (``clip_answer``)
    audio_latency_ms: dict[str, float] | None = None  # audio window captured -> result (p50/p90/p99/max)
    av_skew_ms: dict[str, float] | None = None  # audio vs frame time when paired (``SkewStats``)
    audio_drift_ppm: float | None = None  # the audio source's clock vs this machine's (``AudioRing.drift_ppm``)

    @property
    def results_per_second(self) -> float:
        return self.results / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"frames": self.frames, "results": self.results, "drops": self.drops,
                "audio_overflows": self.audio_overflows, "audio_gaps": self.audio_gaps,
                "seconds": round(self.seconds, 3), "results_per_second": round(self.results_per_second, 2),
                "latency_ms": self.latency_ms, "stages_ms": self.stages_ms, "backend": self.backend,
                "reconnects": self.reconnects, "audio_resyncs": self.audio_resyncs, "clip": self.clip,
                "audio_latency_ms": self.audio_latency_ms, "av_skew_ms": self.av_skew_ms,
                "audio_drift_ppm": None if self.audio_drift_ppm is None else round(self.audio_drift_ppm, 1)}

    def line(self) -> str:
        lat = self.latency_ms
        return (f"{self.frames} frames, {self.results} results ({self.results_per_second:.1f}/s), "
                f"{self.drops} dropped, {self.audio_overflows} audio overflows; latency p50 {lat['p50']:.1f} "
                f"p90 {lat['p90']:.1f} p99 {lat['p99']:.1f} ms"
                + (f"; camera reopened {self.reconnects}x" if self.reconnects else "")
                + (f"; whole file: {self.clip['label']} ({self.clip['score']:.2f}, mean of {self.clip['results']} results)"
                   if self.clip and self.clip["label"] is not None else ""))


def clip_answer(labels: Sequence[str], prob_sum: np.ndarray, count: int) -> dict[str, Any]:
    """One answer for a whole file: the label with the highest mean probability over its results.

    The per-result probabilities are the model's own (not smoothed or thresholded); results with
    neither modality live do not count.
    """
    if count == 0:
        return {"label": None, "score": 0.0, "scores": {}, "results": 0}
    mean = prob_sum / count
    top = int(mean.argmax())
    return {"label": labels[top], "score": round(float(mean[top]), 5),
            "scores": {k: round(float(v), 5) for k, v in zip(labels, mean)}, "results": count}


class Sink(Protocol):
    def put(self, result: Result) -> None: ...

    def close(self) -> None: ...


def level_dbfs(x: np.ndarray) -> float:
    """RMS level in dB full scale (a dot product: a third of the time of a float64 mean of squares)."""
    x = np.asarray(x, np.float32).reshape(-1)
    return float(10 * np.log10(max(float(np.dot(x, x)) / max(x.size, 1), 1e-20)))


def frame_std(image: np.ndarray, max_side: int = 128) -> float:
    """Pixel standard deviation of a frame (over pixels and channels), estimated on a grid of at
    most ``max_side`` per side.

    Whether a camera is covered does not need every pixel: on a 640x480 frame the full ``std()``
    costs ~1.3 ms per result, about as much as the student's inference. The grid is taken with
    OpenCV's nearest-neighbour resize and measured with ``cv2.meanStdDev`` on the uint8 pixels:
    50 us, against 210 us for numpy's ``std`` of the same strided grid (same value).
    """
    cv2 = import_cv2()
    h, w = image.shape[:2]
    step = max(1, -(-max(h, w) // max_side))
    grid = cv2.resize(image, (-(-w // step), -(-h // step)), interpolation=cv2.INTER_NEAREST) if step > 1 else image
    mean, std = cv2.meanStdDev(np.ascontiguousarray(grid))
    m, var = mean.ravel(), std.ravel() ** 2  # per channel; combined over channels below
    return float(np.sqrt(max(float(np.mean(var + m * m) - np.mean(m) ** 2), 0.0)))


class Pipeline:
    """Runs a session on one or more sources until they end, a limit is reached, or ``stop()``.

    Args:
        session: The loaded bundle.
        sources: Entered sources (``edgemm.runtime.sources``), together providing video, audio or both.
        config: Run settings.
        sinks: Where results go (console, JSON, window, preview server, recorder).
    """

    def __init__(self, session: Session, sources: Sequence[Any], config: RunConfig = RunConfig(),
                 sinks: Sequence[Sink] = ()) -> None:
        streams = [s for src in sources for s in src.streams]
        for name in ("video", "audio"):
            if streams.count(name) > 1:
                raise ValueError(f"two sources provide {name}; give one camera/video and one microphone/audio")
        if not streams:
            raise ValueError("no source: give a camera, a microphone, or a video file")
        self.session, self.sources, self.config, self.sinks = session, list(sources), config, list(sinks)
        self.live = any(s.live or getattr(s, "realtime", False) for s in sources)
        self.batch = 1 if self.live else config.batch
        a = session.preprocess.audio
        self.sync = Sync(a.sample_rate, a.clip_samples, video="video" in streams, audio="audio" in streams,
                         latest_only=self.live, audio_wait=config.audio_wait if self.live else None,
                         hop=config.hop, queue=2 * self.batch, align=session.align)
        self.smoother = Smoother(session.labels, config.smooth, config.smooth_mode, config.threshold)
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self.origin = time.perf_counter() if any(s.live for s in sources) else 0.0
        self._prob_sum, self._prob_count = np.zeros(len(session.labels)), 0
        self._latencies = LatencyHistogram()  # constant memory however long the run
        self._audio_latencies, self._skews = LatencyHistogram(), SkewStats()
        self._stage_times: dict[str, LatencyHistogram] = {}
        self._start = time.perf_counter()

    def stop(self) -> None:
        self._stop.set()

    def _produce(self, src: Any) -> None:
        try:
            for packet in src.packets():
                if self._stop.is_set():
                    break
                if isinstance(packet, Frame):
                    self.sync.put_frame(packet)
                else:
                    self.sync.put_audio(packet)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which re-raises it
            self._errors.append(e)
            self._stop.set()
        finally:
            for stream in src.streams:
                self.sync.close(stream)

    def _infer(self, samples: list) -> list[Result]:
        """Results for ``samples``, in order: liveness per sample, one backend call for the ones
        with a live modality, then smoothing in time order."""
        cfg, labels = self.config, self.session.labels
        live = []
        for sample in samples:
            image, audio = sample.image, sample.audio
            image_live = image is not None and (not cfg.liveness or frame_std(image) >= cfg.image_min_std)
            dbfs = level_dbfs(audio) if audio is not None else None
            audio_live = audio is not None and (not cfg.liveness or dbfs >= cfg.audio_floor_dbfs)
            live.append((image_live, audio_live, dbfs, (time.perf_counter_ns() - sample.captured_ns) / 1e6))
        run = [k for k, (i, a, _, _) in enumerate(live) if i or a]
        preds = dict(zip(run, self.session.predict_batch(
            [samples[k].image if live[k][0] else None for k in run],
            [samples[k].audio if live[k][1] else None for k in run],
            sample_rate=self.session.preprocess.audio.sample_rate,
            audio_starts=[samples[k].audio_start for k in run], times=[samples[k].t for k in run]))) if run else {}
        results = []
        for k, sample in enumerate(samples):
            image_live, audio_live, dbfs, waited = live[k]
            pred = preds.get(k)
            if pred is None:  # covered camera and muted mic: nothing to classify
                n = len(labels)
                label, raw, score, smoothed = None, None, 0.0, np.full(n, 1.0 / n)
                stages = {"preprocess": 0.0, "inference": 0.0, "postprocess": 0.0}
            else:
                raw, stages = pred.label, pred.stages
                probs = np.array([pred.scores[c] for c in labels])
                self._prob_sum += probs
                self._prob_count += 1
                label, score, smoothed = self.smoother.update(probs)
            now = time.perf_counter_ns()
            results.append(Result(t=sample.t - self.origin, label=label, score=score,
                                  scores={c: float(v) for c, v in zip(labels, smoothed)},
                                  latency_ms=(now - sample.captured_ns) / 1e6,
                                  stages={"wait": waited, **stages}, image_present=image_live,
                                  audio_present=audio_live, audio_dbfs=dbfs, raw_label=raw, frame=sample.image,
                                  audio=sample.audio, av_skew_ms=sample.av_skew_ms,
                                  audio_latency_ms=None if sample.audio_captured_ns is None else
                                  (now - sample.audio_captured_ns) / 1e6))
        return results

    def _take(self) -> list:
        """The next sample (waiting up to 0.2 s) and, for files, the ones already waiting behind
        it, up to ``batch``."""
        first = self.sync.next(timeout=0.2)
        if first is None:
            return []
        samples = [first]
        while len(samples) < self.batch:
            more = self.sync.next(timeout=0)
            if more is None:
                break
            samples.append(more)
        return samples

    def _deliver(self, results: list[Result]) -> bool:
        """Hands results to the sinks and counts them; returns whether the run should end."""
        latencies, stage_times = self._latencies, self._stage_times
        for result in results:
            latencies.add(result.latency_ms)
            if result.audio_latency_ms is not None:
                self._audio_latencies.add(result.audio_latency_ms)
            if result.av_skew_ms is not None:
                self._skews.add(result.av_skew_ms)
            for k, v in result.stages.items():
                stage_times.setdefault(k, LatencyHistogram()).add(v)
            for sink in self.sinks:
                sink.put(result)
            if any(getattr(sink, "error", None) is not None for sink in self.sinks):
                return True  # a failed output (a full disk under --save) ends the run; close() reports it
        return self.config.max_results is not None and latencies.n >= self.config.max_results

    def run(self) -> Summary:
        """Runs to the end; Ctrl-C stops cleanly. Re-raises a source's error after shutting down."""
        threads = [threading.Thread(target=self._produce, args=(s,), daemon=True, name=f"source-{i}")
                   for i, s in enumerate(self.sources)]
        latencies = self._latencies
        p = self.session.preprocess  # warm-up: lazy imports and backend first-run costs happen now
        self.session.predict(image=np.zeros((p.image.size, p.image.size, 3), np.uint8),
                             audio=np.zeros(p.audio.clip_samples, np.float32))
        if self.session.window is not None:  # the blank warm-up frame is not the stream's first
            self.session.window.reset()
        if self.batch > 1:  # files: one call per batch only where this backend is faster that way
            self.session.choose_batching(self.batch)
        start = self._start = time.perf_counter()
        for th in threads:
            th.start()
        try:
            while not self._stop.is_set():
                if self.config.max_seconds is not None and time.perf_counter() - start >= self.config.max_seconds:
                    break
                samples = self._take()
                if not samples:
                    if self.sync.finished:
                        break
                    continue
                if self.config.max_results is not None:
                    samples = samples[:self.config.max_results - latencies.n]
                if self._deliver(self._infer(samples)):
                    break
        except KeyboardInterrupt:
            pass
        finally:
            self._stop.set()
            for s in self.sources:
                s.stop()
            for th in threads:
                th.join(timeout=2.0)
            for sink in self.sinks:
                sink.close()
        if self._errors:
            raise self._errors[0]
        return self.snapshot(final=True)

    def snapshot(self, final: bool = False) -> Summary:
        """What the run has done so far (safe to call from another thread while it runs: the live
        telemetry of ``--metrics``); ``final`` adds the whole-file answer."""
        stage_times = dict(self._stage_times)
        return Summary(frames=self.sync.frames_in, results=self._latencies.n, drops=self.sync.drops,
                       audio_overflows=sum(getattr(s, "overflows", 0) for s in self.sources),
                       audio_gaps=self.sync.ring.gaps, seconds=time.perf_counter() - self._start,
                       latency_ms=self._latencies.percentiles(),
                       stages_ms={k: v.percentiles()["p50"] for k, v in stage_times.items()},
                       backend=f"{self.session.backend.name} ({self.session.backend.device})",
                       reconnects=sum(getattr(s, "reconnects", 0) for s in self.sources),
                       audio_resyncs=self.sync.ring.resyncs,
                       audio_latency_ms=self._audio_latencies.summary(), av_skew_ms=self._skews.summary(),
                       audio_drift_ppm=self.sync.ring.drift_ppm() if self.live else None,
                       clip=None if self.live or not final else
                       clip_answer(self.session.labels, self._prob_sum, self._prob_count))
