"""What the audio frontend costs in the graph, and computed by the runtime (``--frontend runtime``).

For one model (a checkpoint, or a registered model built untrained: timing does not depend on the
weights), exports an fp32 bundle per target twice, with the log-mel frontend in the graph and with
it in the runtime (neither verified here: tests/export/test_export.py holds them to 1e-4 of the
PyTorch model on every target), and times, at batch 1 with ``--threads``, in ``--rounds``
interleaved rounds (every measurement once per round, so all see the same machine load):

- graph: the graph-frontend bundle's inference on a waveform;
- body: the runtime-frontend bundle's inference on a log-mel (the graph without the frontend);
- numpy frontend: ``edgemm.data.logmel.LogMel`` on one whole window;
- streamed frontend: ``StreamingLogMel`` on consecutive windows ``--step-hops`` hops apart (a live run
  at 30 fps is ~3.3 hops of 10 ms; audio-only results every 0.25 s are 25 hops), the runtime's case;
- in-graph frontend: the graph frontend alone exported to the target (``int8.py``'s ``frontend_models``).

Frontend shares: in-graph frontend / graph; streamed frontend / (streamed frontend + body).

    python benchmarks/frontend_place.py --model av_student --threads 2 --runs 200 --rounds 5 \\
        --json benchmarks/results/frontend_place_xeon.json

Prints one table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # edgemm from this checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_common import cpu_name  # noqa: E402
from int8 import frontend_models, time_calls  # noqa: E402

BACKENDS = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "tflite"}


def checkpoint_for(args, out: Path) -> Path:
    if args.checkpoint:
        return Path(args.checkpoint)
    from edgemm.deploy import export
    from edgemm.models import create_model

    model = create_model(args.model, num_classes=args.classes)
    bundle = out / "seed.edgemm"
    export(model, target="onnx", precision="fp32", out=bundle, labels=[f"c{i}" for i in range(args.classes)],
           verify=False, log=lambda s: None)
    return out / "seed.edgemm.source.pt"


def streamed(logmel, clip: int, step: int, calls: int = 2048):
    """A call that feeds ``StreamingLogMel`` the next window ``step`` samples on, cycling over a stream
    of ``calls`` windows (a live run streams for good: the restart's whole window is amortised)."""
    from edgemm.data.logmel import StreamingLogMel

    rng = np.random.default_rng(0)
    stream = (0.1 * rng.standard_normal(clip + step * calls)).astype(np.float32)
    state = {"k": 0, "s": StreamingLogMel(logmel)}

    def call():
        k = state["k"] % calls
        if k == 0:
            state["s"] = StreamingLogMel(logmel)  # a new stream: its first window is whole, then steps
            state["s"](stream[:clip], 0)
            k = 1
        state["s"](stream[k * step:k * step + clip], k * step)
        state["k"] = k + 1

    return call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--model", default="av_student", help="registered model built untrained when no --checkpoint")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--teacher", default="av_teacher", help="registered model whose MACs the model's are compared with")
    ap.add_argument("--targets", nargs="+", default=list(BACKENDS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--step-hops", type=int, nargs="+", default=[4, 25])
    ap.add_argument("--out", type=Path, default=None, help="where bundles go (default: a temporary directory)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from edgemm.compress.prune import count_macs_params
    from edgemm.data.logmel import LogMel
    from edgemm.export import export
    from edgemm.models import create_model
    from edgemm.models.frontend import without_frontend
    from edgemm.runtime import load
    from edgemm.runtime.session import Session
    from edgemm.train import load_model

    out = args.out or Path(tempfile.mkdtemp(prefix="frontend-place-"))
    out.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint_for(args, out)
    model = load_model(ckpt)[0].eval()
    p = model.preprocess
    rng = np.random.default_rng(0)
    image = rng.standard_normal((1, 3, p.image.size, p.image.size)).astype(np.float32)
    wave = (0.1 * rng.standard_normal((1, p.audio.clip_samples))).astype(np.float32)
    logmel = LogMel(p.audio)
    mel = logmel(wave)
    ones = np.ones(1, np.float32)

    calls: dict[str, object] = {
        "numpy frontend (whole window)": lambda: logmel(wave),
        **{f"streamed frontend ({h} hops)": streamed(logmel, p.audio.clip_samples, h * p.audio.hop_length)
           for h in args.step_hops},
    }
    import onnxruntime as ort

    alone = {r["target"]: r for r in frontend_models(p, args.targets, out) if r["kind"] == "staged"}
    for target in args.targets:
        graph = load(export(ckpt, target=target, precision="fp32", out=out / f"graph-{target}.edgemm",
                            verify=False, log=lambda s: None).location, threads=args.threads)
        body = load(export(ckpt, target=target, precision="fp32", out=out / f"runtime-{target}.edgemm",
                           verify=False, frontend="runtime", log=lambda s: None).location, threads=args.threads)
        calls[f"{target}: graph"] = lambda g=graph: g.run(image, wave, ones, ones)
        calls[f"{target}: body"] = lambda b=body: b.run(image, mel, ones, ones)
        row = alone[target]
        if row["backend"] == "onnxruntime":
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads
            sess = ort.InferenceSession(row["path"], opts, providers=["CPUExecutionProvider"])
            calls[f"{target}: in-graph frontend"] = lambda s=sess: s.run(None, {"audio": wave})
        else:
            from edgemm.runtime.backends import BackendName, open_backend

            be = open_backend(BackendName(row["backend"]), Path(row["path"]), threads=args.threads)
            calls[f"{target}: in-graph frontend"] = lambda b=be, n=row["input"]: b.run({n: wave})
        assert isinstance(graph, Session) and isinstance(body, Session)

    rounds: dict[str, list[float]] = {k: [] for k in calls}
    for r in range(args.rounds):
        for name, fn in calls.items():
            rounds[name].append(time_calls(fn, args.runs))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in rounds.items()}

    def share(part: str, whole: str) -> float:
        return statistics.median(a / b for a, b in zip(rounds[part], rounds[whole]))

    def share_streamed(stream: str, body: str) -> float:
        return statistics.median(a / (a + b) for a, b in zip(rounds[stream], rounds[body]))

    macs = {}
    teacher = create_model(args.teacher, num_classes=args.classes, preprocess=p) if args.teacher else None
    for name, net in (("model", model), ("teacher", teacher)):
        if net is not None:
            macs[f"{name}_graph"] = count_macs_params(net)[0]
            macs[f"{name}_body"] = count_macs_params(without_frontend(net))[0]
    rows = []
    for target in args.targets:
        row = {"target": target, "graph_ms": med[f"{target}: graph"], "body_ms": med[f"{target}: body"],
               "in_graph_frontend_ms": med[f"{target}: in-graph frontend"],
               "in_graph_share": share(f"{target}: in-graph frontend", f"{target}: graph"),
               "runtime_whole_share": share_streamed("numpy frontend (whole window)", f"{target}: body")}
        for h in args.step_hops:
            row[f"runtime_streamed_{h}_share"] = share_streamed(f"streamed frontend ({h} hops)", f"{target}: body")
        rows.append(row)
    from edgemm.models.frontend import LogMelFrontend

    result = {"cpu": cpu_name(), "threads": args.threads, "runs": args.runs, "rounds": args.rounds,
              "model": args.checkpoint or f"{args.model} (untrained)", "median_ms": med, "rows": rows,
              "macs": {**macs, "graph_frontend": LogMelFrontend(p.audio).macs()}}
    print(f"\n{result['model']} on {result['cpu']}, {args.threads} threads, batch 1, median of {args.rounds} "
          f"interleaved rounds of {args.runs} calls")
    for name, v in med.items():
        print(f"  {name:40s} {v:8.3f} ms")
    hops = " | ".join(f"streamed {h} hops" for h in args.step_hops)
    print(f"\n| target | graph ms | body ms | frontend share in graph | runtime, whole window | {hops} |")
    print("|---|---|---|---|---|" + "---|" * len(args.step_hops))
    for row in rows:
        streams = " | ".join(f"{row[f'runtime_streamed_{h}_share']:.1%}" for h in args.step_hops)
        print(f"| {row['target']} | {row['graph_ms']:.3f} | {row['body_ms']:.3f} | {row['in_graph_share']:.1%} | "
              f"{row['runtime_whole_share']:.1%} | {streams} |")
    if teacher is not None:
        m = result["macs"]
        print(f"\nMACs: model {m['model_graph'] / 1e6:.1f} M with the graph frontend, {m['model_body'] / 1e6:.1f} M "
              f"without; teacher {m['teacher_graph'] / 1e6:.1f} M / {m['teacher_body'] / 1e6:.1f} M: "
              f"{m['teacher_graph'] / m['model_graph']:.1f}x fewer with the frontends in the graphs, "
              f"{m['teacher_body'] / m['model_body']:.1f}x fewer without (runtime frontend)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
