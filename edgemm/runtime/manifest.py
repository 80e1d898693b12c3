"""The bundle: a directory with the model file(s) and ``manifest.json`` (schema in docs/bundle.md).

A bundle is everything a device needs: labels, inputs and their preprocessing, outputs, the target
runtime and precision, where it came from, and the parity measured when it was exported. It is
read with ``json`` only (never ``eval``, never pickle) and this module imports nothing heavier than
the standard library, so the runtime can read a bundle without torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edgemm.atomic import atomic_write_text
from edgemm.config import parse_enum
from edgemm.errors import EdgemmError
from edgemm.safeio import load_json, read_text
from edgemm.vocab import FrontendPlace, Precision, Target, VerifyStatus

SCHEMA = "edgemm-bundle"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SUFFIX = ".edgemm"


class BundleError(EdgemmError, ValueError):
    """A bundle that cannot be used: names the bundle and the field that is wrong."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


@dataclass
class TensorSpec:
    """One model input or output.

    Attributes:
        name: The name edgemm uses (``image``, ``audio``, ``image_present``, ``audio_present``, ``logits``).
        tensor: The name inside the model file (differs per format, e.g. ``serving_default_args_0``).
        modality: ``image``, ``audio``, ``flag`` (1.0 when a modality is live, 0.0 when absent) or ``scores``.
        shape: Dimensions; a string marks a dynamic one (``"batch"``).
        dtype: Element type, e.g. ``float32``.
        layout: Axis meaning, e.g. ``NCHW`` (image), ``NT`` (batch, samples), ``N``, ``NC``; a temporal
            model's inputs have ``K`` (its frames) after ``N``, e.g. ``NKCHW``.
        preprocessing: How raw data becomes this tensor (what ``edgemm.data.preprocess`` does).
    """

    name: str
    tensor: str
    modality: str
    shape: list[int | str]
    dtype: str = "float32"
    layout: str = ""
    preprocessing: dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    """What ``manifest.json`` holds. ``to_dict`` / ``from_dict`` are the JSON form."""

    name: str
    labels: list[str]
    target: str
    precision: str
    files: dict[str, str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    preprocess: dict[str, Any]
    batch: int | str = "dynamic"
    frontend: FrontendPlace = FrontendPlace.GRAPH  # where the audio log-mel runs: in the graph, or the runtime computes it
    quantization: dict[str, Any] | None = None
    runtime: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] | None = None  # --precision auto: the candidates measured and the choice
    card: dict[str, Any] | None = None  # the model card: its file and the compress lineage (``edgemm.runtime.card``)
    calibration: dict[str, Any] | None = None  # softmax temperature and threshold fitted on validation data
    checksums: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> {"bytes", "sha256"} of files
    created: str = ""
    edgemm_version: str = ""
    schema: str = SCHEMA
    schema_version: int = SCHEMA_VERSION
    location: Path | None = field(default=None, compare=False, repr=False)  # the bundle, once read or published

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("location")
        return {"schema": d.pop("schema"), "schema_version": d.pop("schema_version"), **d}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str | Path = "<manifest>") -> "Manifest":
        if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
            raise BundleError(path, f"not an edgemm bundle manifest (expected \"schema\": \"{SCHEMA}\")")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
            raise BundleError(path, f"schema_version {version!r} is not supported by this edgemm (<= {SCHEMA_VERSION})")
        required = ("name", "labels", "target", "precision", "files", "inputs", "outputs", "preprocess")
        missing = [k for k in required if k not in data]
        if missing:
            raise BundleError(path, f"manifest lacks required field(s) {missing}")
        wrong = _wrong_field(data)
        if wrong:
            raise BundleError(path, wrong)
        known = set(cls.__dataclass_fields__) - {"location"}
        kw = {k: v for k, v in data.items() if k in known}
        kw["inputs"] = [TensorSpec(**t) for t in data["inputs"]]
        kw["outputs"] = [TensorSpec(**t) for t in data["outputs"]]
        if "model" not in data["files"]:
            raise BundleError(path, 'manifest "files" has no "model" entry')
        if not isinstance(data["labels"], list) or not all(isinstance(x, str) for x in data["labels"]):
            raise BundleError(path, '"labels" must be a list of strings')
        try:
            kw["frontend"] = _frontend(data)
        except ValueError as e:
            raise BundleError(path, str(e)) from None
        manifest = cls(**kw)
        from edgemm.data.preprocess import PreprocessConfig  # numpy only: the runtime's own dependency

        try:
            PreprocessConfig.from_dict(manifest.preprocess)
        except (ValueError, TypeError) as e:
            raise BundleError(path, f"preprocess: {e}") from None
        scores = manifest.outputs[0].shape[-1] if manifest.outputs and manifest.outputs[0].shape else None
        if isinstance(scores, int) and scores != len(manifest.labels):
            raise BundleError(path, f"lists {len(manifest.labels)} labels but the model's output has {scores} scores")
        return manifest

    def input(self, name: str) -> TensorSpec:
        for t in self.inputs:
            if t.name == name:
                return t
        raise KeyError(f"bundle {self.name!r} has no input {name!r} (inputs: {[t.name for t in self.inputs]})")

    @property
    def verified(self) -> bool:
        return self.verification.get("status") == VerifyStatus.PASSED


def _frontend(data: Mapping[str, Any]) -> FrontendPlace:
    """The manifest's ``frontend``; a bundle written before it was a field says it only in its audio
    input's description (``inputs[audio].preprocessing.frontend.runs_in``), and one that says
    neither computes the log-mel in its graph.

    Raises:
        ValueError: An unknown place, or the two places disagree.
    """
    audio = next((t for t in data["inputs"] if isinstance(t, Mapping) and t.get("name") == "audio"), {})
    described = ((audio.get("preprocessing") or {}).get("frontend") or {}).get("runs_in")
    place = parse_enum(FrontendPlace, data.get("frontend", described or FrontendPlace.GRAPH.value), "frontend")
    if described is not None and parse_enum(FrontendPlace, described, "inputs.audio.preprocessing.frontend.runs_in") is not place:
        raise ValueError(f"frontend {place.value!r} disagrees with its audio input, whose log-mel runs in {described!r}")
    return place


_TEXT, _MAP, _MAP_OR_NONE = (str,), (Mapping,), (Mapping, type(None))
_FIELDS = {"name": _TEXT, "target": _TEXT, "precision": _TEXT, "files": _MAP, "preprocess": _MAP,
           "inputs": (list,), "outputs": (list,), "quantization": _MAP_OR_NONE, "runtime": _MAP, "source": _MAP,
           "verification": _MAP, "selection": _MAP_OR_NONE, "checksums": _MAP, "created": _TEXT,
           "edgemm_version": _TEXT, "card": _MAP_OR_NONE, "frontend": _TEXT,
           "calibration": _MAP_OR_NONE}
_DTYPES = frozenset({"float32", "float16", "bfloat16", "int8", "uint8", "int16", "int32", "int64", "bool"})


def _wrong_field(data: Mapping[str, Any]) -> str | None:
    """The first manifest field of the wrong type or value, described; None when all are right."""
    for key, types in _FIELDS.items():
        if key in data and not isinstance(data[key], types):
            kind = "a text" if types is _TEXT else "an object" if Mapping in types else "a list"
            return f"manifest field {key!r} must be {kind}, not {type(data[key]).__name__}"
    if data["target"] not in {t.value for t in Target}:
        return f"manifest field 'target' is {data['target']!r}; expected one of {[t.value for t in Target]}"
    if data["precision"] not in {p.value for p in Precision}:
        return f"manifest field 'precision' is {data['precision']!r}; expected one of {[p.value for p in Precision]}"
    batch = data.get("batch", "dynamic")
    if not (isinstance(batch, str) or (type(batch) is int and batch > 0)):
        return f"manifest field 'batch' is {batch!r}; expected a positive integer or \"dynamic\""
    for role, entry in data.get("checksums", {}).items():
        if not isinstance(entry, Mapping):
            return f"manifest field 'checksums.{role}' must be an object with bytes and sha256"
    for side in ("inputs", "outputs"):
        for i, t in enumerate(data[side]):
            where = f"{side}[{i}]"
            if not isinstance(t, Mapping):
                return f"manifest field {where!r} must be an object"
            unknown = set(t) - set(TensorSpec.__dataclass_fields__)
            missing = {"name", "tensor", "modality", "shape"} - set(t)
            if unknown or missing:
                return f"manifest field {where!r}: " + (f"unknown key(s) {sorted(unknown)}" if unknown
                                                        else f"lacks {sorted(missing)}")
            shape = t["shape"]
            if not isinstance(shape, list) or not all(isinstance(d, str) or (type(d) is int and d > 0)
                                                      for d in shape):
                return f"manifest field '{where}.shape' is {shape!r}; expected a list of positive sizes or names"
            if t.get("dtype", "float32") not in _DTYPES:
                return f"manifest field '{where}.dtype' is {t.get('dtype')!r}; expected one of {sorted(_DTYPES)}"
            if not isinstance(t.get("preprocessing", {}), Mapping):
                return f"manifest field '{where}.preprocessing' must be an object"
    return None


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(bundle: str | Path) -> Manifest:
    """Reads and validates ``BUNDLE/manifest.json``.

    Raises:
        BundleError: If the directory is not a bundle, the JSON is malformed, or a file it names is missing.
    """
    bundle = Path(bundle)
    path = bundle / MANIFEST
    if not path.is_file():
        raise BundleError(bundle, f"not a bundle directory (no {MANIFEST})")
    try:
        data = load_json(read_text(path, "bundle manifest"), "manifest.json")
    except ValueError as e:
        raise BundleError(bundle, str(e)) from None
    manifest = Manifest.from_dict(data, path)
    manifest.location = bundle
    for role, rel in manifest.files.items():
        file = bundle_file(bundle, role, rel)
        if not file.is_file():
            raise BundleError(bundle, f"files.{role} = {rel!r} does not exist in the bundle")
        check_file(bundle, role, file, manifest.checksums.get(role))
    return manifest


def bundle_file(bundle: Path, role: str, rel: Any) -> Path:
    """The file ``files.<role>`` names, which must be a relative path inside the bundle.

    Raises:
        BundleError: An absolute path, ``..`` out of the bundle, or a symbolic link leading out.
    """
    root = bundle.resolve()
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute():
        raise BundleError(bundle, f"files.{role} = {rel!r}: expected a file name relative to the bundle")
    file = (root / rel).resolve()
    if not file.is_relative_to(root):
        raise BundleError(bundle, f"files.{role} = {rel!r} points outside the bundle")
    return file


_HASHED: dict[tuple, str] = {}  # (path, inode, size, mtime_ns, ctime_ns) -> sha256, for this process


def file_checksum(file: Path) -> dict[str, Any]:
    """Size and SHA-256 of a file, as the manifest records them.

    A bundle's manifest is read several times while it is opened (device-profile options, the
    session, verification); a file unchanged since it was last hashed here is not read again.
    """
    st = file.stat()
    key = (str(file.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _HASHED:
        digest = hashlib.sha256()
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHED[key] = digest.hexdigest()
    return {"bytes": st.st_size, "sha256": _HASHED[key]}


def check_file(bundle: Path, role: str, file: Path, expected: Mapping[str, Any] | None) -> None:
    """Compares a bundle file with the size and hash recorded at export (bundles without them pass).

    Raises:
        BundleError: The file was cut short, grown or changed (e.g. an interrupted copy to a device).
    """
    if not expected:
        return
    got = file_checksum(file) if file.stat().st_size == expected.get("bytes") else {"bytes": file.stat().st_size}
    if got != dict(expected):
        raise BundleError(bundle, f"{file.name} is damaged (expected {expected.get('bytes')} bytes, sha256 "
                                  f"{str(expected.get('sha256'))[:16]}…; found {got['bytes']} bytes"
                                  + ("" if "sha256" not in got else f", sha256 {got['sha256'][:16]}…") + ")")


def write_manifest(manifest: Manifest, bundle: str | Path) -> Path:
    """Writes ``manifest.json`` atomically."""
    return atomic_write_text(Path(bundle) / MANIFEST, json.dumps(manifest.to_dict(), indent=2) + "\n")


def check_replaceable(bundle: str | Path) -> Path:
    """``bundle`` as an output path: free, or an existing bundle (which a new export may replace).

    Raises:
        FileExistsError: It is a file, or a directory that is not a bundle: edgemm never deletes
            what it did not write.
    """
    bundle = Path(bundle)
    if bundle.is_symlink() or (bundle.exists() and not (bundle.is_dir() and is_bundle(bundle))):
        kind = "a directory that is not a bundle (no manifest.json)" if bundle.is_dir() else "a file"
        raise FileExistsError(f"--out {bundle}: it is {kind}; edgemm replaces only a bundle it wrote, so choose "
                              "another --out or remove it yourself")
    return bundle


def publish(staging: Path, bundle: Path) -> Path:
    """Moves a finished staging directory to ``bundle``, replacing an older bundle only at the end
    (and only a bundle: ``check_replaceable``)."""
    check_replaceable(bundle)
    if bundle.exists():
        old = bundle.with_name(f".old-{bundle.name}-{os.getpid()}")
        os.replace(bundle, old)
        os.replace(staging, bundle)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, bundle)
    return bundle
