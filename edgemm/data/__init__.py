"""Data in: the manifest-CSV and video-folder formats, the generated default set, preprocessing.

Torch-free: every data set here is a plain map-style sequence of dicts that torch's DataLoader
takes as it is, and the preprocessing is the same code the runtime runs on a device.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from edgemm.data.errors import DataError
from edgemm.data.preprocess import AudioAlign, AudioConfig, ImageConfig, PreprocessConfig
from edgemm.data.splits import Split

__all__ = [
    "AudioAlign",
    "AudioConfig",
    "AVDataset",
    "DataError",
    "DataFormat",
    "DataSplits",
    "ImageConfig",
    "PreprocessConfig",
    "Split",
    "open_dataset",
    "stream_frame_rate",
]


class DataFormat(str, enum.Enum):
    DEFAULT = "default"  # the generated set (made on first use, then cached)
    MANIFEST = "manifest"  # a CSV file: image,audio,label[,split]
    VIDEO = "video"  # a folder root/<label>/*.mp4


class AVDataset(Protocol):
    labels: list[str]

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> dict[str, Any]: ...


@dataclass
class DataSplits:
    """The three splits of one data source, sharing one label list."""

    train: AVDataset
    val: AVDataset
    test: AVDataset
    labels: list[str]
    source: str
    skipped: list[DataError] = field(default_factory=list)

    def get(self, split: Split | str) -> AVDataset:
        return getattr(self, Split(split).value)


def detect_format(path: Path) -> DataFormat:
    """A CSV file is a manifest; a directory with ``manifest.csv`` too; any other directory is a video folder."""
    if path.is_file():
        return DataFormat.MANIFEST
    if path.is_dir():
        return DataFormat.MANIFEST if (path / "manifest.csv").is_file() else DataFormat.VIDEO
    raise DataError(path, "data path does not exist (give a manifest CSV, a video folder, or 'default')")


def open_dataset(
    spec: str | Path,
    preprocess: PreprocessConfig,
    *,
    format: DataFormat | str | None = None,
    skip_bad: bool = False,
    samples_per_clip: int = 3,
    splits: Sequence[Split | str] = (Split.TRAIN, Split.VAL, Split.TEST),
    labels: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DataSplits:
    """Opens a data source and returns its train/val/test splits.

    Args:
        spec: ``"default"``, a manifest CSV (or a directory holding ``manifest.csv``), or a video folder.
        preprocess: The model's preprocessing; items come out ready for it.
        format: Force a format instead of detecting it from the path.
        skip_bad: Skip unusable rows/clips (counted in ``DataSplits.skipped``) instead of raising.
        samples_per_clip: Samples taken from each clip of a video folder.
        splits: Which splits to load (others come back empty); video folders decode only these.
        labels: Use this label list and order (a checkpoint's) instead of the train split's; an
            entry with a label outside it is an error naming its row or file.
        progress: A manifest's rows: called with (rows checked, rows) as each is checked.

    Raises:
        DataError: Naming the file and row of the first bad entry (unless ``skip_bad``).

    Example:
        >>> data = open_dataset("default", PreprocessConfig())  # doctest: +SKIP
        >>> data.labels[:2]
        ['circle_beep', 'circle_chirp']
    """
    from edgemm.data.manifest import ManifestDataset, read_manifest
    from edgemm.data.video import VideoDataset, scan_video_folder

    wanted = {Split(s) for s in splits}
    fmt = source_format(spec, format)
    if fmt is DataFormat.DEFAULT:
        from edgemm.data.synthetic import make_default

        path, fmt = make_default(), DataFormat.MANIFEST
    else:
        path = Path(spec)
    if fmt is DataFormat.MANIFEST:
        if path.is_dir():
            path = path / "manifest.csv"
        if preprocess.frames > 1:
            raise DataError(path, f"a temporal model (preprocess.frames = {preprocess.frames}) learns from ordered "
                                  "frames; a manifest's rows have no order: give a video folder (root/<label>/*.mp4)")
        m = read_manifest(path, skip_bad=skip_bad, labels=labels, progress=progress)
        parts = {
            s: ManifestDataset(m.split(s) if s in wanted else [], m.labels, preprocess) for s in Split
        }
        return DataSplits(**{s.value: d for s, d in parts.items()}, labels=m.labels, source=str(path), skipped=m.skipped)
    folder = scan_video_folder(path)
    if labels is not None:
        for f, lab, s in folder.clips:
            if lab and lab not in labels and s in wanted:
                raise DataError(f, f"label folder {lab!r} is not one of the model's labels {list(labels)}")
        folder.labels = list(labels)
    parts, skipped = {}, []
    for s in Split:
        parts[s] = VideoDataset(
            folder, s, preprocess, samples_per_clip=samples_per_clip, skip_bad=skip_bad
        ) if s in wanted else _Empty(folder.labels)
        skipped += getattr(parts[s], "skipped", [])
    return DataSplits(**{s.value: d for s, d in parts.items()}, labels=folder.labels, source=str(path), skipped=skipped)


def stream_frame_rate(spec: str | Path, format: DataFormat | str | None = None) -> float | None:
    """A video folder's frame rate (the median of its training clips'); None for a manifest or the
    default set, whose samples are not frames of a stream."""
    from edgemm.data.video import folder_frame_rate, scan_video_folder

    if source_format(spec, format) is not DataFormat.VIDEO:
        return None
    return folder_frame_rate(scan_video_folder(Path(spec)))


def source_format(spec: str | Path, format: DataFormat | str | None = None) -> DataFormat:
    """What ``spec`` is: the generated default set, a manifest or a video folder (``format`` forces one)."""
    if str(spec) == DataFormat.DEFAULT.value and format in (None, DataFormat.DEFAULT, "default"):
        return DataFormat.DEFAULT
    return DataFormat(format) if format is not None else detect_format(Path(spec))


class _Empty:
    def __init__(self, labels: list[str]) -> None:
        self.labels = labels

    def __len__(self) -> int:
        return 0

    def __getitem__(self, i: int) -> dict[str, Any]:
        raise IndexError(i)
