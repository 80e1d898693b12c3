"""Export a checkpoint to ONNX, OpenVINO IR or TFLite as a verified bundle (needs torch).

``export(checkpoint, ExportConfig(target=..., precision=...))`` (or ``export(checkpoint, target=...)``)
is ``edgemm export``; ``FORMATS`` is the table of
targets. The bundle format itself (``edgemm.runtime.manifest``) is torch-free.
"""

from edgemm._lazy import lazy_getattr

_EXPORTS = {
    "export": "edgemm.export.bundle",
    "ExportConfig": "edgemm.export.config",
    "VerificationFailed": "edgemm.export.bundle",
    "FORMATS": "edgemm.export.formats",
    "Target": "edgemm.export.formats",
    "Precision": "edgemm.export.formats",
    "Tolerance": "edgemm.export.verify",
    "ExportError": "edgemm.export.errors",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("edgemm.export", _EXPORTS)
