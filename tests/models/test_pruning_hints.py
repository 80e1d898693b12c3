"""Models declare what channel pruning must keep (edgemm.models.pruning_hints); the pruner obeys."""

from pathlib import Path

import pytest
import torch
from torch import nn

from edgemm.compress.prune import build_pruner
from edgemm.compress.recipe import PruneConfig
from edgemm.models import create_model
from edgemm.models.contract import create_from_reference
from edgemm.models.pruning_hints import PruningHints, gather

USER = Path(__file__).parent / "user" / "av_models.py"


def test_an_av_model_declares_its_head_band_norm_free_parameters_and_heads():
    model = create_model("av_student", num_classes=5, fusion="attention")
    hints = gather(model)
    keep = {id(m) for m in hints.keep}
    assert id(model.audio_encoder.bn0) in keep and id(model.head) in keep
    assert {id(p) for p, _ in hints.unwrapped} == {id(model.missing_image), id(model.missing_audio),
                                                    id(model.fusion.cls), id(model.fusion.type_embed)}
    block = model.fusion.blocks[0]
    assert hints.num_heads == {block.q: block.heads, block.k: block.heads, block.v: block.heads}

    late = gather(create_model("av_student", num_classes=5, fusion="late"))
    assert {type(m) for m in late.keep} == {nn.BatchNorm2d, nn.Sequential}  # bn0, both per-modality heads
    assert not PruningHints() and PruningHints(keep=[nn.Identity()])


class Declared(nn.Module):
    """A user's model that keeps its image embedding whole, declared beside the layers."""

    def __init__(self, num_classes: int, declare: bool) -> None:
        super().__init__()
        self.inner = create_from_reference(f"{USER}:resnet_waveform", num_classes=num_classes)
        self.declare = declare

    def pruning_hints(self) -> PruningHints:
        net = self.inner.model
        return PruningHints(keep=[net.classifier] + ([net.audio[0]] if self.declare else []))

    def forward(self, image, audio, image_present=None, audio_present=None):
        return self.inner(image, audio, image_present, audio_present)

    def example_inputs(self, batch: int):
        return self.inner.example_inputs(batch)


@pytest.mark.parametrize("declare", [True, False])
def test_a_layer_your_model_declares_stays_whole_and_the_rest_is_pruned(declare):
    torch.manual_seed(0)
    model = Declared(num_classes=4, declare=declare)
    before = model.inner.model.audio[0].out_channels
    build_pruner(model, PruneConfig(ratio=0.5, steps=1, finetune_epochs=0)).step()
    net = model.inner.model
    assert net.classifier.out_features == 4
    assert (net.audio[0].out_channels == before) == declare  # kept only when declared
    assert net.image.conv1.out_channels < 64
    model.eval()
    assert model(*model.example_inputs(2)).shape == (2, 4)

