"""Training and evaluation of audio-visual models (needs torch: ``pip install edgemm[train]``).

Names are imported lazily so that ``edgemm.train.config`` (and ``edgemm --help``) stay torch-free.
"""

from edgemm._lazy import lazy_getattr

_EXPORTS = {
    "TrainConfig": "edgemm.train.config",
    "train": "edgemm.train.loop",
    "evaluate": "edgemm.train.evaluation",
    "EvalResult": "edgemm.metrics",
    "plot_confusion": "edgemm.metrics",
    "load_checkpoint": "edgemm.train.checkpoint",
    "load_model": "edgemm.train.checkpoint",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("edgemm.train", _EXPORTS)
