"""Guest instruction counts under qemu-user: the project's TCG plugin (``qemu_insn_plugin.c``), built
with the system C compiler, and one counted run of an aarch64 command.

The plugin needs Debian's dynamic ``qemu-aarch64`` (package qemu-user; qemu-user-static takes no
``-plugin``). That is an x86 program with x86 libraries, so it runs outside the arm64 chroot,
with ``-L ROOTFS`` resolving the guest's paths into the rootfs.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from ssc_deploy.atomic import atomic_path
from ssc_deploy.errors import SscDeployError, last_line

from .arm_profiles import ArmProfile
from .base import DeviceError
from .remote import run_local

PLUGIN_SOURCE = Path(__file__).with_name("qemu_insn_plugin.c")
QEMU = "qemu-aarch64"
QEMU_PACKAGE = "qemu-user"
# The counted keys the plugin writes (the main guest thread's), and what a counted run returns.
COUNT_KEYS = ("insns", "loads", "stores")


def plugin_path(cache: Path) -> Path:
    """Where the plugin built from this package's source lives (named by the source's hash)."""
    digest = hashlib.sha256(PLUGIN_SOURCE.read_bytes()).hexdigest()[:12]
    return cache / "qemu-plugins" / f"libsscinsn-{digest}.so"


def cannot_count_reason(cache: Path) -> str | None:
    """Why instructions cannot be counted here (None when they can)."""
    if shutil.which(QEMU) is None:
        return f"'{QEMU}' is not installed (apt-get install {QEMU_PACKAGE}; ssc-deploy device setup arm64-emulated does)"
    if not plugin_path(cache).is_file():
        return "the instruction-counting plugin is not built: run ssc-deploy device setup arm64-emulated"
    return None


def install_qemu_user() -> None:
    """Install Debian's dynamic qemu-user with apt when ``qemu-aarch64`` is missing; one-line error otherwise."""
    if shutil.which(QEMU) is not None:
        return
    if shutil.which("apt-get") is None:
        raise SscDeployError(f"'{QEMU}' is not installed and there is no apt-get: install {QEMU_PACKAGE}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", QEMU_PACKAGE]
    proc = subprocess.run(install, capture_output=True, text=True, env=env)
    if proc.returncode != 0:  # a stale package list: update once and try again
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True, env=env)
        proc = subprocess.run(install, capture_output=True, text=True, env=env)
    if proc.returncode != 0 or shutil.which(QEMU) is None:
        last = last_line(proc.stderr, f"exit {proc.returncode}")
        raise SscDeployError(f"cannot install {QEMU_PACKAGE} (for instruction counts): {last.strip()}")


def build_plugin(cache: Path) -> Path:
    """Compile the plugin with the system C compiler into ``cache`` (reused when already built)."""
    out = plugin_path(cache)
    if out.is_file():
        return out
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise SscDeployError("no C compiler to build the instruction-counting plugin (apt-get install gcc)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".so.tmp") as tmp:
        proc = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(PLUGIN_SOURCE)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            last = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:200])
            raise SscDeployError(f"building the instruction-counting plugin failed: {last.strip()}")
    for stale in out.parent.glob("libsscinsn-*.so"):  # built from an older source
        if stale != out:
            stale.unlink(missing_ok=True)
    return out


def parse_counts(text: str) -> dict[str, int]:
    """The plugin's ``key value`` lines as a dict (unknown keys and malformed lines are ignored)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in COUNT_KEYS and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def counted_run(root: Path, cache: Path, profile: ArmProfile, cpuinfo: Path, argv: list[str],
                timeout: float, what: str) -> tuple[int, str, str, dict[str, int]]:
    """Run the aarch64 command ``argv`` (guest paths) from ``root`` under the counting qemu.

    It runs in a private mount namespace whose /proc/cpuinfo is ``cpuinfo`` (the profile's), with a
    fixed environment (one BLAS thread, a fixed hash seed) so two runs execute the same instructions.
    Returns (rc, stdout, stderr, counts); a run that wrote no counts is a :class:`DeviceError`.
    """
    reason = cannot_count_reason(cache)
    if reason:
        raise DeviceError(f"{what}: cannot count instructions: {reason}")
    with tempfile.TemporaryDirectory(prefix="ssc-deploy-insns-") as tmp:
        out = Path(tmp) / "counts.txt"
        env = ["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/root",
               "PYTHONPATH=/opt/armsite", "PYTHONHASHSEED=0", "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1"]
        guest = [str(root / argv[0].lstrip("/")), *argv[1:]]
        qemu = [QEMU, "-cpu", profile.name, "-plugin", f"{plugin_path(cache)},out={out}", "-L", str(root), *guest]
        script = f"mount --bind {shlex.quote(str(cpuinfo))} /proc/cpuinfo && exec {shlex.join(env + qemu)}"
        rc, stdout, stderr = run_local(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script],
                                       timeout, what)
        counts = parse_counts(out.read_text()) if out.is_file() else {}
    if "insns" not in counts:
        last = last_line(stderr, f"exit {rc}")
        raise DeviceError(f"{what}: the instruction counter wrote no figure: {last}")
    return rc, stdout, stderr, counts
