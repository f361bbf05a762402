"""ARM Linux boards (Raspberry Pi, Jetson...) over the OpenSSH client:
``--device ssh://user@host[:port][?python=PATH&identity=KEYFILE&known_hosts=FILE&connect_timeout=S]``.

Authentication is by key only (``BatchMode=yes``: never a password prompt); new host keys
are accepted once and pinned (``StrictHostKeyChecking=accept-new``). Files are staged in a
``mktemp -d`` directory on the board, removed by :meth:`SshDevice.cleanup`. Every command
has a timeout on both sides: the client gives up and the board kills the command
(:func:`remote_deadline`). The board's ``python3`` (or ``?python=PATH``, e.g. a venv's
interpreter) needs numpy and a runtime.
"""

from __future__ import annotations

import math
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ssc_deploy.errors import SscDeployError, last_line

from .android import info_script, parse_info
from .base import DeviceError, DeviceInfo
from .remote import ShellDevice


# Seconds the board waits past the client's timeout before it kills the command itself.
REMOTE_GRACE = 2


def remote_deadline(command: str, timeout: float) -> str:
    """``command`` wrapped so the board kills it too, REMOTE_GRACE s after ``timeout``.

    Closing the ssh connection does not stop a command that has no terminal, so without
    this a hung runner would keep running on the board. Uses the board's ``timeout``
    (coreutils or busybox) when it takes ``-s KILL SECS``; otherwise runs the command as is.
    """
    secs = int(math.ceil(timeout)) + REMOTE_GRACE
    inner = shlex.quote(command)
    return (f"if timeout -s KILL 5 true >/dev/null 2>&1; then exec timeout -s KILL {secs} sh -c {inner}; "
            f"else exec sh -c {inner}; fi")


class SshDevice(ShellDevice):
    """A board reached with ``ssh``; every remote command has a timeout."""

    kind = "ssh"

    def __init__(
        self,
        host: str,
        user: str | None = None,
        port: int = 22,
        python: str = "python3",
        identity: str | None = None,
        known_hosts: str | None = None,
        connect_timeout: float = 10.0,
        command_timeout: float = 60.0,
    ) -> None:
        super().__init__()
        for what, value in (("user", user), ("host", host)):
            if value and value.startswith("-"):
                # ssh would read it as an option (-oProxyCommand=... runs a command).
                raise SscDeployError(f"bad SSH device: the {what} '{value}' must not start with '-'")
        self.host, self.user, self.port = host, user, port
        self.python = python
        self.identity, self.known_hosts = identity, known_hosts
        self.connect_timeout, self.command_timeout = connect_timeout, command_timeout
        self.name = f"ssh://{user + '@' if user else ''}{host}:{port}"
        self._info: DeviceInfo | None = None

    @classmethod
    def from_url(cls, url: str) -> "SshDevice":
        """Parse ``ssh://user@host[:port][?python=...&identity=...&known_hosts=...&connect_timeout=...]``."""
        parts = urlsplit(url)
        if parts.scheme != "ssh" or not parts.hostname:
            raise SscDeployError(f"bad SSH device '{url}': use ssh://user@host[:port]")
        try:
            port = parts.port or 22
        except ValueError:
            raise SscDeployError(f"bad SSH device '{url}': the port must be a number") from None
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"python", "identity", "known_hosts", "connect_timeout"}
        if unknown:
            raise SscDeployError(f"bad SSH device '{url}': unknown option(s) {', '.join(sorted(unknown))} "
                                 "(use python, identity, known_hosts, connect_timeout)")
        try:
            ct = float(query.get("connect_timeout", 10))
        except ValueError:
            raise SscDeployError(f"bad SSH device '{url}': connect_timeout must be a number of seconds") from None
        return cls(
            host=parts.hostname, user=unquote(parts.username) if parts.username else None, port=port,
            python=query.get("python", "python3"), identity=query.get("identity"),
            known_hosts=query.get("known_hosts"), connect_timeout=ct,
        )

    def _ssh_argv(self, command: str) -> list[str]:
        ssh = shutil.which("ssh")
        if not ssh:
            raise SscDeployError("the OpenSSH client 'ssh' is not installed (apt-get install openssh-client)")
        argv = [
            ssh, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"ConnectTimeout={int(max(1, self.connect_timeout))}",
            "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR",
            "-p", str(self.port),
        ]
        if self.identity:
            argv += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        target = f"{self.user}@{self.host}" if self.user else self.host
        # "--" before the destination: ssh reads no option from it or from the command after it.
        return [*argv, "--", target, command]

    def _exec(self, command: str, timeout: float, stdin=None) -> tuple[int, str, str]:
        try:
            proc = subprocess.run(self._ssh_argv(remote_deadline(command, timeout)), stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.name}: '{command[:60]}' timed out after {timeout:g} s (board gone or hung?)") from None
        out, err = proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
        if proc.returncode == 255:  # ssh itself failed: unreachable, refused, key rejected, connection lost
            last = last_line(err, "connection failed")
            raise DeviceError(f"{self.name}: ssh failed: {last}")
        return proc.returncode, out, err

    def _shell(self, command: str, timeout: float) -> tuple[int, str, str]:
        return self._exec(command, timeout)

    def _push(self, local: Path, remote: str, timeout: float) -> None:
        size_mb = local.stat().st_size / 2**20
        with open(local, "rb") as fh:
            rc, out, err = self._exec(f"cat > {shlex.quote(remote)}", max(timeout, 30 + 5 * size_mb), stdin=fh)
        if rc != 0:
            text = (err or out).strip()
            if "no space" in text.lower():
                raise DeviceError(f"{self.name}: no space left on the board while copying {local.name} to {remote}")
            raise DeviceError(f"{self.name}: cannot copy {local.name} to {remote}: {last_line(text, f'exit {rc}')}")

    def _make_work_dir(self) -> str:
        rc, out, err = self._exec("mktemp -d /tmp/ssc-deploy.XXXXXX", self.command_timeout)
        path = out.strip()
        if rc != 0 or not path.startswith("/"):
            raise DeviceError(f"{self.name}: cannot create a staging directory: {err.strip() or f'exit {rc}'}")
        return path

    def info(self) -> DeviceInfo:
        """CPU architecture, kernel, cores, max frequencies, model (device tree) and the board's Python."""
        if self._info is None:
            script = info_script(self.python) + "; echo dtmodel=$(tr -d '\\0' < /proc/device-tree/model 2>/dev/null)"
            rc, out, err = self._exec(script, self.command_timeout)
            facts = parse_info(out)
            py = facts.get("pyinfo", {})
            self._info = DeviceInfo(
                name=self.name, kind=self.kind, machine=facts.get("machine", ""),
                model=facts.get("dtmodel") or "unknown", os=facts.get("kernel") or "unknown",
                cores=int(facts["nproc"]) if facts.get("nproc", "").isdigit() else 0,
                max_freq_mhz=[f / 1000.0 for f in facts["freq"]],
                python=py.get("python", ""), runtimes=py.get("runtimes", {}),
                extra={"python_path": self.python},
            )
        return self._info


__all__ = ["SshDevice"]
