"""Unlabelled samples: manifest rows and video clips without a label, hidden labels, the loss."""

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from support import CLASSES, write_easy_clip, write_manifest

from edgemm.data import PreprocessConfig, open_dataset
from edgemm.data.errors import DataError
from edgemm.data.labels import count_labelled, labelled_only, with_label_fraction
from edgemm.train.losses import cross_entropy
from edgemm.vocab import UNLABELLED


def _rows(media_dir, labels):
    return [[f"img{i % 3}.png", f"snd{i % 3}.wav", lab] for i, lab in enumerate(labels)]


def test_manifest_rows_without_a_label_are_unlabelled_training_data(media_dir):
    labels = ["a"] * 12 + ["b"] * 12 + [""] * 5
    csv = write_manifest(media_dir / "m.csv", _rows(media_dir, labels), header=("image", "audio", "label"))
    splits = open_dataset(csv, PreprocessConfig())
    assert splits.labels == ["a", "b"]  # no "" class
    y = splits.train.targets()
    assert (y == UNLABELLED).sum() == 5 and splits.train[int(np.flatnonzero(y == UNLABELLED)[0])]["label"] == UNLABELLED
    assert UNLABELLED not in splits.val.targets() and UNLABELLED not in splits.test.targets()
    assert len(labelled_only(splits.train)) == len(splits.train) - 5 == count_labelled(splits.train)


def test_an_unlabelled_row_outside_train_is_a_clear_error(media_dir):
    rows = [r + ["train"] for r in _rows(media_dir, ["a", "b", "a", "b"])] + [["img0.png", "snd0.wav", "", "test"]]
    with pytest.raises(DataError, match=r"m.csv.*row 6.*an unlabelled row \(empty label\) belongs to the train split, not test"):
        open_dataset(write_manifest(media_dir / "m.csv", rows), PreprocessConfig())


def test_a_video_folders_unlabelled_directory(tmp_path):
    for label in CLASSES:
        (tmp_path / label).mkdir()
        for k in range(3):
            write_easy_clip(tmp_path / label / f"{k}.mp4", label, seconds=1.0, seed=k)
    (tmp_path / "unlabelled").mkdir()
    shutil.copy(tmp_path / "red_low" / "0.mp4", tmp_path / "unlabelled" / "x.mp4")
    splits = open_dataset(tmp_path, PreprocessConfig(), samples_per_clip=2)
    assert splits.labels == sorted(CLASSES) and "unlabelled" not in splits.labels
    y = splits.train.targets()
    assert (y == UNLABELLED).sum() == 2  # one clip, two samples


def test_label_fraction_hides_labels_per_class_and_whole_clips():
    class Clips:
        labels = ["a", "b"]
        preprocess = None

        def __init__(self):
            self.y = np.repeat([0, 1], 30)  # 10 clips of 3 samples per class
            self.clips = np.repeat(np.arange(20), 3)

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return {"image": np.zeros(1), "audio": np.zeros(1), "label": int(self.y[i])}

        def targets(self):
            return self.y

        def clip_ids(self):
            return self.clips

    view = with_label_fraction(Clips(), 0.2, seed=0)
    y = view.targets()
    for c in (0, 1):
        assert (y == c).sum() == 6  # 2 of 10 clips, 3 samples each
    for clip in range(20):  # a clip keeps or loses its label as a whole
        assert len(set(y[view.clip_ids() == clip])) == 1
    assert view[int(np.flatnonzero(y == UNLABELLED)[0])]["label"] == UNLABELLED
    kept = labelled_only(view)
    assert len(kept) == 12 and set(kept.targets()) == {0, 1} and with_label_fraction(view, 1.0) is view
    with pytest.raises(ValueError, match=r"--labels-fraction: expected a fraction in \(0, 1\]"):
        with_label_fraction(Clips(), 0.0)


def test_cross_entropy_skips_unlabelled_samples():
    torch.manual_seed(0)
    logits = torch.randn(6, 4, requires_grad=True)
    y = torch.tensor([0, 1, 2, 3, 1, 0])
    assert torch.allclose(cross_entropy(logits, y, label_smoothing=0.1), F.cross_entropy(logits, y, label_smoothing=0.1))
    part = torch.tensor([0, UNLABELLED, 2, UNLABELLED, 1, 0])
    keep = part != UNLABELLED
    assert torch.allclose(cross_entropy(logits, part), F.cross_entropy(logits[keep], part[keep]))
    none = cross_entropy(logits, torch.full((6,), UNLABELLED))
    none.backward()  # a batch without labels: zero, and still differentiable
    assert none.item() == 0.0 and torch.count_nonzero(logits.grad) == 0
    perm = torch.tensor([1, 0, 3, 2, 5, 4])
    mixed = cross_entropy(logits.detach(), y, mix=(perm, 0.7))
    ce = F.cross_entropy(logits.detach(), y, reduction="none")
    assert torch.allclose(mixed, (0.7 * ce + 0.3 * F.cross_entropy(logits.detach(), y[perm], reduction="none")).mean())
