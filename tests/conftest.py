"""Shared fixtures: small generated data sets (media helpers live in support.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from filelock import FileLock
from support import CLASSES, make_easy_manifest, tone, write_png, write_wav


def pytest_configure(config):
    """Under pytest-xdist (``scripts/test.sh`` runs ``-n 2``) each worker computes on one thread, and so
    do the processes it starts: two workers of two threads each on two cores oversubscribe them, and
    OpenMP's spinning threads then slow both several times over."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = "1"


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(items):
    """Tests that share one OS resource run on one xdist worker, one after another: the virtual
    microphone is the user's single PulseAudio server, which each of them starts and kills.

    The slow tests go first (otherwise in file order): xdist hands tests out in this order as workers
    free up, and a long test handed out last keeps one worker busy while the other has nothing left.
    """
    for item in items:
        if item.get_closest_marker("mic"):
            item.add_marker(pytest.mark.xdist_group("pulseaudio"))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def once(tmp_path_factory, name: str, make: Callable[[Path], object]) -> Path:
    """``make(directory)`` once per test run, by whichever xdist worker asks first; the others wait
    for it and read the same files (pytest-xdist's recipe for expensive session fixtures). What it
    makes is read-only to tests: a test that edits it works on a copy.

    Returns:
        The directory ``make`` filled.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by this run's workers
    made = root / "once" / name
    made.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{made}.lock"):
        if not (made / ".complete").exists():  # absent, or a worker died while making it
            shutil.rmtree(made, ignore_errors=True)
            made.mkdir()
            make(made)
            (made / ".complete").touch()
    return made


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep the user's cache untouched: the default set goes to a per-session directory."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEMM_CACHE", str(tmp_path_factory.mktemp("edgemm-cache")))
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _own_trust():
    """Each test starts with no model code trusted (what one command of the CLI starts with)."""
    from edgemm import trust

    with trust.session():
        yield


@pytest.fixture(scope="session")
def small_manifest(tmp_path_factory) -> Path:
    """The generated default classes, 6 samples each, in the manifest format (with a split column)."""
    from edgemm.data.synthetic import SyntheticConfig, make_default

    cfg = SyntheticConfig(samples_per_class=6)
    return make_default(cfg, root=once(tmp_path_factory, "small", lambda d: make_default(cfg, root=d)))


@pytest.fixture
def media_dir(tmp_path) -> Path:
    """A directory with a few good images and sounds for hand-built manifests."""
    rng = np.random.default_rng(0)
    for i in range(3):
        write_png(tmp_path / f"img{i}.png", rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
        write_wav(tmp_path / f"snd{i}.wav", tone(440 * (i + 1), 16000, 0.5), 16000)
    return tmp_path


@pytest.fixture(scope="session")
def easy_manifest(tmp_path_factory) -> Path:
    """``support.CLASSES``, 100 samples each (60 train / 20 val / 20 test)."""
    return once(tmp_path_factory, "easy", lambda d: make_easy_manifest(d, per_class=100)) / "easy.csv"


@pytest.fixture(scope="session")
def trained(easy_manifest, tmp_path_factory):
    """``trained(name)`` -> run directory of ``name`` trained on the easy set (cached per session)."""
    from edgemm.train import TrainConfig, train

    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            # threads=1: the same weights whichever tests ran before (float sums depend on the thread
            # count, and a 1-sample int8 flip on the 80-sample test split is already 1.25 pts)
            config = TrainConfig(epochs=20, min_steps=0, batch_size=16, lr=5e-3, label_smoothing=0.0, patience=0, seed=0,
                                 threads=1)
            made = once(tmp_path_factory, f"run-{name}",
                        lambda d: train(name, easy_manifest, out=d / "run", config=config, progress=False))
            # this worker's own copy: tests export next to the checkpoint by default
            cache[name] = Path(shutil.copytree(made / "run", tmp_path_factory.mktemp(f"run-{name}") / "run"))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def small_teacher(small_manifest, tmp_path_factory) -> Path:
    """``test_attention`` trained 2 epochs on ``small_manifest``: the ``--teacher`` of the compress tests
    (made once per run; read-only)."""
    from edgemm.train import TrainConfig, train

    config = TrainConfig(epochs=2, min_steps=0, batch_size=8, threads=1)
    made = once(tmp_path_factory, "small-teacher",
                lambda d: train("test_attention", small_manifest, out=d / "run", config=config, progress=False))
    return made / "run" / "best.pt"


@pytest.fixture(scope="session")
def onnx_bundle(trained, tmp_path_factory) -> Path:
    """``test_concat`` trained on the easy set, exported to an fp32 ONNX bundle."""
    from edgemm.export import export

    return once(tmp_path_factory, "bundle-concat", lambda d: export(
        trained("test_concat"), target="onnx", out=d / "concat.edgemm", verify_samples=16, log=lambda s: None)
    ) / "concat.edgemm"


@pytest.fixture(scope="session")
def runtime_frontend_bundle(trained, tmp_path_factory) -> Path:
    """``onnx_bundle`` exported with ``--frontend runtime`` (the graph takes the log-mel)."""
    from edgemm.export import export

    return once(tmp_path_factory, "bundle-concat-runtime-frontend", lambda d: export(
        trained("test_concat"), target="onnx", out=d / "concat-runtime-frontend.edgemm", verify_samples=16,
        frontend="runtime", log=lambda s: None)) / "concat-runtime-frontend.edgemm"


@pytest.fixture(scope="session")
def easy_clips(tmp_path_factory) -> dict[str, Path]:
    """One H.264 + AAC clip (2 s, 15 fps, 44.1 kHz) per ``support.CLASSES`` label."""
    from support import write_easy_clip

    def make(root: Path) -> None:
        for i, label in enumerate(CLASSES):
            write_easy_clip(root / f"{label}.mp4", label, seed=i)

    root = once(tmp_path_factory, "clips", make)
    return {label: root / f"{label}.mp4" for label in CLASSES}


@pytest.fixture(scope="session")
def temporal_run(tmp_path_factory):
    """``tiny_temporal`` (3 frames) trained on a video folder of easy clips, 5 per class: the folder
    is ``clips/``, the run ``run/``."""
    from support import write_easy_clip

    from edgemm.train import TrainConfig, train

    def make(d):
        for i, label in enumerate(CLASSES):
            (d / "clips" / label).mkdir(parents=True)
            for j in range(5):
                write_easy_clip(d / "clips" / label / f"{j}.mp4", label, seconds=1.5, seed=10 * i + j)
        config = TrainConfig(epochs=40, min_steps=0, batch_size=8, lr=5e-3, label_smoothing=0.0, patience=0, seed=0,
                             threads=1, ema=False, augment="none")
        train("tiny_temporal", d / "clips", out=d / "run", config=config, progress=False)

    return once(tmp_path_factory, "run-tiny_temporal", make)
