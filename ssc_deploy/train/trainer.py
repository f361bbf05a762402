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
import hashlib
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

import ssc_deploy
from ssc_deploy.atomic import check_writable_dir
from ssc_deploy.checkpoint import Checkpoint, load_checkpoint, load_state_dict_checked, save_checkpoint
from ssc_deploy.data import DEFAULT_DATA, DEFAULT_MEAN, DEFAULT_STD, ImageSet, load_dataset, parse_spec
from ssc_deploy.data.transforms import Augment, augmentation_for, resize_uint8, to_normalized_float
from ssc_deploy.errors import SscDeployError
from ssc_deploy.models import create_model, model_family
from ssc_deploy.models.modes import eval_mode

from .config import TrainConfig, require_model
from .recipe import Recipe, default_recipe
from .key import train_key
from .threads import candidates, fastest, time_threads

EVAL_BATCH = 32  # measured here: per-image cost grows with the batch (memory-bound ops)


@dataclass
class _Dist:
    """This process's place in the (possibly 1-process) data-parallel group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _dist_info() -> _Dist:
    if dist.is_available() and dist.is_initialized():
        return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), dist.get_backend())
    return _Dist()


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


def _to_tensor(ds: ImageSet, in_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.ascontiguousarray(ds.images.transpose(0, 3, 1, 2)))
    return resize_uint8(x, in_size), torch.from_numpy(ds.labels.astype(np.int64))


def _batch_seed(seed: int, epoch: int, rank: int, batch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank, batch]).generate_state(1)[0])


class _EpochBatches(torch.utils.data.Dataset):
    """Batch ``b`` of one epoch, augmented and normalised (picklable for DataLoader workers)."""

    def __init__(self, images, labels, batches, augment: Augment, mean, std, seed: int, epoch: int, rank: int):
        self.images, self.labels, self.batches = images, labels, batches
        self.augment, self.mean, self.std = augment, mean, std
        self.seed, self.epoch, self.rank = seed, epoch, rank

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.batches[b]
        gen = torch.Generator().manual_seed(_batch_seed(self.seed, self.epoch, self.rank, b))
        x = self.augment(self.images[idx], gen)
        return to_normalized_float(x, self.mean, self.std), self.labels[idx]


def _epoch_batches(n: int, per_rank_batch: int, d: _Dist, seed: int, epoch: int, max_batches: int | None) -> list[torch.Tensor]:
    sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=d.world_size, rank=d.rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    order = torch.tensor(list(iter(sampler)), dtype=torch.long)
    batches = list(order.split(per_rank_batch))
    if len(batches) > 1 and len(batches[-1]) < 2:  # BatchNorm cannot train on one sample
        batches.pop()
    return batches[:max_batches] if max_batches else batches


def _topk_correct(logits: torch.Tensor, y: torch.Tensor, k: int) -> int:
    k = min(k, logits.shape[1])
    return int((logits.topk(k, dim=1).indices == y[:, None]).any(dim=1).sum())


@torch.no_grad()
def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, mean, std, device: torch.device,
             d: _Dist | None = None) -> dict[str, float]:
    """Test loss, top-1 and top-5 accuracy (summed over ranks when distributed)."""
    d = d or _Dist()
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


def params_sha256(model: torch.nn.Module) -> str:
    """Digest of every parameter's bytes, in order (to prove ranks hold identical weights)."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _progress(enabled: bool):
    from contextlib import nullcontext

    if not enabled:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), transient=False)


def _resolve_device(device: str | None, d: _Dist) -> torch.device:
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SscDeployError("--device cuda: no CUDA device is available here")
        return torch.device("cuda", d.local_rank) if d.enabled else torch.device(device)
    if device != "cpu":
        raise SscDeployError(f"unknown --device '{device}' (use cpu or cuda)")
    return torch.device("cpu")


def check_output_path(out: Path, resume: Path | None, force: bool, init: Path | None = None) -> None:
    """Refuse to overwrite an existing checkpoint unless it is being resumed or ``force`` is set
    (named as the ``--init`` checkpoint when it is that one, through links too)."""
    from ssc_deploy.output_paths import check_outputs

    check_outputs([("--out", out)], inputs=[(init, "an input, the --init checkpoint")] if init is not None else [], force=force)
    if out.is_dir():
        raise SscDeployError(f"--out {out} is a directory; give a file name such as {out / 'model.pt'}")
    if out.exists() and not force and (resume is None or out.resolve() != resume.resolve()):
        raise SscDeployError(f"{out} already exists: pass --resume {out} to continue it or --force to replace it")
    check_writable_dir(out.parent, "checkpoint directory")  # a read-only --out is found now, not after training


def _resumable(path: Path) -> Checkpoint:
    """The checkpoint ``--resume`` names, refused in one line unless it holds a training state."""
    try:
        ckpt = load_checkpoint(path)
    except SscDeployError as err:
        if "bare state_dict" in str(err):
            raise SscDeployError(f"{path}: a bare state_dict holds no training state to resume "
                                 f"(start from its weights with --init {path} --model NAME)") from None
        raise
    state = ckpt.training_state
    if not state or any(key not in state for key in ("epoch", "optimizer", "recipe")):
        raise SscDeployError(f"{path}: holds no training state to resume (use --init to start from its weights)")
    return ckpt


def _stored_or(value: int | None, state: dict[str, Any], key: str) -> int | None:
    """``value``, else the quick-run cap a resumed run stored (0 there means none)."""
    return value if value is not None or not state.get(key) else int(state[key])


def _check_numbers(config: TrainConfig) -> None:
    """The run's numeric options (the recipe's own are checked with it)."""
    from ssc_deploy.numeric import check_int, check_threads

    check_threads("--threads", config.threads)
    check_int("--num-workers", config.num_workers, 0, 64)
    check_int("--max-batches", config.max_batches, 1)
    check_int("--eval-every", config.eval_every, 0)
    check_int("--eval-limit", config.eval_limit, 1)
    check_int("--in-size", config.in_size, 4, note="pixels")


def prepare_run(config: TrainConfig) -> tuple[TrainConfig, Checkpoint | None, Recipe]:
    """Check a run's options before any data is read and fill in what they leave open.

    Returns the config with ``out``, ``model`` and ``data`` resolved (on resume also the input
    size, seed and quick-run caps the checkpoint stored), the checkpoint being resumed (None for
    a fresh run) and the recipe the run follows (a resumed run's stored one unless overridden).
    """
    _check_numbers(config)
    out = config.output_path()
    check_output_path(out, config.resume, config.force, config.init)
    start = _resumable(config.resume) if config.resume is not None else None
    model_name, data = config.model, config.data
    if start is not None:
        if model_name and model_name.strip().lower() != start.model_name:
            raise SscDeployError(f"{config.resume}: was trained as '{start.model_name}', not '{model_name}'")
        model_name = start.model_name
        data = data or str(start.provenance.get("data") or DEFAULT_DATA)
    data = data or DEFAULT_DATA
    kind, _ = parse_spec(data)
    model_family(require_model(model_name))  # an unknown name fails here, before any data is read
    resolved = dataclasses.replace(config, out=out, model=model_name, data=data)
    if start is None:
        return resolved, None, default_recipe(kind, config.epochs, config.batch_size, config.lr, config.weight_decay,
                                              name=config.recipe, family=model_family(model_name))
    state = start.training_state
    try:
        stored = Recipe.from_dict(state["recipe"])
    except (TypeError, ValueError, SscDeployError) as err:
        raise SscDeployError(f"{config.resume}: its stored training recipe is unreadable ({err})") from None
    if config.recipe is not None and config.recipe != stored.name:
        raise SscDeployError(f"{config.resume}: was trained with recipe '{stored.name}', not '{config.recipe}'")
    checked = default_recipe(
        kind,
        epochs=stored.epochs if config.epochs is None else config.epochs,
        batch_size=stored.batch_size if config.batch_size is None else config.batch_size,
        lr=stored.lr if config.lr is None else config.lr,
        weight_decay=stored.weight_decay if config.weight_decay is None else config.weight_decay,
        name=stored.name,
    )
    recipe = dataclasses.replace(stored, epochs=checked.epochs, batch_size=checked.batch_size, lr=checked.lr,
                                 weight_decay=checked.weight_decay,
                                 milestones=checked.milestones if stored.schedule == "step" else stored.milestones)
    resolved = dataclasses.replace(
        resolved, in_size=start.in_size, seed=int(state.get("seed", config.seed)),
        max_batches=_stored_or(config.max_batches, state, "max_batches"),
        eval_limit=_stored_or(config.eval_limit, state, "eval_limit"),
    )
    return resolved, start, recipe


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
    d = _dist_info()
    cfg, start_ckpt, recipe = prepare_run(cfg)
    state = start_ckpt.training_state if start_ckpt is not None else None
    out, resume_path, model_name, data, in_size = cfg.out, cfg.resume, cfg.model, cfg.data, cfg.in_size
    seed, max_batches, eval_limit = cfg.seed, cfg.max_batches, cfg.eval_limit
    kind, _ = parse_spec(data)
    dev = _resolve_device(cfg.device, d)

    train_set = load_dataset(data, "train", size=in_size)
    test_set = load_dataset(data, "test", size=in_size)
    classes = list(train_set.classes)
    if start_ckpt is not None:
        if start_ckpt.classes != classes:
            raise SscDeployError(f"{resume_path}: was trained on classes {start_ckpt.classes[:5]}..., "
                                 f"the data {data} has {classes[:5]}...")
        mean, std = list(start_ckpt.mean), list(start_ckpt.std)
    elif kind == "digits":
        mean, std = list(DEFAULT_MEAN), list(DEFAULT_STD)
    else:
        m, s = train_set.channel_stats()
        mean, std = list(m), [max(v, 1e-6) for v in s]

    torch.manual_seed(seed)
    model = create_model(model_name, num_classes=len(classes), in_size=in_size)
    if cfg.init is not None and state is None:
        init_ckpt = load_checkpoint(cfg.init, model_name=model_name, num_classes=len(classes))
        load_state_dict_checked(model, init_ckpt.state_dict, str(cfg.init))
    if start_ckpt is not None:
        load_state_dict_checked(model, start_ckpt.state_dict, str(resume_path))
    model.to(dev)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                                weight_decay=recipe.weight_decay)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None:
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as err:
            raise SscDeployError(f"{resume_path}: optimizer state does not fit the model ({err})") from None
        start_epoch = int(state["epoch"])
        history = list(state.get("history", []))
        if isinstance(state.get("torch_rng"), torch.Tensor):
            torch.set_rng_state(state["torch_rng"])
    net: torch.nn.Module = model
    if d.enabled:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)

    train_x, train_y = _to_tensor(train_set, in_size)
    test_x, test_y = _to_tensor(test_set, in_size)
    if eval_limit:
        test_x, test_y = test_x[:eval_limit], test_y[:eval_limit]
    provenance_eval = {"test_images": int(len(test_y))}
    augment = augmentation_for(kind)
    per_rank_batch = max(1, recipe.batch_size // d.world_size)
    sample = (to_normalized_float(train_x[:per_rank_batch], mean, std).to(dev), train_y[:per_rank_batch].to(dev))
    threads_used, thread_timing = _set_threads(cfg.threads, int(os.environ.get("LOCAL_WORLD_SIZE", d.world_size)),
                                               model, sample, dev)

    provenance = {
        "tool_version": ssc_deploy.__version__,
        "torch_version": str(torch.__version__),
        "data": data,
        "data_name": train_set.name,
        "train_size": len(train_set),
        "test_size": len(test_set),
        "augmentation": {"pad": augment.pad, "flip": augment.flip},
        "seed": seed,
        "world_size": d.world_size,
        "threads_per_process": threads_used,
        "threads_timed": {str(n): round(t, 4) for n, t in thread_timing.items()},
        "recipe": recipe.name,
        "train_key": train_key(model_name, data, recipe, seed, in_size, max_batches, eval_limit),
        "device": str(dev.type),
        "host": platform.node(),
        "python": platform.python_version(),
    }
    if start_ckpt is not None and start_ckpt.provenance.get("created"):
        provenance["created"] = start_ckpt.provenance["created"]
    else:
        provenance["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

    def make_checkpoint(metrics: dict[str, Any], epoch_done: int) -> Checkpoint:
        return Checkpoint(
            model_name=model_name,
            config={"num_classes": len(classes), "in_size": in_size},
            state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            classes=classes,
            mean=[float(v) for v in mean],
            std=[float(v) for v in std],
            input_shape=[3, in_size, in_size],
            metrics=metrics,
            provenance=dict(provenance),
            training_state={
                "epoch": epoch_done,
                "optimizer": optimizer.state_dict(),
                "recipe": recipe.to_dict(),
                "seed": seed,
                "max_batches": max_batches or 0,
                "eval_limit": eval_limit or 0,
                "history": [dict(h) for h in history],
                "torch_rng": torch.get_rng_state(),
            },
        )

    n_batches = len(_epoch_batches(len(train_y), per_rank_batch, d, seed, 0, max_batches))
    remaining = max(0, recipe.epochs - start_epoch)
    with _progress(cfg.progress and d.is_main) as bar:
        task = bar.add_task("training", total=remaining * n_batches) if bar is not None else None
        for epoch in range(start_epoch, recipe.epochs):
            batches = _epoch_batches(len(train_y), per_rank_batch, d, seed, epoch, max_batches)
            loader = torch.utils.data.DataLoader(
                _EpochBatches(train_x, train_y, batches, augment, mean, std, seed, epoch, d.rank),
                batch_size=None, shuffle=False, num_workers=cfg.num_workers, persistent_workers=False,
            )
            net.train()
            totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
            t0 = time.perf_counter()
            for b, (x, y) in enumerate(loader):
                lr_now = recipe.lr_at(epoch, b, len(batches))
                for group in optimizer.param_groups:
                    group["lr"] = lr_now
                x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
                out_logits = net(x)
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
                record.update(evaluate(model, test_x, test_y, mean, std, dev, d))
                if bar is not None:
                    bar.console.print(f"epoch {epoch + 1}: test top-1 {100 * record['test_top1']:.1f}%")
            history.append(record)
            if cfg.epoch_lines and d.is_main:
                print(f"epoch {epoch + 1}/{recipe.epochs}: loss {record['train_loss']:.3f}, train top-1 "
                      f"{100 * record['train_top1']:.1f} %, {record['seconds']:.0f} s", flush=True)
            if d.is_main and not last:
                save_checkpoint(make_checkpoint({"epochs_done": epoch + 1, **_train_summary(history)}, epoch + 1), out)

    if d.enabled:
        digest = params_sha256(model)
        digests: list[str] = [""] * d.world_size
        dist.all_gather_object(digests, digest)
        for buf in model.buffers():  # BatchNorm statistics: rank 0's, as DDP broadcasts them
            dist.broadcast(buf, src=0)
        provenance["distributed"] = {"backend": d.backend, "world_size": d.world_size, "rank_params_sha256": digests}
    final = evaluate(model, test_x, test_y, mean, std, dev, d)
    metrics = {"epochs_done": recipe.epochs, **_train_summary(history), **final, **provenance_eval}
    ckpt = make_checkpoint(metrics, recipe.epochs)
    if d.is_main:
        save_checkpoint(ckpt, out)
        ckpt.path = str(out)
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

