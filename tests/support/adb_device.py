"""A loopback test device speaking the adb device protocol (the adbd side), for Debian's real
``adb`` client: ``adb connect 127.0.0.1:PORT`` then ``devices -l``, ``shell`` and ``push``/``pull``.

Implements what AOSP documents in ``packages/modules/adb/protocol.txt`` (24-byte little-endian
message headers: CNXN, AUTH, OPEN, OKAY, WRTE, CLSE; one WRTE in flight per stream until
the peer's OKAY), ``SERVICES.TXT`` (``shell:`` and the ``shell,v2`` packet protocol with exit
codes) and ``SYNC.TXT`` (STAT, LIST, SEND, RECV, DONE, QUIT).

Commands run in the emulated arm64 rootfs (chroot in a private mount namespace with the
device's sandbox bind-mounted on /data/local/tmp) when ``rootfs`` is given, else on this
host in the sandbox (``/data/local/tmp`` in command text is rewritten to the sandbox). It is
not Android: there is no getprop, toybox or SELinux.

Faults for tests: ``mode="unauthorized"`` (answers CNXN with AUTH, never accepts),
``mode="offline"`` (never answers CNXN), ``hang_on`` (commands containing it never finish),
``no_space`` (every SEND fails with ENOSPC), :meth:`vanish` (drops every connection).
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import stat
import struct
import subprocess
import threading
from pathlib import Path

A_SYNC, A_CNXN, A_AUTH, A_OPEN, A_OKAY, A_CLSE, A_WRTE = (
    int.from_bytes(c, "little") for c in (b"SYNC", b"CNXN", b"AUTH", b"OPEN", b"OKAY", b"CLSE", b"WRTE")
)
A_VERSION = 0x01000001
MAX_PAYLOAD = 256 * 1024
SYNC_DATA_MAX = 64 * 1024
DEVICE_PATH = "/data/local/tmp"
# shell protocol v2 packet ids
ID_STDIN, ID_STDOUT, ID_STDERR, ID_EXIT, ID_CLOSE_STDIN = 0, 1, 2, 3, 4


class _Stream:
    def __init__(self, conn: "_Connection", local_id: int, remote_id: int) -> None:
        self.conn, self.local_id, self.remote_id = conn, local_id, remote_id
        self.inbox: "queue.Queue[bytes | None]" = queue.Queue()
        self.can_send = threading.Semaphore(1)
        self.closed = threading.Event()
        self._buf = b""

    def write(self, data: bytes) -> None:
        """Send ``data`` in WRTE messages, waiting for the peer's OKAY between them."""
        for i in range(0, len(data), self.conn.max_payload):
            while not self.can_send.acquire(timeout=0.2):
                if self.closed.is_set():
                    raise ConnectionError("stream closed")
            if self.closed.is_set():
                raise ConnectionError("stream closed")
            self.conn.send(A_WRTE, self.local_id, self.remote_id, data[i : i + self.conn.max_payload])

    def read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.inbox.get()
            if chunk is None:
                raise ConnectionError("stream closed")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self.inbox.put(None)
            try:
                self.conn.send(A_CLSE, self.local_id, self.remote_id)
            except OSError:
                pass
            self.conn.streams.pop(self.local_id, None)


class _Connection:
    def __init__(self, device: "LoopbackAdbDevice", sock: socket.socket) -> None:
        self.device, self.sock = device, sock
        self.lock = threading.Lock()
        self.streams: dict[int, _Stream] = {}
        self.next_id = 1
        self.max_payload = MAX_PAYLOAD

    def send(self, cmd: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        header = struct.pack("<6I", cmd, arg0, arg1, len(data), sum(data) & 0xFFFFFFFF, cmd ^ 0xFFFFFFFF)
        with self.lock:
            self.sock.sendall(header + data)

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("peer closed")
            buf += chunk
        return buf

    def serve(self) -> None:
        try:
            while True:
                cmd, arg0, arg1, length, _check, _magic = struct.unpack("<6I", self._recv_exact(24))
                data = self._recv_exact(length) if length else b""
                self.handle(cmd, arg0, arg1, data)
        except (ConnectionError, OSError):
            pass
        finally:
            for s in list(self.streams.values()):
                s.closed.set()
                s.inbox.put(None)
            try:
                self.sock.close()
            except OSError:
                pass

    def handle(self, cmd: int, arg0: int, arg1: int, data: bytes) -> None:
        dev = self.device
        if cmd == A_CNXN:
            self.max_payload = min(MAX_PAYLOAD, arg1 or MAX_PAYLOAD)
            if dev.mode == "offline":
                return
            if dev.mode == "unauthorized":
                self.send(A_AUTH, 1, 0, os.urandom(20))  # TOKEN; signatures and keys are never accepted
                return
            banner = (
                "device::ro.product.name=ssc_loopback;ro.product.model=SSC_Loopback;"
                "ro.product.device=loopback;features=shell_v2,cmd"
            )
            self.send(A_CNXN, A_VERSION, MAX_PAYLOAD, banner.encode())
        elif cmd == A_AUTH:
            if dev.mode == "unauthorized" and arg0 == 2:  # a SIGNATURE: reject with a new token
                self.send(A_AUTH, 1, 0, os.urandom(20))
        elif cmd == A_OPEN:
            service = data.rstrip(b"\0").decode("utf-8", "replace")
            local_id = self.next_id
            self.next_id += 1
            stream = _Stream(self, local_id, arg0)
            if service.startswith("shell") and ":" in service:
                opts, _, command = service.partition(":")
                handler = self.device._shell
                args = (stream, command, "v2" in opts.split(","))
            elif service == "sync:":
                handler, args = self.device._sync, (stream,)
            else:
                self.send(A_CLSE, 0, arg0)
                return
            self.streams[local_id] = stream
            self.send(A_OKAY, local_id, arg0)
            threading.Thread(target=self._run, args=(handler, stream, args), daemon=True).start()
        elif cmd == A_OKAY:
            s = self.streams.get(arg1)
            if s is not None:
                s.remote_id = arg0
                s.can_send.release()
        elif cmd == A_WRTE:
            s = self.streams.get(arg1)
            if s is not None:
                s.inbox.put(data)
                self.send(A_OKAY, arg1, arg0)
        elif cmd == A_CLSE:
            s = self.streams.pop(arg1, None)
            if s is not None:
                s.closed.set()
                s.inbox.put(None)

    @staticmethod
    def _run(handler, stream: _Stream, args: tuple) -> None:
        try:
            handler(*args)
        except (ConnectionError, OSError):
            pass
        finally:
            stream.close()


class LoopbackAdbDevice:
    """An adb device on 127.0.0.1 (see the module docstring). Use as a context manager."""

    def __init__(
        self,
        sandbox: Path,
        rootfs: Path | None = None,
        mode: str = "device",
        hang_on: str | None = None,
        no_space: bool = False,
    ) -> None:
        self.sandbox = Path(sandbox)
        self.sandbox.mkdir(parents=True, exist_ok=True)
        self.rootfs = Path(rootfs) if rootfs else None
        self.mode, self.hang_on, self.no_space = mode, hang_on, no_space
        self.commands: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._conns: list[_Connection] = []
        self._procs: list[subprocess.Popen] = []
        self._gone = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            if self._gone:
                sock.close()
                continue
            conn = _Connection(self, sock)
            self._conns.append(conn)
            threading.Thread(target=conn.serve, daemon=True).start()

    def vanish(self) -> None:
        """The device disappears: every connection drops and new ones are refused."""
        self._gone = True
        for conn in self._conns:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._kill_procs()

    def _kill_procs(self) -> None:
        for p in self._procs:
            _kill_group(p)

    def close(self) -> None:
        self.vanish()
        self._server.close()

    def __enter__(self) -> "LoopbackAdbDevice":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- services ------------------------------------------------------------------------
    def host_path(self, device_path: str) -> Path:
        """Where a device path is on this host (the sandbox is the device's /data/local/tmp)."""
        p = os.path.normpath(device_path)
        if p == DEVICE_PATH or p.startswith(DEVICE_PATH + "/"):
            return self.sandbox / p[len(DEVICE_PATH) :].lstrip("/")
        if self.rootfs is not None:
            return self.rootfs / p.lstrip("/")
        return Path(p)

    def _argv(self, command: str) -> tuple[list[str], str | None]:
        if self.rootfs is not None:
            from ssc_deploy.devices.emulated import _chroot_argv

            return _chroot_argv(self.rootfs, f"cd / && {command}", binds={str(self.sandbox): DEVICE_PATH}), None
        return ["/bin/sh", "-c", command.replace(DEVICE_PATH, str(self.sandbox))], str(self.sandbox)

    def _shell(self, stream: _Stream, command: str, v2: bool) -> None:
        self.commands.append(command)
        if self.hang_on and self.hang_on in command:
            stream.closed.wait()
            return
        argv, cwd = self._argv(command)
        proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE if v2 else subprocess.STDOUT, start_new_session=True)
        self._procs.append(proc)

        def pump(pipe, pid: int) -> None:
            for chunk in iter(lambda: os.read(pipe.fileno(), 65536), b""):
                stream.write(struct.pack("<BI", pid, len(chunk)) + chunk if v2 else chunk)

        def feed() -> None:  # v2 stdin packets from the client
            buf = b""
            while True:
                chunk = stream.inbox.get()
                if chunk is None:
                    break
                buf += chunk
                while len(buf) >= 5:
                    pid, n = struct.unpack("<BI", buf[:5])
                    if len(buf) < 5 + n:
                        break
                    body, buf = buf[5 : 5 + n], buf[5 + n :]
                    try:
                        if pid == ID_STDIN:
                            proc.stdin.write(body)
                            proc.stdin.flush()
                        elif pid == ID_CLOSE_STDIN:
                            proc.stdin.close()
                    except (OSError, ValueError):
                        pass
            _kill_group(proc)

        pumps = [threading.Thread(target=pump, args=(proc.stdout, ID_STDOUT), daemon=True)]
        if v2:
            pumps.append(threading.Thread(target=pump, args=(proc.stderr, ID_STDERR), daemon=True))
        else:
            proc.stdin.close()
        threading.Thread(target=feed, daemon=True).start()
        for t in pumps:
            t.start()
        for t in pumps:
            t.join()
        rc = proc.wait()
        if v2:
            stream.write(struct.pack("<BI", ID_EXIT, 1) + bytes([rc & 0xFF]))

    def _sync(self, stream: _Stream) -> None:
        def reply(tag: bytes, *words: int, data: bytes = b"") -> None:
            stream.write(tag + b"".join(struct.pack("<I", w) for w in words) + data)

        while True:
            tag = stream.read_exact(4)
            (n,) = struct.unpack("<I", stream.read_exact(4))
            if tag == b"QUIT":
                return
            arg = stream.read_exact(n)
            if tag == b"STAT":
                try:
                    st = os.stat(self.host_path(arg.decode()))
                    reply(b"STAT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
                except OSError:
                    reply(b"STAT", 0, 0, 0)
            elif tag == b"LIST":
                d = self.host_path(arg.decode())
                if d.is_dir():
                    for entry in sorted(os.listdir(d)):
                        st = os.lstat(d / entry)
                        name = entry.encode()
                        reply(b"DENT", st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime), len(name), data=name)
                reply(b"DONE", 0, 0, 0, 0)
            elif tag == b"SEND":
                path, _, mode = arg.decode().rpartition(",")
                chunks = []
                while True:
                    t = stream.read_exact(4)
                    (m,) = struct.unpack("<I", stream.read_exact(4))
                    if t == b"DATA":
                        chunks.append(stream.read_exact(m))
                    elif t == b"DONE":
                        break
                    else:
                        return
                if self.no_space:
                    msg = b"No space left on device"
                    reply(b"FAIL", len(msg), data=msg)
                    continue
                dest = self.host_path(path)
                try:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(b"".join(chunks))
                    os.chmod(dest, stat.S_IMODE(int(mode or "644")))
                    reply(b"OKAY", 0)
                except OSError as exc:
                    msg = (exc.strerror or str(exc)).encode()
                    reply(b"FAIL", len(msg), data=msg)
            elif tag == b"RECV":
                try:
                    data = self.host_path(arg.decode()).read_bytes()
                except OSError as exc:
                    msg = (exc.strerror or str(exc)).encode()
                    reply(b"FAIL", len(msg), data=msg)
                    continue
                for i in range(0, len(data), SYNC_DATA_MAX):
                    part = data[i : i + SYNC_DATA_MAX]
                    reply(b"DATA", len(part), data=part)
                reply(b"DONE", 0)
            else:
                msg = f"unsupported sync request {tag!r}".encode()
                reply(b"FAIL", len(msg), data=msg)
                return


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill a shell command and everything it started (it runs in its own session)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
