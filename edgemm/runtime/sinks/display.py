"""``--show``: an OpenCV window with the annotated frame (its own thread; never stalls capture)."""

from __future__ import annotations

import re
from typing import Callable

from edgemm._cv2 import import_cv2
from edgemm.errors import EdgemmError
from edgemm.runtime.sinks import ThreadedSink
from edgemm.runtime.sinks.overlay import FpsMeter, render


class DisplayError(EdgemmError, RuntimeError):
    pass


def check_gui() -> None:
    """Raises ``DisplayError`` when this OpenCV cannot open windows (the headless wheel)."""
    cv2 = import_cv2()
    if re.search(r"GUI:\s+NONE", cv2.getBuildInformation()):
        raise DisplayError("--show needs an OpenCV with GUI support; this one is headless. "
                           "pip uninstall -y opencv-python-headless && pip install 'edgemm[gui]' "
                           "(or use --preview HOST:PORT for a web view)")


class DisplaySink(ThreadedSink):
    """Shows results in a window; ``q`` or Esc calls ``on_quit``.

    Args:
        title: Window title.
        on_quit: Called when the user closes the view (e.g. ``Pipeline.stop``).
    """

    name = "display"

    def __init__(self, title: str = "edgemm", on_quit: Callable[[], None] | None = None) -> None:
        check_gui()
        self.title, self.on_quit = title, on_quit
        self._fps = FpsMeter()
        self.shown = 0
        super().__init__()

    def handle(self, result) -> None:
        cv2 = import_cv2()
        cv2.imshow(self.title, render(result, self._fps.tick()))
        self.shown += 1
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27) and self.on_quit is not None:
            self.on_quit()

    def finish(self) -> None:
        cv2 = import_cv2()
        cv2.destroyAllWindows()
