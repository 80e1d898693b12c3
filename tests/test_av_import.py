"""PyAV comes after OpenCV, so OpenCV's window code keeps the X libraries it was built with."""

import subprocess
import sys

import pytest


def _loaded_libraries(code: str) -> str:
    probe = code + "\nprint(open('/proc/self/maps').read())"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          timeout=120).stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_the_shared_xcb_shape_library_is_opencvs():
    pytest.importorskip("av")
    from edgemm.runtime.sinks.display import DisplayError, check_gui

    try:
        check_gui()
    except (DisplayError, ImportError):
        pytest.skip("needs the GUI build of OpenCV (.ci/run installs it): a headless one has no X libraries")
    plain = _loaded_libraries("import av")
    ours = _loaded_libraries("from edgemm._av import import_av; import_av()")
    # both wheels ship libxcb-shape under one hashed name; the first loaded is the only one
    shape = [line.split()[-1] for line in ours.splitlines() if "libxcb-shape" in line]
    assert shape and all("opencv" in path for path in shape), shape
    if "av.libs/libxcb-shape" in plain:  # PyAV alone loads its own copy: what hung `edgemm run --show`
        assert "av.libs/libxcb-shape" not in ours
