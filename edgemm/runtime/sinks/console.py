"""Results as console lines, or as one JSON object per line (``--json``)."""

from __future__ import annotations

import json
import sys
from typing import TextIO


class ConsoleSink:
    """Prints each result.

    Args:
        as_json: One JSON object per result (``Result.to_json``) instead of a text line.
        stream: Where to print (default stdout).
    """

    def __init__(self, as_json: bool = False, stream: TextIO | None = None) -> None:
        self.as_json, self.stream = as_json, stream or sys.stdout

    def put(self, result) -> None:
        if self.as_json:
            line = json.dumps(result.to_json())
        else:
            live = "+".join(m for m, on in (("image", result.image_present), ("audio", result.audio_present)) if on)
            label = result.label if result.label is not None else "-"
            line = (f"{result.t:8.2f}s  {label:<20} {result.score:5.2f}  [{live or 'no input'}]  "
                    f"{result.latency_ms:6.1f} ms")
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        pass
