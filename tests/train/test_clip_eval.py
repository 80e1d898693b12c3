import json


def test_eval_on_a_video_folder_reports_clip_level_accuracy(trained, tmp_path, capsys):
    """Three clips per class; every sample of every clip is scored, and each clip gets one answer."""
    from support import CLASSES, write_easy_clip

    from edgemm.cli import main

    run = trained("test_concat")
    for label in CLASSES:
        for k in range(3):
            (tmp_path / label).mkdir(exist_ok=True)
            write_easy_clip(tmp_path / label / f"{k}.mp4", label, seconds=1.0, seed=100 + k)
    assert main(["eval", str(run / "best.pt"), "--data", str(tmp_path), "--split", "train", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_clips"] == len(CLASSES) and result["n"] == 3 * len(CLASSES)  # 3 samples a clip
    assert result["accuracy_clip"] * len(CLASSES) == round(result["accuracy_clip"] * len(CLASSES))  # per clip
    assert result["accuracy_clip"] >= 0.75
    assert main(["eval", str(run / "best.pt"), "--data", str(tmp_path), "--split", "train"]) == 0
    assert f"clip-level fused {result['accuracy_clip']:.3f} (n={len(CLASSES)} clips" in capsys.readouterr().out
