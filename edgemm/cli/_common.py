"""What every subcommand shares: ``--json`` output that is only JSON, flags that were renamed."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

DEVICE_HELP = "torch device: auto (CUDA when available, else CPU), cpu or cuda[:N]"
PROFILE_HELP = "device profile: a shipped name (see `edgemm devices`) or a YAML file"
PROVIDER_HELP = ("the backend's device: onnxruntime execution provider (cpu, cuda, tensorrt, openvino) or OpenVINO device "
                 "(CPU, GPU, NPU, AUTO)")


def emit_json(a: argparse.Namespace, payload: Any) -> None:
    """Queues the command's one JSON document; ``main`` prints it on the real stdout at the end."""
    a.json_payload = payload


def print_json(payload: Any) -> None:
    print(json.dumps(payload), flush=True)


class Renamed(argparse.Action):
    """A flag that now has another name: one clear error instead of a silent change of meaning."""

    def __init__(self, option_strings, dest, new: str, why: str = "", **kw) -> None:
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kw)
        self.new, self.why = new, why

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        parser.error(f"{option_string} is now {self.new}{self.why} (e.g. {self.new} {values or 'NAME'})")


def add_device_profile(p: argparse.ArgumentParser, help_tail: str) -> None:
    """``--device-profile`` (and the old spelling ``--device``, which now errors with the new name)."""
    p.add_argument("--device-profile", default=None, metavar="PROFILE", help=f"{PROFILE_HELP}: {help_tail}")
    p.add_argument("--device", action=Renamed, new="--device-profile",
                   why="; --device names a torch device, on train, eval and compress")


def next_steps(*commands: str) -> None:
    """Prints what to run next (human output only)."""
    print("next:")
    for c in commands:
        print(f"  {c}")


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (a bad one is a usage error naming the flag)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number >= 0 (``nan`` would make every comparison with it false)."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (a timeout or interval)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def threshold_arg(text: str) -> float | str:
    """An argparse type: ``auto`` or a finite number."""
    return "auto" if text == "auto" else finite_float(text)


def finite_float(text: str) -> float:
    """An argparse type: a finite number (``inf`` and ``nan`` are usage errors)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def add_remote(p: argparse.ArgumentParser) -> None:
    r = p.add_argument_group("on the device itself, over SSH (docs/devices.md)")
    r.add_argument("--remote", default=None, metavar="ssh://[USER@]HOST[:PORT]",
                   help="copy each bundle there, run the torch-free `edgemm profile` there, report its timings")
    r.add_argument("--ssh-config", type=Path, default=None, metavar="FILE",
                   help="SSH configuration to use instead of ~/.ssh/config (keys, known hosts, aliases)")
    r.add_argument("--remote-edgemm", default="edgemm", metavar="PATH",
                   help="the edgemm command on the device (default: edgemm on its PATH)")
    r.add_argument("--remote-timeout", type=positive_float, default=600.0, metavar="S",
                   help="seconds allowed for each remote step (copy, run)")


def remote_of(a: argparse.Namespace):
    """The ``--remote`` destination, or None."""
    from edgemm.devices.remote import Remote

    return Remote.parse(a.remote, a.ssh_config, a.remote_edgemm) if a.remote else None


def add_trust(p: argparse.ArgumentParser) -> None:
    """``--trust-model-code``: allow the model code a checkpoint or recipe names (``edgemm.trust``)."""
    p.add_argument("--trust-model-code", action="store_true",
                   help="run the model code (PATH.py:FUNCTION) that a checkpoint or recipe names even if you did not "
                        "name it here; only for files from people you trust (or EDGEMM_TRUST_MODEL_CODE=1)")


PROGRESS_SECONDS = 5.0  # a long check says how far it got at most this often


def progress_line(what: str, unit: str) -> Callable[[int, int], None]:
    """``report(done, total)`` that prints ``WHAT: done/total UNIT (p%), s`` to stderr every
    ``PROGRESS_SECONDS`` and once at the end when it printed anything (short jobs stay quiet)."""
    start = last = time.monotonic()
    printed = False

    def report(done: int, total: int) -> None:
        nonlocal last, printed
        now = time.monotonic()
        if now - last >= PROGRESS_SECONDS or (printed and done == total):
            print(f"{what}: {done:,}/{total:,} {unit} ({100 * done / max(total, 1):.0f}%), {now - start:.0f} s",
                  file=sys.stderr, flush=True)
            last, printed = now, True

    return report


def add_event_options(group) -> None:
    """``--event-on/--event-off/--event-min/--event-gap``: how scores become events (``EventConfig``)."""
    from edgemm.runtime.events import EventConfig

    group.add_argument("--event-on", type=finite_float, default=EventConfig.on, metavar="P", help="(default: %(default)s)")
    group.add_argument("--event-off", type=finite_float, default=EventConfig.off, metavar="P", help="(default: %(default)s)")
    group.add_argument("--event-min", type=finite_float, default=EventConfig.min_duration, metavar="S",
                       help="shorter events are dropped (default: %(default)s s)")
    group.add_argument("--event-gap", type=finite_float, default=EventConfig.merge_gap, metavar="S",
                       help="events of one class closer than this merge (default: %(default)s s)")


def event_config(a: argparse.Namespace):
    """The ``EventConfig`` of ``add_event_options``' flags."""
    from edgemm.runtime.events import EventConfig

    return EventConfig(a.event_on, a.event_off, a.event_min, a.event_gap)
