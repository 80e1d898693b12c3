import numpy as np
import pytest
import torch

import edgemm.compress.distill as distill_module
from edgemm.compress.distill import FeatureProjections, fit, kd_loss, within_noise
from edgemm.compress.prune import count_macs_params, frontend_macs, prune
from edgemm.compress.recipe import DistillConfig, Importance, PruneConfig
from edgemm.data import open_dataset
from edgemm.models import create_model, list_models
from edgemm.train.checkpoint import atomic_torch_save, load_model, make_checkpoint

TEST_MODELS = list_models("test_*")


@pytest.fixture(scope="module")
def splits(small_manifest):
    return open_dataset(small_manifest, create_model("test_gated").preprocess)


def _batch(model, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    image, audio, _, _ = model.example_inputs(n)
    return torch.randn(image.shape, generator=g), torch.randn(audio.shape, generator=g) * 0.1


def test_kd_loss_is_zero_for_identical_logits_and_grows_with_disagreement():
    a = torch.randn(4, 10)
    assert float(kd_loss(a, a, 4.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(kd_loss(a, a.flip(1), 4.0)) > float(kd_loss(a, a + 0.01 * torch.randn(4, 10), 4.0))


@pytest.mark.parametrize("name", TEST_MODELS)
def test_distill_trains_the_student_towards_the_teacher(name, splits):
    torch.manual_seed(0)
    teacher = create_model("test_attention", num_classes=10).eval()
    student = create_model(name, num_classes=10)
    proj = FeatureProjections(student, teacher)
    assert proj.proj["fused"].out_features == 16
    items = [splits.train[i] for i in range(24)]
    image = torch.stack([torch.from_numpy(x["image"]) for x in items])
    audio = torch.stack([torch.from_numpy(x["audio"]) for x in items])
    with torch.no_grad():
        before = kd_loss(student.eval()(image, audio), teacher(image, audio), 4.0)
    config = DistillConfig(epochs=3, lr=3e-3, batch_size=8, alpha=1.0, feature_weight=1.0, unimodal_loss=0.0)
    result = fit(student, teacher, splits, config, log=lambda s: None, keep_best=False)
    with torch.no_grad():
        after = kd_loss(student.eval()(image, audio), teacher(image, audio), 4.0)
    assert len(result.history) == 3 and all(np.isfinite(h["loss"]) for h in result.history)
    assert float(after) < float(before)  # the student moved towards the teacher


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_fit_trains_each_branch_with_its_own_head_and_unhooks_the_student(weight, splits, monkeypatch):
    from edgemm.train.unimodal import UnimodalHeads

    calls = []
    real_loss = UnimodalHeads.loss
    monkeypatch.setattr(UnimodalHeads, "loss", lambda self, *a, **k: calls.append(1) or real_loss(self, *a, **k))
    torch.manual_seed(0)
    teacher = create_model("test_attention", num_classes=10).eval()
    student = create_model("test_gated", num_classes=10)
    fit(student, teacher, splits, DistillConfig(epochs=2, lr=3e-3, batch_size=8, unimodal_loss=weight), log=lambda s: None)
    steps = 2 * (len(splits.train) // 8)
    assert len(calls) == (steps if weight else 0)
    assert not student.image_encoder._forward_hooks and not student.audio_encoder._forward_hooks


def test_mixup_shows_the_teacher_the_same_mixed_batch_as_the_student(splits, monkeypatch):
    torch.manual_seed(0)
    teacher = create_model("test_attention", num_classes=10).eval()
    student = create_model("test_gated", num_classes=10)
    seen = {"teacher": [], "student": [], "mixes": 0}
    for who, model in (("teacher", teacher), ("student", student)):
        real = model.forward_features

        def record(image, audio, *rest, _real=real, _who=who):
            if torch.is_grad_enabled() or _who == "teacher":  # training steps, not validation
                seen[_who].append((image.detach().clone(), audio.detach().clone()))
            return _real(image, audio, *rest)

        monkeypatch.setattr(model, "forward_features", record)
    real_mix = distill_module.mix_batch

    def counting_mix(*args):
        seen["mixes"] += 1
        return real_mix(*args)

    monkeypatch.setattr(distill_module, "mix_batch", counting_mix)
    result = fit(student, teacher, splits, DistillConfig(epochs=1, lr=3e-3, batch_size=8, mixup=0.4), log=lambda s: None)
    steps = seen["mixes"]
    assert steps == len(splits.train) // 8 and np.isfinite(result.history[0]["loss"])
    teacher_inputs = seen["teacher"][-steps:]  # FeatureProjections probes the teacher once before training
    assert len(teacher_inputs) == steps
    for (ti, ta), (si, sa) in zip(teacher_inputs, seen["student"][-steps:]):
        assert torch.equal(ti, si) and torch.equal(ta, sa)


def test_a_stage_of_many_tiny_epochs_validates_every_few(splits, monkeypatch):
    """A few labels make 1-step epochs; validating after each would cost more than training."""
    monkeypatch.setattr(distill_module, "MAX_VALIDATIONS", 4)
    torch.manual_seed(0)
    student = create_model("test_gated", num_classes=10)
    evaluated = []
    real = distill_module.evaluate
    monkeypatch.setattr(distill_module, "evaluate", lambda *a, **k: evaluated.append(1) or real(*a, **k))
    result = fit(student, None, splits, DistillConfig(epochs=10, batch_size=8), log=lambda s: None)
    assert [h["epoch"] for h in result.history] == [2, 5, 8, 9]  # every 3rd epoch (10 / 4, rounded up), and the last
    assert len(evaluated) == 4 and result.best_epoch in (2, 5, 8, 9)


def test_within_noise_is_one_binomial_standard_error():
    assert within_noise(0.950, 0.957, 300)  # 2 samples apart; one standard error is ~3.5 samples
    assert not within_noise(0.930, 0.957, 300)
    assert within_noise(0.930, 0.957, 30)  # a smaller validation set tells less apart
    assert within_noise(1.0, 1.0, 300) and not within_noise(0.997, 1.0, 300)


def test_fit_keeps_the_latest_epoch_validation_cannot_tell_from_the_best(splits, monkeypatch):
    torch.manual_seed(0)
    student = create_model("test_gated", num_classes=len(splits.labels))
    scores, snapshots = iter([0.50, 0.957, 0.950, 0.900]), []
    real_evaluate = distill_module.evaluate

    def fake_evaluate(model, dataset, labels, **kw):  # scripted validation scores, real result object
        r = real_evaluate(model, dataset, labels, **kw)
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        r.accuracy, r.n = next(scores), 300
        return r

    monkeypatch.setattr(distill_module, "evaluate", fake_evaluate)
    result = fit(student, None, splits, DistillConfig(epochs=4, lr=3e-3, batch_size=8), log=lambda s: None)
    assert (result.best_epoch, result.best_val, result.top_val) == (2, 0.950, 0.957)
    kept = student.state_dict()
    assert all(torch.equal(kept[k], snapshots[2][k]) for k in kept)  # epoch 3's weights, not epoch 2's
    assert not all(torch.equal(kept[k], snapshots[3][k]) for k in kept if kept[k].is_floating_point())


def test_a_stage_trains_the_same_whatever_the_process_drew_before(splits):
    """A stage resumed in a fresh process trains as it did inside the run: nothing it learns from
    (the projections and auxiliary heads included) depends on random draws made before it."""
    torch.manual_seed(0)
    teacher = create_model("test_attention", num_classes=len(splits.labels))
    start = create_model("test_gated", num_classes=len(splits.labels)).state_dict()
    weights = []
    for before in (1, 2):
        torch.manual_seed(before)  # what earlier stages left in the global generator
        student = create_model("test_gated", num_classes=len(splits.labels))
        student.load_state_dict(start)
        fit(student, teacher, splits, DistillConfig(epochs=1, batch_size=8), seed=5, log=lambda s: None)
        weights.append(student.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("name", [*TEST_MODELS, "av_student_ds"])
def test_prune_shrinks_keeps_working_and_reloads_identically(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    macs0, params0 = count_macs_params(model)
    before = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    calls = []
    prune(model, PruneConfig(ratio=0.5, steps=2), finetune=lambda m, s: calls.append(s), log=lambda s: None)
    macs1, params1 = count_macs_params(model)
    assert calls == [0, 1]
    assert params1 < 0.6 * params0 and macs1 < macs0
    after = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    changed = [n for n in before if after[n] != before[n]]
    assert changed and all(after[n] % 8 == 0 for n in changed)  # rounded to multiples of 8
    for m in model.modules():  # a depthwise conv keeps one filter per channel of what feeds it
        if isinstance(m, torch.nn.Conv2d) and m.groups > 1:
            assert m.groups == m.in_channels == m.out_channels and m.weight.shape[1] == 1
    model.eval()
    image, audio = _batch(model)
    on, off = torch.ones(6), torch.zeros(6)
    with torch.no_grad():
        for mi, ma in ((on, on), (on, off), (off, on)):
            assert torch.isfinite(model(image, audio, mi, ma)).all()
        atomic_torch_save(make_checkpoint(model, labels=[str(i) for i in range(10)]), tmp_path / "p.pt")
        again, _ = load_model(tmp_path / "p.pt")
        torch.testing.assert_close(again(image, audio), model(image, audio), rtol=0, atol=0)
    assert count_macs_params(again) == (macs1, params1)


@pytest.mark.parametrize("importance", [Importance.TAYLOR, Importance.BN_SCALE])
def test_other_importance_criteria(importance, splits):
    from torch.utils.data import DataLoader

    model = create_model("test_concat", num_classes=10)
    params0 = count_macs_params(model)[1]
    prune(model, PruneConfig(ratio=0.5, steps=1, importance=importance), finetune=lambda m, s: None,
          gradient_batches=DataLoader(splits.train, batch_size=8), log=lambda s: None)
    assert count_macs_params(model)[1] < params0
    with pytest.raises(ValueError, match="taylor' needs gradient batches"):
        prune(model, PruneConfig(importance=Importance.TAYLOR), finetune=lambda m, s: None)


def test_mac_count_includes_the_frontend():
    model = create_model("av_student")
    # Per frame (98): the window (400), stage 1 (16 x 16 complex outputs over 25 columns: 2 * 400 * 16),
    # the twiddle (4 * 400), stage 2 (16 rows x 50 inputs x 26 outputs), power (2 * 16 * 13) and the
    # mel matrix (16 * 13 bins x 64 mels).
    assert frontend_macs(model) == 98 * (400 + 2 * 400 * 16 + 4 * 400 + 16 * 50 * 26 + 2 * 16 * 13 + 16 * 13 * 64)
    assert count_macs_params(model)[0] > frontend_macs(model)
    assert frontend_macs(create_model("av_student", preprocess={"audio": {"n_fft": 401, "win_length": 400}})) == (
        98 * (2 * 201 * 401 + 2 * 201 + 64 * 201))  # 401 is prime: the dense DFT
