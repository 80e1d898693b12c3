import json
import subprocess
import sys

import pytest
import torch

from edgemm.train import TrainConfig, load_checkpoint, load_model, train

FAST = dict(epochs=2, min_steps=0, batch_size=16, patience=0, threads=1)


@pytest.fixture(scope="module")
def trained(small_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    summary = train("test_gated", small_manifest, out=out, config=TrainConfig(**FAST), progress=False)
    return out, summary


def test_train_writes_checkpoints_metrics_and_summary(trained, small_manifest):
    out, summary = trained
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1]
    assert {"train_loss", "val_accuracy", "val_accuracy_image_only", "val_accuracy_audio_only", "lr"} <= set(lines[0])
    assert summary["best_val_accuracy"] == max(r["val_accuracy"] for r in lines)
    assert summary["test"]["n"] > 0
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))


def test_checkpoint_is_plain_data_and_reloads_to_the_same_outputs(trained):
    out, _ = trained
    raw = torch.load(out / "best.pt", map_location="cpu", weights_only=True)  # no pickled code
    assert raw["model"]["name"] == "test_gated" and raw["model"]["kwargs"]["num_classes"] == 10
    assert len(raw["labels"]) == 10 and raw["preprocess"]["image"]["size"] == 32
    model, ckpt = load_model(out / "best.pt")
    again, _ = load_model(out / "best.pt")
    x = model.example_inputs(3)
    x = (torch.randn_like(x[0]), torch.randn_like(x[1]) * 0.1, x[2], x[3])
    with torch.no_grad():
        torch.testing.assert_close(model(*x), again(*x), rtol=0, atol=0)


def test_a_second_run_into_the_same_directory_needs_resume(trained, small_manifest):
    out, _ = trained
    with pytest.raises(FileExistsError, match="pass --resume"):
        train("test_gated", small_manifest, out=out, config=TrainConfig(**FAST), progress=False)
    with pytest.raises(ValueError, match="cannot resume it as 'test_late'"):
        train("test_late", small_manifest, out=out, config=TrainConfig(**FAST), resume=True, progress=False)


def test_resume_continues_exactly_where_an_uninterrupted_run_would_be(small_manifest, tmp_path):
    cfg3 = TrainConfig(**{**FAST, "epochs": 3})
    train("test_attention", small_manifest, out=tmp_path / "straight", config=cfg3, progress=False)
    # "Interrupted" after epoch 1: a run scheduled for 3 epochs that stops after its first 2 steps
    # (40 train samples, batch 16, last partial batch dropped: 2 steps per epoch).
    train("test_attention", small_manifest, out=tmp_path / "resumed", config=TrainConfig(**{**FAST, "epochs": 3, "max_steps": 2}),
          progress=False)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 0
    train("test_attention", small_manifest, out=tmp_path / "resumed", config=cfg3, resume=True, progress=False)
    a = load_checkpoint(tmp_path / "straight" / "last.pt")
    b = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=0, msg=k)
    epochs = [json.loads(x)["epoch"] for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [0, 1, 2]


def test_eval_command_prints_json_and_plots(trained, small_manifest, tmp_path, capsys):
    from edgemm.cli import main

    out, summary = trained
    png = tmp_path / "cm.png"
    assert main(["eval", str(out / "best.pt"), "--data", str(small_manifest), "--json", "--plot", str(png)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"accuracy", "accuracy_image_only", "accuracy_audio_only", "n", "per_class"} <= set(result)
    assert result["n"] == sum(1 for line in small_manifest.read_text().splitlines() if ",test," in line)
    # The same numbers training reported for its best checkpoint on the same split.
    assert all(result[k] == summary["test"][k] for k in ("accuracy", "accuracy_image_only", "accuracy_audio_only"))
    assert sum(map(sum, result["confusion"])) == result["n"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_rejects_labels_the_model_does_not_know(trained, tmp_path, media_dir, capsys):
    from support import write_manifest

    from edgemm.cli import main

    out, _ = trained
    csv_path = write_manifest(media_dir / "m.csv", [["img0.png", "snd0.wav", "zebra", "test"],
                                                     ["img1.png", "snd1.wav", "circle_beep", "train"]])
    assert main(["eval", str(out / "best.pt"), "--data", str(csv_path)]) == 1
    assert "row 2: label 'zebra' is not one of the model's labels" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.ddp
def test_distributed_training_keeps_replicas_identical(small_manifest, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "edgemm.cli", "train", "--model", "test_concat", "--data", str(small_manifest), "--out", str(out),
           "--epochs", "2", "--min-steps", "0", "--batch-size", "8", "--threads", "1", "--device", "cpu", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["replica_max_abs_diff"] == 0.0
    # Each replica saw half of each epoch: steps per epoch halve compared with one process.
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]  # 40 train samples / 2 replicas = 20, batch 8, partial batch dropped


@pytest.mark.parametrize("epochs, per_epoch, min_steps, expected", [
    (30, 47, 1500, (1500, 32)),   # 3000 samples: the floor barely moves it
    (30, 11, 1500, (1500, 137)),  # 700 samples: many more epochs
    (30, 200, 1500, (6000, 30)),  # a large set: epochs decide
    (2, 5, 0, (10, 2)),           # floor off
])
def test_the_schedule_gives_small_sets_enough_steps(epochs, per_epoch, min_steps, expected):
    from edgemm.train.config import schedule_steps

    assert schedule_steps(epochs, per_epoch, min_steps) == expected


def test_small_sets_train_to_the_step_floor_and_patience_waits_for_half_the_schedule(small_manifest, tmp_path):
    cfg = TrainConfig(**{**FAST, "epochs": 1, "min_steps": 8, "patience": 1})
    summary = train("test_gated", small_manifest, out=tmp_path, config=cfg, progress=False)
    # 40 train samples, batch 16, partial batch dropped: 2 steps an epoch, so 4 epochs reach 8 steps.
    assert summary["scheduled_steps"] == 8 and summary["epochs"] == 4
    assert summary["steps"] >= 4  # patience 1 cannot stop the run in its first half


def test_the_saved_model_is_the_weight_average_not_the_last_step(small_manifest, tmp_path):
    summary = train("test_gated", small_manifest, out=tmp_path, config=TrainConfig(**{**FAST, "epochs": 1}),
                    progress=False)
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["ema"]["n_averaged"].item() == summary["steps"] == 2
    raw = last["state_dict"]
    avg = {k[len("module."):]: v for k, v in last["ema"].items() if k.startswith("module.")}
    best = load_checkpoint(tmp_path / "best.pt")["state_dict"]  # one epoch: saved at its end
    assert set(best) == set(raw)
    for k in best:
        torch.testing.assert_close(best[k], avg[k], rtol=0, atol=0)
    assert any(not torch.equal(raw[k], avg[k]) for k in raw if raw[k].is_floating_point())


def test_a_branch_at_chance_is_reported_by_name():
    from edgemm.metrics import EvalResult, branch_warnings

    def result(image_only, audio_only, n=200):
        per = n // 10
        return EvalResult(0.9, image_only, audio_only, n, {}, [[per if i == j else 0 for j in range(10)] for i in range(10)],
                          [str(i) for i in range(10)], 0.3)

    (msg,) = branch_warnings(result(0.09, 0.8), "test")
    assert msg.startswith("the image branch learned nothing: test accuracy 0.090") and "from the audio alone" in msg
    assert branch_warnings(result(0.55, 0.8), "test") == []
    # 0.14 on 200 samples is within two standard errors of 0.1; on 2000 it is not.
    assert len(branch_warnings(result(0.8, 0.14), "test")) == 1
    assert branch_warnings(result(0.8, 0.14, n=2000), "test") == []
    assert len(branch_warnings(result(0.1, 0.1), "val")) == 2



def test_window_mix_gives_a_temporal_model_per_frame_flags_and_its_heads_the_newest_frames():
    from edgemm.models import create_model
    from edgemm.train.loop import _supervised_loss, train_epoch
    from edgemm.train.unimodal import UnimodalHeads

    torch.manual_seed(0)
    model = create_model("tiny_temporal", num_classes=3)
    heads = UnimodalHeads(model, 3)
    image, audio, _, _ = model.example_inputs(16)
    batch = {"image": torch.randn_like(image), "audio": torch.randn_like(audio) * 0.1, "label": torch.arange(16) % 3}
    seen = []

    def forward(image, audio, mi, ma, _batch):
        seen.append((mi.clone(), ma.clone()))
        return model(image, audio, mi, ma), (mi, ma)

    loss = _supervised_loss(TrainConfig(), heads)
    opt = torch.optim.SGD([*model.parameters(), *heads.parameters()], lr=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    for p in (0.0, 1.0):
        # the heads' loss takes (B, K) flags (their newest frame's); a non-finite loss would raise
        train_epoch(model, [batch], opt, sched, loss, g=torch.Generator().manual_seed(1), device=torch.device("cpu"),
                    augment=None, modality_dropout_p=1.0, window_mix_p=p, forward=forward)
    (mi0, ma0), (mi1, ma1) = seen
    assert mi0.shape == (16,)  # no mixing: one flag per sample
    assert mi1.shape == (16, model.frames)
    # every sample lost one modality; mixed windows hold a modality for some frames and not others
    varies = (mi1.amin(1) != mi1.amax(1)) | (ma1.amin(1) != ma1.amax(1))
    assert varies.any()
