"""Event metrics (DCASE definitions) on known answers, annotations read strictly, and `edgemm eval
--events` on a long recording with gaps: the events it finds, scored as an independent count scores them."""

import json

import numpy as np
import pytest

from edgemm.runtime.event_metrics import AnnotationError, event_based, read_annotations, segment_based
from edgemm.runtime.events import Event


def ev(label, start, end):
    return Event(label, start, end, 1.0)


def test_event_based_f1_counts_collar_matches_one_to_one():
    ref = [ev("a", 1.0, 2.0), ev("b", 3.0, 4.0)]
    est = [ev("a", 1.1, 2.05), ev("b", 3.5, 4.0)]  # a: onset 0.1 s off, offset 0.05 s: a hit. b: onset 0.5 s off
    got = event_based(ref, est)
    assert (got["tp"], got["fp"], got["fn"], got["f1"]) == (1, 1, 1, 0.5)
    assert got["per_class"]["a"]["f1"] == 1.0 and got["per_class"]["b"]["f1"] == 0.0
    # A long event's offset may be 20 % of its length off: 10 s long, 1.9 s late is a hit, 2.1 s is not.
    assert event_based([ev("a", 0, 10)], [ev("a", 0.1, 11.9)])["tp"] == 1
    assert event_based([ev("a", 0, 10)], [ev("a", 0.1, 12.1)])["tp"] == 0
    # Two estimates of one reference event: one hit, one false alarm.
    twice = event_based([ev("a", 1, 2)], [ev("a", 1, 2), ev("a", 1.05, 2.05)])
    assert (twice["tp"], twice["fp"], twice["fn"]) == (1, 1, 0)


def test_the_matching_is_the_largest_one_not_the_first_found():
    ref = [ev("a", 0.0, 1.0), ev("a", 0.15, 1.15)]
    est = [ev("a", 0.1, 1.1), ev("a", 0.0, 1.0)]  # the first estimate fits both; greedy would pair it with the first
    assert event_based(ref, est)["tp"] == 2


def test_segment_based_f1_on_one_second_segments():
    got = segment_based([ev("a", 0.5, 2.5)], [ev("a", 1.2, 1.8)], duration=4.0)
    assert (got["segments"], got["tp"], got["fp"], got["fn"], got["f1"]) == (4, 1, 0, 2, 0.5)


def test_annotations_in_the_dcase_format_and_their_errors(tmp_path):
    good = tmp_path / "a.tsv"
    good.write_text("filename\tonset\toffset\tevent_label\nx.wav\t1.0\t2.5\tglass\nx.wav\t3\t4\tspeech\n")
    assert [(e.label, e.start, e.end) for e in read_annotations(good)] == [("glass", 1.0, 2.5), ("speech", 3.0, 4.0)]
    bad = tmp_path / "b.csv"
    bad.write_text("onset,offset,event_label\n1.0,2.0,glass\n3.0,2.5,speech\n")
    with pytest.raises(AnnotationError, match=r"b.csv, row 3: expected 0 <= onset < offset, got 3.0, 2.5"):
        read_annotations(bad)
    bad.write_text("start,end,label\n1,2,glass\n")
    with pytest.raises(AnnotationError, match=r"expected columns onset, offset, event_label; missing"):
        read_annotations(bad)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """12.5 s: blank and silent gaps around three easy-class stretches, and its annotation file."""
    from support import CLASSES, easy_frame

    from edgemm.data.video import write_clip

    fps, rate, root = 15, 44100, tmp_path_factory.mktemp("events")
    plan = [(None, 1.0), ("red_low", 2.5), (None, 1.5), ("blue_high", 2.5), (None, 1.5), ("green_mid", 2.5), (None, 1.0)]
    rng = np.random.default_rng(0)
    frames, waves, rows, t = [], [], ["onset\toffset\tevent_label"], 0.0
    for label, seconds in plan:
        n = int(round(seconds * fps))
        frames += [easy_frame(label, np.random.default_rng((len(frames), i // 5)), 48) if label else
                   np.zeros((48, 48, 3), np.uint8) for i in range(n)]
        k = np.arange(int(round(seconds * rate))) / rate
        waves.append(0.4 * np.sin(2 * np.pi * CLASSES[label][1] * k) + rng.normal(0, 0.02, k.size) if label else
                     np.zeros(k.size))
        if label:
            rows.append(f"{t:g}\t{t + seconds:g}\t{label}")
        t += seconds
    video = write_clip(root / "long.mp4", frames, fps, np.concatenate(waves).astype(np.float32), rate)
    (root / "long.tsv").write_text("\n".join(rows) + "\n")
    return video, root / "long.tsv"


def test_eval_events_scores_what_run_events_finds(onnx_bundle, recording, capsys):
    from edgemm.cli import main

    video, annotations = recording
    assert main(["run", str(onnx_bundle), "--video", str(video), "--events", "--json", "--quiet"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"event"' in line]
    assert [e["event"] for e in printed] == ["red_low", "blue_high", "green_mid"]  # found, in order
    assert main(["eval", str(onnx_bundle), "--events", str(annotations), "--video", str(video), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(e["event"], e["start"], e["end"]) for e in report["found"]] == [
        (e["event"], e["start"], e["end"]) for e in printed]  # eval scores the events run prints
    # An independent count: each class has one event here, so a hit is a same-class pair within the collars.
    ref = {e["event"]: e for e in report["reference"]}
    tp = sum(abs(f["start"] - ref[f["event"]]["start"]) <= 0.2
             and abs(f["end"] - ref[f["event"]]["end"]) <= max(0.2, 0.2 * ref[f["event"]]["duration"])
             for f in report["found"] if f["event"] in ref)
    fp, fn = len(report["found"]) - tp, len(report["reference"]) - tp
    assert report["event_based"]["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert report["segment_based"]["f1"] > 0.8 and report["frame_level"]["accuracy"] > 0.8
    assert main(["eval", str(onnx_bundle), "--events", str(annotations)]) == 2  # --video is needed too
