"""Latency-aware pruning's table: paired measurements, noise, weights, the cache, the importance it gives."""

import pytest
import torch

from edgemm.compress.budget import LatencyBudget
from edgemm.compress.latency_table import LatencyTable, build_table, cached_table, latency_importance
from edgemm.compress.prune import build_pruner, count_macs_params
from edgemm.compress.recipe import PruneConfig
from edgemm.devices import parse_profile
from edgemm.models import create_model

DEVICE = parse_profile({"name": "x", "description": "x", "target": "onnx", "precision": "fp32",
                        "backend": "onnxruntime"}, "test")


class MacsClock:
    """A deterministic "device": p50 is the audio branch's MACs only, so pruning the image branch saves nothing."""

    def __init__(self):
        self.budget, self.where, self.calls, self.compared = LatencyBudget(1.0, DEVICE), "MACs", 0, []

    def time(self, model):
        return sum(p.numel() for p in model.audio_encoder.parameters()) / 1e4

    def measure(self, model):
        self.calls += 1
        t = self.time(model)
        return {"latency_ms": t, "p50_ms": t, "precision": "fp32"}

    def compare(self, models, precision=None, rounds=5):
        """What ``edgemm profile A B …`` reports: p50s and paired ratios to the first (no noise here)."""
        self.calls += 1
        self.compared.append((len(models), precision))
        times = [self.time(m) for m in models]
        return {"rows": [{"p50_ms": t, "ratio": t / times[0], "ratio_spread": 0.0, "ratio_error": 0.0} for t in times]}


def _ceil(n, block):
    return -(-n // block) * block


class BlockClock(MacsClock):
    """A "backend" whose kernels pad channels to ``block``, as NCHWc or SIMD-lane kernels do:
    multiply-adds of every convolution and linear layer with channel counts padded (block 1: MACs)."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def time(self, model):
        total = 0
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                w = m.weight
                out, per_group = w.shape[0], w.shape[1]
                groups = getattr(m, "groups", 1)
                total += (_ceil(out, self.block) * (per_group if groups > 1 else _ceil(per_group, self.block))
                          * w[0, 0].numel())
        return total / 1e4


def test_the_table_finds_where_time_goes_and_weights_it():
    torch.manual_seed(0)
    model = create_model("test_gated", num_classes=4)
    cfg = PruneConfig(round_to=1)
    clock = MacsClock()
    table = build_table(model, cfg, clock, log=lambda s: None)
    groups = table.groups
    audio = [k for k in groups if k.startswith("audio_encoder")]
    image = [k for k in groups if k.startswith("image_encoder")]
    assert audio and image and table.measured["noise_ms"] == 0.0  # paired ratios without noise
    assert all(groups[k]["ms_per_channel"] > 0 for k in audio)
    assert all(groups[k]["ms_per_channel"] is None for k in image)  # no saving: unresolved, not "free"
    assert all(p["saved_ms"] == pytest.approx(table.base_ms - p["latency_ms"]) for g in groups.values() for p in g["points"])
    w = table.weights()
    assert all(w[k] == 1.0 for k in image) and all(0.25 <= w[k] <= 4.0 for k in audio)
    # one measurement (the precision that deploys), one interleaved comparison per group with its trials
    # (the unpruned student first), one for the channel multiple
    measured = [g for g in groups.values() if g["points"]]
    assert clock.compared[:-1] == [(1 + len(g["points"]), "fp32") for g in measured]
    assert clock.calls == 1 + len(measured) + 1 and clock.compared[-1] == (4, "fp32")
    # the importance divides each group's channel scores by its weight
    pruner = build_pruner(model, cfg)
    imp = latency_importance(model, cfg, table)
    group = next(g for g in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                                     root_module_types=pruner.root_module_types)
                 if pruner.DG._module2name[g[0].dep.target.module] == audio[0])
    torch.testing.assert_close(imp(group), imp.base(group) / w[audio[0]])


@pytest.mark.parametrize("block, multiple", [(16, 16), (8, 8), (1, 4)])
def test_the_channel_multiple_a_backend_rewards_is_measured(block, multiple):
    """A backend that pads channels to blocks of 16 saves nothing until 16 channels go: round_to 16;
    one whose time follows channels (block 1) rewards any step: the smallest, 4."""
    from edgemm.compress.latency_table import measure_round_to

    torch.manual_seed(0)
    model = create_model("test_gated", num_classes=4)
    got = measure_round_to(model, PruneConfig(round_to=8), BlockClock(block), "fp32", log=lambda s: None)
    assert got["multiple"] == multiple, got
    assert len(got["groups"]) >= 3 and float(got["savings_ms"]["16"]) > 0


def test_an_unmeasurable_channel_multiple_keeps_the_recipes():
    from edgemm.compress.latency_table import measure_round_to

    model = create_model("test_gated", num_classes=4)
    got = measure_round_to(model, PruneConfig(round_to=8), MacsClock(), "fp32", log=lambda s: None)  # image branch: free
    assert got["multiple"] is None and got["why"] == "no saving above the noise"


def test_weights_are_relative_and_clamped():
    slopes = {"a": 0.02, "b": 0.03, "c": -0.01, "d": None, "e": 0.35, "f": 0.01, "g": 0.01, "h": 0.01}
    w = LatencyTable(1.0, {k: {"ms_per_channel": v} for k, v in slopes.items()}, {}).weights()
    mean = 0.43 / 7  # of the measured groups, a slower-when-pruned one counting as 0
    assert w["d"] == 1.0 and w["c"] == 0.25 and w["e"] == 4.0
    assert w["a"] == pytest.approx(0.02 / mean) and w["b"] == pytest.approx(0.03 / mean)
    assert w["f"] == 0.25  # 0.16 of the mean, clamped
    assert LatencyTable(1.0, {"a": {"ms_per_channel": None}}, {}).weights() == {"a": 1.0}


@pytest.mark.slow
def test_the_table_is_cached_per_architecture_and_device(tmp_path):
    torch.manual_seed(0)
    model = create_model("test_gated", num_classes=4)
    cfg = PruneConfig(round_to=1)
    clock = MacsClock()
    first = cached_table(model, cfg, clock, tmp_path, log=lambda s: None)
    calls = clock.calls
    again = cached_table(model, cfg, clock, tmp_path, log=lambda s: None)
    assert clock.calls == calls and again == first  # read back, not measured again
    pruned = create_model("test_gated", num_classes=4)
    build_pruner(pruned, PruneConfig(ratio=0.5, round_to=1)).step()
    assert count_macs_params(pruned)[0] < count_macs_params(model)[0]
    cached_table(pruned, cfg, clock, tmp_path, log=lambda s: None)  # other shapes: measured
    assert clock.calls > calls and len(list(tmp_path.glob("*.json"))) == 2
    next(tmp_path.glob("*.json")).write_text("{not json")  # a broken entry is measured again, not trusted
    cached_table(model, cfg, clock, tmp_path, log=lambda s: None)
