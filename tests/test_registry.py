"""The generic registry: user registrations, clear errors, and plug-ins from installed packages."""

import textwrap

import pytest
import torch

from edgemm.models import IMAGE_ENCODERS, create_model
from edgemm.registry import Registry


def test_register_get_and_errors():
    reg = Registry("widget")
    reg.register("a", 1)

    @reg.register("b")
    def make_b():
        return 2

    assert reg.get("a") == 1 and reg.get("b") is make_b and reg.names() == ["a", "b"] and "a" in reg
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a", 3)
    reg.register("a", 3, replace=True)
    assert reg.get("a") == 3
    with pytest.raises(ValueError, match="unknown widget 'c'; registered: a, b"):
        reg.get("c")


def _install_plugin(root, module: str, group: str, name: str, target: str, source: str) -> None:
    """A real installed distribution on sys.path: a module and a dist-info with entry points."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{name} = {module}:{target}\n")


def test_an_installed_package_adds_an_image_encoder_that_models_use(tmp_path, monkeypatch):
    _install_plugin(tmp_path, "edgemm_plugin_enc", "edgemm.image_encoders", "plugin_cnn", "make", """
        from torch import nn

        class Tiny(nn.Module):
            out_dim = 8

            def __init__(self):
                super().__init__()
                self.net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4), nn.AdaptiveAvgPool2d(1), nn.Flatten())

            def forward(self, x):
                return self.net(x)

        def make(*, pretrained=None):
            return Tiny()
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "plugin_cnn" in IMAGE_ENCODERS.names()
    model = create_model("test_concat", image_encoder="plugin_cnn", num_classes=3).eval()
    assert type(model.image_encoder).__name__ == "Tiny"
    assert model(*model.example_inputs(2)).shape == (2, 3)


def test_a_broken_plugin_names_itself(tmp_path, monkeypatch):
    _install_plugin(tmp_path, "edgemm_plugin_bad", "edgemm.fusions", "bad_fusion", "missing", "x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("fusion", group="edgemm.fusions")
    with pytest.raises(ImportError, match=r"plug-in 'bad_fusion' \(edgemm_plugin_bad:missing, group edgemm.fusions\)"):
        reg.get("bad_fusion")


def test_a_user_stage_runs_in_a_recipe():
    from dataclasses import dataclass

    from edgemm.compress.recipe import STAGES, parse_recipe, register_stage
    from edgemm.compress.stages import StageOutput

    @dataclass(frozen=True)
    class ScaleConfig:
        factor: float = 0.5

        def training_epochs(self, steps_per_epoch: int) -> int:
            return 0

    @register_stage("test_scale_head", ScaleConfig)
    def run_scale(student, ctx, cfg):
        with torch.no_grad():
            student.head[-1].weight.mul_(cfg.factor)
        return StageOutput(student, extra={"factor": cfg.factor})

    try:
        recipe = parse_recipe({"stages": [{"type": "test_scale_head", "factor": 0.25}]})
        assert recipe.stages[0].config == ScaleConfig(0.25) and not recipe.quantized
        model = create_model("test_gated", num_classes=4)
        before = model.head[-1].weight.clone()
        out = recipe.stages[0].spec.runner()(model, None, recipe.stages[0].config)
        torch.testing.assert_close(out.model.head[-1].weight, before * 0.25)
        with pytest.raises(ValueError, match=r"stages\[0\] \(test_scale_head\): unknown key\(s\) \['scale'\]"):
            parse_recipe({"stages": [{"type": "test_scale_head", "scale": 2}]})
    finally:
        STAGES.unregister("test_scale_head")
