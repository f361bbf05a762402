"""A real OpenSSH server (Debian's openssh-server) on a loopback port with throwaway keys.

The "board" is this host: the device URL points its Python at this venv's interpreter
(``?python=...``) so the runner finds numpy and onnxruntime there.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SSHD = "/usr/sbin/sshd"


def sshd_unavailable() -> str | None:
    """Why the SSH tests cannot run here (None when they can)."""
    if not Path(SSHD).exists():
        return "sshd is not installed (apt-get install openssh-server; .ci/setup-devices.sh does it)"
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (apt-get install openssh-client)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LoopbackSshd:
    """A running sshd; :meth:`url` builds the ``--device`` value for it."""

    port: int
    user: str
    identity: Path
    known_hosts: Path
    proc: subprocess.Popen
    log: Path

    def url(self, python: str | None = sys.executable, **extra: str) -> str:
        query = {"identity": str(self.identity), "known_hosts": str(self.known_hosts), **extra}
        if python:
            query["python"] = python
        q = "&".join(f"{k}={quote(v, safe='/')}" for k, v in query.items())
        return f"ssh://{self.user}@127.0.0.1:{self.port}?{q}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_sshd(tmp: Path) -> LoopbackSshd:
    """Start sshd on 127.0.0.1:<free port>, accepting a fresh ed25519 key for the current user."""
    tmp.mkdir(parents=True, exist_ok=True)
    host_key, user_key = tmp / "host_ed25519", tmp / "user_ed25519"
    for key in (host_key, user_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (tmp / "authorized_keys").write_text(Path(f"{user_key}.pub").read_text())
    os.chmod(tmp / "authorized_keys", 0o600)
    port = free_port()
    user = getpass.getuser()
    config = tmp / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {tmp / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        "UsePAM no\nStrictModes no\nAcceptEnv LANG\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    log = tmp / "sshd.log"
    with open(log, "wb") as err:  # sshd keeps its own copy of the descriptor
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 10
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("sshd did not start listening within 10 s")
    return LoopbackSshd(port, user, user_key, tmp / "known_hosts", proc, log)
