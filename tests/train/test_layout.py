import pytest
import torch

from edgemm.models import create_model
from edgemm.train.layout import channels_last


def _conv_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]


def test_channels_last_converts_inside_the_block_and_restores_after():
    torch.manual_seed(0)
    model = create_model("test_gated").eval()
    params_before = list(model.parameters())
    x = model.example_inputs(3)
    with torch.no_grad():
        ref = model(*x)
    with channels_last(model, None):
        assert all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
                   for w in _conv_weights(model) if w.shape[2:] != (1, 1) and w.shape[1] > 1)
        assert all(a is b for a, b in zip(model.parameters(), params_before))  # optimisers stay valid
        with torch.no_grad():
            inside = model(*x)
    assert all(w.is_contiguous() for w in _conv_weights(model))
    torch.testing.assert_close(inside, ref, rtol=1e-4, atol=1e-5)  # layout changes speed, not results


def test_channels_last_can_be_disabled_and_restores_on_error():
    model = create_model("test_concat")
    with channels_last(model, enabled=False):
        assert all(w.is_contiguous() for w in _conv_weights(model))
    with pytest.raises(RuntimeError, match="interrupted"):
        with channels_last(model):
            assert not all(w.is_contiguous() for w in _conv_weights(model))  # converted inside
            raise RuntimeError("interrupted")
    assert all(w.is_contiguous() for w in _conv_weights(model))
