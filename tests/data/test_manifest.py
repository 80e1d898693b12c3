import numpy as np
import pytest
from support import tone, write_manifest, write_png, write_wav

from edgemm.data import DataError, PreprocessConfig, Split, open_dataset
from edgemm.data.manifest import read_manifest

GOOD = [["img0.png", "snd0.wav", "a", "train"], ["img1.png", "snd1.wav", "b", "train"], ["img2.png", "snd2.wav", "a", "val"]]


def test_manifest_loads_items_ready_for_the_model(media_dir):
    csv_path = write_manifest(media_dir / "m.csv", GOOD)
    data = open_dataset(csv_path, PreprocessConfig())
    assert data.labels == ["a", "b"]
    assert (len(data.train), len(data.val), len(data.test)) == (2, 1, 0)
    item = data.train[1]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == np.float32
    assert item["audio"].shape == (16000,) and item["audio"].dtype == np.float32
    assert item["label"] == 1


def test_manifest_directory_and_generated_set(small_manifest):
    data = open_dataset(small_manifest.parent, PreprocessConfig())
    assert len(data.labels) == 10
    assert len(data.train) + len(data.val) + len(data.test) == 60
    assert len(data.val) > 0 and len(data.test) > 0


@pytest.mark.parametrize(
    "rows, header, match",
    [
        (GOOD, ("img", "audio", "label"), r"row 1: bad header .* missing column\(s\) \['image'\]"),
        ([["img0.png", "missing.wav", "a", "train"]], None, r"row 2: .*missing.wav: audio file does not exist"),
        ([["nope.png", "snd0.wav", "a", "train"]], None, r"row 2: .*nope.png: image file does not exist"),
        ([["", "snd0.wav", "a", "train"]], None, r"row 2: column 'image' is empty"),
        ([["img0.png", "snd0.wav", "", "train"]], None, r"no labelled rows in the train split \(rows with an empty label"),
        (GOOD + [["img0.png", "snd0.wav", "", "val"]], None, r"row 5: an unlabelled row \(empty label\) belongs to the train"),
        ([["img0.png", "snd0.wav", "a", "holdout"]], None, r"row 2: split 'holdout' is not one of \['train', 'val', 'test'\]"),
        (GOOD + [["img0.png", "snd0.wav", "zebra", "test"]], None, r"row 5: label 'zebra' of this test row does not occur"),
    ],
)
def test_bad_manifest_rows_name_the_file_and_row(media_dir, rows, header, match):
    kw = {"header": header} if header else {}
    csv_path = write_manifest(media_dir / "m.csv", rows, **kw)
    with pytest.raises(DataError, match=match) as info:
        read_manifest(csv_path)
    assert info.value.path == csv_path


def test_undecodable_empty_and_silent_media_are_rejected(media_dir):
    (media_dir / "broken.png").write_bytes(b"not a png at all")
    (media_dir / "broken.wav").write_bytes(b"RIFF....garbage")
    write_wav(media_dir / "empty.wav", np.zeros(0, np.float32), 16000)
    write_wav(media_dir / "silent.wav", np.zeros(8000, np.float32), 16000)
    cases = {
        "broken.png": ("broken.png", "snd0.wav", "cannot decode image"),
        "broken.wav": ("img0.png", "broken.wav", "cannot decode audio"),
        "empty.wav": ("img0.png", "empty.wav", r"audio is empty \(0 samples\)"),
        "silent.wav": ("img0.png", "silent.wav", "audio is silent"),
    }
    for name, (img, snd, match) in cases.items():
        csv_path = write_manifest(media_dir / f"{name}.csv", [[img, snd, "a", "train"]])
        with pytest.raises(DataError, match=f"row 2: .*{name}: {match}"):
            read_manifest(csv_path)


def test_skip_bad_keeps_good_rows_and_counts_the_rest(media_dir):
    write_wav(media_dir / "silent.wav", np.zeros(8000, np.float32), 16000)
    rows = GOOD + [["nope.png", "snd0.wav", "a", "train"], ["img0.png", "silent.wav", "b", "train"],
                   ["img1.png", "snd1.wav", "zebra", "val"]]
    m = read_manifest(write_manifest(media_dir / "m.csv", rows), skip_bad=True)
    assert len(m.records) == 3
    assert sorted(e.row for e in m.skipped) == [5, 6, 7]


def test_missing_split_column_gives_a_deterministic_stratified_split(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for label in ("a", "b", "c"):
        for i in range(20):
            write_png(tmp_path / f"{label}{i}.png", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
            write_wav(tmp_path / f"{label}{i}.wav", tone(300 + i, 8000, 0.1), 8000)
            rows.append([f"{label}{i}.png", f"{label}{i}.wav", label])
    header = ("image", "audio", "label")
    first = read_manifest(write_manifest(tmp_path / "m1.csv", rows, header=header))
    again = read_manifest(write_manifest(tmp_path / "m2.csv", rows[::-1], header=header))
    assign = lambda m: {r.image.name: r.split for r in m.records}  # noqa: E731
    assert assign(first) == assign(again)  # row order does not matter
    for label in ("a", "b", "c"):
        counts = {s: sum(1 for r in first.records if r.label == label and r.split is s) for s in Split}
        assert counts == {Split.TRAIN: 16, Split.VAL: 2, Split.TEST: 2}


def test_any_image_format_and_stereo_44k_audio_are_normalised(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((120, 200, 3), 200, np.uint8)).save(tmp_path / "wide.jpg")
    stereo = np.stack([tone(1000, 44100, 2.0), tone(1000, 44100, 2.0)], 1)
    write_wav(tmp_path / "stereo.wav", stereo, 44100)
    csv_path = write_manifest(tmp_path / "m.csv", [["wide.jpg", "stereo.wav", "x", "train"], ["wide.jpg", "stereo.wav", "y", "train"]])
    item = open_dataset(csv_path, PreprocessConfig()).train[0]
    assert item["image"].shape == (3, 64, 64)
    audio = item["audio"]
    assert audio.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - 1000) < 2  # the tone survives resampling
    assert 0.45 < np.abs(audio).max() < 0.55  # downmix averages, does not sum


def test_data_check_command_reports_bad_rows(media_dir, capsys):
    from edgemm.cli import main

    csv_path = write_manifest(media_dir / "m.csv", GOOD + [["nope.png", "snd0.wav", "a", "train"]])
    assert main(["data", "check", str(csv_path)]) == 1
    out = capsys.readouterr().out
    assert "1 bad" in out and "row 5" in out and "nope.png" in out


def test_data_check_says_how_far_it_got(media_dir, capsys, monkeypatch):
    from edgemm.cli import _common, main

    monkeypatch.setattr(_common, "PROGRESS_SECONDS", 0.0)  # a million rows take minutes; here, every row
    csv_path = write_manifest(media_dir / "m.csv", GOOD * 4)
    assert main(["data", "check", str(csv_path)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("data check: 1/12 rows (8%), ") and err[-1].startswith("data check: 12/12 rows (100%), ")
    monkeypatch.setattr(_common, "PROGRESS_SECONDS", 60.0)
    assert main(["data", "check", str(csv_path)]) == 0
    assert capsys.readouterr().err == ""  # a short check stays quiet


def test_rows_may_name_files_outside_the_manifests_folder(media_dir, tmp_path_factory):
    """A data set that points into a shared folder is legitimate: relative (../) and absolute paths."""
    elsewhere = tmp_path_factory.mktemp("sets") / "mine"
    rows = [[f"../../{media_dir.name}/img{i % 3}.png" if i % 2 else str(media_dir / f"img{i % 3}.png"),
             str(media_dir / f"snd{i % 3}.wav"), "ab"[i % 2]] for i in range(12)]
    csv_path = write_manifest(elsewhere / "m.csv", rows, header=("image", "audio", "label"))
    data = open_dataset(csv_path, PreprocessConfig())  # no split column: drawn from the paths
    assert len(data.train) + len(data.val) + len(data.test) == 12 and data.labels == ["a", "b"]
    assert data.train[0]["image"].shape == (3, 64, 64)


def test_an_overlong_field_and_a_directory_as_image_are_named(media_dir):
    from edgemm.data import DataError

    (media_dir / "adir").mkdir()
    csv_path = write_manifest(media_dir / "m.csv", GOOD + [["adir", "snd0.wav", "a", "train"]])
    with pytest.raises(DataError, match=r"row 5: .*adir: is a directory, expected an image file"):
        open_dataset(csv_path, PreprocessConfig())
    csv_path = write_manifest(media_dir / "long.csv", GOOD + [["x" * 200_000, "snd0.wav", "a", "train"]])
    with pytest.raises(DataError, match=r"long.csv, row 5: not a readable CSV \(field larger than field limit"):
        open_dataset(csv_path, PreprocessConfig())
