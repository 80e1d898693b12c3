"""The layer above export, runtime and profile: what ``edgemm export``, ``eval`` and ``run`` do,
usable from Python.

It applies device profiles (``--device-profile``), resolves ``--precision auto`` by measuring every
precision on the backend that will run it, and evaluates a checkpoint or a bundle alike:

    >>> from edgemm import deploy
    >>> deploy.export("runs/compress", device_profile="raspberry-pi-5")      # target, precision from the profile
    >>> deploy.export("runs/compress", target="onnx", precision="auto")      # the fastest that verifies
    >>> deploy.evaluate("runs/compress/av_student-onnx-int8.edgemm").result.accuracy
    >>> session = deploy.open_session(bundle, device_profile="intel-igpu")   # torch-free

Names are imported lazily: ``open_session`` and bundle evaluation need no torch.
"""

from edgemm._lazy import lazy_getattr

_EXPORTS = {
    "export": "edgemm.deploy.workflow",
    "evaluate": "edgemm.deploy.workflow",
    "Evaluation": "edgemm.deploy.workflow",
    "open_session": "edgemm.deploy.workflow",
    "session_options": "edgemm.deploy.workflow",
    "profile_config": "edgemm.deploy.workflow",
    "live_inputs": "edgemm.deploy.workflow",
    "evaluate_events": "edgemm.deploy.events",
    "EventEvaluation": "edgemm.deploy.events",
    "AutoConfig": "edgemm.deploy.auto",
    "export_auto": "edgemm.deploy.auto",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("edgemm.deploy", _EXPORTS)
