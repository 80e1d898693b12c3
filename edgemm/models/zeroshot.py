"""A zero-shot audio-visual teacher from foundation models and the class names alone.

An image–text model (CLIP family, ``transformers`` ``CLIPModel``) scores the camera frame against
one prompt per class (``"a photo of a {label}"``); an audio–text model (CLAP, ``ClapModel``) scores
the microphone window against another (``"the sound of a {label}"``). The teacher's logits are a
weighted sum of the two modalities' cosine similarities times a temperature, each term present only
when its modality is; with a few labels, ``calibrate`` fits the two weights and the temperature on
them (everything else stays frozen). Either model alone works too.

Models are hub ids or local ``save_pretrained`` directories, resolved offline from the Hugging Face
cache (``edgemm.models.pretrained.resolve_hub_model``). The teacher takes edgemm's inputs (the
student's preprocessing) and converts them itself: the image is un-normalised, resized to the
vision tower's size and normalised as CLIP expects; the waveform is resampled to CLAP's rate and
turned into its features by CLAP's own feature extractor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgemm.data.preprocess import PreprocessConfig, resample

# CLIP's normalisation when a checkpoint ships no preprocessor_config.json.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PROMPT_FIELD = "{label}"


@dataclass(frozen=True)
class ZeroShotConfig:
    """Which foundation models make the teacher, and how classes become prompts.

    Attributes:
        clip: Image–text model: hub id (``openai/clip-vit-base-patch32``) or local directory.
        clap: Audio–text model: hub id (``laion/clap-htsat-unfused``) or local directory.
        image_prompt: Prompt per class for the image model; ``{label}`` is replaced by the class
            name with underscores as spaces.
        audio_prompt: Likewise for the audio model.
    """

    clip: str | None = None
    clap: str | None = None
    image_prompt: str = "a photo of a {label}"
    audio_prompt: str = "the sound of a {label}"

    def __post_init__(self) -> None:
        if not self.clip and not self.clap:
            raise ValueError("a zero-shot teacher needs clip=MODEL, clap=MODEL or both")
        for name in ("image_prompt", "audio_prompt"):
            if PROMPT_FIELD not in getattr(self, name):
                raise ValueError(f"{name} must contain {PROMPT_FIELD}, got {getattr(self, name)!r}")

    @classmethod
    def parse(cls, text: str) -> "ZeroShotConfig":
        """``clip=ID,clap=ID`` (either may be left out), as ``--teacher`` takes it."""
        fields: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key not in ("clip", "clap") or not value:
                raise ValueError(f"--teacher {text!r}: expected clip=MODEL,clap=MODEL (hub ids or local directories)")
            fields[key] = value
        return cls(**fields)

    @staticmethod
    def looks_like(text: str) -> bool:
        return isinstance(text, str) and text.strip().startswith(("clip=", "clap="))

    def describe(self) -> str:
        return ",".join(f"{k}={v}" for k, v in (("clip", self.clip), ("clap", self.clap)) if v)


def _pooled(out: Any) -> torch.Tensor:
    """Projected embeddings from ``get_*_features`` (a tensor, or an output with ``pooler_output``)."""
    return out if torch.is_tensor(out) else out.pooler_output


def _prompts(template: str, labels: Sequence[str]) -> list[str]:
    return [template.replace(PROMPT_FIELD, label.replace("_", " ")) for label in labels]


class ZeroShotTeacher(nn.Module):
    """Zero-shot logits from CLIP and/or CLAP (see the module docstring).

    Args:
        labels: Class names, in the student's order.
        preprocess: The student's preprocessing: what the teacher is fed.
        config: The models and prompts.
    """

    def __init__(self, labels: Sequence[str], preprocess: PreprocessConfig, config: ZeroShotConfig) -> None:
        super().__init__()
        self.labels, self.preprocess, self.config = list(labels), preprocess, config
        self.clip = self.clap = self.clap_features = None
        if config.clip:
            self.clip, tokenizer, path = _load(config.clip)
            self.register_buffer("image_text", self._text(self.clip, tokenizer, _prompts(config.image_prompt, labels)))
            self.clip_size = int(self.clip.config.vision_config.image_size)
            mean, std = _clip_normalisation(path)
            self.register_buffer("clip_mean", torch.tensor(mean).view(1, 3, 1, 1))
            self.register_buffer("clip_std", torch.tensor(std).view(1, 3, 1, 1))
        if config.clap:
            from transformers import AutoFeatureExtractor

            self.clap, tokenizer, path = _load(config.clap)
            self.clap_features = AutoFeatureExtractor.from_pretrained(path)
            self.register_buffer("audio_text", self._text(self.clap, tokenizer, _prompts(config.audio_prompt, labels)))
        img = preprocess.image
        self.register_buffer("in_mean", torch.tensor(img.mean).view(1, 3, 1, 1))
        self.register_buffer("in_std", torch.tensor(img.std).view(1, 3, 1, 1))
        # What calibration fits: one weight per modality and the temperature (CLIP's own starts at 100).
        self.weight = nn.Parameter(torch.ones(2))
        self.log_scale = nn.Parameter(torch.tensor(math.log(100.0)))
        for tower in (self.clip, self.clap):
            if tower is not None:
                tower.eval().requires_grad_(False)

    @staticmethod
    @torch.no_grad()
    def _text(model: nn.Module, tokenizer, prompts: list[str]) -> torch.Tensor:
        tokens = tokenizer(prompts, padding=True, return_tensors="pt")
        return F.normalize(_pooled(model.get_text_features(**tokens)).float(), dim=-1)

    def train(self, mode: bool = True) -> "ZeroShotTeacher":
        super().train(mode)
        for tower in (self.clip, self.clap):  # the foundation models never leave eval mode
            if tower is not None:
                tower.eval()
        return self

    @torch.no_grad()
    def similarities(self, image: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Cosine similarity of each sample with each class prompt, per modality ((B, C) or None)."""
        si = sa = None
        if self.clip is not None:
            x = image.float() * self.in_std + self.in_mean  # back to [0, 1] RGB
            x = F.interpolate(x, size=(self.clip_size, self.clip_size), mode="bilinear", antialias=True,
                              align_corners=False)
            emb = _pooled(self.clip.get_image_features(pixel_values=(x - self.clip_mean) / self.clip_std))
            si = F.normalize(emb.float(), dim=-1) @ self.image_text.T
        if self.clap is not None:
            rate, target = self.preprocess.audio.sample_rate, self.clap_features.sampling_rate
            waves = [resample(w, rate, target) for w in audio.float().cpu().numpy()]
            feats = self.clap_features(waves, sampling_rate=target, return_tensors="pt")
            emb = _pooled(self.clap.get_audio_features(**{k: v.to(audio.device) for k, v in feats.items()
                                                         if k in ("input_features", "is_longer")}))
            sa = F.normalize(emb.float(), dim=-1) @ self.audio_text.T
        return si, sa

    def combine(self, si: torch.Tensor | None, sa: torch.Tensor | None, image_present: torch.Tensor,
                audio_present: torch.Tensor) -> torch.Tensor:
        """Logits from the similarities: weighted, each modality only where present, times the temperature."""
        ref = si if si is not None else sa
        logits = torch.zeros_like(ref)
        if si is not None:
            logits = logits + self.weight[0] * si * image_present.view(-1, 1)
        if sa is not None:
            logits = logits + self.weight[1] * sa * audio_present.view(-1, 1)
        return logits * self.log_scale.exp()

    def forward(self, image: torch.Tensor, audio: torch.Tensor, image_present: torch.Tensor | None = None,
                audio_present: torch.Tensor | None = None) -> torch.Tensor:
        b = image.shape[0]
        ip = torch.ones(b, device=image.device) if image_present is None else image_present
        ap = torch.ones(b, device=image.device) if audio_present is None else audio_present
        si, sa = self.similarities(image, audio)
        return self.combine(si, sa, ip.float(), ap.float())

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        from edgemm.models.av import example_inputs

        return example_inputs(self.preprocess, batch)

    def calibrate(self, dataset, *, batch_size: int = 32, steps: int = 100) -> dict[str, float]:
        """Fits the modality weights and the temperature on labelled samples (cross-entropy, LBFGS).

        Returns:
            Accuracy on those samples before and after, and how many there were.
        """
        from edgemm.runtime.evaluate import batches

        sims_i, sims_a, ys = [], [], []
        for batch in batches(dataset, batch_size):
            si, sa = self.similarities(torch.from_numpy(batch["image"]), torch.from_numpy(batch["audio"]))
            sims_i.append(si)
            sims_a.append(sa)
            ys.append(torch.from_numpy(batch["label"]))
        cat = lambda parts: None if parts[0] is None else torch.cat(parts)  # noqa: E731
        si, sa, y = cat(sims_i), cat(sims_a), torch.cat(ys)
        ones = torch.ones(len(y))
        accuracy = lambda: float((self.combine(si, sa, ones, ones).argmax(1) == y).float().mean())  # noqa: E731
        before = accuracy()
        opt = torch.optim.LBFGS([self.weight, self.log_scale], max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(self.combine(si, sa, ones, ones), y)
            loss.backward()
            return loss

        opt.step(closure)
        return {"samples": int(len(y)), "accuracy_before": before, "accuracy_after": accuracy(),
                "weights": self.weight.detach().tolist(), "scale": float(self.log_scale.detach().exp())}


def _load(spec: str):
    """Model, tokenizer and local path of a hub id or directory (offline from the cache)."""
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise ImportError("zero-shot teachers need transformers: pip install 'edgemm[hub]'") from None
    from edgemm.models.pretrained import resolve_hub_model

    path = resolve_hub_model(spec)
    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path), path


def _clip_normalisation(path: str | Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The image mean and std a CLIP checkpoint was trained with (its preprocessor config, else OpenAI's)."""
    import json

    config = Path(path) / "preprocessor_config.json"
    if config.is_file():
        data = json.loads(config.read_text())
        if "image_mean" in data and "image_std" in data:
            return tuple(data["image_mean"]), tuple(data["image_std"])
    return CLIP_MEAN, CLIP_STD


def label_prompts(config: ZeroShotConfig, labels: Sequence[str]) -> dict[str, list[str]]:
    """The prompts a teacher would use, for logs and reports."""
    return {"image": _prompts(config.image_prompt, labels) if config.clip else [],
            "audio": _prompts(config.audio_prompt, labels) if config.clap else []}


__all__ = ["ZeroShotConfig", "ZeroShotTeacher", "label_prompts"]
