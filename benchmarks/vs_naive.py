"""What ssc-deploy gains over a naive export (issue 15 #2): trained SSC-Nets exported both ways, timed side by side.

"naive" is what a user does without this tool: the trained module (``eval()``) straight through
``torch.onnx.export``, ``to_edge_transform_and_lower`` with ``XnnpackPartitioner`` (ExecuTorch)
and ``litert_torch.convert`` (LiteRT), all with their default options. "ssc-deploy" is
``ssc_deploy.export_model`` with its defaults (the default lowering per target, verified
against PyTorch). Both files of a model are run on the same real test images and compared with
the PyTorch module; then every file of a runtime is timed interleaved in this one process
(round-robin, batch 1, fp32, 1 thread; ``ssc_deploy.timing``, ``ssc_deploy.sessions``).
Reported per model and runtime: median latency, op count and file size of each export, their
ratios (naive / ssc-deploy: above 1 is the gain), the largest logit difference to PyTorch, and
the host's CPU with its vector flags. An export or load that fails is a row saying why.

    python benchmarks/vs_naive.py                                  # trains 1 epoch each if needed
    python benchmarks/vs_naive.py --checkpoint-dir ckpts/          # MODEL.pt files trained before
    python benchmarks/vs_naive.py --markdown benchmarks/vs-naive-latest.md --json out.json

Op counts: ONNX graph nodes and TFLite builtin ops as stored; for ExecuTorch the operators
one run executes (its ETDump: XNNPACK operators plus any portable-kernel fallbacks).
Without ``--checkpoint-dir`` each model is trained for ``--epochs`` on the default data
(``ssc_deploy.train.train_model``) into ``--workdir`` and reused by later runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ssc_deploy.runtimes import TARGET_NAMES, by_target

MODELS = ("ssc-net-1-9", "ssc-net-3-9", "ssc-net-6-9")
N_CHECK = 16  # test images each export is compared with PyTorch on


@dataclass
class Export:
    """One exported file (or why there is none) and what was measured on it."""

    model: str
    target: str
    way: str  # "naive" or "ssc-deploy"
    path: str | None = None
    error: str | None = None
    lowering: str | None = None
    bytes: int | None = None
    ops: int | None = None
    fallback_ops: int | None = None
    note: str | None = None
    max_abs_diff: float | None = None
    median_ms: float | None = None
    export_s: float | None = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS), help="SSC-Nets, comma-separated")
    p.add_argument("--runtimes", default=",".join(TARGET_NAMES), help="onnx, executorch, tflite (comma-separated)")
    p.add_argument("--checkpoint-dir", default=None, help="trained checkpoints named MODEL.pt (else trained here)")
    p.add_argument("--epochs", type=int, default=1, help="epochs to train a model that has no checkpoint")
    p.add_argument("--max-batches", type=int, default=None, help="batches an epoch when training here (default: all)")
    p.add_argument("--fresh", action="store_true", help="export again even where the workdir has this checkpoint's files")
    p.add_argument("--rounds", type=int, default=20, help="interleaved rounds (each runs every file 5 times)")
    p.add_argument("--workdir", default="benchmarks/.cache/vs-naive", help="checkpoints trained here and the exports")
    p.add_argument("--json", default=None, help="write all rows as JSON here")
    p.add_argument("--markdown", default=None, help="write the table as Markdown here")
    return p.parse_args(argv)


def one_line(err: BaseException) -> str:
    """An exception as one short line."""
    text = str(err).strip()
    return f"{type(err).__name__}: {(text.splitlines() or [''])[0][:160]}"


def checkpoint_for(model: str, args: argparse.Namespace, notes: list[str]) -> Path:
    """``MODEL.pt`` from ``--checkpoint-dir``, else one trained (or trained earlier) in the workdir."""
    if args.checkpoint_dir:
        path = Path(args.checkpoint_dir) / f"{model}.pt"
        if not path.is_file():
            from ssc_deploy.errors import SscDeployError

            raise SscDeployError(f"--checkpoint-dir: no {path}")
        notes.append(f"{model}: checkpoint {path} (given)")
        return path
    brief = f"-b{args.max_batches}" if args.max_batches else ""
    path = Path(args.workdir) / "checkpoints" / f"{model}-e{args.epochs}{brief}.pt"
    what = f"{args.epochs} epoch(s)" + (f" of {args.max_batches} batches" if args.max_batches else "")
    if path.is_file():
        notes.append(f"{model}: checkpoint {path} reused ({what}, trained by an earlier run)")
        return path
    from ssc_deploy.train import train_model
    from ssc_deploy.train.config import TrainConfig

    t0 = time.perf_counter()
    train_model(TrainConfig(model=model, epochs=args.epochs, max_batches=args.max_batches, out=path, progress=False))
    notes.append(f"{model}: trained {what} on the default data in {time.perf_counter() - t0:.0f} s")
    return path


def export_naive(target: str, net, example, path: Path) -> str | None:
    """``net`` exported to ``target`` the way its stack's documentation shows, default options; returns
    a note when the default failed and the exporter's other mode was used."""
    import torch

    if target == "onnx":
        try:
            torch.onnx.export(net, (example,), str(path))
        except Exception as err:  # noqa: BLE001 - the default (dynamo) exporter needs onnxscript
            torch.onnx.export(net, (example,), str(path), dynamo=False)
            return f"default torch.onnx.export failed ({one_line(err)}): timed with dynamo=False"
    elif target == "executorch":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        program = to_edge_transform_and_lower(torch.export.export(net, (example,)), partitioner=[XnnpackPartitioner()])
        path.write_bytes(program.to_executorch().buffer)
    else:
        import litert_torch

        litert_torch.convert(net, (example,)).export(str(path))
    return None


def file_bytes(path: Path) -> int:
    """The file's size plus any external-data file beside it (ONNX writes ``NAME.data`` for big weights)."""
    extra = path.with_name(path.name + ".data")
    return path.stat().st_size + (extra.stat().st_size if extra.exists() else 0)


def count_ops(target: str, path: Path) -> tuple[int, int]:
    """(ops, ops on portable fallback kernels): see the module docstring."""
    if target == "executorch":
        from ssc_deploy.op_profile import profile_file

        profile = profile_file(path, threads=1, runs=2, warmup=1)
        return len(profile.ops), sum(op.name.startswith("portable") for op in profile.ops)
    from ssc_deploy.export.readers.artifact import inspect_artifact

    return sum(inspect_artifact(path)["op_histogram"].values()), 0


def _stamp_file(path: Path) -> Path:
    return path.with_name(path.name + ".checkpoint-sha256")


def reusable(path: Path, sha256: str) -> tuple[bool, str | None]:
    """Whether ``path`` is an export of the checkpoint with this digest made by an earlier run, and its note."""
    if not path.is_file() or not _stamp_file(path).is_file():
        return False, None
    lines = _stamp_file(path).read_text().splitlines()
    return bool(lines) and lines[0] == sha256, (lines[1] if len(lines) > 1 else None)


def stamp(path: Path, sha256: str, note: str | None) -> None:
    """Record which checkpoint ``path`` was exported from, and the export's note (for :func:`reusable`)."""
    _stamp_file(path).write_text(sha256 + "\n" + (note + "\n" if note else ""))


def build_exports(model: str, ckpt_path: Path, targets: list[str], workdir: Path,
                  fresh: bool = False) -> tuple[list[Export], np.ndarray]:
    """Both exports of one model for every target (an earlier run's of the same checkpoint reused unless
    ``fresh``), checked against PyTorch on real test images."""
    import torch

    from ssc_deploy.checkpoint import load_checkpoint
    from ssc_deploy.export.exporter import export_model
    from ssc_deploy.export.verify import verification_images
    from ssc_deploy.quiet import quiet_native
    from ssc_deploy.sessions import load_runner, run_each

    ckpt = load_checkpoint(ckpt_path)
    net = ckpt.build_model().eval()
    images, _ = verification_images(ckpt.mean, ckpt.std, ckpt.in_size, N_CHECK)
    with torch.no_grad():
        reference = net(torch.from_numpy(images)).numpy()
    example = torch.zeros(1, 3, ckpt.in_size, ckpt.in_size)
    out: list[Export] = []
    for target in targets:
        suffix = by_target(target).suffix
        for way in ("naive", "ssc-deploy"):
            e = Export(model, target, way)
            out.append(e)
            t0 = time.perf_counter()
            try:
                path = workdir / way / f"{model}{suffix}"
                path.parent.mkdir(parents=True, exist_ok=True)
                reuse, note = reusable(path, ckpt.sha256)
                if reuse and not fresh:
                    e.note = note
                    if way == "ssc-deploy":
                        from ssc_deploy.export.manifest import load_manifest

                        e.lowering = load_manifest(path)["model"].get("lowering")
                else:
                    with quiet_native():
                        if way == "naive":
                            e.note = export_naive(target, net, example, path)
                        else:
                            (res,) = export_model(ckpt_path, targets=(target,), out_dir=path.parent, force=True,
                                                  progress=False)
                            path, e.lowering = Path(res.artifact), res.manifest["model"].get("lowering")
                    stamp(path, ckpt.sha256, e.note)
                    e.export_s = time.perf_counter() - t0
            except Exception as err:  # noqa: BLE001 - a failed export is a row, not the end of the run
                e.error = f"export failed: {one_line(err)}"
                continue
            e.path, e.bytes = str(path), file_bytes(path)
            try:
                with quiet_native():
                    e.ops, e.fallback_ops = count_ops(target, path)
                    runner = load_runner(target, path, 1)
                    nhwc = len(runner.input_shape) == 4 and runner.input_shape[-1] == 3
                    e.max_abs_diff = float(np.abs(run_each(runner, images, nhwc) - reference).max())
                del runner
            except Exception as err:  # noqa: BLE001
                e.error = f"does not run: {one_line(err)}"
    gc.collect()
    return out, images


def time_runtime(exports: list[Export], rounds: int) -> None:
    """Median 1-thread latency of every runnable export of one runtime, timed interleaved."""
    from ssc_deploy.sessions import load_runner
    from ssc_deploy.timing import medians, time_interleaved

    ok = [e for e in exports if e.error is None]
    if not ok:
        return
    runners = {}
    for e in ok:
        runner = load_runner(e.target, e.path, 1)
        runners[id(e)] = runner
    first = next(iter(runners.values()))
    x = np.random.default_rng(0).standard_normal(first.input_shape).astype(np.float32)
    inputs = {k: x if r.input_shape == first.input_shape else x.transpose(0, 2, 3, 1).copy()
              for k, r in runners.items()}
    # time_interleaved feeds one input; an NHWC file gets its own layout through a wrapper.
    calls = {k: (lambda _x, r=r, xi=inputs[k]: r(xi)) for k, r in runners.items()}
    ms = medians(time_interleaved(calls, x, rounds=rounds))
    for e in ok:
        e.median_ms = ms[id(e)]
    del runners, calls
    gc.collect()


def ratio(a: float | int | None, b: float | int | None) -> str:
    return "-" if a is None or b is None or not b else f"{a / b:.2f}x"


def table_rows(exports: list[Export]) -> list[list[str]]:
    """One row per model and runtime: naive, ssc-deploy and naive/ssc-deploy for latency, ops and size."""
    rows = []
    pairs: dict[tuple[str, str], dict[str, Export]] = {}
    for e in exports:
        pairs.setdefault((e.model, e.target), {})[e.way] = e
    for (model, target), two in pairs.items():
        n, s = two["naive"], two["ssc-deploy"]

        def ms(e: Export) -> str:
            return "-" if e.median_ms is None else f"{e.median_ms:.3f}"

        def ops(e: Export) -> str:
            if e.ops is None:
                return "-"
            return f"{e.ops}" + (f" ({e.fallback_ops} portable)" if e.fallback_ops else "")

        def size(e: Export) -> str:
            return "-" if e.bytes is None else f"{e.bytes / 1e6:.2f}"

        def diff(e: Export) -> str:
            return "-" if e.max_abs_diff is None else f"{e.max_abs_diff:.1e}"

        notes = "; ".join(f"{e.way}: {e.error or e.note}" for e in (n, s) if e.error or e.note)
        rows.append([model, by_target(target).runtime, s.lowering or "-", ms(n), ms(s), ratio(n.median_ms, s.median_ms),
                     ops(n), ops(s), ratio(n.ops, s.ops), size(n), size(s), ratio(n.bytes, s.bytes),
                     diff(n), diff(s), notes or "-"])
    return rows


COLUMNS = ("model", "runtime", "ssc-deploy lowering", "naive ms", "ssc-deploy ms", "latency naive/ours",
           "naive ops", "ssc-deploy ops", "ops naive/ours", "naive MB", "ssc-deploy MB", "size naive/ours",
           "naive max abs diff", "ssc-deploy max abs diff", "failures, notes")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    from ssc_deploy.atomic import write_text_atomic
    from ssc_deploy.errors import SscDeployError

    from train_speed import cpu_description

    console = Console(width=220)
    models = [m for m in args.models.split(",") if m]
    targets = [r for r in args.runtimes.split(",") if r]
    unknown = [t for t in targets if t not in TARGET_NAMES]
    if unknown:
        raise SscDeployError(f"unknown runtime '{unknown[0]}' (known: {', '.join(TARGET_NAMES)})")
    workdir = Path(args.workdir)
    notes: list[str] = []
    exports: list[Export] = []
    for model in models:
        ckpt = checkpoint_for(model, args, notes)
        console.print(f"exporting {model} ({ckpt}) both ways to {', '.join(targets)}", style="dim")
        exports += build_exports(model, ckpt, targets, workdir, args.fresh)[0]
    for target in targets:
        console.print(f"timing {target} (1 thread, {args.rounds} interleaved rounds)", style="dim")
        time_runtime([e for e in exports if e.target == target], args.rounds)

    cpu = cpu_description()
    title = f"naive export vs ssc-deploy's default (1 thread, batch 1, fp32, medians interleaved in one run) on {cpu}"
    table = Table(title=title)
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("model", "runtime", "ssc-deploy lowering", "failures, notes")
                         else "right")
    rows = table_rows(exports)
    for r in rows:
        table.add_row(*r)
    console.print(table)
    for n in notes:
        console.print(n, style="dim")
    md = [f"CPU: {cpu}; 1 thread, batch 1, fp32; latency is the median of {args.rounds} interleaved rounds "
          "of 5 calls, every file of a runtime timed in one process. Ratios are naive / ssc-deploy (above 1: "
          "ssc-deploy's export is faster, has fewer ops, is smaller). max abs diff is the largest logit difference "
          f"to the PyTorch module on {N_CHECK} test images.", "",
          "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += [""] + [f"- {n}" for n in notes]
    if args.json:
        write_text_atomic(args.json, json.dumps({"cpu": cpu, "notes": notes, "rows": [asdict(e) for e in exports]},
                                                indent=2))
    if args.markdown:
        write_text_atomic(args.markdown, "\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    from ssc_deploy.errors import run_script

    run_script(main)
