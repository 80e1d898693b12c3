"""Where pretrained encoder weights come from: a local file, a torchvision weights name, or a
Hugging Face hub id.

A name (``IMAGENET1K_V1``, ``DEFAULT``, or the full ``MobileNet_V3_Small_Weights.IMAGENET1K_V1``)
resolves to the file torchvision itself would download, in torch hub's cache
(``$TORCH_HOME/hub/checkpoints/``). If the file is already there it is used without any network
access; if not, it is downloaded unless ``EDGEMM_OFFLINE`` / ``HF_HUB_OFFLINE`` is set or the
download fails, in which case the error says which URL to fetch and exactly where to put it.

A hub id (``google/mobilenet_v2_1.0_224``) resolves through huggingface_hub's own cache
(``$HF_HUB_CACHE``, by default ``~/.cache/huggingface/hub``) in the same way: used from there
without network, fetched only when the run is online.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgemm.errors import EdgemmError

OFFLINE_VARS = ("EDGEMM_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")

# The torchvision architecture behind each image encoder of ``edgemm.models.encoders``: what a
# weights name (``IMAGENET1K_V1``) given as ``pretrained`` is looked up in.
TORCHVISION_ARCH = {"mobilenetv3_small": "mobilenet_v3_small", "mobilenetv3_large": "mobilenet_v3_large",
                    "resnet18": "resnet18", "resnet50": "resnet50"}


class WeightsNotFound(EdgemmError, FileNotFoundError):
    """Pretrained weights named but not on this machine (and not downloadable)."""


def load_state_file(model, path: str | os.PathLike, *, skip: tuple[str, ...] = (), what: str = "this backbone") -> None:
    """Loads a local state-dict file into ``model``, every weight of the model required.

    The file may hold the state dict itself or wrap it as ``{"state_dict": ...}`` /
    ``{"model": ...}``; a ``module.``/``model.`` prefix (DDP, wrappers) is stripped; keys starting
    with one of ``skip`` (classifier heads, a file's own feature extractor) are left out on both sides.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If a weight is missing or has the wrong shape, naming ``what`` it should fit.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    clean = {}
    for k, v in state.items():
        for prefix in ("module.", "model."):
            k = k.removeprefix(prefix)
        if not k.startswith(skip):
            clean[k] = v
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(skip)}
    missing = sorted(set(own) - set(clean))
    bad = sorted(k for k in own if k in clean and clean[k].shape != own[k].shape)
    if missing or bad:
        raise ValueError(f"{path}: weights do not fit {what} (missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
                         f"wrong shape {bad[:3]})")
    model.load_state_dict({k: clean[k] for k in own}, strict=False)


def _hub_unavailable(repo: str, what: str, fetch: str, alternative: str, error: Exception) -> WeightsNotFound:
    """The one-line error for a hub file or model that is neither cached nor fetchable."""
    from huggingface_hub import constants

    state = "not in the local cache and this run is offline" if offline() else f"unavailable ({type(error).__name__})"
    cache = Path(constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))
    return WeightsNotFound(f"{what} is {state}: run `hf download {fetch}` where there is network and copy {cache} "
                           f"to the same path here, or {alternative}")


def offline() -> bool:
    """Whether the user asked for no network access."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARS)


def torchvision_weights(arch: str, name: str):
    """The torchvision weights enum member ``name`` of architecture ``arch`` (e.g. ``mobilenet_v3_small``).

    Raises:
        ValueError: If ``arch`` has no weights of that name (listing the ones it has).
    """
    from torchvision.models import get_model_weights

    enum_cls = get_model_weights(arch)
    short = name.split(".")[-1]
    if "." in name and name.split(".")[0] != enum_cls.__name__:
        raise ValueError(f"pretrained {name!r} is not a weights name of {arch} ({enum_cls.__name__})")
    if short not in enum_cls.__members__:
        raise ValueError(f"{arch} has no pretrained weights {name!r}; torchvision has {list(enum_cls.__members__)}"
                         " (or give the path of a local state-dict file)")
    return enum_cls[short]


def cache_path(url: str) -> Path:
    """Where torch hub keeps the file downloaded from ``url``."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def is_file_spec(spec: str) -> bool:
    """A spec that names a file rather than a weights name: it exists, or looks like a path."""
    return Path(spec).exists() or any(c in spec for c in "/\\") or spec.endswith((".pth", ".pt", ".bin", ".safetensors"))


def resolve_weights(arch: str, spec: str | os.PathLike) -> Path:
    """The local file holding the weights ``spec`` for ``arch``, downloading it only if allowed.

    Args:
        arch: torchvision architecture name (``mobilenet_v3_small``, ``resnet18``, ...).
        spec: A local file path, or a torchvision weights name.

    Raises:
        WeightsNotFound: A named file is missing, or named weights are not cached and cannot be
            downloaded; the message gives the URL and the exact destination path.
        ValueError: ``spec`` is not a weights name of ``arch``.
    """
    spec = str(spec)
    if is_file_spec(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise WeightsNotFound(f"pretrained weights not found: {path}")
        return path
    weights = torchvision_weights(arch, spec)
    path = cache_path(weights.url)
    if path.is_file():
        return path
    where = f"download {weights.url} and save it as {path}"
    if offline():
        raise WeightsNotFound(f"pretrained {arch} weights {spec} are not in the local cache and this run is offline: "
                              f"{where}")
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(weights.url, str(path), progress=False)
    except Exception as e:  # noqa: BLE001 - any network failure gets the same instruction
        raise WeightsNotFound(f"pretrained {arch} weights {spec} could not be downloaded ({type(e).__name__}: {e}); "
                              f"{where}") from None
    return path


def available(arch: str, spec: str = "DEFAULT") -> bool:
    """Whether ``spec`` for ``arch`` is on this machine already (no download is attempted)."""
    try:
        if is_file_spec(spec):
            return Path(spec).expanduser().is_file()
        return cache_path(torchvision_weights(arch, spec).url).is_file()
    except ValueError:
        return False



HUB_PREFIX = "hf:"


def image_start_kwargs(spec: str) -> dict:
    """Model kwargs that start the image branch from ``spec``.

    Args:
        spec: ``hf:<hub id or directory>`` (the image branch becomes that Hugging Face backbone,
            ``edgemm.models.encoders.HubImageEncoder``), or a torchvision weights name or local
            state-dict file for the model's own image encoder.
    """
    spec = str(spec)
    if spec.startswith(HUB_PREFIX):
        return {"image_encoder": "hf", "image_encoder_kw": {"model": spec[len(HUB_PREFIX):]}}
    return {"image_encoder_kw": {"pretrained": spec}}


def resolve_weights_file(spec: str | os.PathLike) -> Path:
    """A weights file: a local path, or ``hf:ORG/NAME/FILE`` from the Hugging Face cache (fetched only online).

    Raises:
        WeightsNotFound: The file is not there (and not fetchable); the message says what goes where.
    """
    spec = str(spec)
    if not spec.startswith(HUB_PREFIX):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise WeightsNotFound(f"pretrained weights not found: {path}")
        return path
    parts = spec[len(HUB_PREFIX):].split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise WeightsNotFound(f"{spec!r}: a hub weights file is hf:ORG/NAME/FILE")
    from huggingface_hub import hf_hub_download

    repo, filename = "/".join(parts[:2]), parts[2]
    try:
        return Path(hf_hub_download(repo, filename, local_files_only=offline()))
    except Exception as e:  # noqa: BLE001 - not cached, no network, unknown file: one instruction
        raise _hub_unavailable(repo, f"{filename} of Hugging Face repo {repo}", f"{repo} {filename}",
                               "pass a local file path instead", e) from None


def resolve_hub_model(spec: str | os.PathLike) -> Path:
    """The local directory of a Hugging Face model: ``spec`` itself, or hub id ``spec`` from the cache.

    Args:
        spec: A directory holding ``config.json`` and weights (``save_pretrained`` output), or a
            hub id (``org/name``, optionally ``org/name@revision``).

    Raises:
        WeightsNotFound: The directory does not exist, or the id is not cached and cannot be
            fetched; the message says what to download and where it goes.
    """
    spec = str(spec)
    local = Path(spec).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise WeightsNotFound(f"{local} holds no config.json: give a directory written by save_pretrained "
                                  "or a Hugging Face hub id")
        return local
    if spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise WeightsNotFound(f"pretrained model {spec!r} is neither a local directory nor a hub id of the form org/name")
    from huggingface_hub import snapshot_download

    repo, _, revision = spec.partition("@")
    try:
        return Path(snapshot_download(repo, revision=revision or None, local_files_only=offline()))
    except Exception as e:  # noqa: BLE001 - not cached, no network, unknown id: one instruction
        raise _hub_unavailable(repo, f"Hugging Face model {spec}", repo,
                               "pass the directory of a save_pretrained copy instead of the id", e) from None
