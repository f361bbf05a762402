"""CPU profiles of the emulated arm64 device: one table of qemu model -> HWCAPs -> /proc/cpuinfo.

XNNPACK (in onnxruntime, LiteRT and ExecuTorch) picks its kernels from the HWCAPs qemu reports
for the model and from /proc/cpuinfo (which qemu 7.2 does not emulate), so the fake cpuinfo must
describe the same core: a cpuinfo listing ``asimddp`` on a core without dot product ends in SIGILL.
The features and MIDR values below are what qemu 7.2 reports for each model (``getauxval`` and
``mrs midr_el1`` under ``-cpu MODEL``; tests/test_arm_profiles.py checks them against qemu).
"""

from __future__ import annotations

from dataclasses import dataclass

from ssc_deploy.errors import SscDeployError

DEVICE = "arm64-emulated"

_BASE = ("fp", "asimd", "aes", "pmull", "sha1", "sha2", "crc32")
_V82 = (*_BASE, "atomics", "fphp", "asimdhp", "cpuid", "asimdrdm", "lrcpc", "dcpop", "asimddp")


@dataclass(frozen=True)
class ArmProfile:
    """One emulated core: its qemu model, what its HWCAPs say, and the cpuinfo that matches."""

    name: str  # the qemu model (QEMU_CPU / -cpu), and what follows "arm64-emulated:"
    core: str  # what the core is, for people
    midr: int  # MIDR_EL1 as qemu reports it: implementer, variant, part, revision
    features: tuple[str, ...]  # Linux HWCAP names in /proc/cpuinfo order
    warning: str = ""  # said once whenever the profile is used

    @property
    def implementer(self) -> int:
        return self.midr >> 24 & 0xFF

    @property
    def variant(self) -> int:
        return self.midr >> 20 & 0xF

    @property
    def part(self) -> int:
        return self.midr >> 4 & 0xFFF

    @property
    def revision(self) -> int:
        return self.midr & 0xF

    def cpuinfo(self, cores: int) -> str:
        """The /proc/cpuinfo text of ``cores`` such cores (the lines cpuinfo/XNNPACK read)."""
        core = (
            "processor\t: {i}\nBogoMIPS\t: 50.00\n"
            f"Features\t: {' '.join(self.features)}\n"
            f"CPU implementer\t: 0x{self.implementer:02x}\nCPU architecture: 8\nCPU variant\t: 0x{self.variant:x}\n"
            f"CPU part\t: 0x{self.part:03x}\nCPU revision\t: {self.revision}\n\n"
        )
        return "".join(core.format(i=i) for i in range(max(cores, 1)))

    def describe(self) -> str:
        """``cortex-a76 (Arm Cortex-A76 ...; fp asimd ... asimddp)``: the profile with its vector features."""
        return f"{self.name} ({self.core}; {' '.join(self.features)})"


PROFILES: dict[str, ArmProfile] = {p.name: p for p in (
    ArmProfile("cortex-a76", "Arm Cortex-A76, ARMv8.2-A phone big core: fp16, dot product; no i8mm, SVE or SME",
               0x414FD0B1, _V82),
    ArmProfile("cortex-a53", "Arm Cortex-A53, ARMv8.0-A in-order little core: no fp16, no dot product",
               0x410FD034, (*_BASE, "cpuid")),
    ArmProfile("neoverse-n1", "Arm Neoverse-N1, ARMv8.2-A server core (Graviton2, Ampere Altra): fp16, dot product",
               0x414FD0C1, _V82),
    ArmProfile("max", "qemu 'max': every feature qemu 7.2 emulates, SVE2 and SME included",
               0x000F0510,
               (*_V82[:12], "jscvt", "fcma", "lrcpc", "dcpop", "sha3", "sm3", "sm4", "asimddp", "sha512", "sve",
                "asimdfhm", "ilrcpc", "flagm", "sb", "paca", "pacg", "dcpodp", "sve2", "sveaes", "svepmull",
                "svebitperm", "svesha3", "svesm4", "flagm2", "frint", "svei8mm", "svef32mm", "svef64mm", "svebf16",
                "i8mm", "bf16", "rng", "bti", "mte", "sme", "smei16i64", "smef64f64", "smei8i32", "smef16f32",
                "smeb16f32", "smef32f32", "smefa64"),
               warning="arm64-emulated:max: results of SME kernels are not trusted under qemu 7.2 "
                       "(int8 XNNPACK kernels gave wrong outputs there); use a core profile for figures"),
)}
DEFAULT_PROFILE = "cortex-a76"


def get_profile(name: str | None) -> ArmProfile:
    """The profile called ``name`` (the default for None); one-line error listing the valid ones."""
    key = DEFAULT_PROFILE if name is None else name.strip().lower()
    if key not in PROFILES:
        raise SscDeployError(f"unknown CPU profile '{name}' for {DEVICE} (use {', '.join(PROFILES)})")
    return PROFILES[key]


def profile_from_spec(spec: str) -> ArmProfile | None:
    """The profile a ``--device`` value asks for: ``arm64-emulated[:PROFILE]``; None for other devices."""
    s = spec.strip()
    if s == DEVICE:
        return get_profile(None)
    if s.startswith(DEVICE + ":"):
        return get_profile(s[len(DEVICE) + 1:])
    return None
