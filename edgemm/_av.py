"""PyAV, imported after OpenCV so that ``--show`` windows keep working.

The PyAV and OpenCV wheels both bundle ``libxcb-shape-7716c890.so`` under the same hashed name:
PyAV's copy links PyAV's own ``libxcb``, OpenCV's the system one that its Qt window code uses.
The dynamic loader keeps whichever copy loads first, so a process that imported PyAV first hangs in
its first ``cv2.imshow`` (PyAV 18.1, opencv-python 5.0/5.1, found with ``edgemm run --video CLIP
--show``). Importing OpenCV first, when it is installed, makes its copy the one both use.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def import_av() -> ModuleType:
    """The ``av`` module, with OpenCV (when installed) loaded before it."""
    if "av" not in sys.modules and "cv2" not in sys.modules and importlib.util.find_spec("cv2") is not None:
        try:
            import cv2  # noqa: F401  (loaded for its shared libraries; see the module docstring)
        except ImportError:
            pass  # a broken OpenCV is reported where OpenCV is used, not here
    import av

    return av
