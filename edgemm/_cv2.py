"""OpenCV, imported where it is needed, with the install line when it is missing.

edgemm's extras leave the choice of OpenCV build to the install line, because the two wheels write
the same ``cv2/`` folder and must never be installed together: ``edgemm[gui]`` (``opencv-python``:
laptops and desktops, ``edgemm run --show``) or ``edgemm[headless]`` (``opencv-python-headless``:
servers, containers, boards without a display). A Jetson uses the system OpenCV (GStreamer).
"""

from __future__ import annotations

from types import ModuleType

from edgemm.errors import EdgemmError

INSTALL = ("pip install 'edgemm[gui]' on a laptop or desktop (windows: --show), 'edgemm[headless]' on a server, "
           "container or board without a display; on a Jetson, the system OpenCV (apt install python3-opencv)")


class OpenCVMissing(EdgemmError, ImportError):
    """No OpenCV is installed."""


def import_cv2() -> ModuleType:
    """The ``cv2`` module.

    Raises:
        OpenCVMissing: With the install line for each kind of machine.
    """
    try:
        import cv2
    except ImportError as e:
        raise OpenCVMissing(f"edgemm needs OpenCV ({e}): {INSTALL}") from None
    return cv2
