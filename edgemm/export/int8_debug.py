"""The int8 debugger: which layers int8 hurts, grouped by branch, and which to keep in float.

Measured with onnxruntime's ``quantization.qdq_loss_debug`` on the model's float ONNX export and its
static int8 QDQ calibration — the int8 of the onnx and openvino targets; for tflite and executorch,
whose quantizers place int8 the same way (per-channel weights, per-tensor activations), it ranks
the same layers as a proxy. For every quantized layer, on calibration samples: the SQNR of what
the layer receives (its dequantized input) and of what it produces (its dequantized output), each
against the float model, per channel (``channel_sqnr``). A layer is ranked by the dB lost between the two: where int8 destroys the
signal, not where earlier damage shows up.
"""

from __future__ import annotations

import shutil
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgemm.atomic import scratch
from edgemm.export.source import Samples
from edgemm.vocab import BRANCH_MODULES, Branch

MEASURED_WITH = "onnxruntime.quantization.qdq_loss_debug on a static int8 QDQ calibration of the float ONNX export"


def branch_of(module: str) -> Branch:
    """The branch of a module path (``audio_encoder.body.4``: audio); a contract model's own
    modules (under ``model.``) are matched by their first name, else ``Branch.OTHER``."""
    parts = module.split(".")
    if parts[0] == "model" and len(parts) > 1:
        parts = parts[1:]
    return BRANCH_MODULES.get(parts[0], Branch.OTHER)


@dataclass(frozen=True)
class LayerError:
    """One quantized layer's error against the float model.

    Attributes:
        module: The PyTorch module (``fusion.proj.0``), or the ONNX node when it has no named weight.
        branch: Its branch.
        node: The ONNX node in the quantized graph.
        op: The ONNX operator.
        input_sqnr_db: SQNR of the input the layer receives in int8.
        output_sqnr_db: SQNR of its output.
    """

    module: str
    branch: Branch
    node: str
    op: str
    input_sqnr_db: float
    output_sqnr_db: float

    @property
    def lost_db(self) -> float:
        """dB of SQNR lost at this layer."""
        return self.input_sqnr_db - self.output_sqnr_db

    def to_dict(self) -> dict:
        return {**asdict(self), "branch": self.branch.value, "lost_db": round(self.lost_db, 2),
                "input_sqnr_db": round(self.input_sqnr_db, 2), "output_sqnr_db": round(self.output_sqnr_db, 2)}


@dataclass
class Sensitivity:
    """Every quantized layer, worst first, and how they were measured."""

    layers: list[LayerError]
    samples: int
    measured_with: str = MEASURED_WITH

    def worst(self, k: int) -> list[LayerError]:
        return self.layers[:k]

    def by_branch(self) -> dict[str, dict]:
        """Per branch: layer count, the worst layer, its dB lost, the median dB lost."""
        out = {}
        for branch in Branch:
            rows = [r for r in self.layers if r.branch is branch]
            if rows:
                out[branch.value] = {"layers": len(rows), "worst": rows[0].module,
                                     "worst_lost_db": round(rows[0].lost_db, 2),
                                     "median_lost_db": round(statistics.median(r.lost_db for r in rows), 2)}
        return out

    def to_dict(self, top: int = 10) -> dict:
        return {"measured_with": self.measured_with, "samples": self.samples, "branches": self.by_branch(),
                "worst_layers": [r.to_dict() for r in self.worst(top)]}

    def lines(self, top: int = 8) -> list[str]:
        """A printable report: the worst layers, then the branches."""
        out = [f"int8 sensitivity ({self.samples} calibration samples; {self.measured_with}):",
               f"  {'layer':<44} {'branch':<8} {'in SQNR':>8} {'out SQNR':>9} {'lost':>7}"]
        out += [f"  {r.module:<44} {r.branch.value:<8} {r.input_sqnr_db:>6.1f}dB {r.output_sqnr_db:>7.1f}dB "
                f"{r.lost_db:>5.1f}dB" for r in self.worst(top)]
        out += ["  by branch: " + "; ".join(f"{b} {v['layers']} layers, worst {v['worst']} ({v['worst_lost_db']} dB "
                                           f"lost)" for b, v in self.by_branch().items())]
        return out


def channel_sqnr(reference: list[np.ndarray], test: list[np.ndarray]) -> float:
    """The median over channels of each channel's SQNR (dB), over all samples.

    Per channel, not over the whole tensor: one outlier channel sets an int8 range that rounds
    every other channel to zero, yet holds the tensor's norm, so the whole-tensor SQNR
    (``qdq_loss_debug.compute_signal_to_quantization_noice_ratio``) stays high exactly when int8
    destroys the signal. Channels are axis 1 of 4-D (NCHW) tensors, else the last axis; channels
    that are zero in float are left out.
    """
    ref, got = np.concatenate(reference), np.concatenate(test)
    axis = 1 if ref.ndim == 4 else -1
    ref = np.moveaxis(ref, axis, 0).reshape(ref.shape[axis], -1).astype(np.float64)
    got = np.moveaxis(got, axis, 0).reshape(ref.shape[0], -1).astype(np.float64)
    signal, noise = np.linalg.norm(ref, axis=1), np.linalg.norm(ref - got, axis=1)
    live = signal > 0
    if not live.any():
        return float("inf")
    eps = np.finfo(np.float32).eps
    return float(np.median(20 * np.log10(signal[live] / np.maximum(noise[live], eps * signal[live]))))


def _rows(qdq: Path, float_acts: dict, qdq_acts: dict) -> list[LayerError]:
    """One ``LayerError`` per compute node of ``qdq`` that takes a quantized input."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import QUANT_INPUT_SUFFIX, create_activation_matching

    from edgemm.export.onnx import COMPUTE_OPS, layer_module

    model = onnx.load(str(qdq))
    producers = {o: n for n in model.graph.node for o in n.output}
    match = create_activation_matching(qdq_acts, float_acts)
    rows = []
    for node in model.graph.node:
        dq = producers.get(node.input[0])
        if node.op_type not in COMPUTE_OPS or dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = producers.get(dq.input[0])
        received = q.input[0] if q is not None and q.op_type == "QuantizeLinear" else None
        out = node.output[0].removesuffix(QUANT_INPUT_SUFFIX)  # a graph output keeps its name after QDQ
        if received not in float_acts or out not in float_acts:
            continue
        # what the next layer sees: after the output's own quantize-dequantize (which also applies a
        # ReLU the quantizer folded into it) when there is one
        produced = match.get(out, {}).get("post_qdq") or qdq_acts.get(out)
        if produced is None:
            continue
        weight = producers.get(node.input[1]) if len(node.input) > 1 else None
        named = node.input[1] if weight is None or weight.op_type != "DequantizeLinear" else weight.input[0]
        module = layer_module(node, named)
        rows.append(LayerError(module, branch_of(module), node.name, node.op_type,
                               channel_sqnr(float_acts[received], qdq_acts[node.input[0]]),
                               channel_sqnr(float_acts[out], produced)))
    return sorted(rows, key=lambda r: (-r.lost_db, r.output_sqnr_db))


def analyse_onnx(fp32: Path, calibration: Samples, work: Path, samples: int = 32) -> Sensitivity:
    """Calibrates ``fp32`` to int8 QDQ (frontend float, as every export does) and measures each
    quantized layer on the first ``samples`` calibration feeds."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import collect_activations, modify_model_output_intermediate_tensors

    from edgemm.export.onnx import prepare_for_quantization, quantize_qdq, reader, scope_nodes

    pre = prepare_for_quantization(fp32, work / "pre.onnx")
    qdq = work / "qdq.onnx"
    quantize_qdq(pre, qdq, calibration.feeds(1), scope_nodes(onnx.load(str(fp32))))
    feeds = calibration.feeds(1)[:samples]
    acts = []
    for model in (pre, qdq):
        augmented = work / f"{model.stem}.debug.onnx"
        modify_model_output_intermediate_tensors(model, augmented)
        acts.append(collect_activations(str(augmented), reader(feeds)))
    return Sensitivity(_rows(qdq, *acts), len(feeds))


def analyse(float_onnx: Path, calibration: Samples, samples: int = 32) -> Sensitivity:
    """``analyse_onnx`` of a float ONNX export (an export job's, ``_Job.float_onnx``), on a
    simplified copy in a temporary directory."""
    from edgemm.export.onnx import simplify

    with scratch("int8-debug") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        shutil.copyfile(float_onnx, fp32)
        simplify(fp32)
        return analyse_onnx(fp32, calibration, Path(tmp), samples)
