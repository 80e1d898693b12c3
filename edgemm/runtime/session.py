"""A loaded bundle: preprocessing from the manifest, batching, labelled predictions."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from edgemm.config import parse_enum
from edgemm.data.logmel import LogMel, StreamingLogMel
from edgemm.data.preprocess import PreprocessConfig, fit_length, preprocess_image, resample, to_mono
from edgemm.runtime.backends import CAN_RUN, DEFAULT_BACKEND, Backend, BackendName, BackendUnavailable, open_backend
from edgemm.runtime.manifest import BundleError, Manifest, read_manifest
from edgemm.runtime.window import FrameWindow
from edgemm.vocab import INPUT_NAMES, FrontendPlace, VerifyStatus

BATCH_TRIALS = 8  # batches timed each way before ``run`` keeps one (``Session.choose_batching``)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class Prediction:
    """One result: the top label, its probability, all probabilities and what the model saw."""

    label: str
    score: float
    scores: dict[str, float]
    image_present: bool
    audio_present: bool
    latency_ms: float
    stages: dict[str, float] = field(default_factory=dict)  # preprocess / inference / postprocess, ms

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.scores.items(), key=lambda kv: -kv[1])[:k]


class Session:
    """Runs a bundle with one backend.

    Args:
        bundle: The bundle directory.
        backend: A ``BackendName`` value (default: the one for the bundle's target).
        provider: Execution provider / OpenVINO device (see ``open_backend``).
        threads: Intra-op threads.
        profile: Turn on the backend's per-op profiler (see ``Backend.layer_times``).
        options: Backend options on top of the manifest's (OpenVINO properties, onnxruntime
            execution-provider options), e.g. from a device profile.
    """

    def __init__(self, bundle: str | Path, backend: str | None = None, provider: str | None = None,
                 threads: int | None = None, profile: bool = False, options: dict | None = None) -> None:
        self.path = Path(bundle)
        self.manifest: Manifest = read_manifest(self.path)
        m = self.manifest
        name = parse_enum(BackendName, backend, "backend") if backend else DEFAULT_BACKEND.get(m.target)
        if name is None or m.target not in CAN_RUN[name]:
            raise BundleError(self.path, f"backend {backend!r} cannot run a {m.target!r} bundle")
        if m.verification.get("status") == VerifyStatus.FAILED:
            warnings.warn(f"{self.path}: this bundle failed verification at export "
                          f"({m.verification.get('message', 'see manifest.json')})", stacklevel=2)
        hints = {**m.runtime, name.value: {**m.runtime.get(name.value, {}), **(options or {})}}
        try:
            self.backend: Backend = open_backend(name, self.path / m.files["model"], runtime_hints=hints,
                                                 provider=provider, threads=threads, profile=profile)
        except (BackendUnavailable, ValueError):
            raise
        except Exception as e:  # each runtime raises its own types for a file it cannot read
            raise BundleError(self.path, f"{name.value} cannot load {m.files['model']} (damaged or not a "
                                         f"{m.target} model?): {_first_line(e)}") from None
        self.labels = list(m.labels)
        # Scores are softmax(logits / T) with the temperature fitted at export (1: none fitted).
        self.temperature = float((m.calibration or {}).get("temperature", 1.0))
        self.preprocess = PreprocessConfig.from_dict(m.preprocess)
        self._tensor = {t.name: t.tensor for t in m.inputs}
        missing = [n for n in INPUT_NAMES if n not in self._tensor]
        if missing:
            raise BundleError(self.path, f"manifest inputs lack {missing}")
        self._dtype = {t.name: np.dtype(t.dtype) for t in m.inputs}
        self._output = m.outputs[0].tensor
        # A bundle whose runtime computes the log-mel (``edgemm export --frontend runtime``).
        self.logmel = LogMel(self.preprocess.audio) if m.frontend is FrontendPlace.RUNTIME else None
        self._stream = StreamingLogMel(self.logmel) if self.logmel else None
        self._silence = self.logmel(np.zeros((1, self.preprocess.audio.clip_samples), np.float32)) if self.logmel else None
        # A temporal model's inputs are the last K frames; ``predict`` calls are one stream's frames in order.
        p = self.preprocess
        self.window = FrameWindow(p.frames, p.frame_stride, p.frame_rate) if p.frames > 1 else None
        self.fixed_batch = m.batch if isinstance(m.batch, int) else None
        self.call_batch: int | None = None  # samples per backend call in ``run`` (None: all at once)
        self._trials: dict[int | None, list[float]] | None = None  # ``choose_batching``'s timings, per way
        self._probe()

    def _probe(self) -> None:
        """Runs one silent, blank batch: the model must take the manifest's inputs and give one score per label.

        Raises:
            BundleError: Naming what the manifest says and what the model did.
        """
        size, samples = self.preprocess.image.size, self.preprocess.audio.clip_samples
        b = self.fixed_batch or 1
        try:
            out = self.run(np.zeros((b, 3, size, size), np.float32), np.zeros((b, samples), np.float32))
        except Exception as e:
            raise BundleError(self.path, f"the model does not take the inputs its manifest describes (image "
                                         f"3x{size}x{size}, audio {samples} samples): {_first_line(e)}") from None
        if out.ndim != 2 or out.shape[-1] != len(self.labels):
            raise BundleError(self.path, f"the model gives {out.shape[-1] if out.ndim else 0} scores per sample "
                                         f"but the manifest lists {len(self.labels)} labels")

    @property
    def align(self) -> int:
        """Samples that live audio windows should end on a multiple of: the hop when this session
        computes the log-mel, so consecutive windows share whole STFT frames, else 1."""
        return self.preprocess.audio.hop_length if self.logmel else 1

    def run(self, image: np.ndarray, audio: np.ndarray, image_present: np.ndarray | None = None,
            audio_present: np.ndarray | None = None) -> np.ndarray:
        """Logits for a batch of preprocessed inputs (what ``edgemm.data`` yields: ``audio`` is the
        waveform (B, samples), or, for a runtime-frontend bundle, already its log-mel), shape (B, classes).
        A temporal model takes windows, (B, K, ...) each (flags (B, K) or (B,)); single frames are
        run as stills (the frame repeated K times)."""
        b = image.shape[0]
        if self.logmel is not None and audio.ndim == image.ndim - 2:  # waveforms: (B, T) or windows' (B, K, T)
            audio = self.logmel(audio.reshape(-1, audio.shape[-1])).reshape(*audio.shape[:-1], *self.logmel.shape)
        if self.window is not None:
            image, audio, image_present, audio_present = _as_windows(self.window.frames, image, audio, image_present,
                                                                     audio_present)
        feeds = {"image": image, "audio": audio,
                 "image_present": np.ones(image.shape[:-3], np.float32) if image_present is None else image_present,
                 "audio_present": np.ones(image.shape[:-3], np.float32) if audio_present is None else audio_present}
        feeds = {self._tensor[k]: np.ascontiguousarray(v, dtype=self._dtype[k]) for k, v in feeds.items()}
        return self._call(feeds, b)

    def _logmel(self, waves: np.ndarray, audios: Sequence[np.ndarray | None],
                starts: Sequence[int | None] | None) -> np.ndarray:
        """The runtime frontend of ``predict_batch``'s windows: streamed where a window's stream index is known."""
        clip = waves.shape[1]
        out = np.empty((len(waves), *self.logmel.shape), np.float32)
        for k, (wave, audio) in enumerate(zip(waves, audios)):
            start = None if starts is None or audio is None or len(audio) < clip else starts[k]
            if audio is None:
                out[k] = self._silence[0]
            elif start is None:
                out[k] = self.logmel(wave[None])[0]
            else:  # the window used is the newest ``clip`` samples
                out[k] = self._stream(wave, start + len(audio) - clip)
        return out

    def choose_batching(self, batch: int) -> None:
        """Lets ``run`` find out, on the batches it is given, whether one backend call per batch or
        one per sample is faster, and keep that (``call_batch``).

        The first ``BATCH_TRIALS`` batches of more than one sample each way are timed, in turn, and
        the median time per sample decides (a first call's warm-up and the decoder thread's bursts
        do not: with 3 trials and the fastest of each, onnxruntime's choice flipped between runs);
        every one of them is real work, none is spent on blank inputs. Whether batching pays depends on the
        backend and the graph: measured on the default student, OpenVINO's time per sample fell
        from 1.30 ms at batch 1 to 0.79 ms at batch 8, and onnxruntime's rose from 0.64 to 0.76 ms.
        A bundle with a fixed batch keeps it.

        Args:
            batch: The most samples a call will get.
        """
        if self.fixed_batch is None and batch > 1:
            self.call_batch, self._trials = None, {None: [], 1: []}

    def _call(self, feeds: dict[str, np.ndarray], b: int) -> np.ndarray:
        if self._trials is None or b == 1:
            return self._in_steps(feeds, b, self.fixed_batch or self.call_batch or b)
        way = min(self._trials, key=lambda k: len(self._trials[k]))  # alternate: the way tried least
        t = time.perf_counter()
        out = self._in_steps(feeds, b, way or b)
        self._trials[way].append((time.perf_counter() - t) / b)
        if all(len(v) >= BATCH_TRIALS for v in self._trials.values()):
            self.call_batch = min(self._trials, key=lambda k: float(np.median(self._trials[k])))
            self._trials = None
        return out

    def _in_steps(self, feeds: dict[str, np.ndarray], b: int, step: int) -> np.ndarray:
        if b == step:
            return self.backend.run(feeds)[self._output]
        parts = [self.backend.run({k: v[i:i + step] for k, v in feeds.items()})[self._output] for i in range(0, b, step)]
        return np.concatenate(parts)

    def predict(self, image: np.ndarray | None = None, audio: np.ndarray | None = None,
                sample_rate: int | None = None, t: float | None = None) -> Prediction:
        """Classifies one camera frame and/or one audio window; an absent one is run as absent.

        Args:
            image: An RGB uint8 frame (H, W, 3), any size: centre-cropped and resized here.
            audio: A mono (or (samples, channels)) waveform, newest samples last; the newest
                ``clip_seconds`` are used (a shorter one is zero-padded on both sides, as in training).
            sample_rate: Rate of ``audio`` (default: the model's); it is resampled when different.
            t: The frame's time in seconds on its stream's clock: a temporal model whose bundle
                records the frame rate it was trained at picks its window's frames by time (else by count).
        """
        return self.predict_batch([image], [audio], sample_rate, times=None if t is None else [t])[0]

    def predict_batch(self, images: Sequence[np.ndarray | None], audios: Sequence[np.ndarray | None],
                      sample_rate: int | None = None, audio_starts: Sequence[int | None] | None = None,
                      times: Sequence[float] | None = None) -> list[Prediction]:
        """``predict`` for several frames / windows in one backend call (pairs in order; either
        of a pair may be None, not both). Each prediction's stages are its share of the batch's.

        Args:
            audio_starts: The stream index of each window's first sample, for consecutive windows
                of one stream (``edgemm.runtime.sync``): a runtime frontend then computes each STFT
                frame once.
            times: Each frame's time in seconds on its stream's clock (``predict``'s ``t``).
        """
        if len(images) != len(audios):
            raise ValueError(f"predict_batch: {len(images)} images but {len(audios)} audio windows")
        if any(i is None and a is None for i, a in zip(images, audios)):
            raise ValueError("predict needs an image, audio, or both")
        t0 = time.perf_counter_ns()
        p, b = self.preprocess, len(images)
        s = p.image.size
        x_img = np.zeros((b, 3, s, s), np.float32)
        x_aud = np.zeros((b, p.audio.clip_samples), np.float32)
        for k, (image, audio) in enumerate(zip(images, audios)):
            if image is not None:
                x_img[k] = preprocess_image(image, p.image)
            if audio is not None:
                wave = resample(to_mono(audio), sample_rate or p.audio.sample_rate, p.audio.sample_rate)
                x_aud[k] = fit_length(wave[-p.audio.clip_samples:], p.audio.clip_samples)
        if self.logmel is not None:
            same_rate = sample_rate in (None, p.audio.sample_rate)
            x_aud = self._logmel(x_aud, audios, audio_starts if same_rate else None)
        flags = (np.array([float(i is not None) for i in images], np.float32),
                 np.array([float(a is not None) for a in audios], np.float32))
        inputs = (x_img, x_aud, *flags)
        if self.window is not None:  # each frame joins the stream's window, in order
            stamps = [None] * b if times is None else times
            inputs = tuple(np.stack(w) for w in zip(*(self.window.push(*(x[k] for x in inputs), t=stamps[k])
                                                      for k in range(b))))
        t1 = time.perf_counter_ns()
        logits = self.run(*inputs)
        t2 = time.perf_counter_ns()
        probs = softmax(logits.astype(np.float64) / self.temperature)
        out = []
        for k in range(b):
            i = int(probs[k].argmax())
            out.append(Prediction(label=self.labels[i], score=float(probs[k, i]),
                                  scores={lab: float(v) for lab, v in zip(self.labels, probs[k])},
                                  image_present=images[k] is not None, audio_present=audios[k] is not None,
                                  latency_ms=0.0))
        t3 = time.perf_counter_ns()
        stages = {"preprocess": (t1 - t0) / 1e6 / b, "inference": (t2 - t1) / 1e6 / b, "postprocess": (t3 - t2) / 1e6 / b}
        for pred in out:
            pred.stages, pred.latency_ms = dict(stages), (t3 - t0) / 1e6 / b
        return out


def _as_windows(frames: int, image: np.ndarray, audio: np.ndarray, image_present: np.ndarray | None,
                audio_present: np.ndarray | None) -> tuple[np.ndarray | None, ...]:
    """A temporal model's inputs: single frames (B, 3, S, S) repeated ``frames`` times, flags (B,) per frame."""
    if image.ndim == 4:
        image, audio = (np.repeat(x[:, None], frames, axis=1) for x in (image, audio))
    b = image.shape[0]
    flags = [None if f is None else np.broadcast_to(np.asarray(f).reshape(b, -1), (b, frames))
             for f in (image_present, audio_present)]
    return (image, audio, *flags)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


def load(bundle: str | Path, backend: str | None = None, provider: str | None = None,
         threads: int | None = None, options: dict | None = None) -> Session:
    """Opens a bundle for inference (see ``Session``)."""
    return Session(bundle, backend=backend, provider=provider, threads=threads, options=options)
