"""The emulated arm64 device: a Debian arm64 userland under qemu-user, set up by
``ssc-deploy device setup arm64-emulated`` (``.ci/setup-devices.sh`` runs it in CI).

The end-to-end check is kept small (one tiny net, ONNX and TFLite, a few runs): emulation is
slow. It is skipped, with the reason, where this machine cannot emulate."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ssc_deploy.cli import main
from ssc_deploy.devices import resolve_device
from ssc_deploy.devices.base import DeviceError
from ssc_deploy.devices.emulated import EmulatedArm64Device, emulated_status

from ssc_deploy.devices.host import RUNNER  # noqa: E402 - the runner the package ships
STATUS = emulated_status()
needs_emulation = pytest.mark.skipif(
    STATUS.state != "ready",
    reason=f"arm64-emulated is {STATUS.state}: {STATUS.detail} (.ci/setup-devices.sh sets it up)",
)


def _mounts_under(root: Path) -> list[str]:
    return [ln for ln in Path("/proc/mounts").read_text().splitlines() if str(root) in ln]


@pytest.mark.emulated
@needs_emulation
def test_setup_reuses_the_cache_in_seconds(capsys):
    t0 = time.monotonic()
    assert main(["device", "setup", "arm64-emulated"]) == 0
    assert time.monotonic() - t0 < 30
    assert "arm64-emulated: ready" in capsys.readouterr().out


@pytest.mark.emulated
@pytest.mark.slow
@needs_emulation
def test_artifacts_run_on_aarch64_and_match_pytorch(tmp_path):
    """One tiny conv net exported to ONNX and TFLite runs in the arm64 userland (onnxruntime and
    LiteRT aarch64 builds) and matches the PyTorch logits; its timings are labelled emulated."""
    torch = pytest.importorskip("torch")
    litert_torch = pytest.importorskip("litert_torch")

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten()).eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        ref = net(x).numpy()
    np.savez(tmp_path / "in.npz", x=x.numpy(), labels=ref.argmax(1).astype(np.int64), reference=ref)
    torch.onnx.export(net, (x[:1],), tmp_path / "tiny.onnx", opset_version=17, dynamo=False)
    litert_torch.convert(net, (x[:1],)).export(str(tmp_path / "tiny.tflite"))

    with resolve_device("arm64-emulated") as dev:
        assert isinstance(dev, EmulatedArm64Device)
        info = dev.info()
        assert info.machine == "aarch64" and info.emulated is True
        assert {"onnxruntime", "tflite"} <= set(info.runtimes)
        files = [tmp_path / "tiny.onnx", tmp_path / "tiny.tflite", tmp_path / "in.npz", RUNNER]
        paths = dev.stage(files)
        work = dev.root / dev.work_dir.lstrip("/")
        assert work.is_dir()
        for name, runtime in (("tiny.onnx", "onnxruntime"), ("tiny.tflite", "tflite")):
            res = dev.run_runner(
                ["--artifact", paths[tmp_path / name], "--runtime", runtime, "--threads", "1", "--warmup", "1",
                 "--runs", "2", "--inputs", paths[tmp_path / "in.npz"]], timeout=300,
            )
            assert res["ok"] is True, res
            assert res["machine"] == "aarch64"
            assert res["parity"]["max_abs_diff"] < 1e-4 and res["parity"]["top1_agreement"] == 1.0
    assert not work.exists()  # cleaned up
    assert _mounts_under(dev.root) == []  # every mount lived in a private namespace


@pytest.mark.emulated
@needs_emulation
def test_commands_run_under_qemu_with_exit_codes():
    dev = EmulatedArm64Device()
    rc, out, _ = dev.run_command(["sh", "-c", "uname -m; grep -c ^processor /proc/cpuinfo; exit 3"], timeout=60)
    assert rc == 3 and out.split()[0] == "aarch64" and int(out.split()[1]) >= 1
    with pytest.raises(DeviceError, match=r"arm64-emulated: 'sleep 30' timed out after 2 s"):
        dev.run_command(["sleep", "30"], timeout=2)
    assert _mounts_under(dev.root) == []


def test_a_timeout_kills_the_children_of_the_command_too():
    """A command's children (a shell's subshells, the runner under qemu) must not outlive its timeout."""
    from ssc_deploy.devices.remote import run_local

    marker = f"ssc-deploy-timeout-probe-{os.getpid()}"
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=r"probe timed out after 1 s"):
        run_local(["/bin/sh", "-c", f"sh -c 'sleep 30; true' {marker}; echo done"], 1, "probe")
    assert time.monotonic() - t0 < 10
    time.sleep(0.2)
    alive = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    assert alive == []


@pytest.mark.emulated
@needs_emulation
def test_an_emulated_timeout_kills_the_whole_command():
    dev = EmulatedArm64Device()
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=r"timed out after 2 s"):
        dev.run_command(["sh", "-c", "sleep 30; echo done"], timeout=2)
    assert time.monotonic() - t0 < 15
    assert _mounts_under(dev.root) == []


def test_not_set_up_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SSC_DEPLOY_CACHE", str(tmp_path / "empty-cache"))
    status = emulated_status()
    assert status.state in ("not set up", "cannot emulate")
    with pytest.raises(DeviceError, match="arm64-emulated: (not set up|cannot emulate)"):
        EmulatedArm64Device().info()
    assert main(["device", "info", "arm64-emulated"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: arm64-emulated: ") and "\n" not in err


def test_setup_without_root_says_why(tmp_path):
    """Run the real CLI as an unprivileged user: one line naming the reason, non-zero exit, nothing written."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to drop to an unprivileged user")
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(tmp_path, 0o755)
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c"]
    env = {**os.environ, "SSC_DEPLOY_CACHE": str(cache), "HOME": str(tmp_path)}
    if subprocess.run([*drop, "import ssc_deploy.cli"], capture_output=True, timeout=120, env=env).returncode != 0:
        pytest.skip("an unprivileged user cannot read this checkout or its virtualenv")
    code = "import sys; from ssc_deploy.cli import main; sys.exit(main(['device', 'setup', 'arm64-emulated']))"
    proc = subprocess.run([*drop, code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode != 0
    assert proc.stderr.strip() == "error: cannot set up arm64-emulated: needs root (chroot, mounts and binfmt_misc registration)"
    assert list(cache.iterdir()) == []


def test_unknown_setup_target(capsys):
    assert main(["device", "setup", "arm32-emulated"]) != 0
    assert capsys.readouterr().err.strip() == "error: unknown setup target 'arm32-emulated' (only arm64-emulated can be set up)"


@pytest.mark.emulated
@needs_emulation
def test_bench_on_the_emulated_device_defaults_to_a_correctness_check(tmp_path, capsys):
    """Without --n-eval/--runs/--warmup an emulated device evaluates EMULATED_COUNTS' few test images
    (parity with PyTorch on the row) and times a few runs; the table says it was a correctness check."""
    import json

    from torch import nn

    from ssc_deploy.models import list_models, register_model
    from ssc_deploy.runtime_bench.settings import EMULATED_COUNTS

    if "emu-tiny" not in list_models():
        register_model("emu-tiny", family="emu-tiny", description="test net")(
            lambda num_classes=10, in_size=32: nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.ReLU(),
                                                             nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                                             nn.Linear(4, num_classes)))
    js = tmp_path / "b.json"
    rc = main(["bench", "--baselines", "emu-tiny", "--device", "arm64-emulated", "--runtime", "onnxruntime",
               "--json", str(js), "--no-store"])
    out = capsys.readouterr().out
    assert rc == 0, out
    (row,) = json.loads(js.read_text())["rows"]
    assert row["emulated"] and row["status"] == "ok"
    assert row["n_eval"] == EMULATED_COUNTS["n_eval"] and row["runs"] == EMULATED_COUNTS["runs"]
    assert row["warmup"] == EMULATED_COUNTS["warmup"] and row["parity_max_abs_diff"] < 1e-4
    assert f"a correctness check: {EMULATED_COUNTS['n_eval']} test images, parity with PyTorch on 1 of 1 rows" in out
