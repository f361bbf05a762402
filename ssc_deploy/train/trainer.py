"""Train a model from the zoo with the paper's recipe and write a self-describing checkpoint.

One code path serves a single process and ``torchrun`` data-parallel training: when a
process group is initialised, each rank takes its shard of every epoch
(``DistributedSampler``), gradients are averaged by ``DistributedDataParallel``, metrics
are summed across ranks and only rank 0 writes the checkpoint.

Batches are augmented from a generator seeded by (seed, epoch, rank, batch), and each
epoch's shuffle by (seed, epoch), so a run resumed from its last checkpoint draws exactly
the batches the uninterrupted run would have drawn.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

import ssc_deploy
from ssc_deploy.checkpoint import Checkpoint, load_checkpoint, load_state_dict_checked, save_checkpoint
from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD, load_dataset, parse_spec
from ssc_deploy.data.transforms import Augment, augmentation_for, to_normalized_float
from ssc_deploy.errors import SscDeployError
from ssc_deploy.models import create_model
from ssc_deploy.models.modes import eval_mode

from .batches import EpochBatches, epoch_batches, to_tensor
from .config import TrainConfig
from .distributed import Dist, agree_on_weights, dist_info, resolve_device
from .key import train_key
from .prepare import prepare_run
from .recipe import Recipe
from .threads import candidates, fastest, time_threads

EVAL_BATCH = 32  # measured here: per-image cost grows with the batch (memory-bound ops)


def _set_threads(threads: int | None, procs_per_host: int, model: torch.nn.Module,
                 batch: tuple[torch.Tensor, torch.Tensor], dev: torch.device) -> tuple[int, dict[int, float]]:
    """``threads``, else the fastest candidate count timed on a few training steps of ``batch``.

    Returns the count set and the seconds a step each candidate took (empty when nothing was
    timed: ``threads`` given, on a GPU, or a single candidate). The torch RNG is left as it was.
    """
    timing: dict[int, float] = {}
    counts = candidates(procs_per_host)
    if threads:
        n = int(threads)
    elif dev.type != "cpu" or len(counts) == 1:
        n = counts[-1]
    else:
        rng = torch.get_rng_state()
        timing = time_threads(model, batch, counts)
        torch.set_rng_state(rng)
        n = fastest(timing)
    torch.set_num_threads(n)
    return n, timing


def _topk_correct(logits: torch.Tensor, y: torch.Tensor, k: int) -> int:
    k = min(k, logits.shape[1])
    return int((logits.topk(k, dim=1).indices == y[:, None]).any(dim=1).sum())


@torch.no_grad()
def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, mean, std, device: torch.device,
             d: Dist | None = None) -> dict[str, float]:
    """Test loss, top-1 and top-5 accuracy (summed over ranks when distributed)."""
    d = d or Dist()
    idx = torch.arange(d.rank, len(labels), d.world_size)
    totals = torch.zeros(4, dtype=torch.float64)  # loss sum, top1, top5, count
    with eval_mode(model):
        for part in idx.split(EVAL_BATCH):
            x = to_normalized_float(images[part], mean, std).to(device)
            y = labels[part].to(device)
            out = model(x)
            totals += torch.tensor([float(F.cross_entropy(out, y, reduction="sum")), _topk_correct(out, y, 1),
                                    _topk_correct(out, y, 5), len(part)], dtype=torch.float64)
    if d.enabled:
        t = totals.to(device) if d.backend == "nccl" else totals
        dist.all_reduce(t)
        totals = t.cpu()
    n = max(float(totals[3]), 1.0)
    return {"test_loss": float(totals[0]) / n, "test_top1": float(totals[1]) / n, "test_top5": float(totals[2]) / n}


def _progress(enabled: bool):
    from contextlib import nullcontext

    if not enabled:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), transient=False)


@dataclass
class _Run:
    """One training run as its steps share it: the resolved config, data, model, optimizer and history."""

    cfg: TrainConfig
    recipe: Recipe
    d: Dist
    dev: torch.device
    model: torch.nn.Module
    net: torch.nn.Module  # ``model``, wrapped in DistributedDataParallel when distributed
    optimizer: torch.optim.Optimizer
    classes: list[str]
    mean: list[float]
    std: list[float]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    augment: Augment
    per_rank_batch: int
    start_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    def checkpoint(self, metrics: dict[str, Any], epoch_done: int) -> Checkpoint:
        """The checkpoint after ``epoch_done`` epochs: weights, facts, and the state ``--resume`` continues."""
        cfg = self.cfg
        return Checkpoint(
            model_name=cfg.model,
            config={"num_classes": len(self.classes), "in_size": cfg.in_size},
            state_dict={k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            classes=self.classes,
            mean=[float(v) for v in self.mean],
            std=[float(v) for v in self.std],
            input_shape=[3, cfg.in_size, cfg.in_size],
            metrics=metrics,
            provenance=dict(self.provenance),
            training_state={
                "epoch": epoch_done,
                "optimizer": self.optimizer.state_dict(),
                "recipe": self.recipe.to_dict(),
                "seed": cfg.seed,
                "max_batches": cfg.max_batches or 0,
                "eval_limit": cfg.eval_limit or 0,
                "history": [dict(h) for h in self.history],
                "torch_rng": torch.get_rng_state(),
            },
        )


def _restoring_threads(fn):
    """Give the caller back its torch thread count (a quickstart benchmarks right after training)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        previous = torch.get_num_threads()
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(previous)

    return wrapper


@_restoring_threads
def train_model(config: TrainConfig | str | None = None, /, **fields: Any) -> Checkpoint:
    """Train ``config.model`` on ``config.data`` and return the final :class:`Checkpoint` (also
    written to :meth:`TrainConfig.output_path`).

    ``train_model(TrainConfig(model="ssc-net-1-9", epochs=6))``; a model name with the other
    fields as keywords, ``train_model("ssc-net-1-9", epochs=6)``, builds the same config, and
    keywords after a config replace its fields.

    The paper's recipe is the default (:func:`ssc_deploy.train.recipe.default_recipe`);
    ``epochs``/``batch_size``/``lr``/``weight_decay`` override it (``batch_size`` is the
    global batch, split across data-parallel ranks). The checkpoint is rewritten
    atomically after every epoch with its training state, so ``resume=out`` continues an
    interrupted run exactly; a resumed run keeps its stored recipe unless overridden.
    ``data`` defaults to the digits set, or on resume to the data the checkpoint names.
    ``init`` starts from the weights of another checkpoint (or a bare ``state_dict``).
    ``max_batches`` caps the batches per epoch (quick runs; kept on resume); ``eval_every``
    > 0 also measures test accuracy every that many epochs (always at the end), on the
    first ``eval_limit`` test images when given (quick runs), else on all of them.
    """
    cfg = dataclasses.replace(config, **fields) if isinstance(config, TrainConfig) else TrainConfig(config, **fields)
    d = dist_info()
    cfg, start_ckpt, recipe = prepare_run(cfg)
    run = _start(cfg, start_ckpt, recipe, d)
    run.provenance = _provenance(run, start_ckpt)
    n_batches = len(epoch_batches(len(run.train_y), run.per_rank_batch, d, cfg.seed, 0, cfg.max_batches))
    with _progress(cfg.progress and d.is_main) as bar:
        task = bar.add_task("training", total=max(0, recipe.epochs - run.start_epoch) * n_batches) if bar is not None else None
        for epoch in range(run.start_epoch, recipe.epochs):
            _epoch(run, epoch, bar, task)
    return _finish(run)


def _start(cfg: TrainConfig, start_ckpt: Checkpoint | None, recipe: Recipe, d: Dist) -> _Run:
    """The run's data, normalisation, model and optimizer: fresh, from ``--init``'s weights, or resumed
    from ``start_ckpt`` (its weights, optimizer, epoch, history and torch RNG)."""
    state = start_ckpt.training_state if start_ckpt is not None else None
    kind, _ = parse_spec(cfg.data)
    dev = resolve_device(cfg.device, d)
    train_set = load_dataset(cfg.data, "train", size=cfg.in_size)
    test_set = load_dataset(cfg.data, "test", size=cfg.in_size)
    classes = list(train_set.classes)
    if start_ckpt is not None:
        if start_ckpt.classes != classes:
            raise SscDeployError(f"{cfg.resume}: was trained on classes {start_ckpt.classes[:5]}..., "
                                 f"the data {cfg.data} has {classes[:5]}...")
        mean, std = list(start_ckpt.mean), list(start_ckpt.std)
    elif kind == "digits":
        mean, std = list(DEFAULT_MEAN), list(DEFAULT_STD)
    else:
        m, s = train_set.channel_stats()
        mean, std = list(m), [max(v, 1e-6) for v in s]

    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes=len(classes), in_size=cfg.in_size)
    if cfg.init is not None and state is None:
        init_ckpt = load_checkpoint(cfg.init, model_name=cfg.model, num_classes=len(classes))
        load_state_dict_checked(model, init_ckpt.state_dict, str(cfg.init))
    if start_ckpt is not None:
        load_state_dict_checked(model, start_ckpt.state_dict, str(cfg.resume))
    model.to(dev)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                                weight_decay=recipe.weight_decay)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None:
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as err:
            raise SscDeployError(f"{cfg.resume}: optimizer state does not fit the model ({err})") from None
        start_epoch = int(state["epoch"])
        history = list(state.get("history", []))
        if isinstance(state.get("torch_rng"), torch.Tensor):
            torch.set_rng_state(state["torch_rng"])
    net: torch.nn.Module = model
    if d.enabled:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    train_x, train_y = to_tensor(train_set, cfg.in_size)
    test_x, test_y = to_tensor(test_set, cfg.in_size)
    if cfg.eval_limit:
        test_x, test_y = test_x[:cfg.eval_limit], test_y[:cfg.eval_limit]
    run = _Run(cfg=cfg, recipe=recipe, d=d, dev=dev, model=model, net=net, optimizer=optimizer, classes=classes,
               mean=mean, std=std, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
               augment=augmentation_for(kind), per_rank_batch=max(1, recipe.batch_size // d.world_size),
               start_epoch=start_epoch, history=history)
    run.provenance = {"data_name": train_set.name, "train_size": len(train_set), "test_size": len(test_set)}
    return run


def _provenance(run: _Run, start_ckpt: Checkpoint | None) -> dict[str, Any]:
    """What the checkpoint records of how it was made; sets the thread count first (timed when not given)."""
    cfg, d, recipe = run.cfg, run.d, run.recipe
    b = run.per_rank_batch
    sample = (to_normalized_float(run.train_x[:b], run.mean, run.std).to(run.dev), run.train_y[:b].to(run.dev))
    threads_used, thread_timing = _set_threads(cfg.threads, int(os.environ.get("LOCAL_WORLD_SIZE", d.world_size)),
                                               run.model, sample, run.dev)
    created = start_ckpt.provenance.get("created") if start_ckpt is not None else None
    return {
        "tool_version": ssc_deploy.__version__,
        "torch_version": str(torch.__version__),
        "data": cfg.data,
        **run.provenance,  # data_name, train_size, test_size
        "augmentation": {"pad": run.augment.pad, "flip": run.augment.flip},
        "seed": cfg.seed,
        "world_size": d.world_size,
        "threads_per_process": threads_used,
        "threads_timed": {str(n): round(t, 4) for n, t in thread_timing.items()},
        "recipe": recipe.name,
        "train_key": train_key(cfg.model, cfg.data, recipe, cfg.seed, cfg.in_size, cfg.max_batches, cfg.eval_limit),
        "device": str(run.dev.type),
        "host": platform.node(),
        "python": platform.python_version(),
        "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _epoch(run: _Run, epoch: int, bar, task) -> None:
    """Train one epoch, record it in the history (with test accuracy every ``eval_every`` epochs) and,
    but for the last, save the checkpoint it ends with."""
    cfg, recipe, d, dev, optimizer = run.cfg, run.recipe, run.d, run.dev, run.optimizer
    batches = epoch_batches(len(run.train_y), run.per_rank_batch, d, cfg.seed, epoch, cfg.max_batches)
    loader = torch.utils.data.DataLoader(
        EpochBatches(run.train_x, run.train_y, batches, run.augment, run.mean, run.std, cfg.seed, epoch, d.rank),
        batch_size=None, shuffle=False, num_workers=cfg.num_workers, persistent_workers=False,
    )
    run.net.train()
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
    t0 = time.perf_counter()
    for b, (x, y) in enumerate(loader):
        lr_now = recipe.lr_at(epoch, b, len(batches))
        for group in optimizer.param_groups:
            group["lr"] = lr_now
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        out_logits = run.net(x)
        loss = F.cross_entropy(out_logits, y, label_smoothing=recipe.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        totals += torch.tensor([float(loss.detach()) * len(y), float((out_logits.argmax(1) == y).sum()), len(y)],
                               dtype=torch.float64)
        if bar is not None:
            n = max(float(totals[2]), 1.0)
            bar.update(task, advance=1, description=(
                f"{cfg.model} epoch {epoch + 1}/{recipe.epochs} lr {lr_now:.3g} "
                f"loss {float(totals[0]) / n:.3f} acc {100 * float(totals[1]) / n:.1f}%"))
    if d.enabled:
        dist.all_reduce(totals)
    n = max(float(totals[2]), 1.0)
    record: dict[str, Any] = {"epoch": epoch + 1, "lr": recipe.lr_at(epoch, 0, len(batches)), "train_loss": float(totals[0]) / n,
                              "train_top1": float(totals[1]) / n, "seconds": time.perf_counter() - t0}
    last = epoch + 1 == recipe.epochs
    if cfg.eval_every and (epoch + 1) % cfg.eval_every == 0 and not last:
        record.update(evaluate(run.model, run.test_x, run.test_y, run.mean, run.std, dev, d))
        if bar is not None:
            bar.console.print(f"epoch {epoch + 1}: test top-1 {100 * record['test_top1']:.1f}%")
    run.history.append(record)
    if cfg.epoch_lines and d.is_main:
        print(f"epoch {epoch + 1}/{recipe.epochs}: loss {record['train_loss']:.3f}, train top-1 "
              f"{100 * record['train_top1']:.1f} %, {record['seconds']:.0f} s", flush=True)
    if d.is_main and not last:
        save_checkpoint(run.checkpoint({"epochs_done": epoch + 1, **_train_summary(run.history)}, epoch + 1), cfg.out)


def _finish(run: _Run) -> Checkpoint:
    """The final checkpoint: ranks agree on the weights, test accuracy on the whole (or limited) test
    split, written by rank 0."""
    d, recipe = run.d, run.recipe
    if d.enabled:
        run.provenance["distributed"] = agree_on_weights(run.model, d)
    final = evaluate(run.model, run.test_x, run.test_y, run.mean, run.std, run.dev, d)
    metrics = {"epochs_done": recipe.epochs, **_train_summary(run.history), **final,
               "test_images": int(len(run.test_y))}
    ckpt = run.checkpoint(metrics, recipe.epochs)
    if d.is_main:
        save_checkpoint(ckpt, run.cfg.out)
        ckpt.path = str(run.cfg.out)
    if d.enabled:
        dist.barrier()
    return ckpt


def _train_summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    if not history:
        return {"history": []}
    return {
        "train_loss": history[-1]["train_loss"],
        "train_top1": history[-1]["train_top1"],
        "train_seconds": float(sum(h["seconds"] for h in history)),
        "history": [dict(h) for h in history],
    }
