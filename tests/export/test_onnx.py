"""onnxruntime's static int8 quantization as edgemm calls it (``edgemm.export.onnx.quantize_qdq``)."""

import logging

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _layernorm_model(path):
    """x (1, 8) -> MatMul -> LayerNormalization (rank-1 scale and bias) -> y."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w"),
             numpy_helper.from_array(np.ones(8, np.float32), "scale"),
             numpy_helper.from_array(np.zeros(8, np.float32), "bias")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("LayerNormalization", ["h", "scale", "bias"], ["y"], name="ln", axis=-1)]
    graph = helper.make_graph(nodes, "ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def _feeds():
    rng = np.random.default_rng(1)
    return [{"x": rng.standard_normal((1, 8)).astype(np.float32)} for _ in range(8)]


def _rank_one_warnings(caplog):
    return [r for r in caplog.records if "out-of-range for weight" in r.getMessage()]


def test_quantize_qdq_uses_uint8_activations_and_drops_the_rank_one_axis_warnings(tmp_path, caplog):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from edgemm.export.onnx import quantize_qdq, reader

    model = _layernorm_model(tmp_path / "ln.onnx")
    caplog.set_level(logging.WARNING)
    # onnxruntime's quantizer, called plainly, warns about each rank-1 weight ...
    quantize_static(str(model), str(tmp_path / "plain.onnx"), reader(_feeds()), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    assert len(_rank_one_warnings(caplog)) >= 1
    caplog.clear()
    # ... edgemm's call does not, and other warnings still get through afterwards.
    quantize_qdq(model, tmp_path / "q.onnx", _feeds(), exclude=[])
    assert _rank_one_warnings(caplog) == []
    logging.getLogger().warning("Axis 1 is out-of-range for weight 'later' with rank 1")
    assert len(_rank_one_warnings(caplog)) == 1
    q = onnx.load(str(tmp_path / "q.onnx")).graph
    zero_points = {t.name: t.data_type for t in q.initializer}
    acts = {zero_points[n.input[2]] for n in q.node if n.op_type == "QuantizeLinear"}
    assert acts == {TensorProto.UINT8}
