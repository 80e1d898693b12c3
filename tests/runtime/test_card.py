"""The model card: every figure in MODEL_CARD.md and the one-line summary is the manifest's own."""

import datetime

from edgemm.runtime.card import card_line, card_markdown, limits, lineage_from_report
from edgemm.runtime.manifest import Manifest


def _manifest(**kw) -> Manifest:
    conditions = {"fused": {"accuracy": 0.9, "reference_accuracy": 0.9, "top1_agreement": 1.0, "max_abs_logit_diff": 2e-7},
                  "image_only": {"accuracy": 0.45, "reference_accuracy": 0.45, "top1_agreement": 1.0,
                                 "max_abs_logit_diff": 1e-7},
                  "audio_only": {"accuracy": 0.85, "reference_accuracy": 0.85, "top1_agreement": 1.0,
                                 "max_abs_logit_diff": 1e-7}}
    return Manifest(name="av_student", labels=["cat", "dog", "bird"], target="onnx", precision="int8",
                    files={"model": "model.onnx"}, inputs=[], outputs=[],
                    preprocess={"image": {"size": 64}, "audio": {"sample_rate": 16000, "clip_seconds": 1.0}},
                    source={"model": {"name": "av_student", "kwargs": {"num_classes": 3}}, "data": "pets.csv",
                            "checkpoint": "runs/c/model.pt", "sha256": "ab" * 32},
                    verification={"status": "passed", "message": "within tolerance", "reference": "pytorch-fake-quant",
                                  "samples": 40, "data": "pets.csv test 40 of 40", "accuracy": 0.9,
                                  "conditions": conditions, "backend": "onnxruntime (CPUExecutionProvider)",
                                  "per_class": {"cat": {"n": 20, "accuracy": 1.0}, "dog": {"n": 15, "accuracy": 0.8},
                                                "bird": {"n": 5, "accuracy": 0.8}}},
                    **kw)


def test_the_card_line_states_accuracy_with_each_modality_and_the_verification():
    assert card_line(_manifest()) == ("av_student: 3 classes, onnx int8; accuracy 0.900 on 40 held-out samples "
                                      "(camera only 0.450, microphone only 0.850); verification passed")
    bare = _manifest()
    bare.verification = {"status": "skipped"}
    assert card_line(bare) == "av_student: 3 classes, onnx int8; verification skipped"


def test_limits_name_the_weak_modality_and_classes_from_the_figures():
    found = limits(_manifest())
    assert found[0] == ("With the camera only (the other one covered, muted or broken) accuracy falls from 0.900 "
                        "to 0.450.")  # 45 pts; the microphone alone (5 pts below) is not a limit
    assert not any("microphone only" in line for line in found)
    assert found[1] == "Weakest classes on the held-out samples: dog 0.80 (n = 15), bird 0.80 (n = 5), cat 1.00 (n = 20)."
    assert any("no 'none of these' class" in line for line in found)


def test_the_card_shows_the_verification_per_class_and_the_compress_lineage():
    report = {"teacher": {"name": "teacher", "accuracy": 0.95, "params": 497000, "n": 40, "path": "t/best.pt"},
              "stages": [{"name": "distill", "accuracy": 0.93, "accuracy_image_only": 0.5, "accuracy_audio_only": 0.9,
                          "params": 497000, "n": 40, "test_correct": "1" * 40}],
              "recipe": {"teacher": {"model": "av_teacher"}}, "transfer": {"labels_fraction": 0.1}}
    lineage = lineage_from_report(report)
    assert lineage["teacher"]["model"] == "av_teacher" and "test_correct" not in lineage["stages"][0]
    md = card_markdown(_manifest(card={"file": "MODEL_CARD.md", "lineage": lineage}))
    assert md.startswith("# Model card: av_student (onnx int8)")
    assert "into one of 3 classes: `cat`, `dog`, `bird`" in md and "last 1 s of microphone audio (16000 Hz)" in md
    assert "| camera + microphone | 0.900 | 0.900 | 1.000 |" in md and "| camera only | 0.450 |" in md
    assert "| dog | 15 | 0.800 |" in md
    assert "| teacher av_teacher | 0.950 |" in md and "| distill | 0.930 | 0.500 | 0.900 | 497000 |" in md
    assert "Trained with 10% of the training labels." in md


def test_a_calibrated_bundles_card_states_its_temperature_and_operating_point():
    cal = {"method": "temperature scaling (NLL)", "temperature": 1.8, "samples": 60, "data": "pets.csv val 60 of 60",
           "nll_before": 0.61, "nll_after": 0.42, "ece_before": 0.121, "ece_after": 0.034, "threshold": 0.47,
           "threshold_rule": "most right decisions"}
    m = _manifest(calibration=cal)
    md = card_markdown(m)
    assert ("temperature **1.8**; expected calibration error 0.121 → 0.034, negative log-likelihood 0.610 → 0.420"
            in md) and "below **0.47** unlabelled" in md
    assert "calibrated on 60 validation samples only (temperature 1.8)" in "\n".join(limits(m))
    assert "not calibrated probabilities" in "\n".join(limits(_manifest()))


def test_evaluations_are_added_to_the_card_inside_its_bundle(tmp_path):
    from edgemm.runtime.card import append_evaluation
    from edgemm.runtime.manifest import read_manifest, write_manifest

    bundle = tmp_path / "m.edgemm"
    bundle.mkdir()
    (bundle / "model.onnx").write_bytes(b"")
    write_manifest(_manifest(card={"file": "../outside.md"}), bundle)  # a manifest naming a path outside
    card = append_evaluation(bundle, {"data": "office.csv [test]", "n": 80, "accuracy": 0.8125,
                                      "accuracy_image_only": 0.5, "accuracy_audio_only": 0.7})
    append_evaluation(bundle, {"data": "hall.mp4 events", "n": 6, "event_f1": 0.6667})
    assert card == bundle / "MODEL_CARD.md" and not (tmp_path / "outside.md").exists()
    text, today = card.read_text(), datetime.date.today().isoformat()
    assert f"| {today} | office.csv [test] | 80 | 0.812 | 0.500 | 0.700 | — |" in text
    assert f"| {today} | hall.mp4 events | 6 | — | — | — | 0.667 |" in text
    saved = read_manifest(bundle).card
    assert [e["data"] for e in saved["evaluations"]] == ["office.csv [test]", "hall.mp4 events"]
    assert saved["file"] == "MODEL_CARD.md"
