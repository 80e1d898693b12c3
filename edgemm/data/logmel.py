"""The log-mel frontend in numpy, for bundles whose runtime computes it (``--frontend runtime``).

The model's own frontend (``edgemm.models.frontend.LogMelFrontend``) is the definition: the same
Hann window, Slaney mel filterbank and ``ln(mel + 1e-6)``, so a model trained on its output runs
on this one; the parity test holds them within float32 rounding. Here the DFT is numpy's real FFT
(pocketfft, O(n log n)) instead of graph matrix multiplies, and ``StreamingLogMel`` computes each
STFT frame once in a live run: consecutive windows overlap by all but a few hops, so a window
costs only the frames the previous one did not have.
"""

from __future__ import annotations

import math

import numpy as np

from edgemm.data.preprocess import AudioConfig

LOG_EPS = 1e-6


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    # Slaney's auditory-toolbox scale (librosa's default): linear below 1 kHz, log above.
    f = np.asarray(f, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Slaney-scale, Slaney-normalised triangular filters, shape (n_mels, n_fft // 2 + 1).

    Written out (20 lines) rather than importing librosa/torchaudio into the model path; the test
    suite checks it equals ``librosa.filters.mel`` with its defaults.
    """
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)  # bin k is at k * sr / n_fft, odd n_fft too
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def hann_window(cfg: AudioConfig) -> np.ndarray:
    """The periodic Hann window of ``win_length`` centred in ``n_fft`` (as ``torch.stft`` pads it), float64."""
    window = np.zeros(cfg.n_fft)
    left = (cfg.n_fft - cfg.win_length) // 2
    window[left:left + cfg.win_length] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.win_length) / cfg.win_length)
    return window


class LogMel:
    """Waveforms (B, samples) -> log-mel (B, 1, n_mels, frames), what the model's frontend gives.

    Args:
        cfg: The model's audio preprocessing.
    """

    def __init__(self, cfg: AudioConfig) -> None:
        self.cfg = cfg
        self.window = hann_window(cfg).astype(np.float32)
        self.mel_t = np.ascontiguousarray(
            mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max).T)  # (bins, n_mels)
        self.shape = (1, cfg.n_mels, cfg.n_frames)

    def frames(self, frames: np.ndarray) -> np.ndarray:
        """STFT frames (..., n_fft) -> log-mel columns (..., n_mels)."""
        power = np.abs(np.fft.rfft(frames * self.window, axis=-1))  # fewer numpy calls than re² + im²
        power *= power
        mel = power @ self.mel_t
        mel += LOG_EPS
        return np.log(mel, out=mel)

    def framed(self, wave: np.ndarray, first: int = 0) -> np.ndarray:
        """Frames ``first`` .. ``n_frames - 1`` of a whole window (..., samples) as a strided view
        (..., frames, n_fft), without copying (``sliding_window_view`` costs 12 µs of Python per
        call; a view on the buffer of a contiguous window 1 µs)."""
        cfg, step = self.cfg, wave.strides[-1]
        shape = (*wave.shape[:-1], cfg.n_frames - first, cfg.n_fft)
        strides = (*wave.strides[:-1], cfg.hop_length * step, step)
        if wave.flags.c_contiguous:
            return np.ndarray(shape, wave.dtype, buffer=wave, offset=first * cfg.hop_length * step, strides=strides)
        return np.lib.stride_tricks.as_strided(wave[..., first * cfg.hop_length:], shape=shape, strides=strides,
                                               writeable=False)

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        waves = np.asarray(waves, np.float32)
        length = self.cfg.n_fft + (self.cfg.n_frames - 1) * self.cfg.hop_length
        if waves.shape[-1] < length:  # as the graph frontend pads a short clip
            waves = np.pad(waves, [(0, 0)] * (waves.ndim - 1) + [(0, length - waves.shape[-1])])
        cols = self.frames(self.framed(waves))  # (B, frames, n_mels)
        return np.ascontiguousarray(np.swapaxes(cols, -1, -2)[:, None])


class StreamingLogMel:
    """``LogMel`` of consecutive windows of one stream, each STFT frame computed once.

    A window is given with the stream index of its first sample. When it starts a whole number of
    hops after the previous window and their shared samples are equal (checked, so a gap filled
    later or a clock resync cannot serve stale frames), the frames inside the shared part are
    reused and only the new ones are computed; otherwise the whole window is.

    Args:
        logmel: The frontend.
    """

    def __init__(self, logmel: LogMel) -> None:
        self.logmel = logmel
        self._start: int | None = None
        self._wave: np.ndarray | None = None
        self._cols: np.ndarray | None = None  # (frames, n_mels)
        self.computed = 0  # frames computed (for tests and benchmarks)
        self.reused = 0

    def __call__(self, wave: np.ndarray, start: int) -> np.ndarray:
        """Log-mel (1, n_mels, frames) of ``wave`` (exactly ``clip_samples``), whose first sample is
        stream index ``start``."""
        cfg = self.logmel.cfg
        hop, n = cfg.hop_length, cfg.n_frames
        wave = np.asarray(wave, np.float32)
        if wave.shape != (cfg.clip_samples,):
            raise ValueError(f"StreamingLogMel takes one window of {cfg.clip_samples} samples, got shape {wave.shape}")
        keep, step = 0, 0
        if self._start is not None:
            shift = start - self._start
            if 0 <= shift < len(wave) and shift % hop == 0:
                # new frame j is old frame j + step; both exist while j < n - step
                step = shift // hop
                keep = max(0, n - step)
                if keep and not np.array_equal(wave[:len(wave) - shift], self._wave[shift:]):
                    keep = 0
        cols = np.empty((n, cfg.n_mels), np.float32)
        if keep:
            cols[:keep] = self._cols[step:step + keep]
        if keep < n:
            cols[keep:] = self.logmel.frames(self.logmel.framed(wave, keep))
        self.computed += n - keep
        self.reused += keep
        self._start, self._wave, self._cols = start, wave, cols
        return cols.T[None]
