"""CLI: ``train`` (the paper's recipe, --resume, --nproc for torchrun DDP) and ``ckpt-info``."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from ssc_deploy.errors import SscDeployError

from .app import app

if TYPE_CHECKING:
    from ssc_deploy.train.config import TrainConfig


def _launch_torchrun(nproc: int, config: TrainConfig) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "ssc_deploy.train.ddp", *config.to_argv()]
    rc = subprocess.run(cmd).returncode
    if rc != 0:
        raise SscDeployError(f"distributed training failed (torchrun exit code {rc}); see the rank messages above", exit_code=1)


def _summary_rows(ckpt) -> list[tuple[str, str]]:
    m = ckpt.metrics
    rows = [
        ("model", ckpt.model_name),
        ("data", str(ckpt.provenance.get("data", "?"))),
        ("classes", str(len(ckpt.classes))),
        ("input", "x".join(str(v) for v in ckpt.input_shape)),
        ("epochs", str(m.get("epochs_done", "?"))),
        ("recipe", str(ckpt.provenance.get("recipe", "paper"))),
    ]
    for key, label in (("test_top1", "test top-1"), ("test_top5", "test top-5"), ("train_top1", "train top-1")):
        if key in m:
            rows.append((label, f"{100 * float(m[key]):.2f} %"))
    if "train_seconds" in m:
        rows.append(("train time", f"{float(m['train_seconds']):.1f} s"))
    if ckpt.path:
        rows.append(("file", ckpt.path))
    if ckpt.sha256:
        rows.append(("sha256", ckpt.sha256[:16] + "..."))
    return rows


def _print_table(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from ssc_deploy.display import as_text

    # Values (model and class names, paths) come from the checkpoint: printed as data, never markup.
    table = Table(title=as_text(title), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for k, v in rows:
        table.add_row(k, as_text(v))
    Console().print(table)


def _ckpt_json(ckpt, n_params: int | None = None) -> dict[str, Any]:
    metrics = {k: v for k, v in ckpt.metrics.items()}
    return {
        "path": ckpt.path,
        "sha256": ckpt.sha256,
        "model": ckpt.model_name,
        "config": ckpt.config,
        "classes": ckpt.classes,
        "input_shape": ckpt.input_shape,
        "mean": ckpt.mean,
        "std": ckpt.std,
        "metrics": metrics,
        "provenance": ckpt.provenance,
        "parameters": n_params,
        "resumable": bool(ckpt.training_state),
    }


@app.command("train")
def train(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Architecture to train, e.g. ssc-net-1-9, ssc-net-3-9 (see `ssc-deploy models`). Taken from the checkpoint with --resume."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Data set: digits (offline default; with --resume, the checkpoint's data), cifar10:PATH, cifar100:PATH, imagenet32:PATH or folder:PATH (PATH/train/<class>/*, PATH/test/<class>/*)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", "-e", help="Total epochs. Default per data set: digits 4 (digits-fast; 6 with --recipe paper), CIFAR 160, ImageNet32 40 (the paper's), folder 160. With the paper's recipe the learning rate drops 10x at 50% and 75% of them (ImageNet32: every 25%)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Checkpoint file to write (rewritten atomically after every epoch). Default: MODEL.pt, or the --resume file."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Global mini-batch size (split across --nproc processes). Default 128, as in the paper (digits: 32)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Initial learning rate. Default 0.1 (ImageNet32: 0.01), as in the paper."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="L2 weight decay. Default 2e-4 (ImageNet32: 1e-4), as in the paper."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Optimisation recipe: paper (step LR, the default "
                                         "for CIFAR, ImageNet32 and folders) or digits-fast (linear warm-up, cosine LR, "
                                         "label smoothing 0.1, 4 epochs; the default for digits). With --resume, the "
                                         "checkpoint's."),
    seed: int = typer.Option(0, "--seed", help="Seed for initialisation, shuffling and augmentation (runs are reproducible)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run from its checkpoint (model, data classes and recipe come from it)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from the weights of this checkpoint or bare state_dict (fine-tuning); the optimizer starts fresh."),
    in_size: int = typer.Option(32, "--in-size", help="Input side in pixels; images are resized to it."),
    download: bool = typer.Option(False, "--download", help="Fetch CIFAR-10/100 into the --data PATH first (md5-checked) if it is not there."),
    nproc: int = typer.Option(1, "--nproc", help="Data-parallel processes on this machine, launched with torchrun (gloo on CPU, nccl on GPU)."),
    num_workers: int = typer.Option(0, "--num-workers", help="DataLoader worker processes preparing augmented batches (0: in the training process)."),
    max_batches: Optional[int] = typer.Option(None, "--max-batches", help="Stop each epoch after this many batches (quick trials and smoke tests)."),
    eval_every: int = typer.Option(0, "--eval-every", help="Also measure test accuracy every N epochs (0: only at the end)."),
    eval_limit: Optional[int] = typer.Option(None, "--eval-limit", help="Measure test accuracy on only the first N test images (quick trials). Default: all."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads per process. Default: the fastest of 1, 2 and all of the process's cores, timed on a few training steps before training (on a busy machine more threads can run several times slower)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda. Default: cuda when available, else cpu."),
    force: bool = typer.Option(False, "--force", help="Replace an existing --out file (otherwise training refuses to overwrite it)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar with loss and accuracy (on stderr)."),
    as_json: bool = typer.Option(False, "--json", help="Print the final checkpoint's summary as JSON on stdout instead of a table."),
) -> None:
    """Train a model (the paper's recipe: SGD, Nesterov 0.9, batch 128, step LR, crop+flip; digits: digits-fast) and write a checkpoint."""
    from ssc_deploy.data import parse_spec
    from ssc_deploy.train.config import TrainConfig

    config = TrainConfig(
        model=model, data=data, epochs=epochs, out=out, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
        recipe=recipe, seed=seed, resume=resume, init=init, in_size=in_size, progress=progress, num_workers=num_workers,
        max_batches=max_batches, eval_every=eval_every, eval_limit=eval_limit, threads=threads, device=device,
        force=force,
    )
    config = dataclasses.replace(config, out=config.output_path())
    from ssc_deploy.numeric import MAX_THREADS, check_int

    check_int("--nproc", nproc, 1, MAX_THREADS)
    if download:
        kind, path = parse_spec(data or "digits")
        if kind not in ("cifar10", "cifar100") or not path:
            raise SscDeployError("--download works with --data cifar10:PATH or cifar100:PATH")
        from ssc_deploy.data.cifar import download as fetch

        fetch(path, kind)

    from ssc_deploy.checkpoint import load_checkpoint

    if nproc > 1:
        _preflight(config)
        _launch_torchrun(nproc, config)
    else:
        from ssc_deploy.train import train_model

        train_model(config)
    ckpt = load_checkpoint(config.out)
    if as_json:
        print(json.dumps(_ckpt_json(ckpt), indent=2, default=str))
    else:
        _print_table("trained", _summary_rows(ckpt))


def _preflight(config: TrainConfig) -> None:
    """Catch bad input in this process, before torchrun starts ranks that would each fail."""
    from ssc_deploy.checkpoint import load_checkpoint
    from ssc_deploy.data import load_dataset
    from ssc_deploy.train.prepare import prepare_run

    resolved, _, _ = prepare_run(config)
    load_dataset(resolved.data, "test", size=resolved.in_size)
    if resolved.init:
        load_checkpoint(resolved.init, model_name=resolved.model)


@app.command("ckpt-info")
def ckpt_info(
    checkpoint: Path = typer.Argument(..., help="Checkpoint file (.pt) written by `ssc-deploy train`, or a bare state_dict with --model."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Architecture of a bare state_dict (an ssc-deploy checkpoint names its own)."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON on stdout instead of a table."),
) -> None:
    """Describe a checkpoint and check that its weights fit its architecture (loaded safely: weights_only)."""
    from ssc_deploy.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint, model_name=model)
    net = ckpt.build_model()
    n_params = sum(p.numel() for p in net.parameters())
    if as_json:
        print(json.dumps(_ckpt_json(ckpt, n_params), indent=2, default=str))
        return
    rows = _summary_rows(ckpt)
    rows.insert(1, ("parameters", f"{n_params:,}"))
    rows.append(("mean / std", f"{[round(v, 4) for v in ckpt.mean]} / {[round(v, 4) for v in ckpt.std]}"))
    rows.append(("resumable", "yes" if ckpt.training_state else "no"))
    prov = ckpt.provenance
    if prov:
        rows.append(("provenance", ", ".join(f"{k}={prov[k]}" for k in ("tool_version", "torch_version", "created") if k in prov) or str(prov)))
    _print_table(str(checkpoint), rows)
