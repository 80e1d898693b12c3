"""``edgemm.models.int8.convert_pt2e``: torchao's conversion without the conv-BN folds that cannot match."""

import copy

import pytest
import torch

from edgemm.compress.quantize import prepare_ptq, prepare_qat
from edgemm.models import create_model
from edgemm.models.int8 import convert_pt2e


def _prepared(kind: str):
    torch.manual_seed(0)
    model = create_model("test_gated", num_classes=4).eval()
    prepared = prepare_qat(model) if kind == "qat" else prepare_ptq(model)
    x = model.example_inputs(4)
    if kind == "qat":
        prepared.train()
        prepared(*x)  # fake quantization observes a batch in training mode
    prepared.eval()
    with torch.no_grad():
        prepared(*x)
    return prepared, x


def test_only_the_folds_that_can_match_run(monkeypatch):
    """A post-training graph has no QAT conv-BN pair (BatchNorm was folded at prepare), and a QAT
    graph of 2-D convs can only match the conv2d patterns; torchao would trace all four kinds."""
    from torchao.quantization.pt2e import qat_utils

    ran = []
    monkeypatch.setattr(qat_utils, "_fold_conv_bn_qat_helper",
                        lambda m, conv_fn, example_inputs, is_cuda: ran.append(conv_fn.__name__) or m)
    for kind, expected in (("ptq", []), ("qat", ["conv2d"])):
        ran.clear()
        prepared, _ = _prepared(kind)
        assert any("batch_norm" in str(n.target) for n in prepared.graph.graph.nodes)  # torchao would fold
        convert_pt2e(prepared.graph)
        assert ran == expected, kind
    assert qat_utils._fold_conv_bn_qat_helper.__name__ == "<lambda>"  # put back as it was found


@pytest.mark.slow
def test_the_converted_qat_graph_is_torchaos():
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e as torchao_convert

    prepared, x = _prepared("qat")
    ours, theirs = convert_pt2e(copy.deepcopy(prepared.graph)), torchao_convert(copy.deepcopy(prepared.graph))
    assert ours.code == theirs.code
    with torch.no_grad():
        assert torch.equal(ours(*x), theirs(*x))
