"""``edgemm check MODEL``: will this model make it through every stage? Seconds, before any training.

The model (a registered name or ``PATH.py:FUNCTION``) is built, run once, then taken through each
stage on a tiny random input: ``torch.export``, DepGraph pruning (one step of 25 %), PT2E int8
(prepare, calibrate on two batches, convert), and conversion to ONNX (run in onnxruntime), OpenVINO
IR (compiled and run), TFLite (run in LiteRT) and ExecuTorch (lowered to XNNPACK, run). A stage
that fails is reported with the error's first line and, where the error or its traceback names
them, the operator and the line of the model's code; later stages still run, so one report shows
every problem.
"""

from __future__ import annotations

import copy
import re
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgemm.atomic import scratch


@dataclass
class StageCheck:
    """One stage: passed or not, the reason, and where it failed (operator, code line)."""

    stage: str
    ok: bool
    seconds: float
    reason: str = ""
    operator: str = ""
    where: str = ""


@dataclass
class CheckReport:
    model: str
    stages: list[StageCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "ok": self.ok, "stages": [asdict(s) for s in self.stages]}


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_OPERATOR = re.compile(r"\b(aten[.:]{1,2}[A-Za-z_0-9]+(?:\.[A-Za-z_0-9]+)?|torch\.ops\.[A-Za-z_0-9.]+)")


def _located(e: BaseException, model_file: str | None) -> tuple[str, str]:
    """The operator an error names, and the innermost traceback line in the model's own file."""
    text = f"{e}\n" + "".join(traceback.format_exception(e))
    m = _OPERATOR.search(text)
    where = ""
    if model_file:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == model_file]
        hits = re.findall(rf'File "{re.escape(model_file)}", line (\d+)', text)  # torch.export quotes user frames
        if frames:
            where = f"{Path(model_file).name}:{frames[-1].lineno} ({frames[-1].line})"
        elif hits:
            where = f"{Path(model_file).name}:{hits[-1]}"
    return (m.group(1) if m else ""), where


def _run(stage: str, fn: Callable[[], None], model_file: str | None) -> StageCheck:
    from edgemm._stdio import stdout_to_stderr

    t0 = time.perf_counter()
    try:
        with stdout_to_stderr():  # converters print progress on stdout; the report owns it
            fn()
    except Exception as e:  # noqa: BLE001 - every failure is a row of the report
        text = _ANSI.sub("", str(e))
        first = next((line for line in text.splitlines() if line.strip()), type(e).__name__)
        operator, where = _located(e, model_file)
        return StageCheck(stage, False, time.perf_counter() - t0, f"{type(e).__name__}: {first[:300]}", operator, where)
    return StageCheck(stage, True, time.perf_counter() - t0)


def check(model: str, *, num_classes: int = 10, log: Callable[[str], None] = lambda s: None) -> CheckReport:
    """Takes ``model`` through every stage (see the module docstring)."""
    import torch

    from edgemm.models import create_model
    from edgemm.models.contract import is_reference

    report = CheckReport(model)
    model_file = model.rpartition(":")[0] if is_reference(model) and model.rpartition(":")[0].endswith(".py") else None
    model_file = str(Path(model_file).expanduser().resolve()) if model_file else None
    built: dict[str, Any] = {}

    def build() -> None:
        net = create_model(model, num_classes=num_classes).eval()
        with torch.no_grad():
            out = net(*net.example_inputs(2))
        if tuple(out.shape) != (2, num_classes):
            raise ValueError(f"forward returned {tuple(out.shape)}, expected (2, {num_classes})")
        built["model"] = net

    steps: list[tuple[str, Callable[[], None]]] = [("build + forward", build)]
    with scratch("check") as tmp:
        work = Path(tmp)
        steps += [("torch.export", lambda: _export(built["model"])),
                  ("prune (DepGraph)", lambda: _prune(built["model"])),
                  ("int8 (PT2E)", lambda: _int8(built["model"])),
                  ("onnx", lambda: _onnx(built["model"], work)),
                  ("openvino", lambda: _openvino(built["model"], work)),
                  ("tflite", lambda: _tflite(built["model"], work)),
                  ("executorch", lambda: _executorch(built["model"], work))]
        for name, fn in steps:
            if name != "build + forward" and "model" not in built:
                report.stages.append(StageCheck(name, False, 0.0, "skipped: the model could not be built"))
                continue
            report.stages.append(_run(name, fn, model_file))
            log(f"check: {name}: {'ok' if report.stages[-1].ok else report.stages[-1].reason}")
    return report


def _export(model) -> None:
    import torch

    ex = model.example_inputs(4)
    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.export.export(model, ex, dynamic_shapes=tuple({0: batch} for _ in ex))


def _prune(model) -> None:
    import torch

    from edgemm.compress.prune import build_pruner, count_macs_params
    from edgemm.compress.recipe import PruneConfig

    net = copy.deepcopy(model)
    before = count_macs_params(net)[1]
    build_pruner(net, PruneConfig(ratio=0.25, steps=1, finetune_epochs=0)).step()
    with torch.no_grad():
        net.eval()(*net.example_inputs(2))
    if count_macs_params(net)[1] >= before:
        raise ValueError("DepGraph found no channel it could remove (every layer is ignored or coupled to the output)")


def _int8(model) -> None:
    import torch

    from edgemm.compress.quantize import convert, prepare_ptq

    prepared = prepare_ptq(copy.deepcopy(model))
    with torch.no_grad():
        for _ in range(2):
            prepared(*[torch.randn_like(t) if t.ndim > 1 else t for t in model.example_inputs(4)])
    int8 = convert(prepared)
    with torch.no_grad():
        int8(*model.example_inputs(2))


def _onnx(model, work: Path) -> None:
    import onnxruntime as ort

    from edgemm.export.onnx import to_onnx
    from edgemm.vocab import INPUT_NAMES

    path = to_onnx(model, work / "model.onnx", model.example_inputs(2))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    session.run(None, {n: t.numpy() for n, t in zip(INPUT_NAMES, model.example_inputs(1))})


def _openvino(model, work: Path) -> None:
    import openvino as ov

    from edgemm.export.onnx import to_onnx

    path = work / "model.onnx"
    if not path.is_file():
        to_onnx(model, path, model.example_inputs(2), target="openvino")
    compiled = ov.Core().compile_model(ov.convert_model(str(path)), "CPU")
    compiled([t.numpy() for t in model.example_inputs(1)])


def _tflite(model, work: Path) -> None:
    import litert_torch
    from ai_edge_litert.interpreter import Interpreter

    path = work / "model.tflite"
    litert_torch.convert(model.eval(), model.example_inputs(1)).export(str(path))
    interpreter = Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner()
    runner(**{f"args_{i}": np.asarray(t.numpy()) for i, t in enumerate(model.example_inputs(1))})


def _executorch(model, work: Path) -> None:
    from executorch.runtime import Runtime

    from edgemm.export.executorch import lower

    path = work / "model.pte"
    path.write_bytes(lower(model.eval(), model.example_inputs(1)))
    Runtime.get().load_program(path).load_method("forward").execute(list(model.example_inputs(1)))


def to_markdown(report: CheckReport) -> str:
    lines = [f"edgemm check {report.model}", "", "| | stage | seconds | why |", "|---|---|---:|---|"]
    for s in report.stages:
        why = s.reason + (f" · operator {s.operator}" if s.operator else "") + (f" · at {s.where}" if s.where else "")
        lines.append(f"| {'✅' if s.ok else '❌'} | {s.stage} | {s.seconds:.1f} | {why} |")
    lines += ["", "every stage passed" if report.ok else
              f"{sum(not s.ok for s in report.stages)} stage(s) would fail: fix them before training"]
    return "\n".join(lines)
