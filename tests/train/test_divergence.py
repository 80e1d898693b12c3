"""A run whose loss becomes NaN or infinite stops with an error, keeps its last good checkpoint, and
nothing non-finite is ever saved or exported (issue 18, case 1)."""

import subprocess
import sys

import pytest
import torch

from edgemm.train import TrainConfig, load_checkpoint, train
from edgemm.train.checkpoint import make_checkpoint
from edgemm.train.loop import TrainingDiverged


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0])
def test_a_learning_rate_that_is_not_a_finite_positive_number_is_refused(value):
    with pytest.raises(ValueError, match="TrainConfig.lr"):
        TrainConfig(lr=value)


def test_the_cli_refuses_lr_inf_as_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgemm.cli", "train", "--lr", "inf", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "argument --lr: expected a finite number, got 'inf'" in proc.stderr


def test_a_diverging_run_stops_and_keeps_the_last_good_checkpoint(small_manifest, tmp_path, monkeypatch):
    from edgemm.train import loop

    real = loop.train_epoch
    calls = []

    def poisoned(module, batches, *args, **kw):
        calls.append(1)
        if len(calls) == 2:  # the second epoch's loss turns into NaN, as a too-high learning rate does
            opt, sched, loss_fn = args
            args = (opt, sched, lambda logits, y, extra: loss_fn(logits, y, extra) * float("nan"))
        return real(module, batches, *args, **kw)

    monkeypatch.setattr(loop, "train_epoch", poisoned)
    cfg = TrainConfig(epochs=3, min_steps=0, batch_size=16, threads=1)
    with pytest.raises(TrainingDiverged, match=r"epoch 2: the loss became nan at step 3: training diverged .*"
                                               r"the last good checkpoint is .*last.pt \(epoch 1\)"):
        train("test_gated", small_manifest, out=tmp_path, config=cfg, progress=False)
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_a_model_with_non_finite_weights_is_never_saved_or_exported(tmp_path):
    from edgemm.export import ExportError, export
    from edgemm.models import create_model

    model = create_model("test_gated", num_classes=3)
    with torch.no_grad():
        next(model.parameters()).fill_(float("inf"))
    with pytest.raises(ValueError, match="refusing to save a model with non-finite weights"):
        make_checkpoint(model, labels=["a", "b", "c"])
    # A checkpoint written by an older edgemm (or by hand) is refused at export.
    good = make_checkpoint(create_model("test_gated", num_classes=3), labels=["a", "b", "c"])
    name = next(iter(good["state_dict"]))
    good["state_dict"][name] = torch.full_like(good["state_dict"][name], float("nan"))
    torch.save(good, tmp_path / "broken.pt")
    with pytest.raises(ExportError, match=rf"broken.pt: 1 weight tensors hold NaN or infinity \(first '{name}'\)"):
        export(tmp_path / "broken.pt", target="onnx", out=tmp_path / "b.edgemm", log=lambda s: None)
    assert not (tmp_path / "b.edgemm").exists()


def test_a_model_whose_outputs_are_nan_from_the_start_is_not_told_to_lower_the_learning_rate(small_manifest,
                                                                                              tmp_path):
    user = tmp_path / "nan_model.py"
    user.write_text("import torch\n\n\nclass M(torch.nn.Module):\n"
                    "    def __init__(self, n):\n        super().__init__()\n        self.fc = torch.nn.Linear(1, n)\n\n"
                    "    def forward(self, image, audio):\n"
                    "        return self.fc(image.mean((1, 2, 3))[:, None]) * float('nan')\n\n\n"
                    "def make(num_classes, **kw):\n    return M(num_classes)\n")
    cfg = TrainConfig(epochs=1, min_steps=0, batch_size=16, threads=1)
    with pytest.raises(TrainingDiverged, match=r"the model's outputs were already non-finite at step 1, before this "
                                               r"run changed any weight .*a lower learning rate will not help") as e:
        train(f"{user}:make", small_manifest, out=tmp_path / "run", config=cfg, progress=False)
    assert "lower the learning rate)" not in str(e.value)
