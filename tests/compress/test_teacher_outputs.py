"""Teacher outputs computed once and cached: what is stored, how it is looked up and mixed, and that
distillation from the cache never runs the teacher."""

import dataclasses

import pytest
import torch

from edgemm.compress import teacher_outputs as cache
from edgemm.compress.distill import fit
from edgemm.compress.recipe import DistillConfig, TeacherOutputMode, parse_recipe
from edgemm.data import open_dataset
from edgemm.models import create_model


@pytest.fixture(scope="module")
def setup(small_manifest):
    torch.manual_seed(0)
    teacher = create_model("test_attention", num_classes=10).eval()
    splits = open_dataset(small_manifest, teacher.preprocess)
    return teacher, splits


def test_stored_outputs_are_the_teachers_on_clean_inputs_for_each_presence_pattern(setup):
    teacher, splits = setup
    outputs = cache.compute(teacher, splits.train, device=torch.device("cpu"), batch_size=7)
    n = len(splits.train)
    assert outputs.logits.shape == (3, n, 10) and len(outputs) == n
    assert set(outputs.features) == {"image", "audio", "fused"}
    idx = [0, 5, n - 1]
    batch = [splits.train[i] for i in idx]
    image = torch.stack([torch.as_tensor(b["image"]) for b in batch])
    audio = torch.stack([torch.as_tensor(b["audio"]) for b in batch])
    for p, (has_image, has_audio) in enumerate(cache.PATTERNS):
        with torch.no_grad():
            expected = teacher(image, audio, torch.full((3,), has_image), torch.full((3,), has_audio))
        torch.testing.assert_close(outputs.logits[p, idx], expected, rtol=1e-4, atol=1e-4)
    # lookup: each sample gets the pattern of its own flags
    mi, ma = torch.tensor([1.0, 0.0, 1.0]), torch.tensor([1.0, 1.0, 0.0])
    logits, feats = outputs.lookup(torch.tensor(idx), mi, ma, torch.device("cpu"))
    torch.testing.assert_close(logits, torch.stack([outputs.logits[0, idx[0]], outputs.logits[2, idx[1]],
                                                    outputs.logits[1, idx[2]]]))
    assert feats["fused"].dtype == torch.float32 and feats["fused"].shape[0] == 3


def test_mixed_targets_are_the_mixture_of_the_softened_distributions():
    torch.manual_seed(0)
    a, b = torch.randn(4, 5), torch.randn(4, 5)
    lam, t = torch.tensor([0.5, 0.7, 0.9, 1.0]), 4.0
    mixed, _ = cache.mix(a, None, b, None, lam, t)
    w = lam.view(-1, 1)
    expected = w * torch.softmax(a / t, 1) + (1 - w) * torch.softmax(b / t, 1)
    torch.testing.assert_close(torch.softmax(mixed / t, 1), expected, rtol=1e-5, atol=1e-6)
    fa, fb = {"fused": torch.ones(4, 2)}, {"fused": torch.zeros(4, 2)}
    _, feats = cache.mix(a, fa, b, fb, lam, t)
    torch.testing.assert_close(feats["fused"][:, 0], lam)


def test_the_cache_is_reused_and_keyed_by_the_teachers_weights(setup, tmp_path):
    teacher, splits = setup
    logs = []
    key = cache.cache_key(teacher, "data", len(splits.train), teacher.preprocess.to_dict(), None)
    first = cache.cached(teacher, splits.train, key=key, cache_dir=tmp_path, device=torch.device("cpu"), amp=None,
                         log=logs.append)
    assert (tmp_path / f"{key}.pt").is_file() and "computing" in logs[-1]
    again = cache.cached(teacher, splits.train, key=key, cache_dir=tmp_path, device=torch.device("cpu"), amp=None,
                         log=logs.append)
    assert "reusing" in logs[-1]
    torch.testing.assert_close(again.logits, first.logits)
    other = create_model("test_attention", num_classes=10)
    assert cache.cache_key(other, "data", len(splits.train), teacher.preprocess.to_dict(), None) != key
    assert cache.cache_key(teacher, "other data", len(splits.train), teacher.preprocess.to_dict(), None) != key


def _damaged(state, how):
    if how == "truncated":
        return None
    state = dict(state)
    if how == "zeros":
        state = {k: torch.zeros_like(v) for k, v in state.items()}
    elif how == "nan":
        state["logits"] = state["logits"].clone()
        state["logits"][1, 3, 0] = float("nan")
    elif how == "narrow":  # wrong embedding width, right sample count
        state["features.fused"] = state["features.fused"][..., :-1]
    elif how == "missing":
        del state["features.image"]
    return state


@pytest.mark.parametrize("how", ["truncated", "zeros", "nan", "narrow", "missing"])
def test_a_damaged_cache_is_recomputed_with_a_notice(setup, tmp_path, how):
    teacher, splits = setup
    logs, cpu = [], torch.device("cpu")
    good = cache.cached(teacher, splits.train, key="k", cache_dir=tmp_path, device=cpu, amp=None, log=logs.append)
    path = tmp_path / "k.pt"
    damaged = _damaged(good.state(), how)
    if damaged is None:
        path.write_bytes(path.read_bytes()[:300])
    else:
        torch.save(damaged, path)
    again = cache.cached(teacher, splits.train, key="k", cache_dir=tmp_path, device=cpu, amp=None, log=logs.append)
    notice = {"truncated": "cannot be read", "zeros": "for the first sample that are not the teacher's",
              "nan": "holds non-finite logits", "narrow": "holds fused embeddings of",
              "missing": "holds ['audio embeddings', 'fused embeddings', 'logits'], the teacher gives"}[how]
    assert notice in logs[-2] and logs[-2].endswith(": recomputing"), logs
    torch.testing.assert_close(again.logits, good.logits)
    cache.cached(teacher, splits.train, key="k", cache_dir=tmp_path, device=cpu, amp=None, log=logs.append)
    assert "reusing" in logs[-1]  # the recomputed file is whole again


class _Counting(torch.nn.Module):
    """A teacher that counts its forward passes (an AVModel's forward_features included)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0
        self.preprocess, self.head = inner.preprocess, inner.head

    def example_inputs(self, b):
        return self.inner.example_inputs(b)

    def forward_features(self, *x):
        self.calls += 1
        return self.inner.forward_features(*x)

    def forward(self, *x):
        self.calls += 1
        return self.inner(*x)


@pytest.mark.parametrize("mixup", [0.0, 0.4])
def test_distillation_from_cached_outputs_never_runs_the_teacher(setup, mixup):
    teacher, splits = setup
    counting = _Counting(teacher)
    outputs = cache.compute(teacher, splits.train, device=torch.device("cpu"))
    config = DistillConfig(epochs=2, batch_size=8, mixup=mixup)
    torch.manual_seed(0)
    student = create_model("test_gated", num_classes=10)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    result = fit(student, counting, splits, config, teacher_outputs=outputs, log=lambda s: None)
    assert counting.calls == 0
    assert len(result.history) == 2
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items())
    online = create_model("test_gated", num_classes=10)
    fit(online, counting, splits, dataclasses.replace(config, epochs=1), log=lambda s: None)
    assert counting.calls >= len(splits.train) // 8  # online: once per batch at least


def test_recipe_teacher_outputs_resolve():
    recipe = parse_recipe({"teacher": {"outputs": "cached"}, "stages": [{"type": "distill"}]})
    assert recipe.teacher.outputs is TeacherOutputMode.CACHED
    assert TeacherOutputMode.AUTO.resolve(zero_shot=True) is TeacherOutputMode.CACHED
    assert TeacherOutputMode.AUTO.resolve(zero_shot=False) is TeacherOutputMode.ONLINE
    with pytest.raises(ValueError, match="teacher.outputs"):
        parse_recipe({"teacher": {"outputs": "sometimes"}, "stages": [{"type": "distill"}]})
