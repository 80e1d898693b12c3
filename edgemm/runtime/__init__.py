"""The torch-free runtime: load a bundle, run it with onnxruntime, OpenVINO or TFLite.

    >>> from edgemm import runtime
    >>> session = runtime.load("runs/compress/av_student-onnx-int8.edgemm")
    >>> session.predict(image=rgb_frame, audio=waveform)  # either may be None
    Prediction(label='...', score=0.97, ...)

Live input: ``run(session, Inputs(camera="0", mic="default"))`` or, piece by piece,
``open_source`` + ``Pipeline`` (see docs/runtime.md).

Nothing here imports torch (a test checks it); ``pip install edgemm[runtime,headless]`` (or ``gui``) is enough for ONNX,
plus ``edgemm[openvino]`` or ``edgemm[tflite]`` for those bundles.
"""

from edgemm._lazy import lazy_getattr

_EXPORTS = {
    "load": "edgemm.runtime.session",
    "Session": "edgemm.runtime.session",
    "Prediction": "edgemm.runtime.session",
    "Manifest": "edgemm.runtime.manifest",
    "BundleError": "edgemm.runtime.manifest",
    "read_manifest": "edgemm.runtime.manifest",
    "is_bundle": "edgemm.runtime.manifest",
    "available_backends": "edgemm.runtime.backends",
    "evaluate_session": "edgemm.runtime.evaluate",
    "open_source": "edgemm.runtime.sources",
    "Pipeline": "edgemm.runtime.pipeline",
    "RunConfig": "edgemm.runtime.pipeline",
    "Inputs": "edgemm.runtime.run",
    "run": "edgemm.runtime.run",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("edgemm.runtime", _EXPORTS)
