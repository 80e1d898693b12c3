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
        self.budget, self.where, self.calls = LatencyBudget(1.0, DEVICE), "MACs", 0

    def measure(self, model):
        self.calls += 1
        audio = sum(p.numel() for p in model.audio_encoder.parameters()) / 1e4
        return {"latency_ms": audio, "p50_ms": audio}


def test_the_table_finds_where_time_goes_and_weights_it():
    torch.manual_seed(0)
    model = create_model("test_gated", num_classes=4)
    cfg = PruneConfig(round_to=1)
    clock = MacsClock()
    table = build_table(model, cfg, clock, log=lambda s: None)
    groups = table.groups
    audio = [k for k in groups if k.startswith("audio_encoder")]
    image = [k for k in groups if k.startswith("image_encoder")]
    assert audio and image and table.measured["noise_ms"] == 0.0  # the same base every time
    assert all(groups[k]["ms_per_channel"] > 0 for k in audio)
    assert all(groups[k]["ms_per_channel"] is None for k in image)  # no saving: unresolved, not "free"
    assert all(p["base_ms"] == table.base_ms for g in groups.values() for p in g["points"])
    w = table.weights()
    assert all(w[k] == 1.0 for k in image) and all(0.25 <= w[k] <= 4.0 for k in audio)
    assert clock.calls == len(groups) + sum(len(g["points"]) for g in groups.values())  # a base per group, paired
    # the importance divides each group's channel scores by its weight
    pruner = build_pruner(model, cfg)
    imp = latency_importance(model, cfg, table)
    group = next(g for g in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                                     root_module_types=pruner.root_module_types)
                 if pruner.DG._module2name[g[0].dep.target.module] == audio[0])
    torch.testing.assert_close(imp(group), imp.base(group) / w[audio[0]])


def test_weights_are_relative_and_clamped():
    slopes = {"a": 0.02, "b": 0.03, "c": -0.01, "d": None, "e": 0.35, "f": 0.01, "g": 0.01, "h": 0.01}
    w = LatencyTable(1.0, {k: {"ms_per_channel": v} for k, v in slopes.items()}, {}).weights()
    mean = 0.43 / 7  # of the measured groups, a slower-when-pruned one counting as 0
    assert w["d"] == 1.0 and w["c"] == 0.25 and w["e"] == 4.0
    assert w["a"] == pytest.approx(0.02 / mean) and w["b"] == pytest.approx(0.03 / mean)
    assert w["f"] == 0.25  # 0.16 of the mean, clamped
    assert LatencyTable(1.0, {"a": {"ms_per_channel": None}}, {}).weights() == {"a": 1.0}


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
