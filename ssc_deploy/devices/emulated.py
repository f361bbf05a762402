"""An emulated arm64 device: a Debian arm64 userland run under qemu-user (binfmt_misc).

It checks that exported artifacts run on aarch64 and match PyTorch; its timings are
emulated (50-400x slower, unevenly by runtime) and are labelled so, never ARM figures.

The rootfs is built once by :func:`setup_rootfs` (``ssc-deploy device setup arm64-emulated``)
under ``$SSC_DEPLOY_CACHE/arm64-rootfs`` (default ``~/.cache/ssc-deploy``) and reused.
Every command runs in a private mount namespace (``unshare -m``) where /proc, a fake
aarch64 /proc/cpuinfo (onnxruntime segfaults on the host's x86 one) and a read-only /sys
(XNNPACK needs it) are mounted, so nothing stays mounted on the host afterwards.

The emulated core is a CPU profile (:mod:`.arm_profiles`, ``arm64-emulated[:PROFILE]``, Cortex-A76
by default): every command runs with ``QEMU_CPU=PROFILE`` and that profile's cpuinfo, so the
HWCAPs the runtimes read and the cpuinfo they parse describe the same core. On this device the
benchmark also counts guest instructions per inference (:mod:`.insn_counter`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ssc_deploy.atomic import write_text_atomic
from ssc_deploy.errors import SscDeployError, last_line
from ssc_deploy.runtimes import RUNTIME_TABLE, by_runtime

from .arm_profiles import DEFAULT_PROFILE, DEVICE, ArmProfile, get_profile
from .base import DeviceError, DeviceInfo
from .insn_counter import build_plugin, cannot_count_reason, counted_run, install_qemu_user
from .remote import ShellDevice, parse_runner_output, run_local

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
MARKER = ".ssc-deploy-ready.json"
ARMSITE = "/opt/armsite"
# Runtime wheels installed for aarch64 from the host (pip --platform). ExecuTorch is opt-in:
# its Python runtime links against torch, and the registry's only CPU-only aarch64 torch is
# 2.10.0 (newer aarch64 torch wheels are CUDA builds of about 5 GB). ExecuTorch 1.5.1 loads
# beside torch 2.10.0 but fails at execution ("tensor does not have a device"); 1.1.0, built
# for torch 2.10, runs .pte files exported by 1.5.1 here. About 900 MB more in the rootfs, and
# every runner process spends about 2 minutes importing torch under emulation.
BASE_PACKAGES = ["numpy", "onnxruntime==1.32.0", "ai-edge-litert==2.3.0"]
EXECUTORCH_PACKAGES = ["torch==2.10.0", "executorch==1.1.0"]
# Installed --no-deps (its declared dependencies evaluate x86-only extras on the host): what
# torch and the ExecuTorch runtime need to import.
EXECUTORCH_DEPS = ["flatbuffers", "packaging", "pyyaml", "ruamel.yaml", "sympy", "mpmath", "typing-extensions",
                   "tabulate", "filelock", "fsspec", "jinja2", "markupsafe", "networkx"]


# The runtimes the rootfs has only when set up with --with-executorch (the runtime table's rootfs_optional).
OPTIONAL_RUNTIMES = tuple(spec.runtime for spec in RUNTIME_TABLE if spec.rootfs_optional)


def runtime_check_code() -> str:
    """The Python the rootfs runs to check that its runtimes start: one JSON line with the Python version,
    the machine and each runtime's version by name (the runtime table's ``import_module`` and ``dist``).
    A runtime that fails to import stops it with an error, except an optional one (its error is recorded)."""
    rows = [(spec.runtime, spec.import_module, spec.dist, spec.rootfs_optional) for spec in RUNTIME_TABLE]
    return (
        "import importlib, json, platform, importlib.metadata as md\n"
        "import numpy\n"
        "rt, errors = {'numpy': numpy.__version__}, {}\n"
        f"for key, module, dist, optional in {rows!r}:\n"
        " try:\n  importlib.import_module(module); rt[key] = md.version(dist)\n"
        " except Exception as exc:\n"
        "  if not optional: raise\n"
        "  errors[key] = f'{type(exc).__name__}: {exc}'[:300]\n"
        "print(json.dumps({'python': platform.python_version(), 'machine': platform.machine(), 'runtimes': rt, "
        "'errors': errors}))\n"
    )


def cache_dir() -> Path:
    """``$SSC_DEPLOY_CACHE`` or ``~/.cache/ssc-deploy`` (never inside the repository)."""
    return Path(os.environ.get("SSC_DEPLOY_CACHE") or Path.home() / ".cache" / "ssc-deploy")


def rootfs_dir() -> Path:
    """Where the arm64 rootfs lives once set up."""
    return cache_dir() / "arm64-rootfs"


def cannot_emulate_reason() -> str | None:
    """Why this machine cannot run the emulated device (None when it can, or could after setup)."""
    if sys.platform != "linux":
        return "needs Linux (qemu-user and binfmt_misc)"
    if os.geteuid() != 0:
        return "needs root (chroot, mounts and binfmt_misc registration)"
    for tool, pkg in (("qemu-aarch64-static", "qemu-user-static"), ("unshare", "util-linux"), ("chroot", "coreutils")):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (apt-get install {pkg})"
    if not BINFMT_DIR.exists():
        return "the kernel has no binfmt_misc support"
    return None


def binfmt_registered() -> bool:
    """Whether aarch64 binaries start through qemu via binfmt_misc."""
    return (BINFMT_DIR / "qemu-aarch64").exists()


def ensure_binfmt() -> None:
    """Mount binfmt_misc and register qemu-aarch64 if needed; one-line error when impossible."""
    if binfmt_registered():
        return
    if not (BINFMT_DIR / "register").exists():
        rc = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)], capture_output=True, text=True)
        if rc.returncode != 0:
            raise SscDeployError(f"cannot mount binfmt_misc: {rc.stderr.strip() or 'mount failed'} (needs root outside a restricted container)")
    if not BINFMT_CONF.exists():
        raise SscDeployError(f"{BINFMT_CONF} is missing: apt-get install qemu-user-static")
    try:
        (BINFMT_DIR / "register").write_text(BINFMT_CONF.read_text().strip() + "\n")
    except OSError as exc:
        if not binfmt_registered():
            raise SscDeployError(f"cannot register qemu-aarch64 with binfmt_misc: {exc.strerror or exc}") from None


@dataclass
class EmulatedStatus:
    """Whether the emulated device is usable: ``ready``, ``not set up`` or ``cannot emulate``."""

    state: str
    detail: str
    root: Path


def emulated_status() -> EmulatedStatus:
    """The emulated device's state, with the reason or the cached rootfs's contents."""
    root = rootfs_dir()
    reason = cannot_emulate_reason()
    if reason:
        return EmulatedStatus("cannot emulate", reason, root)
    marker = root / MARKER
    if not marker.is_file():
        return EmulatedStatus("not set up", "run: ssc-deploy device setup arm64-emulated", root)
    try:
        meta = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return EmulatedStatus("not set up", "the cached rootfs marker is unreadable: run setup again", root)
    runtimes = ", ".join(f"{k} {v}" for k, v in meta.get("runtimes", {}).items())
    note = "" if binfmt_registered() else " (binfmt_misc registration is redone on first use)"
    no_counts = cannot_count_reason(cache_dir())
    note += f"; no instruction counts: {no_counts}" if no_counts else ""
    return EmulatedStatus("ready", f"{root} (Python {meta.get('python', '?')}; {runtimes}){note}", root)


def _run_step(argv: list[str], what: str, timeout: float = 1800, log: Path | None = None) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SscDeployError(f"{what} timed out after {timeout:g} s") from None
    if log is not None:
        with open(log, "a") as fh:
            fh.write(f"$ {shlex.join(argv)}\n{proc.stdout}\n{proc.stderr}\n")
    if proc.returncode != 0:
        last = last_line(proc.stderr or proc.stdout, "no output")
        raise SscDeployError(f"{what} failed (exit {proc.returncode}): {last.strip()}" + (f"; log: {log}" if log else ""))


def _read_marker(marker: Path) -> dict:
    """The setup marker's JSON; an unreadable marker reads as empty (the setup is then redone)."""
    try:
        meta = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _pip_platform_args() -> list[str]:
    tags = [f"manylinux_2_{v}_aarch64" for v in range(17, 37)] + ["manylinux2014_aarch64"]
    args = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
    for tag in tags:
        args += ["--platform", tag]
    return args


def cpuinfo_file(root: Path, profile: ArmProfile) -> Path:
    """The profile's fake /proc/cpuinfo in the rootfs (``etc/ssc-deploy/cpuinfo.PROFILE``), written when
    missing or out of date."""
    path = root / "etc" / "ssc-deploy" / f"cpuinfo.{profile.name}"
    text = profile.cpuinfo(os.cpu_count() or 1)
    try:
        current = path.read_text() if path.is_file() else None
        if current != text:
            write_text_atomic(path, text)
    except (OSError, SscDeployError) as exc:
        raise DeviceError(f"{DEVICE}: cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return path


def _chroot_argv(root: Path, command: str, binds: dict[str, str] | None = None,
                 profile: ArmProfile | None = None) -> list[str]:
    """Run ``command`` with /bin/sh in the rootfs as the ``profile``'s core (the default one when None),
    inside a private mount namespace."""
    profile = profile or get_profile(None)
    r = shlex.quote(str(root))
    mounts = [
        f"mount -t proc proc {r}/proc",
        f"mount --bind {shlex.quote(str(cpuinfo_file(root, profile)))} {r}/proc/cpuinfo",
        f"mount -t sysfs -o ro sysfs {r}/sys",
    ]
    for host_path, dev_path in (binds or {}).items():
        mounts.append(f"mount --bind {shlex.quote(host_path)} {r}{shlex.quote(dev_path)}")
    qemu_cpu = f"QEMU_CPU={profile.name}"  # read by qemu at every exec of an aarch64 program
    inner = shlex.join(
        ["env", qemu_cpu, "chroot", str(root), "/usr/bin/env", "-i", qemu_cpu, "PATH=/usr/local/bin:/usr/bin:/bin",
         "LANG=C.UTF-8", "HOME=/root", "/bin/sh", "-c", command]
    )
    script = " && ".join(mounts) + f" && exec {inner}"
    return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script]


def setup_insn_counter(on_step: Callable[[str], None] | None = None) -> Path:
    """Install qemu-user (the dynamic ``qemu-aarch64`` that takes ``-plugin``) and build the
    instruction-counting plugin into the cache; reused when already there."""
    step = on_step or (lambda _s: None)
    step("instruction counter (qemu-user, plugin)")
    install_qemu_user()
    return build_plugin(cache_dir())


def setup_rootfs(
    with_executorch: bool = False,
    on_step: Callable[[str], None] | None = None,
    mirror: str = DEBIAN_MIRROR,
) -> Path:
    """Build (or reuse) the arm64 rootfs with Python, numpy, onnxruntime and LiteRT.

    Idempotent: a complete cache (marker file) is reused in seconds; an interrupted build
    resumes in ``arm64-rootfs.partial`` and is renamed into place only when complete.
    Raises :class:`SscDeployError` with one line when this machine cannot emulate.
    """
    step = on_step or (lambda _s: None)
    reason = cannot_emulate_reason()
    if reason:
        raise SscDeployError(f"cannot set up arm64-emulated: {reason}")
    step("binfmt_misc")
    ensure_binfmt()
    setup_insn_counter(step)
    root = rootfs_dir()
    marker = root / MARKER
    if marker.is_file() and (not with_executorch or set(OPTIONAL_RUNTIMES) <= set(_read_marker(marker).get("runtimes", {}))):
        step("cached")
        return root
    partial = root.with_name(root.name + ".partial")
    if shutil.which("debootstrap") is None and not (root.is_dir() or partial.is_dir()):
        raise SscDeployError("cannot set up arm64-emulated: 'debootstrap' is not installed (apt-get install debootstrap)")
    work = root if root.is_dir() else partial
    if marker.exists():  # adding ExecuTorch to a complete rootfs: not "ready" until it is done again
        marker.unlink()
    work.parent.mkdir(parents=True, exist_ok=True)
    log = work.parent / "arm64-setup.log"
    if not (work / "usr" / "bin" / "python3").exists() or (work / "debootstrap").exists():
        if not (work / "debootstrap" / "debootstrap").exists():
            step("debootstrap (download)")
            if work.exists():
                shutil.rmtree(work)
            _run_step(
                ["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase", "--include=python3,ca-certificates",
                 DEBIAN_SUITE, str(work), mirror], "debootstrap (first stage)", log=log,
            )
        shutil.copy2(shutil.which("qemu-aarch64-static") or "/usr/bin/qemu-aarch64-static", work / "usr" / "bin")
        step("debootstrap (second stage, emulated: minutes)")
        _run_step(["chroot", str(work), "/debootstrap/debootstrap", "--second-stage"], "debootstrap (second stage)", log=log)
    step("runtime wheels (aarch64)")
    site = work / ARMSITE.lstrip("/")
    packages = BASE_PACKAGES
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *_pip_platform_args(), "--target", str(site), "--upgrade"]
    _run_step(pip + packages, "installing aarch64 wheels (numpy, onnxruntime, ai-edge-litert)", log=log)
    if with_executorch:
        step("ExecuTorch 1.1.0 + torch 2.10.0 (aarch64, about 900 MB)")
        _run_step(pip + ["--no-deps", *EXECUTORCH_PACKAGES, *EXECUTORCH_DEPS], "installing aarch64 ExecuTorch", log=log)
    pth = work / "usr" / "lib" / "python3" / "dist-packages" / "ssc-deploy-armsite.pth"
    pth.parent.mkdir(parents=True, exist_ok=True)
    pth.write_text(ARMSITE + "\n")
    (work / "data" / "local" / "tmp").mkdir(parents=True, exist_ok=True)
    step("checking the runtimes under emulation")
    probe = runtime_check_code()
    try:
        rc, out, err = run_local(_chroot_argv(work, f"python3 -c {shlex.quote(probe)}"), 900, "arm64-emulated runtime check")
    except DeviceError as exc:
        raise SscDeployError(str(exc)) from None
    lines = out.strip().splitlines()
    if rc != 0 or not lines:
        last = last_line(err, f"exit {rc}")
        raise SscDeployError(f"the arm64 rootfs was built but its runtimes do not start: {last.strip()}")
    try:
        meta = json.loads(lines[-1])
    except json.JSONDecodeError:
        raise SscDeployError(f"the arm64 runtime check printed no JSON result: {lines[-1].strip()[:200]}") from None
    if meta.get("machine") != "aarch64":
        raise SscDeployError(f"the rootfs reports machine '{meta.get('machine')}', not aarch64: is binfmt_misc working?")
    missing = [rt for rt in OPTIONAL_RUNTIMES if rt not in meta["runtimes"]] if with_executorch else []
    if missing:
        raise SscDeployError(f"{by_runtime(missing[0]).label} was installed in the rootfs but does not load under "
                             f"emulation: {meta.get('errors', {}).get(missing[0], 'unknown error')}")
    meta.pop("errors", None)
    meta["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if work != root:
        os.replace(work, root)
    (root / MARKER).write_text(json.dumps(meta, indent=1) + "\n")
    step("ready")
    return root


class EmulatedArm64Device(ShellDevice):
    """Runs artifacts in the cached arm64 rootfs under qemu-user as one CPU profile's core; timings are
    emulated, instruction counts repeat within 1 %."""

    name = DEVICE
    kind = DEVICE
    counts_instructions = True

    def __init__(self, root: Path | None = None, command_timeout: float = 60.0, profile: str | None = None) -> None:
        """``profile``: a name from :data:`~.arm_profiles.PROFILES` (one-line error for others), the default core
        when None. The device is called ``arm64-emulated`` as the default core, else ``arm64-emulated:PROFILE``."""
        super().__init__()
        self.profile = get_profile(profile)
        if self.profile.name != DEFAULT_PROFILE:
            self.name = f"{DEVICE}:{self.profile.name}"
        self.root = Path(root) if root else rootfs_dir()
        self.command_timeout = command_timeout
        self._info: DeviceInfo | None = None

    def _ready(self) -> None:
        reason = cannot_emulate_reason()
        if reason:
            raise DeviceError(f"{self.name}: cannot emulate here: {reason}")
        if not (self.root / MARKER).is_file():
            raise DeviceError(f"{self.name}: not set up: run 'ssc-deploy device setup arm64-emulated'")
        try:
            ensure_binfmt()
        except SscDeployError as exc:
            raise DeviceError(f"{self.name}: {exc}") from None

    def _shell(self, command: str, timeout: float) -> tuple[int, str, str]:
        self._ready()
        return run_local(_chroot_argv(self.root, command, profile=self.profile), timeout,
                         f"{self.name}: '{command[:80]}'")

    def count_runner(self, args: list[str], timeout: float) -> tuple[dict, dict[str, int]]:
        """Run the device runner with ``args`` under the counting qemu (outside the chroot, see
        :func:`~.insn_counter.counted_run`): its JSON result and the guest's instruction and memory-access counts."""
        self._ready()
        runner = self.runner_device_path()
        rc, out, err, counts = counted_run(self.root, cache_dir(), self.profile, cpuinfo_file(self.root, self.profile),
                                           ["/usr/bin/python3", runner, *args], timeout,
                                           f"{self.name}: counted runner")
        return parse_runner_output(self.name, out, err, rc), counts

    def _make_work_dir(self) -> str:
        self._ready()
        dev = f"/tmp/ssc-deploy-{uuid.uuid4().hex[:10]}"
        try:
            (self.root / dev.lstrip("/")).mkdir(parents=True)
        except OSError as exc:
            raise DeviceError(f"{self.name}: cannot create {dev} in the rootfs: {exc.strerror or exc}") from None
        return dev

    def _push(self, local: Path, remote: str, timeout: float) -> None:
        dest = self.root / remote.lstrip("/")
        try:
            shutil.copyfile(local, dest)
        except OSError as exc:
            raise DeviceError(f"{self.name}: cannot copy {local.name} to {remote}: {exc.strerror or exc}") from None

    def _remove_work_dir(self, path: str) -> None:
        shutil.rmtree(self.root / path.lstrip("/"), ignore_errors=True)

    def info(self) -> DeviceInfo:
        """The rootfs's Python and runtimes (from the setup marker) and the emulated CPU."""
        if self._info is None:
            self._ready()
            meta = _read_marker(self.root / MARKER)
            rt = {k: v for k, v in meta.get("runtimes", {}).items() if k != "numpy"}
            self._info = DeviceInfo(
                name=self.name, kind=self.kind, machine="aarch64", model=f"qemu-user -cpu {self.profile.describe()}",
                os=f"Debian {DEBIAN_SUITE} arm64 userland", cores=os.cpu_count() or 1,
                python=meta.get("python", ""), runtimes=rt, emulated=True,
                extra={"rootfs": str(self.root), "cpu_profile": self.profile.name,
                       "cpu_features": " ".join(self.profile.features),
                       **({"warning": self.profile.warning} if self.profile.warning else {}),
                       "note": "emulated timings: never compare with real ARM figures"},
            )
        return self._info
