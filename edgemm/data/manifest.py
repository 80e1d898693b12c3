"""The manifest-CSV data format: ``image,audio,label[,split]``, paths relative to the CSV.

See docs/data-formats.md. Every row is validated up front (files exist, decode, audio is neither
empty nor silent, labels of val/test rows are known from train), so a bad row fails at load time
with the CSV path and row number, not in the middle of an epoch.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgemm.data.errors import DataError
from edgemm.data.media import read_audio, read_image
from edgemm.data.preprocess import PreprocessConfig, preprocess_audio, preprocess_image
from edgemm.data.splits import Split, parse_split, stratified_split
from edgemm.vocab import UNLABELLED

REQUIRED_COLUMNS = ("image", "audio", "label")
OPTIONAL_COLUMNS = ("split",)


@dataclass(frozen=True)
class Record:
    """One validated manifest row."""

    image: Path
    audio: Path
    label: str
    split: Split
    row: int


@dataclass
class Manifest:
    """A validated manifest: its records, label list (from the train split) and skipped rows."""

    path: Path
    records: list[Record]
    labels: list[str]
    skipped: list[DataError] = field(default_factory=list)

    def split(self, split: Split) -> list[Record]:
        return [r for r in self.records if r.split is split]


def read_manifest(
    path: str | Path, *, skip_bad: bool = False, check_media: bool = True, labels: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Manifest:
    """Reads and validates a manifest CSV.

    Args:
        path: The CSV file.
        skip_bad: Skip unusable rows (they are listed in ``Manifest.skipped``) instead of raising.
        check_media: Decode every image and audio file to prove it is usable.
        labels: The label list to use (e.g. a trained model's); by default the train split's.
        progress: Called with (rows checked, rows) after each row.

    Returns:
        The validated manifest. Rows without a ``split`` column get a deterministic stratified one.

    Raises:
        DataError: Naming the file and row: bad header, empty cell, unknown split, missing or
            undecodable file, empty or silent audio, a val/test label that train does not have.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "manifest CSV does not exist")
    root = path.parent
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DataError(
                path,
                f"bad header {header}: missing column(s) {missing}; expected "
                f"{list(REQUIRED_COLUMNS)} and optionally {list(OPTIONAL_COLUMNS)}",
                row=1,
            )
        reader.fieldnames = header
        has_split = "split" in header
        try:
            rows: list[tuple[int, dict[str, Any]]] = [(i + 2, r) for i, r in enumerate(reader)]
        except csv.Error as e:  # e.g. a field over the csv module's 131,072 characters
            raise DataError(path, f"not a readable CSV ({e})", row=reader.line_num + 1) from None
    if not rows:
        raise DataError(path, "manifest has a header but no rows")

    skipped: list[DataError] = []
    parsed: list[tuple[int, Path, Path, str, Split | None]] = []
    for done, (row_no, row) in enumerate(rows, 1):
        try:
            parsed.append(_parse_row(path, root, row_no, row, has_split, check_media))
        except DataError as e:
            if not skip_bad:
                raise
            skipped.append(e)
        if progress is not None:
            progress(done, len(rows))

    if has_split:
        splits = [p[4] for p in parsed]
    else:  # unlabelled rows are transfer data: always train
        labelled = [p for p in parsed if p[3]]
        assigned = iter(stratified_split([_split_key(p[1], root) for p in labelled], [p[3] for p in labelled]))
        splits = [next(assigned) if p[3] else Split.TRAIN for p in parsed]
    records = [Record(img, aud, label, sp, row) for (row, img, aud, label, _), sp in zip(parsed, splits)]

    if labels is None:
        labels = sorted({r.label for r in records if r.split is Split.TRAIN and r.label})
        if not labels:
            raise DataError(path, "no labelled rows in the train split (rows with an empty label are unlabelled "
                                  "transfer data; the classes come from labelled training rows)")
        unknown = "of this {split} row does not occur in the train split"
    else:
        labels = list(labels)
        unknown = f"is not one of the model's labels {labels}"
    known = set(labels)
    kept: list[Record] = []
    for r in records:
        if r.label and r.label not in known:
            err = DataError(path, f"label {r.label!r} " + unknown.format(split=r.split.value), row=r.row)
            if not skip_bad:
                raise err
            skipped.append(err)
            continue
        kept.append(r)
    return Manifest(path=path, records=kept, labels=labels, skipped=skipped)


def _split_key(image: Path, root: Path) -> str:
    """The image path a row's split is drawn from: relative to the CSV's folder when inside it
    (a moved data set keeps its splits), else as written (a shared folder elsewhere)."""
    try:
        return str(image.relative_to(root))
    except ValueError:
        return str(image)


def _parse_row(
    csv_path: Path, root: Path, row_no: int, row: dict[str, Any], has_split: bool, check_media: bool
) -> tuple[int, Path, Path, str, Split | None]:
    values = {}
    for col in REQUIRED_COLUMNS + (("split",) if has_split else ()):
        v = row.get(col)
        if (v is None or not str(v).strip()) and col != "label":  # an empty label: an unlabelled row
            raise DataError(csv_path, f"column {col!r} is empty", row=row_no)
        values[col] = str(v or "").strip()
    split = None
    if has_split:
        try:
            split = parse_split(values["split"])
        except ValueError as e:
            raise DataError(csv_path, str(e), row=row_no) from None
        if not values["label"] and split is not Split.TRAIN:
            raise DataError(csv_path, f"an unlabelled row (empty label) belongs to the train split, not {split.value}",
                            row=row_no)
    image, audio = root / values["image"], root / values["audio"]
    if check_media:
        for check in (lambda: read_image(image), lambda: read_audio(audio)):
            try:
                check()
            except DataError as e:
                raise DataError(csv_path, f"{e.path}: {e.reason}", row=row_no) from None
    return row_no, image, audio, values["label"], split


class ManifestDataset:
    """A map-style data set over manifest records (works directly with torch's DataLoader).

    Items are dicts ``{"image": (3,S,S) float32, "audio": (N,) float32, "label": int}`` produced
    by the shared preprocessing. Decoded items are cached in memory when ``cache`` is set.
    """

    def __init__(
        self, records: list[Record], labels: list[str], preprocess: PreprocessConfig, *, cache: bool = True
    ) -> None:
        self.records = records
        self.labels = list(labels)
        self.preprocess = preprocess
        self._index = {name: i for i, name in enumerate(self.labels)}
        self._cache: dict[int, dict[str, Any]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        r = self.records[i]
        wave, sr = read_audio(r.audio)
        item = {
            "image": preprocess_image(read_image(r.image), self.preprocess.image),
            "audio": preprocess_audio(wave, sr, self.preprocess.audio),
            "label": self._index.get(r.label, UNLABELLED),
        }
        if self._cache is not None:
            self._cache[i] = item
        return item

    def targets(self) -> np.ndarray:
        return np.asarray([self._index.get(r.label, UNLABELLED) for r in self.records], np.int64)
