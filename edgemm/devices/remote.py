"""Measure a bundle on the device itself, over SSH: ``edgemm profile BUNDLE --remote ssh://user@host[:port]``.

The system ``ssh`` and ``scp`` do the work, with the user's own configuration, keys and agent
(``--ssh-config FILE`` selects another configuration file, as ``ssh -F`` does); nothing here
speaks the protocol. A run checks that the device's ``edgemm`` is there and is this version,
copies the bundle into a fresh directory there, runs the torch-free ``edgemm profile --json``
on it, reads the JSON back, and removes the directory. The report keeps the device's own
``machine`` (CPU, cores, OS) and gains ``remote`` (where and with which edgemm it was measured).

Every way it can fail is one ``RemoteError`` line naming the host: unreachable, authentication
refused, ``edgemm`` missing or another version (with the command that installs it), the device's
own error (a backend missing there), or a run past ``timeout`` seconds.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from edgemm import __version__
from edgemm.errors import EdgemmError, UsageError

INSTALL_HINT = "pip install 'edgemm[runtime,headless]=={version}' plus the bundle's backend extra (onnxruntime, openvino or tflite)"


class RemoteError(EdgemmError, RuntimeError):
    """The remote device could not be reached or could not run the measurement (the message says which)."""


@dataclass(frozen=True)
class Remote:
    """An SSH destination: ``ssh://[user@]host[:port]``.

    Attributes:
        host: Host name or address (or a ``Host`` alias of the SSH configuration).
        user: Login name (None: the configuration's or the local one).
        port: Port (None: the configuration's or 22).
        config: An SSH configuration file to use instead of ``~/.ssh/config`` (``ssh -F``).
        edgemm: The ``edgemm`` command on the device (a venv's ``bin/edgemm`` when it is not on PATH).
        connect_timeout: Seconds to wait for the connection.
    """

    host: str
    user: str | None = None
    port: int | None = None
    config: Path | None = None
    edgemm: str = "edgemm"
    connect_timeout: int = 10

    @classmethod
    def parse(cls, url: str, config: str | Path | None = None, edgemm: str = "edgemm") -> "Remote":
        """Parses ``ssh://[user@]host[:port]``.

        Raises:
            UsageError: Anything else, naming what was expected.
        """
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme != "ssh" or not parts.hostname or port == -1 or parts.path not in ("", "/"):
            raise UsageError(f"--remote: expected ssh://[user@]host[:port], got {url!r}")
        return cls(parts.hostname, parts.username, port, Path(config) if config else None, edgemm)

    @property
    def url(self) -> str:
        return f"ssh://{self.user + '@' if self.user else ''}{self.host}{f':{self.port}' if self.port else ''}"

    def _options(self, port_flag: str) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}"]
        if self.config:
            opts += ["-F", str(self.config)]
        if self.port:
            opts += [port_flag, str(self.port)]
        return opts

    @property
    def _destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def run(self, command: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
        """Runs ``command`` (quoted for the remote shell) on the device; raises ``RemoteError``
        when SSH itself fails (exit 255) or the run passes ``timeout`` seconds."""
        cmd = ["ssh", *self._options("-p"), self._destination, "--", shlex.join(command)]
        return self._call(cmd, timeout, " ".join(command[:2]))

    def copy(self, local: Path, remote_dir: str, timeout: float) -> None:
        """Copies a file or directory into ``remote_dir`` on the device (``scp -r``)."""
        cmd = ["scp", "-q", "-r", *self._options("-P"), str(local), f"{self._destination}:{remote_dir}/"]
        proc = self._call(cmd, timeout, f"copying {local.name}")
        if proc.returncode != 0:
            hint = (" (scp copies over SFTP: is the device's SFTP subsystem enabled?)"
                    if "connection closed" in proc.stderr.lower() else "")
            raise RemoteError(f"{self.url}: copying {local} failed: {_last_line(proc.stderr)}{hint}")

    def _call(self, cmd: list[str], timeout: float, what: str) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise RemoteError(f"--remote needs the OpenSSH client ({cmd[0]} is not installed here)") from None
        except subprocess.TimeoutExpired:
            raise RemoteError(f"{self.url}: {what} did not finish in {timeout:g} s (the device is hung or busy; "
                              "raise --remote-timeout for a slow device)") from None
        if proc.returncode == 255 and cmd[0] == "ssh":
            raise RemoteError(f"{self.url}: {_ssh_failure(proc.stderr)}")
        return proc


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


def _ssh_failure(stderr: str) -> str:
    """What went wrong, from OpenSSH's own words."""
    text = stderr.lower()
    if "permission denied" in text or "too many authentication failures" in text:
        return f"authentication refused ({_last_line(stderr)}): check the user, the key and the agent"
    if "host key verification failed" in text or "remote host identification has changed" in text:
        return f"the host key is unknown or changed ({_last_line(stderr)}): check known_hosts"
    if any(s in text for s in ("connection refused", "timed out", "no route to host", "could not resolve",
                               "name or service not known", "network is unreachable", "connection closed")):
        return f"unreachable ({_last_line(stderr)})"
    return f"ssh failed: {_last_line(stderr)}"


def check_edgemm(remote: Remote, timeout: float) -> str:
    """The device's edgemm version; raises ``RemoteError`` when it is missing or not this one."""
    proc = remote.run([remote.edgemm, "--version"], timeout)
    hint = INSTALL_HINT.format(version=__version__)
    if proc.returncode != 0:
        missing = proc.returncode == 127 or "not found" in proc.stderr
        raise RemoteError(f"{remote.url}: {'edgemm is not installed' if missing else 'edgemm does not start'} "
                          f"on the device ({_last_line(proc.stderr)}); install it there: {hint} "
                          "(or name it with --remote-edgemm PATH)")
    version = proc.stdout.strip().split()[-1] if proc.stdout.strip() else "?"
    if version != __version__:
        raise RemoteError(f"{remote.url}: the device has edgemm {version}, this is {__version__}; "
                          f"install the same version there: {hint}")
    return version


def profile_remote(remote: Remote, bundle: str | Path, args: Sequence[str] = (), timeout: float = 600.0) -> dict[str, Any]:
    """``edgemm profile BUNDLE --json ARGS`` run on the device; its report with ``remote`` added.

    Args:
        remote: The device.
        bundle: A local bundle directory (copied to the device for the run, then removed there).
        args: Further ``edgemm profile`` options, as on the command line (``--runs 300``).
        timeout: Seconds allowed for each step (copy, run).
    """
    bundle = Path(bundle)
    report, version, there = _profile_there(remote, [bundle], args, timeout)
    report["bundle"] = str(bundle)
    report["remote"] = {"url": remote.url, "edgemm_version": version, "bundle_there": there[0]}
    return report


def compare_remote(remote: Remote, bundles: Sequence[str | Path], args: Sequence[str] = (),
                   timeout: float = 600.0) -> dict[str, Any]:
    """``edgemm profile A B … --json ARGS`` (interleaved comparison, ``edgemm.profile.compare``) run
    on the device; its comparison with the local bundle paths and ``remote`` added."""
    bundles = [Path(b) for b in bundles]
    report, version, there = _profile_there(remote, bundles, args, timeout)
    for row, bundle in zip(report.get("rows", []), bundles):
        row["bundle"] = str(bundle)
    report["remote"] = {"url": remote.url, "edgemm_version": version, "bundles_there": there}
    return report


def _profile_there(remote: Remote, bundles: list[Path], args: Sequence[str], timeout: float
                   ) -> tuple[dict[str, Any], str, list[str]]:
    """Copies ``bundles`` to a fresh directory on the device, runs ``edgemm profile`` on them there
    and removes the directory; returns the JSON report, the device's edgemm version and the paths
    the bundles had there."""
    for bundle in bundles:
        if not bundle.is_dir():
            raise UsageError(f"{bundle}: not a bundle directory")
    if len({b.name for b in bundles}) != len(bundles):
        raise UsageError("--remote: bundles with the same directory name would overwrite each other on the device")
    version = check_edgemm(remote, timeout)
    made = remote.run(["mktemp", "-d", "-t", "edgemm-remote.XXXXXX"], timeout)
    work = made.stdout.strip()
    if made.returncode != 0 or not work.startswith("/"):
        raise RemoteError(f"{remote.url}: cannot make a working directory there ({_last_line(made.stderr)})")
    there = [f"{work}/{b.name}" for b in bundles]
    try:
        for bundle in bundles:
            remote.copy(bundle, work, timeout)
        proc = remote.run([remote.edgemm, "profile", *there, "--json", *args], timeout)
        if proc.returncode != 0:
            raise RemoteError(f"{remote.url}: edgemm profile failed on the device: {_last_line(proc.stderr)}")
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError:
            raise RemoteError(f"{remote.url}: edgemm profile printed no JSON report "
                              f"(stdout began {proc.stdout[:80]!r})") from None
    finally:
        try:
            remote.run(["rm", "-rf", "--", work], timeout)
        except RemoteError:
            pass  # the measurement (or its error) matters more than the leftover directory
    return report, version, there
