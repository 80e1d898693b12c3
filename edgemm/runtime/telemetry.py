"""Live telemetry of ``edgemm run --metrics HOST:PORT``: the run's counters while it runs, in the
Prometheus text format (``prometheus_client``), so an operator can watch a device for days.

Each scrape of ``http://HOST:PORT/metrics`` reads ``Pipeline.snapshot()``: frames received and
dropped, results, audio overflows, gaps and clock resyncs, camera reconnects, the end-to-end latency
percentiles since the start (camera frame or microphone window to result), the audio path's own
(microphone window captured to result), the A/V skew at pairing, the microphone clock's drift and
each stage's median.
Binds 127.0.0.1 unless told otherwise. ``TelemetryPrinter`` prints the same snapshot as a JSON
line every few seconds (``--telemetry-every S``), for logs that are not scraped.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Callable, TextIO

from edgemm.errors import UsageError
from edgemm.runtime.pipeline import Summary

COUNTERS = (  # (name, help, Summary attribute); prometheus_client adds the _total suffix
    ("edgemm_frames", "Video frames received from the camera or file", "frames"),
    ("edgemm_frames_dropped", "Frames dropped because inference was busy (live runs keep the newest)", "drops"),
    ("edgemm_results", "Results produced", "results"),
    ("edgemm_audio_overflows", "Microphone buffer overflows reported by PortAudio", "audio_overflows"),
    ("edgemm_audio_gaps", "Gaps in the audio stream (samples that never arrived)", "audio_gaps"),
    ("edgemm_audio_resyncs", "Times the audio time axis followed the microphone clock's drift", "audio_resyncs"),
    ("edgemm_camera_reconnects", "Times a live camera was reopened after it stopped delivering", "reconnects"),
)


class _Collector:
    def __init__(self, snapshot: Callable[[], Summary]) -> None:
        self.snapshot = snapshot

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        s = self.snapshot()
        for name, text, attr in COUNTERS:
            yield CounterMetricFamily(name, text, value=getattr(s, attr))
        latency = GaugeMetricFamily("edgemm_latency_ms", "End-to-end latency since the start (capture to result), "
                                    "by quantile", labels=["quantile"])
        for key, q in (("p50", "0.5"), ("p90", "0.9"), ("p99", "0.99")):
            latency.add_metric([q], s.latency_ms[key])
        yield latency
        if s.audio_latency_ms is not None:
            audio = GaugeMetricFamily("edgemm_audio_latency_ms", "Latency from the capture of an audio window's "
                                      "last sample to its result, by quantile (and max)", labels=["quantile"])
            for key, q in (("p50", "0.5"), ("p90", "0.9"), ("p99", "0.99"), ("max", "1")):
                audio.add_metric([q], s.audio_latency_ms[key])
            yield audio
        if s.av_skew_ms is not None:
            skew = GaugeMetricFamily("edgemm_av_skew_ms", "Newest audio minus the frame's time when paired (audio "
                                     "ahead: > 0): mean, and quantiles and max of its size", labels=["stat"])
            for key, value in s.av_skew_ms.items():
                skew.add_metric([key], value)
            yield skew
        if s.audio_drift_ppm is not None:
            yield GaugeMetricFamily("edgemm_audio_clock_drift_ppm", "The audio source's sample clock against this "
                                    "machine's, parts per million (> 0: it runs fast)", value=s.audio_drift_ppm)
        stages = GaugeMetricFamily("edgemm_stage_p50_ms", "Median time of each stage of a result", labels=["stage"])
        for stage, ms in s.stages_ms.items():
            stages.add_metric([stage], ms)
        yield stages
        yield GaugeMetricFamily("edgemm_results_per_second", "Results per second since the start",
                                value=s.results_per_second)
        yield GaugeMetricFamily("edgemm_uptime_seconds", "Seconds since the run started", value=s.seconds)
        yield InfoMetricFamily("edgemm_backend", "What runs the model", value={"backend": s.backend})


class MetricsServer:
    """Serves ``snapshot()`` at ``http://host:port/metrics`` in a daemon thread until ``close()``.

    Raises:
        UsageError: If ``prometheus_client`` is not installed, or the address cannot be bound.
    """

    def __init__(self, snapshot: Callable[[], Summary], host: str = "127.0.0.1", port: int = 9464) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise UsageError("--metrics needs prometheus_client: pip install 'edgemm[runtime]'") from None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(snapshot))
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as e:
            raise UsageError(f"--metrics {host}:{port}: cannot listen there ({e.strerror or e})") from None
        self.host, self.port = host, self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class TelemetryPrinter:
    """Prints ``{"telemetry": snapshot}`` as one JSON line every ``seconds`` until ``close()``."""

    def __init__(self, snapshot: Callable[[], Summary], seconds: float, stream: TextIO | None = None) -> None:
        if not seconds > 0:
            raise UsageError(f"--telemetry-every: expected a positive number of seconds, got {seconds}")
        self.snapshot, self.seconds, self.stream = snapshot, seconds, stream or sys.stdout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edgemm-telemetry", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.seconds):
            print(json.dumps({"telemetry": self.snapshot().to_json()}), file=self.stream, flush=True)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
