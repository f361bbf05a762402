"""CPU profiles of the emulated arm64 device (issue 20): one table of qemu model -> HWCAPs -> cpuinfo,
``arm64-emulated[:PROFILE]``, and every profile running real fp32 and int8 ONNX and TFLite files.

The emulated tests are kept cheap (one tiny trained net, 16 images) and skip, with the reason,
where this machine cannot emulate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssc_deploy.cli import main
from ssc_deploy.devices import resolve_device
from ssc_deploy.devices.arm_profiles import DEFAULT_PROFILE, PROFILES, get_profile
from ssc_deploy.devices.emulated import EmulatedArm64Device, emulated_status
from ssc_deploy.errors import SscDeployError

from ssc_deploy.devices.host import RUNNER  # noqa: E402 - the runner the package ships
STATUS = emulated_status()
needs_emulation = pytest.mark.skipif(
    STATUS.state != "ready",
    reason=f"arm64-emulated is {STATUS.state}: {STATUS.detail} (.ci/setup-devices.sh sets it up)",
)
N_IMAGES = 16


def test_the_default_is_a_phone_big_core_and_the_little_core_has_no_dot_product():
    a76, a53 = get_profile(None), get_profile("cortex-a53")
    assert a76.name == DEFAULT_PROFILE == "cortex-a76"
    assert "asimddp" in a76.features and not {"i8mm", "sve", "sme"} & set(a76.features)
    features = next(ln for ln in a53.cpuinfo(2).splitlines() if ln.startswith("Features"))
    assert "asimddp" not in features.split() and "asimd" in features.split()
    info = a76.cpuinfo(3)
    assert info.count("processor\t:") == 3 and "CPU part\t: 0xd0b" in info and "CPU variant\t: 0x4" in info
    assert "sme" in get_profile("max").features and get_profile("max").warning
    assert not any(p.warning for name, p in PROFILES.items() if name != "max")


def test_device_specs_name_the_profile():
    default = resolve_device("arm64-emulated")
    assert isinstance(default, EmulatedArm64Device) and default.profile.name == "cortex-a76"
    assert default.name == "arm64-emulated"
    little = resolve_device("arm64-emulated:cortex-a53")
    assert little.profile.name == "cortex-a53" and little.name == "arm64-emulated:cortex-a53"
    assert resolve_device("arm64-emulated:Neoverse-N1").profile.name == "neoverse-n1"


@pytest.mark.parametrize("spec", ["arm64-emulated:cortex-a9", "arm64-emulated:"])
def test_an_unknown_profile_is_one_line_listing_the_valid_ones(spec, capsys):
    with pytest.raises(SscDeployError, match=r"unknown CPU profile '.*' for arm64-emulated \(use cortex-a76, "
                                             r"cortex-a53, neoverse-n1, max\)"):
        resolve_device(spec)
    assert main(["device", "info", spec]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: unknown CPU profile") and err.count("\n") == 1


@pytest.mark.emulated
@needs_emulation
@pytest.mark.parametrize("name", list(PROFILES))
def test_each_profile_runs_as_the_core_its_cpuinfo_describes(name):
    """Under each profile the guest's HWCAPs (what qemu emulates) and MIDR are the table's, and
    /proc/cpuinfo in the device says the same."""
    probe = ("import ctypes; libc = ctypes.CDLL(None); libc.getauxval.restype = ctypes.c_ulong; "
             "print(libc.getauxval(16), libc.getauxval(26))")
    dev = EmulatedArm64Device(profile=name)
    rc, out, err = dev.run_command(["sh", "-c", f"python3 -c '{probe}'; grep -m1 ^Features /proc/cpuinfo; "
                                    "grep -m1 '^CPU part' /proc/cpuinfo"], timeout=120)
    assert rc == 0, err
    hw1, hw2 = (int(v) for v in out.splitlines()[0].split())
    hw1_names = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc "
                 "dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg").split()
    hw2_names = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm "
                 "svebf16 i8mm bf16 dgh rng bti mte ecv afp rpres mte3 sme smei16i64 smef64f64 smei8i32 smef16f32 "
                 "smeb16f32 smef32f32 smefa64").split()
    emulated = [n for i, n in enumerate(hw1_names) if hw1 >> i & 1] + [n for i, n in enumerate(hw2_names) if hw2 >> i & 1]
    profile = get_profile(name)
    assert emulated == list(profile.features)
    assert out.splitlines()[1].split(":", 1)[1].split() == list(profile.features)
    assert out.splitlines()[2].split(":", 1)[1].strip() == f"0x{profile.part:03x}"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """A briefly trained tiny net exported to fp32 and int8 ONNX and TFLite, and its inputs file (the
    evaluation images, labels and PyTorch's logits)."""
    pytest.importorskip("litert_torch")
    import torch
    from torch import nn

    from ssc_deploy.checkpoint import load_checkpoint
    from ssc_deploy.data import eval_batch
    from ssc_deploy.export import QuantOptions, export_model
    from ssc_deploy.models import list_models, register_model
    from ssc_deploy.train import train_model

    if "arm-tiny" not in list_models():
        register_model("arm-tiny", family="arm-tiny", description="test net")(
            lambda num_classes=10, in_size=32: nn.Sequential(
                nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                nn.Linear(16, num_classes)))
    d = tmp_path_factory.mktemp("arm")
    ckpt = d / "arm-tiny.pt"
    train_model("arm-tiny", epochs=2, out=ckpt, progress=False, batch_size=64, lr=0.05)
    files = {}
    for res in export_model(str(ckpt), targets=("onnx", "tflite"), precisions=("fp32", "int8"), out_dir=d / "art",
                            progress=False, quant=QuantOptions(calib=32, gate_images=32, max_drop=100.0)):
        files[(res.manifest["target"], res.manifest["precision"])] = (Path(res.artifact), res.manifest)
    c = load_checkpoint(ckpt)
    x, y = eval_batch(None, N_IMAGES, c.mean, c.std, c.in_size)
    with torch.no_grad():
        ref = c.build_model()(torch.from_numpy(x)).numpy()
    np.savez(d / "in.npz", x=x, labels=y.astype(np.int64), reference=ref)
    return {"files": files, "inputs": d / "in.npz"}


@pytest.mark.emulated
@pytest.mark.slow
@needs_emulation
@pytest.mark.parametrize("name", list(PROFILES))
def test_each_profile_runs_fp32_and_int8_onnx_and_tflite(name, exported):
    """fp32 files match PyTorch; int8 files agree with it on top-1 (a tiny net: 14 of 16 images). Under
    ``max`` the int8 results are not checked: qemu 7.2's SME kernels are not trusted (the profile says so)."""
    with EmulatedArm64Device(profile=name) as dev:
        files = {k: v for k, v in exported["files"].items()}
        paths = dev.stage([p for p, _ in files.values()] + [exported["inputs"], RUNNER])
        for (target, precision), (path, manifest) in sorted(files.items()):
            runtime = "onnxruntime" if target == "onnx" else "tflite"
            res = dev.run_runner(["--artifact", paths[path], "--runtime", runtime, "--threads", "1", "--warmup", "0",
                                  "--runs", "1", "--layout", manifest["input"]["layout"],
                                  "--inputs", paths[exported["inputs"]]], timeout=300)
            assert res["ok"] is True and res["machine"] == "aarch64", res
            parity = res["parity"]
            if precision == "fp32":
                assert parity["max_abs_diff"] < 1e-3 and parity["top1_agreement"] == 1.0, (target, parity)
            elif name != "max":
                assert parity["top1_agreement"] >= 14 / 16, (target, parity)


def test_the_bench_output_warns_once_about_max(capsys):
    from rich.console import Console

    from ssc_deploy.runtime_bench.table import print_result

    warning = get_profile("max").warning
    console = Console(width=400, record=True)
    device = {"name": "arm64-emulated:max", "kind": "arm64-emulated", "emulated": True, "model": "qemu-user -cpu max",
              "extra": {"cpu_profile": "max", "warning": warning}}
    print_result({"rows": [], "devices": [device]}, console)
    text = console.export_text()
    assert text.count("SME kernels are not trusted") == 1 and f"! {warning}" in text
