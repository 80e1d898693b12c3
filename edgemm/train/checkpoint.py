"""Checkpoints: plain tensors and primitives, written atomically, loaded with ``weights_only=True``.

A checkpoint holds the registry name and kwargs (the model is rebuilt, never unpickled), the
state dict, the labels and the preprocessing config, so nothing downstream guesses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgemm.atomic import atomic_path
from edgemm.models.surgery import apply_layer_shapes, layer_shapes

FORMAT = "edgemm-checkpoint"
VERSION = 1


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """Saves with ``torch.save`` to a temporary file beside ``path``, then renames it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def model_spec(model: nn.Module) -> dict[str, Any]:
    """The registry name and kwargs a model was built with (``create_model`` records them)."""
    spec = getattr(model, "edgemm_spec", None)
    if spec is None:
        raise ValueError("model was not built by edgemm.models.create_model, so it cannot be checkpointed by name")
    # Round-trip through JSON: kwargs must be plain data to load with weights_only=True.
    spec = json.loads(json.dumps(spec))
    # Starting weights are history, not structure: the state dict holds the trained weights, and
    # rebuilding must not need the pretrained file on the machine that loads the checkpoint.
    started = {k: kw.pop("pretrained") for k, kw in spec["kwargs"].items()
               if k.endswith("_encoder_kw") and isinstance(kw, dict) and kw.get("pretrained")}
    for k, kw in spec["kwargs"].items():  # a hub backbone is rebuilt from its config alone
        if k.endswith("_encoder_kw") and isinstance(kw, dict) and kw.get("model") and kw.get("weights", True):
            kw["weights"] = False
            started[k] = kw["model"]
    if started:
        spec["initialised_from"] = started
    return spec


def non_finite(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of ``state`` that hold NaN or infinity."""
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def make_checkpoint(model: nn.Module, *, labels: list[str], **extra: Any) -> dict[str, Any]:
    """Builds the checkpoint dict for a model plus any extra plain-data fields.

    Raises:
        ValueError: A weight or buffer holds NaN or infinity (a broken model is never saved).
    """
    inner = model.module if hasattr(model, "module") else model
    bad = non_finite(inner.state_dict())
    if bad:
        raise ValueError(f"refusing to save a model with non-finite weights ({len(bad)} tensors, first {bad[0]!r})")
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": model_spec(inner),
        "state_dict": {k: v.detach().cpu() for k, v in inner.state_dict().items()},
        "layers": layer_shapes(inner),
        "labels": list(labels),
        "preprocess": inner.preprocess.to_dict(),
        **extra,
    }


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Loads a checkpoint dict safely (``weights_only=True``).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is not an edgemm checkpoint or is of a newer version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise ValueError(f"{path}: not a readable checkpoint ({e.__class__.__name__}: {e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not an edgemm checkpoint (no format={FORMAT!r} field)")
    if ckpt.get("version", 0) > VERSION:
        raise ValueError(f"{path}: checkpoint version {ckpt['version']} is newer than this edgemm ({VERSION})")
    return ckpt


def load_model(path: str | Path, *, map_location: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuilds the model from a checkpoint and loads its weights.

    A checkpoint whose model is a code reference (``PATH.py:FUNCTION``) loads only if the user named
    that reference or opted in (``edgemm.trust``).

    Returns:
        The model in eval mode and the checkpoint dict.
    """
    from edgemm.models import create_model
    from edgemm.trust import check_stored_reference

    ckpt = load_checkpoint(path)
    spec = ckpt["model"]
    check_stored_reference(spec["name"], str(path))  # a file's model reference runs only if the user named it
    model = create_model(spec["name"], **spec["kwargs"])
    if "layers" in ckpt:  # structurally pruned models differ from the registered shapes
        apply_layer_shapes(model, ckpt["layers"], ckpt["state_dict"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(map_location).eval(), ckpt
