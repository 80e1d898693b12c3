"""Your own model under edgemm's one contract: ``PATH.py:FUNCTION`` or ``package.module:FUNCTION``.

Anywhere a registered model name is accepted (``edgemm train --model``, a recipe's ``student`` or
``teacher.model``, ``edgemm compress --student/--teacher``, ``edgemm check``), a factory reference
works too. The factory is called with ``num_classes=`` (and any other keyword arguments given) and
returns an ``nn.Module`` whose ``forward`` takes

- ``image``: ``(B, 3, H, W)`` float32, normalised as its preprocessing says (default: edgemm's);
- ``audio``: ``(B, T)`` the raw mono waveform in [-1, 1], or, when the model declares
  ``audio_input = "logmel"``, edgemm's in-graph log-mel ``(B, 1, mels, frames)`` computed in front
  of it;
- optionally ``image_present`` and ``audio_present`` ``(B,)`` flags (1.0 live, 0.0 absent), passed
  when ``forward`` names them; otherwise an absent modality reaches the model as zeros;

and returns logits ``(B, num_classes)``. Preprocessing is declared on the model (a ``preprocess``
attribute: a ``PreprocessConfig`` or its dict) or in a YAML file beside the factory's file
(``PATH.yaml``: ``preprocess:`` and ``audio_input:``); what is not declared is edgemm's default.

``ContractModel`` wraps the module so every edgemm stage sees the same four inputs (export, the
runtime and verification included). A factory that returns an ``AVModel`` (a zoo model with other
encoders or widths) gets it back unwrapped: it already takes the four inputs, and distillation
keeps what it uses of it (per-branch embeddings and auxiliary heads). Checkpoints store the
reference and the keyword arguments (a file reference as an absolute path), never code, and reload
with ``weights_only=True``.
"""

from __future__ import annotations

import enum
import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from edgemm.config import check_keys, parse_enum
from edgemm.data.preprocess import PreprocessConfig
from edgemm.errors import EdgemmError
from edgemm.models.av import AVModel
from edgemm.models.frontend import LogMelFrontend, takes_logmel
from edgemm.safeio import load_yaml, read_text
from edgemm.trust import canonical, is_reference  # noqa: F401  (re-exported: where callers look for them)
from edgemm.vocab import Input

_SIDECAR_KEYS = ("preprocess", "audio_input")


class AudioInput(str, enum.Enum):
    """What a model's ``audio`` argument is."""

    WAVEFORM = "waveform"
    LOGMEL = "logmel"


class ModelReferenceError(EdgemmError, ValueError):
    """A ``PATH.py:FUNCTION`` or ``module:FUNCTION`` reference that cannot be loaded (the message says why)."""


def model_slug(name: str) -> str:
    """A registered name, or ``FILE_FUNCTION`` for a factory reference: safe as a directory name."""
    if not is_reference(name):
        return name
    target, _, function = name.rpartition(":")
    return f"{Path(target).stem if target.endswith('.py') else target.replace('.', '_')}_{function}"


def resolve_factory(ref: str) -> tuple[Callable[..., nn.Module], Path | None]:
    """The factory a reference names, and its file (None for an importable module).

    Raises:
        ModelReferenceError: Malformed reference, missing file or module, no such function.
    """
    target, _, function = ref.rpartition(":")
    if not target or not function.isidentifier():
        raise ModelReferenceError(f"{ref!r}: expected PATH.py:FUNCTION or package.module:FUNCTION")
    if target.endswith(".py"):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise ModelReferenceError(f"{ref}: model file {path} not found")
        module = _load_file(path)
    else:
        path = None
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise ModelReferenceError(f"{ref}: cannot import module {target!r} ({e})") from None
    factory = getattr(module, function, None)
    if not callable(factory):
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise ModelReferenceError(f"{ref}: {target} has no function {function!r} (callables there: {names})")
    return factory, path


def _load_file(path: Path):
    """Imports a model file once per path (so its classes stay the same objects across calls)."""
    name = f"edgemm_user_models.{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SystemExit as e:  # a model file must not end the command as if it had succeeded
        del sys.modules[name]
        raise ModelReferenceError(f"{path}: the model file called exit({e.code!r}) while being imported") from None
    except Exception as e:  # its own error, named as such (--debug shows the traceback)
        del sys.modules[name]
        raise ModelReferenceError(f"{path}: importing the model file failed: {_where(e, path)}") from e
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _where(e: BaseException, path: Path | None) -> str:
    """``Type: message (FILE, line N)``, at the deepest frame in the user's file when there is one."""
    line = getattr(e, "lineno", None) if isinstance(e, SyntaxError) else None
    if line is None and path is not None:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename) == path]
        line = frames[-1].lineno if frames else None
    at = f" ({path.name}, line {line})" if path is not None and line else ""
    message = e.msg if isinstance(e, SyntaxError) else str(e)
    return f"{type(e).__name__}: {message}{at}"


def read_sidecar(path: Path | None) -> dict[str, Any]:
    """``PATH.yaml`` beside a model file (``preprocess``, ``audio_input``), or ``{}``.

    Raises:
        ValueError: Unreadable YAML or unknown keys, naming the file.
    """
    if path is None or not path.with_suffix(".yaml").is_file():
        return {}
    side = path.with_suffix(".yaml")
    data = load_yaml(read_text(side, "model preprocessing YAML"), str(side)) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{side}: expected a mapping with {list(_SIDECAR_KEYS)}, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_SIDECAR_KEYS))
    if unknown:
        raise ValueError(f"{side}: unknown key(s) {unknown}; valid keys are {list(_SIDECAR_KEYS)}")
    return data


def _preprocess(declared: Any, where: str) -> PreprocessConfig:
    if declared is None:
        return PreprocessConfig()
    if isinstance(declared, PreprocessConfig):
        return declared
    if isinstance(declared, Mapping):
        check_keys(PreprocessConfig, declared, f"{where}: preprocess")
        return PreprocessConfig.from_dict(declared)
    raise ValueError(f"{where}: preprocess must be a PreprocessConfig or a mapping, got {type(declared).__name__}")


def takes_presence_flags(module: nn.Module) -> bool:
    """Whether ``module.forward`` names both presence flags."""
    params = inspect.signature(module.forward).parameters
    return Input.IMAGE_PRESENT.value in params and Input.AUDIO_PRESENT.value in params


class ContractModel(nn.Module):
    """A user's model behind edgemm's four inputs (see the module docstring).

    Args:
        model: The user's module.
        preprocess: Its preprocessing.
        audio_input: ``waveform`` or ``logmel`` (a ``LogMelFrontend`` then runs in front of it).
    """

    def __init__(self, model: nn.Module, preprocess: PreprocessConfig, audio_input: AudioInput | str) -> None:
        super().__init__()
        self.model = model
        self.preprocess = preprocess
        self.audio_input = parse_enum(AudioInput, audio_input, "audio_input")
        # The attribute name edgemm keeps in float at every precision (edgemm.vocab.FRONTEND_MODULE).
        self.frontend = LogMelFrontend(preprocess.audio) if self.audio_input is AudioInput.LOGMEL else None
        self.flags = takes_presence_flags(model)

    def forward(self, image: torch.Tensor, audio: torch.Tensor, image_present: torch.Tensor | None = None,
                audio_present: torch.Tensor | None = None) -> torch.Tensor:
        b = image.shape[0]
        ip = torch.ones(b, device=image.device) if image_present is None else image_present
        ap = torch.ones(b, device=image.device) if audio_present is None else audio_present
        if not self.flags:  # the model cannot be told, so an absent modality is fed as zeros
            image = image * ip.view(b, 1, 1, 1)
            audio = audio * ap.view(b, 1)
        if self.frontend is not None:
            audio = self.frontend(audio)
        return self.model(image, audio, ip, ap) if self.flags else self.model(image, audio)

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        from edgemm.models.av import example_inputs

        return example_inputs(self.preprocess, batch, logmel=takes_logmel(self))


def create_from_reference(ref: str, **kwargs: Any) -> nn.Module:
    """Builds ``ref``'s model (called with ``kwargs``, ``num_classes`` among them) behind the contract;
    an ``AVModel`` is returned as it is.

    Raises:
        ModelReferenceError: The reference cannot be loaded.
        ValueError: The model's declarations are invalid, or it does not return ``(B, num_classes)``.
    """
    factory, path = resolve_factory(ref)
    try:
        module = factory(**kwargs)
    except SystemExit as e:
        raise ModelReferenceError(f"{ref}: the factory called exit({e.code!r}) instead of returning a model") from None
    except Exception as e:
        raise ModelReferenceError(f"{ref}: the factory raised {_where(e, path)}") from e
    if not isinstance(module, nn.Module):
        raise ValueError(f"{ref}: the factory returned {type(module).__name__}, expected a torch.nn.Module")
    if isinstance(module, AVModel):
        return module
    side = read_sidecar(path)
    preprocess = _preprocess(getattr(module, "preprocess", None) or side.get("preprocess"), ref)
    audio_input = getattr(module, "audio_input", None) or side.get("audio_input") or AudioInput.WAVEFORM
    wrapped = ContractModel(module, preprocess, audio_input)
    _check_output(wrapped, kwargs.get("num_classes"), ref)
    return wrapped


def model_output(model: nn.Module) -> Any:
    """What ``model`` returns for two example samples, run in eval mode without gradients (its
    training mode is restored): how the contract's output is checked."""
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(*model.example_inputs(2))
    model.train(was)
    return out


def _check_output(model: ContractModel, num_classes: int | None, ref: str) -> None:
    out = model_output(model)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or (num_classes and out.shape[1] != num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{ref}: forward must return logits (B, num_classes={num_classes}), got {shape}")
