"""The ``edgemm`` command. Each subcommand maps onto one public function.

``edgemm.cli.train`` holds the commands that need torch (train, eval, compress, data, models),
``edgemm.cli.deploy`` those that take a model to a device (export, run, profile, bench, devices).
Heavy imports happen inside the subcommand that needs them, so ``edgemm --help`` and the runtime
commands stay fast and torch-free. ``--json`` prints only JSON on stdout: while such a command
runs, anything else written to stdout (converters' progress included) goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import os
import signal
import sys
import threading
import warnings

from edgemm import trust
from edgemm._stdio import stdout_to_stderr
from edgemm.cli import deploy, train
from edgemm.cli._common import print_json
from edgemm.errors import EdgemmError


def build_parser() -> argparse.ArgumentParser:
    from edgemm import __version__

    parser = argparse.ArgumentParser(prog="edgemm", description="Audio-visual fusion models from workstation to edge device.")
    parser.add_argument("--version", action="version", version=f"edgemm {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of its one-line message (or EDGEMM_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train.register(sub)
    deploy.register(sub)
    return parser


# Errors whose message is the whole story: edgemm's own (``edgemm.errors``), and the built-in ones
# edgemm raises for bad values and files.
KNOWN_ERRORS = (EdgemmError, ValueError, FileNotFoundError, FileExistsError)


def _interrupted(command: str) -> str:
    hint = {"train": "`edgemm train --resume` continues from the last finished epoch",
            "compress": "`edgemm compress --resume` reuses the stages that finished"}.get(command)
    return f"edgemm {command}: interrupted" + (f"; {hint}" if hint else "; nothing was published")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(signal, "SIGUSR1") and threading.current_thread() is threading.main_thread():
        # `kill -USR1 PID` prints every thread's stack to stderr: how to see where a run is stuck.
        with contextlib.suppress(AttributeError, ValueError, OSError):  # no real stderr (captured, pythonw)
            faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    debug = args.debug or os.environ.get("EDGEMM_DEBUG", "") not in ("", "0")
    as_json = getattr(args, "json", False) and not getattr(args, "json_streams", False)
    formatwarning = warnings.formatwarning
    if not debug:  # one line, like errors: what happened, not the source line that warned
        warnings.formatwarning = lambda message, *_a, **_k: f"edgemm {args.command}: warning: {message}\n"
    try:
        with trust.session(getattr(args, "trust_model_code", False)):
            if as_json:
                with stdout_to_stderr():
                    code = args.func(args)
            else:
                code = args.func(args)
    except KNOWN_ERRORS as e:
        if debug:
            raise
        print(f"edgemm {args.command}: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1)
    except KeyboardInterrupt:
        print(_interrupted(args.command), file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatwarning
    if as_json and hasattr(args, "json_payload"):
        print_json(args.json_payload)
    return code
