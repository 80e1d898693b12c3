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


def _report(teacher, rows):
    return {"teacher": teacher, "stages": rows, "vs_scratch": vs_scratch(rows), "data": "d", "device": "cpu",
            "total_seconds": 60}


def test_report_warns_when_distilling_from_a_teacher_weaker_than_the_student_alone():
    rows = [_row("scratch", "1" * 8 + "00"), _row("distill", "1" * 7 + "000")]
    md = markdown(_report(_row("teacher", "1" * 6 + "0000"), rows))
    assert "Teacher 0.600 fused vs the same student trained alone 0.800 (-20.0 pts)." in md
    assert ("- distilling from a weaker teacher: the teacher (0.600) is below the same student trained alone "
            "(0.800)") in md
    strong = markdown(_report(_row("teacher", "1" * 9 + "0"), rows))
    assert "Teacher 0.900 fused vs the same student trained alone 0.800 (+10.0 pts)." in strong
    assert "weaker teacher" not in strong and "Warnings" not in strong


def test_report_names_a_born_again_teacher_as_the_baseline():
    teacher = _row("teacher", "1" * 8 + "00")
    scratch = {**teacher, "name": "scratch", "same_as": "teacher", "seconds": 0.0, "epochs": 30}
    rows = [scratch, _row("distill", "1" * 8 + "00")]
    rows[1]["epochs"] = 11
    md = markdown(_report(teacher, rows))
    assert "| scratch (= teacher) |" in md and "weaker teacher" not in md
    assert "Teacher: the student itself trained alone by edgemm train's recipe (0.800 fused)" in md
    assert "the scratch baseline is the teacher, 30 epochs of edgemm train's schedule." in md


def test_report_checks_that_int8_keeps_the_float_students_accuracy():
    prune, qat = _row("prune", "1" * 90 + "0" * 10), _row("qat", "1" * 90 + "0" * 10)
    qat["int8_bytes"] = 10
    md = markdown(_report(_row("teacher", "1" * 90 + "0" * 10), [prune, qat]))
    assert "int8 check: qat 0.900 vs the float student after prune 0.900 (+0.0 pts): it keeps the float accuracy" in md
    assert "Warnings" not in md
    qat["test_correct"] = "1" * 88 + "0" * 12
    qat["accuracy"] = 0.88
    md = markdown(_report(_row("teacher", "1" * 90 + "0" * 10), [prune, qat]))
    assert "- int8 check: qat 0.880 vs the float student after prune 0.900 (-2.0 pts): it LOSES" in md
