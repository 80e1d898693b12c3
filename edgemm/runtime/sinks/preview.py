"""A web preview for headless devices: ``/`` (page), ``/stream.mjpg`` (annotated MJPEG), ``/scores`` and
``/telemetry`` (JSON: the latest result; the run's counters and latency so far).

Binds 127.0.0.1 unless told otherwise; reach it over SSH with ``ssh -L 8080:127.0.0.1:8080 device``.
"""

from __future__ import annotations

import errno
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from edgemm._cv2 import import_cv2
from edgemm.errors import UsageError
from edgemm.runtime.sinks import ThreadedSink
from edgemm.runtime.sinks.overlay import FpsMeter, render

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>edgemm live</title>
<style>body{background:#111;color:#ddd;font-family:sans-serif;margin:12px}
#scores div{margin:2px 0}</style></head>
<body><h3>edgemm live preview</h3><img id="video" src="/stream.mjpg" alt="live stream">
<div id="scores"></div><div id="telemetry" style="margin-top:8px;color:#999"></div>
<script>
async function poll(){try{const r=await fetch('/scores');const s=await r.json();
const rows=Object.entries(s.scores||{}).sort((a,b)=>b[1]-a[1]).slice(0,5)
 .map(([k,v])=>`<div>${k}: ${(v*100).toFixed(1)} %</div>`).join('');
document.getElementById('scores').innerHTML=`<b>${s.label??'-'}</b> t=${(s.t??0).toFixed(2)} s `+
 ((s.events||[]).length?`<span style="background:#d22;padding:0 4px">event: ${s.events.join(', ')}</span> `:'')+
 `latency ${(s.latency_ms??0).toFixed(1)} ms`+rows;}catch(e){} setTimeout(poll,250);}
async function telemetry(){try{const r=await fetch('/telemetry');const m=await r.json();
document.getElementById('telemetry').textContent=`${m.frames} frames, ${m.drops} dropped, ${m.results} results `+
 `(${(m.results_per_second??0).toFixed(1)}/s), latency p50 ${m.latency_ms.p50} p99 ${m.latency_ms.p99} ms, `+
 `${m.audio_overflows} audio overflows, ${m.audio_gaps} gaps, camera reopened ${m.reconnects}x`;}catch(e){}
 setTimeout(telemetry,1000);}
poll();telemetry();
</script></body></html>"""


def parse_address(text: str, default_host: str = "127.0.0.1", flag: str = "--preview") -> tuple[str, int]:
    """``"8080"``, ``":8080"`` or ``"HOST:PORT"`` → (host, port).

    Raises:
        ValueError: If the port is not a number in 0-65535.
    """
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"{flag}: expected HOST:PORT or PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"{flag}: port must be 0-65535, got {number}")
    return host or default_host, number


class PreviewSink(ThreadedSink):
    """Serves the annotated stream and the latest scores over HTTP.

    Args:
        host: Interface to bind (default loopback only).
        port: TCP port (0 picks a free one; see ``address``).
        quality: JPEG quality.
        telemetry: What ``/telemetry`` serves: a callable returning the run's ``Summary`` so far
            (``Pipeline.snapshot``).
    """

    name = "preview"

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, quality: int = 80,
                 telemetry: Callable[[], Any] | None = None) -> None:
        self.quality = quality
        self.telemetry = telemetry
        self._jpeg: bytes | None = None
        self._scores: dict = {}
        self._new = threading.Condition()
        self._fps = FpsMeter()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the console for results
                pass

            def do_GET(self):
                if self.path in ("/", "/index.html"):
                    self._send(200, "text/html; charset=utf-8", PAGE)
                elif self.path == "/scores":
                    self._send(200, "application/json", json.dumps(sink._scores).encode())
                elif self.path == "/telemetry" and sink.telemetry is not None:
                    self._send(200, "application/json", json.dumps(sink.telemetry().to_json()).encode())
                elif self.path.startswith("/stream.mjpg"):
                    self.send_response(200)
                    self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                    self.send_header("Cache-Control", "no-cache")
                    self.end_headers()
                    last = None
                    try:
                        while not sink._stopping:
                            with sink._new:
                                sink._new.wait_for(lambda: sink._jpeg is not last or sink._stopping, timeout=1.0)  # noqa: B023
                                jpeg = sink._jpeg
                            if jpeg is None or jpeg is last:
                                continue
                            last = jpeg
                            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                             + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                else:
                    self._send(404, "text/plain", b"not found")

            def _send(self, code, ctype, body):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._stopping = False
        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as e:
            reason = "is already in use" if e.errno == errno.EADDRINUSE else f"cannot be served ({e.strerror})"
            raise UsageError(f"--preview: {host}:{port} {reason}; choose another port (0 picks a free one)") from None
        self.server.daemon_threads = True
        self.address = self.server.server_address[:2]
        self._server_thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="preview-http")
        self._server_thread.start()
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}/"

    def handle(self, result) -> None:
        cv2 = import_cv2()
        ok, buf = cv2.imencode(".jpg", render(result, self._fps.tick()), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if ok:
            with self._new:
                self._jpeg = buf.tobytes()
                self._scores = result.to_json()
                self._new.notify_all()

    def finish(self) -> None:
        self._stopping = True
        with self._new:
            self._new.notify_all()
        self.server.shutdown()
        self.server.server_close()
