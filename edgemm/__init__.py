"""edgemm: audio-visual fusion models from the workstation to the edge device.

Importing the package never imports torch, so the runtime stays usable on a device without it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
