import pytest

from edgemm.compress.report import markdown, mcnemar, vs_scratch


def test_mcnemar_counts_only_discordant_samples():
    # 10 samples only the model got right, none only the baseline: p = 2 * 0.5**10
    r = mcnemar("1" * 10 + "11" + "00", "0" * 10 + "11" + "00")
    assert (r["n"], r["only_this"], r["only_scratch"]) == (14, 10, 0)
    assert r["p_value"] == pytest.approx(2 * 0.5**10)
    balanced = mcnemar("1100", "0011")  # as often better as worse: no evidence either way
    assert balanced["p_value"] == pytest.approx(1.0)
    assert mcnemar("10", "10")["p_value"] == 1.0  # identical predictions
    with pytest.raises(ValueError, match="same samples"):
        mcnemar("101", "10")


def _row(name, correct):
    n = len(correct)
    return {"name": name, "params": 10, "macs": 10, "fp32_bytes": 40, "accuracy": correct.count("1") / n,
            "accuracy_image_only": 0.5, "accuracy_audio_only": 0.5, "n": n, "seconds": 1.0, "test_correct": correct}


def test_report_says_whether_the_gain_over_scratch_is_significant():
    scratch = "1" * 60 + "0" * 40
    rows = [_row("scratch", scratch), _row("distill", "1" * 62 + "0" * 38), _row("qat", "1" * 90 + "0" * 10)]
    tests = vs_scratch(rows)
    assert tests["distill"]["p_value"] > 0.05 and tests["qat"]["p_value"] < 0.05
    md = markdown({"teacher": _row("teacher", scratch), "stages": rows, "vs_scratch": tests, "data": "d",
                   "device": "cpu", "total_seconds": 60})
    assert "distill vs scratch: 2 right only by distill, 0 only by scratch" in md
    assert "(not significant at 5 %)" in md and "qat vs scratch" in md and "(significant at 5 %)" in md
    old = [{k: v for k, v in r.items() if k != "test_correct"} for r in rows]  # a run from before the field
    assert vs_scratch(old) == {} and vs_scratch(rows[1:]) == {}


def test_report_states_the_training_budget_of_the_final_model_and_the_baseline():
    rows = [_row("scratch", "10"), _row("distill", "11"), _row("prune", "11"), _row("qat", "11")]
    for r, epochs in zip(rows, (11, 11, 6, 2)):
        r["epochs"] = epochs
    md = markdown({"teacher": _row("teacher", "11"), "stages": rows, "vs_scratch": {}, "data": "d",
                   "device": "cpu", "total_seconds": 60})
    assert ("Student training epochs: the final model 19 (distill 11, prune 6, qat 2); "
            "the scratch baseline 11 (the distill stage's budget). The final model trained 8 epochs more than the "
            "baseline, so only the distill row is compared with it at an equal budget.") in md
    del rows[2]["epochs"]  # a stage reused from a run written before rows recorded epochs
    md = markdown({"teacher": _row("teacher", "11"), "stages": rows, "vs_scratch": {}, "data": "d",
                   "device": "cpu", "total_seconds": 60})
    assert "Student training epochs" not in md


def test_report_lists_branch_warnings_by_model_state():
    rows = [_row("distill", "11"), _row("qat", "11")]
    rows[1]["warnings"] = ["the image branch learned nothing: test accuracy 0.090 with only the image present"]
    md = markdown({"teacher": _row("teacher", "11"), "stages": rows, "data": "d", "device": "cpu", "total_seconds": 60})
    assert "**Warnings**" in md and "- qat: the image branch learned nothing" in md
    quiet = markdown({"teacher": _row("teacher", "11"), "stages": rows[:1], "data": "d", "device": "cpu",
                      "total_seconds": 60})
    assert "Warnings" not in quiet


def test_report_gives_the_mac_ratio_with_and_without_the_shared_frontend():
    teacher, final = _row("teacher", "11"), _row("qat", "11")
    teacher.update(macs=151_000_000, frontend_macs=5_000_000)
    final.update(macs=10_000_000, frontend_macs=5_000_000)
    md = markdown({"teacher": teacher, "stages": [final], "data": "d", "device": "cpu", "total_seconds": 60})
    assert "15.1x fewer MACs (29.2x without the log-mel frontend, 5.0 M MACs in the teacher's graph, 5.0 M in the student's)" in md
    del teacher["frontend_macs"]  # a report written before rows recorded it
    md = markdown({"teacher": teacher, "stages": [final], "data": "d", "device": "cpu", "total_seconds": 60})
    assert "15.1x fewer MACs, fused" in md
