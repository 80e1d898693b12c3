"""The real small-data suite: edgemm's defaults against two simple baselines on real material.

For each set of ``realsets.py`` (built on first use) this runs, as a user would, with no flag
beyond ``--data``:

- ``edgemm train --data SET`` (the default model and recipe),
- ``edgemm compress --data SET`` (teacher, scratch baseline, distil -> prune -> int8),

and computes in the same run, on the same splits and the same preprocessed inputs:

- logistic regression on hand-made features (grey-level pixels and HOG; log-mel mean / std / max
  per band),
  one per modality, late-fused by adding log-probabilities,
- a small two-branch CNN (~0.14 M parameters) trained from scratch for 60 epochs with standard
  augmentation, image-only / audio-only by zeroing the other branch's logits.

Prints one table per set and writes JSON. No per-set tuning anywhere: every set gets the same
commands and the same baseline settings.

Usage:
    python benchmarks/real_suite.py [--sets digits,letters,digits_newvoices] [--skip train,compress] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_common import cpu_name  # noqa: E402
from realsets import build  # noqa: E402

PER_CLASS = {"digits": 100, "letters": 40, "digits_newvoices": 150}  # realsets.py's defaults (letters: clips)


# ---------------------------------------------------------------- data as arrays ----------------
def arrays(data: str):
    """Train/val/test arrays of the default student's preprocessed inputs, plus the label list."""
    from edgemm.data import open_dataset
    from edgemm.models import create_model

    pre = create_model("av_student", num_classes=2).preprocess
    splits = open_dataset(data, pre)
    out = {}
    for s in ("train", "val", "test"):
        d = splits.get(s)
        out[s] = (np.stack([d[i]["image"] for i in range(len(d))]), np.stack([d[i]["audio"] for i in range(len(d))]),
                  np.asarray([d[i]["label"] for i in range(len(d))]))
    return out, splits.labels, pre


def image_features(x: np.ndarray, pre) -> np.ndarray:
    """Grey-level pixels at 16x16, standardised per image and turned dark-on-light (the border is
    taken as background), and HOG with unsigned gradients (scikit-image)."""
    import cv2
    from skimage.feature import hog

    mean, std = np.asarray(pre.image.mean)[:, None, None], np.asarray(pre.image.std)[:, None, None]
    feats = []
    for im in x:
        grey = (im * std + mean).mean(0).astype(np.float32)
        small = cv2.resize(grey, (16, 16), interpolation=cv2.INTER_AREA)
        small = (small - small.mean()) / (small.std() + 1e-6)
        border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]])
        if np.median(border) < 0:  # light ink on a dark ground: flip to dark on light
            small = -small
        grads = hog(grey, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
        feats.append(np.concatenate([small.ravel(), grads]))
    return np.asarray(feats)


def audio_features(x: np.ndarray, pre) -> np.ndarray:
    """Log-mel statistics per band: mean, standard deviation and maximum over time."""
    import librosa

    a = pre.audio
    feats = []
    for w in x:
        mel = librosa.feature.melspectrogram(y=w, sr=a.sample_rate, n_fft=a.n_fft, hop_length=a.hop_length,
                                             n_mels=a.n_mels, fmin=a.f_min, fmax=a.f_max)
        lm = np.log(mel + 1e-6)
        lm = lm - lm.max()  # level-invariant
        feats.append(np.concatenate([lm.mean(1), lm.std(1), lm.max(1)]))
    return np.asarray(feats)


def logistic_baseline(data, pre) -> dict:
    """Logistic regression per modality (C chosen on val), late fusion by summed log-probabilities."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    feats = {s: (image_features(data[s][0], pre), audio_features(data[s][1], pre), data[s][2]) for s in data}
    logp = {}
    for m in (0, 1):
        best = None
        for c in (0.01, 0.1, 1.0):
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
            clf.fit(feats["train"][m], feats["train"][2])
            score = clf.score(feats["val"][m], feats["val"][2])
            if best is None or score > best[0]:
                best = (score, clf)
        logp[m] = best[1].predict_log_proba(feats["test"][m])
    y = feats["test"][2]
    acc = lambda lp: float((lp.argmax(1) == y).mean())  # noqa: E731
    return {"accuracy": acc(logp[0] + logp[1]), "accuracy_image_only": acc(logp[0]), "accuracy_audio_only": acc(logp[1])}


def small_cnn_baseline(data, pre, labels, epochs: int = 60, seed: int = 0) -> dict:
    """A ~0.14 M-parameter two-branch CNN (late fusion), from scratch, standard augmentation."""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torchvision.transforms import v2

    from edgemm.models.frontend import LogMelFrontend

    torch.manual_seed(seed)

    def block(i, o, stride=1):
        return nn.Sequential(nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(),
                             nn.MaxPool2d(2))

    def branch(c_in):  # input / 4 after the first block, then / 2 per block
        return nn.Sequential(block(c_in, 24, 2), block(24, 48), block(48, 64), block(64, 96),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(96, k_classes))

    k_classes = len(labels)

    class Net(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.img = branch(3)
            self.front = LogMelFrontend(pre.audio)
            self.bn0 = nn.BatchNorm2d(1)
            self.aud = branch(1)

        def forward(self, x, a):
            return self.img(x), self.aud(self.bn0(self.front(a)))

    net = Net(len(labels))
    aug = v2.Compose([v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.85, 1.15)),
                      v2.ColorJitter(0.3, 0.3, 0.3)])
    t = {s: [torch.from_numpy(v) for v in data[s]] for s in data}
    n = len(t["train"][2])
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-3)
    steps = epochs * ((n + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(n).split(64):
            x, a, y = t["train"][0][idx], t["train"][1][idx], t["train"][2][idx]
            x = torch.stack([aug(im) for im in x])
            shift = int(torch.randint(-1600, 1601, ()))
            a = torch.roll(a, shift, 1) * (0.5 + torch.rand(len(a), 1))
            li, la = net(x, a)
            loss = F.cross_entropy(li, y) + F.cross_entropy(la, y) + F.cross_entropy(li + la, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        li, la = net(t["test"][0], t["test"][1])
    y = t["test"][2]
    acc = lambda z: float((z.argmax(1) == y).float().mean())  # noqa: E731
    return {"accuracy": acc(li.log_softmax(1) + la.log_softmax(1)), "accuracy_image_only": acc(li),
            "accuracy_audio_only": acc(la), "params": sum(p.numel() for p in net.parameters())}


# ---------------------------------------------------------------- edgemm, as a user runs it -----
def edgemm(*args: str, log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("w") as f:
        subprocess.run([sys.executable, "-m", "edgemm.cli", *args], check=True, stdout=f, stderr=subprocess.STDOUT,
                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return time.perf_counter() - t0


def run_train(data: str, out: Path) -> dict:
    seconds = edgemm("train", "--data", data, "--out", str(out), log=out.with_suffix(".log"))
    s = json.loads((out / "summary.json").read_text())
    return {**s["test"], "seconds": seconds, "stopped": s["stopped"]}


def run_compress(data: str, out: Path, student: str = "") -> dict:
    args = ("--student", student) if student else ()
    seconds = edgemm("compress", "--data", data, "--out", str(out), *args, log=out.with_suffix(".log"))
    r = json.loads((out / "report.json").read_text())
    keep = ("accuracy", "accuracy_image_only", "accuracy_audio_only", "n", "params", "macs", "epochs")
    rows = {"teacher": {k: r["teacher"].get(k) for k in keep}}
    rows.update({row["name"]: {k: row.get(k) for k in keep} for row in r["stages"]})
    return {"rows": rows, "seconds": seconds}


def fmt(name: str, r: dict) -> str:
    return (f"| {name} | {r['accuracy']:.3f} | {r['accuracy_image_only']:.3f} | {r['accuracy_audio_only']:.3f} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="digits,letters")
    p.add_argument("--data-root", type=Path, default=Path.home() / ".cache" / "edgemm" / "realsets")
    p.add_argument("--runs", type=Path, default=Path("runs/real_suite"))
    p.add_argument("--skip", default="", help="comma list of: train, compress, cnn")
    p.add_argument("--students", default="", help="comma list of students to compress, one run each "
                   "(default: the recipe's); the teacher is trained once per set and cached")
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/real_suite.json"))
    a = p.parse_args()
    skip = set(filter(None, a.skip.split(",")))
    results = {"meta": {"cpu": cpu_name(), "threads": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}, "sets": {}}
    for name in a.sets.split(","):
        data = str(build(name, a.data_root, PER_CLASS[name], 0))
        arr, labels, pre = arrays(data)
        sizes = {s: len(arr[s][2]) for s in arr}
        res: dict = {"data": data, "sizes": sizes}
        t0 = time.perf_counter()
        res["logistic"] = logistic_baseline(arr, pre)
        res["logistic"]["seconds"] = time.perf_counter() - t0
        if "cnn" not in skip:
            t0 = time.perf_counter()
            res["small_cnn"] = small_cnn_baseline(arr, pre, labels)
            res["small_cnn"]["seconds"] = time.perf_counter() - t0
        run_dir = a.runs / name
        run_dir.mkdir(parents=True, exist_ok=True)
        if "train" not in skip:
            res["train"] = run_train(data, run_dir / f"train-{int(time.time())}")
        if "compress" not in skip:
            for student in a.students.split(","):
                key = f"compress[{student}]" if student else "compress"
                res[key] = run_compress(data, run_dir / f"compress-{student or 'recipe'}-{int(time.time())}", student)
        results["sets"][name] = res
        print(f"\n### {name}: {data} (train {sizes['train']} / val {sizes['val']} / test {sizes['test']})\n")
        print("| model | fused | image only | audio only |\n|---|---:|---:|---:|")
        print(fmt("logistic regression, hand-made features (late fusion)", res["logistic"]))
        if "small_cnn" in res:
            print(fmt(f"small CNN from scratch ({res['small_cnn']['params'] / 1e6:.2f} M, 60 epochs)", res["small_cnn"]))
        if "train" in res:
            print(fmt("`edgemm train` (av_student, defaults)", res["train"]))
        for key in (k for k in res if k.startswith("compress")):
            for row, r in res[key]["rows"].items():
                print(fmt(f"`edgemm {key}`: {row} ({r['macs'] / 1e6:.1f} M MACs)", r))
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
