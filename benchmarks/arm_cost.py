"""ARM cost of each file (issue 20 #5): guest instructions per inference on emulated ARM cores beside
the host's latency ratios of the same files, and how well instruction ratios predict time ratios.

Models (untrained: random weights, BatchNorm statistics from noise as the untrained baselines get
them, so int8 files are sane; instruction counts and latency do not depend on training) are
exported per runtime (onnxruntime, LiteRT), precision (fp32, int8) and, for the SSC-Nets' fp32
files, shift lowering candidate; int8 files take the runtime's ``int8_lowering``, the one that keeps
the int8 chain whole. Then:

- host: every file of a runtime timed interleaved in this process (batch 1, 1 thread, medians);
- ARM: instructions per inference of the same files on each emulated core (the emulated device's
  counting qemu-aarch64 plugin: a run of 1+N inferences minus one of 1, divided by N);
- x86: the same plugin under ``qemu-x86_64 -cpu max`` counting this host's own Python running the
  same device runner on the same files, so instruction ratios and time ratios exist on one machine;
  the error of the prediction is the median |log(instruction ratio / time ratio)| over the pairs.

Printed are ratios: SSC-Net / MobileNetV2 per runtime, precision and profile, and int8 / fp32 per model.
The output is rewritten after every stage, so an interrupted run still leaves what it measured.

    python benchmarks/arm_cost.py --quick --markdown benchmarks/arm-cost-latest.md --json benchmarks/arm-cost-latest.json
    python benchmarks/arm_cost.py --profiles cortex-a76 --runtimes tflite
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ssc_deploy.devices.host import RUNNER  # the standalone device runner the package ships
from ssc_deploy.runtimes import by_target

MODELS = ("ssc-net-1-9", "ssc-net-2-9", "ssc-net-3-9", "mobilenetv2", "igcv3-d-0.7x")
QUICK_MODELS = ("ssc-net-1-9", "ssc-net-3-9", "mobilenetv2")
RUNTIMES = ("onnx", "tflite")
PRECISIONS = ("fp32", "int8")
PROFILES = ("cortex-a76", "cortex-a53")
REFERENCE = "mobilenetv2"
DATA = "digits"
X86 = "x86 (qemu-x86_64 -cpu max)"
X86_NOTE = ("x86 counts: qemu 7.2's x86 'max' CPU has AVX2 and FMA but no AVX-512, so the runtimes take their AVX2 "
            "kernels there while the host's times come from its AVX-512 ones: part of the prediction error is that.")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None, help=f"comma-separated (default: {','.join(MODELS)})")
    p.add_argument("--runtimes", default=",".join(RUNTIMES), help="onnx, tflite (comma-separated)")
    p.add_argument("--precisions", default=",".join(PRECISIONS), help="fp32, int8")
    p.add_argument("--profiles", default=",".join(PROFILES), help="emulated ARM cores (arm64-emulated profiles)")
    p.add_argument("--quick", action="store_true",
                   help=f"{','.join(QUICK_MODELS)}; fp32 lowerings: the target's default and its fastest one only")
    p.add_argument("--no-x86", action="store_true", help="skip the qemu-x86_64 counts (no prediction error)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved host rounds, 5 calls each (default 20; --quick 10)")
    p.add_argument("--calib", type=int, default=32, help="int8 calibration images")
    p.add_argument("--workdir", default="benchmarks/.cache/arm-cost", help="where exports are kept and reused")
    p.add_argument("--json", default=None, help="write all rows as JSON here")
    p.add_argument("--markdown", default=None, help="write the tables as Markdown here")
    p.add_argument("--render", default=None, metavar="JSON",
                   help="measure nothing: write --markdown (or print) the tables of an earlier run's --json")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in (args.models or ",".join(QUICK_MODELS if args.quick else MODELS)).split(",")
                   if m.strip()]
    args.runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    args.precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    args.profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    args.rounds = args.rounds or (10 if args.quick else 20)
    return args


def fp32_lowerings(model: str, target: str, quick: bool) -> list[str]:
    """The fp32 lowering candidates of ``model`` on ``target``: one for nets without shifts; for SSC-Nets every
    registered lowering meant for the target, or (quick) its default and its fastest one."""
    from ssc_deploy.export.lowerings import available_lowerings
    from ssc_deploy.models import model_family

    spec = by_target(target)
    if model_family(model) != "ssc-net":
        return [spec.default_lowering]
    if quick:
        return list(dict.fromkeys([spec.default_lowering, spec.fastest_lowering]))
    return [name for name, e in available_lowerings().items() if e.runtimes is None or target in e.runtimes]


def untrained_net(model: str):
    """``model`` with seed-0 random weights and BatchNorm statistics from noise (the untrained baselines' way)."""
    import torch

    from ssc_deploy.models import create_model
    from ssc_deploy.runtime_bench.baselines import fit_batch_norm

    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = create_model(model, num_classes=10, in_size=32)
    fit_batch_norm(net, [3, 32, 32])
    return net


def export_file(model: str, target: str, precision: str, lowering: str, workdir: Path, calib: int) -> Path:
    """The file of one cell (exported once into ``workdir/MODEL/LOWERING``, reused afterwards)."""
    import torch

    from ssc_deploy.export.exporter import export_module
    from ssc_deploy.export.options import ModelFacts, QuantOptions, VerifyOptions
    from ssc_deploy.export.targets.tflite.options import TfliteOptions
    from ssc_deploy.quiet import quiet_native

    spec = by_target(target)
    out_dir = workdir / model / lowering
    path = out_dir / (f"{model}{spec.suffix}" if precision == "fp32" else f"{model}.{precision}{spec.suffix}")
    if not path.exists():
        with quiet_native():
            # timed on one NCHW batch with the other runtimes
            targets = TfliteOptions(nhwc=False) if target == TfliteOptions.target else target
            export_module(untrained_net(model), torch.zeros(1, 3, 32, 32), ModelFacts(name=model), targets=targets,
                          out_dir=out_dir, lowering=lowering, precisions=precision, quant=QuantOptions(calib=calib),
                          verify=VerifyOptions(data=DATA), force=True, progress=False)
    return path


class HostCounter:
    """This host's Python running the device runner under ``qemu-x86_64 -cpu max`` with the project's
    counting plugin (the plugin API is target-independent: the same .so counts x86 guest instructions)."""

    name = X86

    def __init__(self) -> None:
        from ssc_deploy.devices.emulated import cache_dir
        from ssc_deploy.devices.insn_counter import build_plugin

        self.plugin = build_plugin(cache_dir())

    def count_runner(self, args: list[str], timeout: float) -> tuple[dict, dict[str, int]]:
        """The runner's JSON result and the plugin's counts of one run with ``args``."""
        from ssc_deploy.devices.insn_counter import parse_counts
        from ssc_deploy.devices.remote import parse_runner_output

        with tempfile.TemporaryDirectory(prefix="ssc-deploy-x86insns-") as tmp:
            out = Path(tmp) / "counts.txt"
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
                   "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "HOME": os.environ.get("HOME", "/root")}
            proc = subprocess.run(["qemu-x86_64", "-cpu", "max", "-plugin", f"{self.plugin},out={out}",
                                   sys.executable, str(RUNNER), *args], capture_output=True, text=True,
                                  timeout=timeout, env=env, check=False)
            counts = parse_counts(out.read_text()) if out.is_file() else {}
        return parse_runner_output(self.name, proc.stdout, proc.stderr, proc.returncode), counts


def host_times(rows: list[dict[str, Any]], rounds: int) -> None:
    """Each row's host median ms: all files of a runtime interleaved in this process, 1 thread."""
    import gc

    from ssc_deploy.sessions import load_runner
    from ssc_deploy.timing import medians, time_interleaved

    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    for rt in dict.fromkeys(r["runtime"] for r in rows):
        mine = [r for r in rows if r["runtime"] == rt]
        gc.collect()
        sessions = {i: load_runner(rt, mine[i]["file"], 1) for i in range(len(mine))}
        for i, ms in medians(time_interleaved(sessions, x, rounds=rounds)).items():
            mine[i]["host_ms"] = ms
        sessions = None


def count_rows(rows: list[dict[str, Any]], device, key: str, staged: dict | None, progress) -> None:
    """Instructions per inference of every row's file on ``device`` into ``row['insns'][key]``."""
    from ssc_deploy.devices.base import DeviceError
    from ssc_deploy.errors import SscDeployError
    from ssc_deploy.export.manifest import Manifest
    from ssc_deploy.runtime_bench.insn_counts import count_per_inference

    for r in rows:
        man = Manifest.read(r["file"])
        progress(f"{key}: {r['model']} {r['runtime']} {r['precision']} {r['lowering']}")
        where = staged[Path(r["file"])] if staged else r["file"]
        try:
            got = count_per_inference(device, where, man.runtime, man.input.layout, timeout=1800)
            r["insns"][key] = got["instructions_per_inference"]
        except (DeviceError, SscDeployError, subprocess.TimeoutExpired) as err:
            r.setdefault("count_errors", {})[key] = str(err)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def ratio_pairs(rows: list[dict[str, Any]]) -> list[tuple[str, dict, dict]]:
    """The compared pairs: (kind, numerator row, denominator row): each SSC file against MobileNetV2's of the
    same runtime and precision, and each int8 file against its model's fp32 file (default lowering)."""
    pairs = []
    for r in rows:
        ref = next((b for b in rows if b["model"] == REFERENCE and (b["runtime"], b["precision"]) ==
                    (r["runtime"], r["precision"])), None)
        if r["model"] != REFERENCE and ref is not None:
            pairs.append(("vs MobileNetV2", r, ref))
        if r["precision"] == "int8":
            fp32 = next((b for b in rows if (b["model"], b["runtime"], b["precision"]) == (r["model"], r["runtime"], "fp32")
                         and b["lowering"] == by_target(r["runtime"]).default_lowering), None)
            if fp32 is not None:
                pairs.append(("int8 / fp32", r, fp32))
    return pairs


def prediction_error(pairs, key: str) -> tuple[float | None, float | None, int]:
    """Median and max |log(instruction ratio on ``key`` / host time ratio)| over the pairs with both."""
    errs = []
    for _, a, b in pairs:
        ir, tr = ratio(a["insns"].get(key), b["insns"].get(key)), ratio(a.get("host_ms"), b.get("host_ms"))
        if ir and tr:
            errs.append(abs(math.log(ir / tr)))
    return (statistics.median(errs) if errs else None, max(errs) if errs else None, len(errs))


def render(rows, keys: list[str], cpu: str, notes: list[str]) -> str:
    """The Markdown: per-file figures, the ratio table, the prediction errors and the notes."""
    from ssc_deploy.models import model_family

    def f(v, spec=".2f"):
        return "-" if v is None else format(v, spec)

    def lowering(r) -> str:  # nets without shifts take no shift lowering
        return r["lowering"] if model_family(r["model"]) == "ssc-net" else "-"

    cols = ["model", "runtime", "precision", "lowering", "KB", "host ms"] + [f"{k} M insns" for k in keys]
    md = [f"CPU (host): {cpu}", "", "Per file (untrained weights; instructions per inference, 1 thread):", "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [r["model"], by_target(r["runtime"]).runtime, r["precision"], lowering(r), f(r["bytes"] / 1024, ".0f"),
                 f(r.get("host_ms"), ".3f")] + [f(None if r["insns"].get(k) is None else r["insns"][k] / 1e6)
                                                for k in keys]
        md.append("| " + " | ".join(cells) + " |")
    pairs = ratio_pairs(rows)
    cols = ["ratio", "file", "runtime", "precision", "host time"] + [f"{k} insns" for k in keys]
    md += ["", ("Ratios (SSC file / MobileNetV2 file of the same runtime and precision; int8 file / its model's fp32 "
                "file with the target's default lowering):"), "",
           "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for kind, a, b in pairs:
        cells = [kind, f"{a['model']} {lowering(a)}" if kind != "int8 / fp32" else a["model"],
                 by_target(a["runtime"]).runtime,
                 a["precision"], f(ratio(a.get("host_ms"), b.get("host_ms")))]
        cells += [f(ratio(a["insns"].get(k), b["insns"].get(k))) for k in keys]
        md.append("| " + " | ".join(cells) + " |")
    md += ["", ("How well instruction ratios predict the host's time ratios over these pairs "
                "(|log(instruction ratio / time ratio)|; 0.10 is about 10 %):"), ""]
    groups = {"all pairs": pairs,
              "fp32 SSC / MobileNetV2": [q for q in pairs if q[0] == "vs MobileNetV2" and q[1]["precision"] == "fp32"],
              "int8 SSC / MobileNetV2": [q for q in pairs if q[0] == "vs MobileNetV2" and q[1]["precision"] == "int8"],
              "int8 / fp32": [q for q in pairs if q[0] == "int8 / fp32"]}
    for k in keys:
        what = ("same machine: the prediction error" if k == X86
                else "ARM counts vs x86 time: how much the host misleads, not a prediction error")
        parts = []
        for group, chosen in groups.items():
            med, worst, n = prediction_error(chosen, k)
            if n:
                parts.append(f"{group}: median {med:.3f} (x{math.exp(med):.2f}), max {worst:.3f} "
                             f"(x{math.exp(worst):.2f}), {n} pairs")
        if parts:
            md.append(f"- {k} instructions vs host time ({what}): " + "; ".join(parts))
    if X86 in keys:
        notes = notes + [X86_NOTE]
    md += [""] + [f"- {n}" for n in notes]
    return "\n".join(md) + "\n"


def render_saved(path: Path, markdown: str | None) -> int:
    """Write (or print) the Markdown of a saved ``--json`` (its profiles in the order they were counted)."""
    from ssc_deploy.atomic import write_text_atomic
    from ssc_deploy.errors import SscDeployError

    try:
        saved = json.loads(path.read_text())
        rows, cpu, notes = saved["rows"], saved["cpu"], saved["notes"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SscDeployError(f"cannot read the saved run {path.name}: {err}") from None
    keys = saved.get("keys") or list(dict.fromkeys(k for r in rows for k in r["insns"]))
    text = render(rows, keys, cpu, notes)
    if markdown:
        write_text_atomic(markdown, text)
    else:
        print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from ssc_deploy.atomic import write_text_atomic

    if args.render:
        return render_saved(Path(args.render), args.markdown)
    from ssc_deploy.devices.emulated import EmulatedArm64Device
    from ssc_deploy.errors import SscDeployError

    for rt in args.runtimes:
        if rt not in RUNTIMES:
            raise SscDeployError(f"unknown runtime '{rt}' for this benchmark (use: {', '.join(RUNTIMES)})")
    for p in args.precisions:
        if p not in PRECISIONS:
            raise SscDeployError(f"unknown precision '{p}' (use: {', '.join(PRECISIONS)})")
    from train_speed import cpu_description

    cpu = cpu_description()
    print(f"CPU: {cpu}", flush=True)
    workdir = Path(args.workdir)
    rows: list[dict[str, Any]] = []
    notes = ["Untrained nets (seed 0, BatchNorm statistics from noise): instruction counts, latency and size only.",
             ("Instructions are counted, not timed: emulated cores, guest instructions of the main thread per "
              "steady-state inference ((1+10 inferences) - (1 inference)) / 10."),
             (f"Host times: batch 1, 1 thread, medians of {args.rounds} interleaved rounds x 5 calls per file, "
              "all files of a runtime in one process; the machine was shared (other jobs running)."),
             "int8 files: the runtime's int8_lowering only (the lowering that keeps the int8 chain whole)."]
    for m in args.models:
        for rt in args.runtimes:
            spec = by_target(rt)
            cells = [("fp32", lw) for lw in fp32_lowerings(m, rt, args.quick) if "fp32" in args.precisions]
            if "int8" in args.precisions:
                cells.append(("int8", spec.int8_lowering))
            for prec, lw in cells:
                print(f"export {m} {rt} {prec} {lw}", flush=True)
                try:
                    path = export_file(m, rt, prec, lw, workdir, args.calib)
                except SscDeployError as err:
                    notes.append(f"no {prec} file of {m} on {rt} ({lw}): {err}")
                    continue
                rows.append({"model": m, "runtime": rt, "precision": prec, "lowering": lw, "file": str(path),
                             "bytes": path.stat().st_size, "insns": {}})
    keys: list[str] = []

    def save() -> None:
        if args.markdown:
            write_text_atomic(args.markdown, render(rows, keys, cpu, notes))
        if args.json:
            write_text_atomic(args.json, json.dumps({"cpu": cpu, "keys": keys, "rows": rows, "notes": notes}, indent=2))

    host_times(rows, args.rounds)
    save()
    def progress(what: str) -> None:
        print(f"  counting {what}", flush=True)

    # The first ARM profile, then the x86 counts (the prediction error), then the other profiles.
    stages = args.profiles[:1] + ([] if args.no_x86 else [X86]) + args.profiles[1:]
    for key in stages:
        keys.append(key)
        if key == X86:
            count_rows(rows, HostCounter(), X86, None, progress)
        else:
            with EmulatedArm64Device(profile=key) as dev:
                staged = dev.stage([Path(r["file"]) for r in rows])
                count_rows(rows, dev, key, staged, progress)
        save()
    print(render(rows, keys, cpu, notes))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ssc_deploy.errors import run_script

    run_script(main)
