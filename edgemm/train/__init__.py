"""Training and evaluation of audio-visual models (needs torch: ``pip install edgemm[train]``).

Names are imported lazily so that ``edgemm.train.config`` (and ``edgemm --help``) stay torch-free.
"""

from importlib import import_module

_EXPORTS = {
    "TrainConfig": "edgemm.train.config",
    "train": "edgemm.train.loop",
    "evaluate": "edgemm.train.evaluation",
    "EvalResult": "edgemm.train.evaluation",
    "plot_confusion": "edgemm.train.evaluation",
    "load_checkpoint": "edgemm.train.checkpoint",
    "load_model": "edgemm.train.checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'edgemm.train' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
