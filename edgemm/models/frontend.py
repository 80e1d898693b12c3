"""The log-mel audio frontend as fixed-weight graph ops, so exported models take raw waveform.

STFT = a two-stage (Cooley-Tukey) DFT of sliced frames, each stage one matrix multiply, or, for an
``n_fft`` that does not factor, a strided 1-D convolution whose kernels are the Hann-windowed DFT
basis; power = re² + im², then a mel matrix multiply and a log. Every op here (Slice, Concat,
Reshape, Transpose, MatMul/Gemm, Mul, Add, Conv1d, Log) exists in ONNX, OpenVINO and TFLite, unlike
``torch.stft``; the backends' own DFT operators are not portable (onnxruntime's ``DFT`` is only fast
for powers of two, TFLite's ``RFFT2D`` takes only powers of two, and the default ``n_fft`` is 400). Parity with librosa's
``melspectrogram(center=False)`` is under test.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from edgemm.data.logmel import LOG_EPS, hann_window, mel_filterbank
from edgemm.data.preprocess import AudioConfig
from edgemm.vocab import FRONTEND_MODULE


def _frame_macs(n_fft: int, n_mels: int, n1: int) -> int:
    """Multiply-adds per frame of the dense DFT (``n1 == 1``) or of the two-stage DFT with
    ``n_fft = n1 * n2``: window, stage 1, twiddle, stage 2, power, mel matrix."""
    n_freq = n_fft // 2 + 1
    if n1 == 1:
        return 2 * n_freq * n_fft + 2 * n_freq + n_mels * n_freq
    n2, k2 = n_fft // n1, n_freq // n1 + 1
    return n_fft + 2 * n_fft * n1 + 4 * n_fft + n1 * 2 * n2 * 2 * k2 + 2 * n1 * k2 + n1 * k2 * n_mels


def _factor(n_fft: int, n_mels: int) -> tuple[int, int]:
    """The split ``n_fft = n1 * n2`` with the fewest multiply-adds per frame, or ``(1, n_fft)`` when
    no split beats the dense DFT (``n_fft`` prime or tiny)."""
    n1 = min((d for d in range(1, n_fft) if n_fft % d == 0), key=lambda d: _frame_macs(n_fft, n_mels, d))
    return n1, n_fft // n1


class LogMelFrontend(nn.Module):
    """Raw waveform (B, samples) -> log-mel (B, 1, n_mels, frames), no centre padding.

    The DFT is computed in two stages when ``n_fft`` factors (Cooley-Tukey, ``n_fft = n1 * n2``):
    a size-``n1`` DFT of every frame's ``n2`` decimated sub-sequences, a twiddle multiply, then a
    size-``n2`` DFT that produces only the bins up to Nyquist. Each stage is one matrix multiply
    (``F.linear``), which every target runs as a plain GEMM; the mel matrix's rows are permuted to
    the order the second stage writes its bins in, so no transpose is needed before it. For the
    default 400-point STFT this is 3.5x fewer multiply-adds than one dense DFT-as-convolution
    (49.3 k against 173.7 k per frame, 16 x 25). Frames are cut by slicing hop-sized chunks, not gathered.
    """

    def __init__(self, cfg: AudioConfig, *, staged: bool = True) -> None:
        """
        Args:
            cfg: The audio preprocessing.
            staged: Use the two-stage DFT where ``n_fft`` factors; False always builds the dense
                DFT-as-convolution (for comparisons: both give the same log-mel).
        """
        super().__init__()
        self.cfg = cfg
        n_fft, hop = cfg.n_fft, cfg.hop_length
        window = torch.from_numpy(hann_window(cfg))
        self.n_freq = n_fft // 2 + 1
        self.n1, self.n2 = _factor(n_fft, cfg.n_mels) if staged else (1, n_fft)
        self.k2 = self.n_freq // self.n1 + 1
        # Framing: the clip as (chunks, hop), frame t = chunks t .. t + per_frame - 1, cut to n_fft.
        self.per_frame = -(-n_fft // hop)
        self.n_chunks = cfg.n_frames - 1 + self.per_frame
        fb = torch.from_numpy(mel_filterbank(cfg.sample_rate, n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)).double()
        # Fixed weights, rebuilt from the config: not trainable, not in the state dict.
        buffers = self._dense(window, fb) if self.n1 == 1 else self._staged(window, fb)
        for name, value in buffers.items():
            self.register_buffer(name, value.float().contiguous(), persistent=False)

    def _dense(self, window: torch.Tensor, fb: torch.Tensor) -> dict[str, torch.Tensor]:
        n_fft = self.cfg.n_fft
        angle = 2 * math.pi * torch.outer(torch.arange(self.n_freq, dtype=torch.float64),
                                          torch.arange(n_fft, dtype=torch.float64)) / n_fft
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window
        return {"dft": basis, "mel": fb}

    def _staged(self, window: torch.Tensor, fb: torch.Tensor) -> dict[str, torch.Tensor]:
        n1, n2, k2, n_fft = self.n1, self.n2, self.k2, self.cfg.n_fft
        f64 = dict(dtype=torch.float64)
        # Stage 1, applied to frames viewed as (n1, n2) with n = n1_index * n2 + n2_index:
        # Y[k1, n2] = sum_n1 x[n1, n2] e^{-2 pi i n1 k1 / n1}, real parts above imaginary parts.
        a = 2 * math.pi * torch.outer(torch.arange(n1, **f64), torch.arange(n1, **f64)) / n1
        stage1 = torch.cat([torch.cos(a), -torch.sin(a)])  # (2 n1 out, n1 in), multiplied from the left
        # Twiddle e^{-2 pi i n2 k1 / n_fft}, laid out (k1, n2) for the second stage.
        t = 2 * math.pi * torch.outer(torch.arange(n1, **f64), torch.arange(n2, **f64)) / n_fft
        # Stage 2: X[k1 + n1 k2] = sum_n2 Z[k1, n2] e^{-2 pi i n2 k2 / n2}, input [Zr | Zi], output [Xr | Xi].
        b = 2 * math.pi * torch.outer(torch.arange(k2, **f64), torch.arange(n2, **f64)) / n2
        c, s = torch.cos(b), torch.sin(b)
        stage2 = torch.cat([torch.cat([c, s], 1), torch.cat([-s, c], 1)])  # (2 k2 out, 2 n2 in)
        # Mel rows in the order the second stage writes bins (k1-major, k2-minor); bins past Nyquist 0.
        k = (torch.arange(n1)[:, None] + n1 * torch.arange(k2)[None, :]).reshape(-1)
        mel = torch.zeros(fb.shape[0], n1 * k2, **f64)
        mel[:, k < self.n_freq] = fb[:, k[k < self.n_freq]]
        return {"window": window.reshape(n1, n2), "stage1": stage1, "twiddle_cos": torch.cos(t),
                "twiddle_sin": torch.sin(t), "stage2": stage2, "mel": mel}

    def frames(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> (B, frames, n_fft), by slicing hop-sized chunks (no gather, no unfold)."""
        hop, length = self.cfg.hop_length, self.n_chunks * self.cfg.hop_length
        if wave.shape[-1] < length:
            wave = nn.functional.pad(wave, (0, length - wave.shape[-1]))
        chunks = wave[:, :length].reshape(wave.shape[0], self.n_chunks, hop)
        t = self.cfg.n_frames
        parts = [chunks[:, j : j + t] for j in range(self.per_frame)]
        return (torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0])[..., : self.cfg.n_fft]

    def power(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> power spectrum (B, frames, bins); bins in frequency order for the dense
        DFT, in the staged DFT's order (matching ``self.mel``'s columns) otherwise."""
        if self.n1 == 1:
            spec = nn.functional.conv1d(wave.unsqueeze(1), self.dft.unsqueeze(1), stride=self.cfg.hop_length)
            re, im = spec[:, : self.n_freq], spec[:, self.n_freq :]
            return (re * re + im * im).transpose(1, 2)
        x = self.frames(wave)
        b, t = x.shape[:2]
        x = x.reshape(b, t, self.n1, self.n2) * self.window  # (B, T, n1, n2), n = n1_index * n2 + n2_index
        # Stage 1 multiplies from the left (over n1), so no transpose: onnxruntime's 4-D transposes of
        # these small blocks cost more than both matrix multiplies together (0.53 of 1.0 ms, measured).
        y = torch.matmul(self.stage1, x)  # (B, T, 2 n1, n2)
        yr, yi = y[:, :, : self.n1], y[:, :, self.n1 :]
        zr = yr * self.twiddle_cos + yi * self.twiddle_sin
        zi = yi * self.twiddle_cos - yr * self.twiddle_sin
        spec = nn.functional.linear(torch.cat([zr, zi], dim=-1), self.stage2)  # (B, T, n1, 2 k2)
        spec = spec * spec
        return (spec[..., : self.k2] + spec[..., self.k2 :]).reshape(b, t, self.n1 * self.k2)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mel = nn.functional.linear(self.power(wave), self.mel)  # (B, T, n_mels)
        return torch.log(mel + LOG_EPS).transpose(1, 2).unsqueeze(1)

    def macs(self) -> int:
        """Multiply-adds per sample (functional ops a module counter does not see)."""
        return self.cfg.n_frames * _frame_macs(self.cfg.n_fft, self.cfg.n_mels, self.n1)


class ExternalLogMel(nn.Identity):
    """Stands where a model's ``LogMelFrontend`` was once ``without_frontend`` took it out: the
    model then takes the log-mel (B, 1, n_mels, frames) that the runtime computes."""


def takes_logmel(model: nn.Module) -> bool:
    """Whether ``model``'s frontend was taken out (``without_frontend``)."""
    return isinstance(getattr(model, FRONTEND_MODULE, None), ExternalLogMel)


def without_frontend(model: nn.Module) -> nn.Module:
    """A copy of ``model`` that takes the log-mel where ``model`` takes the waveform, for bundles
    whose runtime computes the frontend (``edgemm export --frontend runtime``); ``model`` is unchanged.

    Raises:
        ValueError: ``model`` has no edgemm log-mel frontend, or does not take presence flags (edgemm
            then zeroes an absent microphone's waveform in front of the frontend, inside the graph).
    """
    if not isinstance(getattr(model, FRONTEND_MODULE, None), LogMelFrontend):
        raise ValueError(f"{type(model).__name__} has no edgemm log-mel frontend (it takes the waveform or its "
                         "own audio representation): only the graph can compute its audio input")
    if not getattr(model, "flags", True):
        raise ValueError(f"{type(model).__name__} does not take presence flags, so an absent microphone's "
                         "waveform is zeroed in front of its frontend, inside the graph: keep the frontend there")
    body = copy.deepcopy(model)
    setattr(body, FRONTEND_MODULE, ExternalLogMel())
    return body


class SpecAugment(nn.Module):
    """Time and frequency masking on log-mel (Park et al. 2019); identity in eval mode."""

    def __init__(self, *, freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2, time_width: int = 10) -> None:
        super().__init__()
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        b, _, n_mels, n_frames = x.shape
        fill = x.mean(dim=(1, 2, 3), keepdim=True)
        mask = torch.zeros(b, 1, n_mels, n_frames, dtype=torch.bool, device=x.device)
        for count, width, size, axis in (
            (self.freq_masks, self.freq_width, n_mels, 2),
            (self.time_masks, self.time_width, n_frames, 3),
        ):
            pos = torch.arange(size, device=x.device).view(1, -1)
            for _ in range(count):
                w = torch.randint(0, width + 1, (b, 1), device=x.device)
                start = (torch.rand(b, 1, device=x.device) * (size - w + 1)).long()
                m = (pos >= start) & (pos < start + w)
                shape = [b, 1, 1, 1]
                shape[axis] = size
                mask |= m.view(shape)
        return torch.where(mask, fill, x)


class ImageStandardize(nn.Module):
    """Standardises each image to zero mean and unit variance over its pixels and channels.

    Removes what exposure, contrast and white level add to an image, so a branch trained from
    scratch on a few hundred images learns shapes instead of lighting (measured on a real small
    set: image-only accuracy after 500 steps of a plain CNN went from 0.18 to 0.82,
    benchmarks/HISTORY.md "Real small data"). The variance has a floor so that a flat frame (a
    covered camera) is not blown up into noise.
    """

    def __init__(self, min_var: float = 1e-2) -> None:
        super().__init__()
        self.min_var = min_var

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = _mean_chw(x)
        var = _mean_chw((x - mean).pow(2))
        return (x - mean) * torch.rsqrt(var + self.min_var)


def _mean_chw(x: torch.Tensor) -> torch.Tensor:
    """Mean over channels, rows and columns, one axis at a time (the same value in exact arithmetic).

    A runtime that sums a reduction in one running float32 total loses precision with its length:
    ExecuTorch's mean over the 76,800 values of a 160 px image was off by 1e-5, which the image
    branch amplified to 6e-4 in a logit (PyTorch's own float32 is within 2e-6 of float64). Rows of
    at most a few hundred values keep every runtime's sum exact to float32 rounding.
    """
    return x.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True).mean(dim=1, keepdim=True)
