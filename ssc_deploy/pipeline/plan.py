"""How the quickstart trains: thread count, side by side or one after another, and epochs, all
planned from timed probes on this machine right now, not guessed.

1. Each model times a few training steps with 1 and with 2 threads, interleaved
   (:func:`ssc_deploy.train.threads.time_threads`) in this process: the sequential option
   runs each model at its fastest count.
2. All models then time 1-thread steps at once, each in its own process
   (:mod:`ssc_deploy.pipeline.probe_worker`): the parallel option runs them side by side.
3. Both options are simulated over the recipe's epochs; the faster one is taken. Epochs are
   cut one at a time from the model with the most until the training fits what the budget
   leaves after the probe and the estimated export and benchmark, then given back where they fit.

The export and benchmark stages are estimated from the same probe (their cost scales with
the machine's speed as the probe sees it; ``POST_*`` were calibrated here), the int8 files'
part as ``INT8_POST_RATIO`` times the fp32 part of the models that get them.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

DEFAULT_MINUTES = 12.0
# Export (3 targets) plus benchmark (3 runtimes, 1 thread) of the models: a fixed part plus a part
# that scales with their 1-thread training steps at batch 32, fitted to the default quickstart
# runs of 2026-12-01 on this 2-core host: 228 s for 5.6 s of steps (load average 7-8) and 144 s
# for 2.4 s (load average 2-3).
POST_FIXED_SECONDS = 80.0
POST_SECONDS_PER_STEP = 26.0
# The int8 files of a model (export with calibration, quantization and the accuracy gate on every
# target, then their benchmark rows) against its fp32 files' export and benchmark: this many times
# as long. From a fresh-clone quickstart on 2026-12-01 (quiet 2-core host): the three int8 exports
# took 44 s against 17 s for fp32 for SSC-Net-1-9 (2.6x), about 75 s against 18 s for MobileNetV2
# (4.2x, ExecuTorch's 58 s most of it).
INT8_POST_RATIO = 3.0
# Start-up of a training process (imports, data, model) and its closing evaluation, in steps.
WORKER_OVERHEAD_STEPS = 8.0
THREAD_CANDIDATES = (1, 2)
QUICK_BATCHES = 4  # --quick: batches of its one epoch


@dataclass
class ModelPlan:
    """One model's share of the plan."""

    epochs: int
    max_batches: int | None = None
    threads: int | None = None  # None: the trainer times its own
    cap: int = 0  # the recipe's epochs
    batches: int = 0  # batches an epoch
    step_seconds: dict[str, float] = field(default_factory=dict)  # solo, by thread count
    concurrent_step_seconds: float | None = None  # 1 thread, all models at once
    why: str = ""
    reused: bool = False  # a checkpoint of the same run exists: no training


@dataclass
class TrainingPlan:
    """Everything the plan stage decided, with the measurements it decided from."""

    mode: str  # "parallel" (one process a model, 1 thread each) or "sequential"
    models: dict[str, ModelPlan]
    train_seconds: float = 0.0  # planned wall time of the train stage
    post_seconds: float = 0.0  # planned export + benchmark (int8 files included)
    int8_seconds: float = 0.0  # the int8 files' part of post_seconds
    int8_models: list[str] = field(default_factory=list)  # the models whose int8 files fit the budget
    int8_dropped: list[str] = field(default_factory=list)  # asked for, but left out: they did not fit
    probe_seconds: float = 0.0
    options: dict[str, float] = field(default_factory=dict)  # simulated seconds of each mode
    budget_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for bench.json."""
        return asdict(self)


def sample_batch(model_name: str, data: str):
    """A fresh ``model_name`` for ``data``, its first training batch at the recipe's batch size and batches an epoch."""
    import torch

    from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD, load_dataset, parse_spec
    from ssc_deploy.data.transforms import to_normalized_float
    from ssc_deploy.models import create_model
    from ssc_deploy.train.recipe import default_recipe

    ds = load_dataset(data, "train", size=32)
    bs = default_recipe(parse_spec(data)[0]).batch_size
    x = torch.from_numpy(ds.images[:bs].transpose(0, 3, 1, 2).copy())
    x = to_normalized_float(x, DEFAULT_MEAN, DEFAULT_STD)
    y = torch.from_numpy(ds.labels[:bs].astype("int64"))
    torch.manual_seed(0)
    return create_model(model_name, num_classes=len(ds.classes), in_size=32), (x, y), math.ceil(len(ds) / bs)


def _solo_probe(model_name: str, data: str, counts: Sequence[int]) -> tuple[dict[int, float], int]:
    from ssc_deploy.train.threads import time_threads

    model, batch, batches = sample_batch(model_name, data)
    return time_threads(model, batch, list(counts), rounds=2), batches


def _concurrent_probe(models: Sequence[str], data: str) -> dict[str, float]:
    """1-thread step seconds of every model, all timed at once in their own processes."""
    from ssc_deploy.errors import SscDeployError, last_line

    procs = {m: subprocess.Popen([sys.executable, "-m", "ssc_deploy.pipeline.probe_worker", m, data],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for m in models}
    seconds = {}
    for m, p in procs.items():
        out, err = p.communicate()
        if p.returncode != 0:
            raise SscDeployError(f"the parallel probe of {m} failed: {last_line(err, '?')}")
        seconds[m] = float(json.loads(out.strip().splitlines()[-1])["seconds"])
    return seconds


def simulate_parallel(work: dict[str, float], cores: float) -> float:
    """Wall seconds for jobs of ``work`` solo-seconds each, all started at once on ``cores`` effective cores."""
    left = dict(work)
    clock = 0.0
    while left:
        rate = min(1.0, cores / len(left))
        m = min(left, key=left.get)
        step = left.pop(m) / rate
        clock += step
        left = {k: v - step * rate for k, v in left.items()}
    return clock


def _work(mp: ModelPlan, step: float, epochs: int) -> float:
    return step * (epochs * mp.batches + WORKER_OVERHEAD_STEPS)


def _fit(models: dict[str, ModelPlan], budget: float, wall) -> float:
    """Epochs that fit ``budget`` by ``wall(models)``: cut one epoch at a time from the model with the
    most (the slowest on a tie, never below 1), then give epochs back, model under test first, where
    they still fit."""
    trainable = [m for m, mp in models.items() if not mp.reused]

    def per_epoch(m: str) -> float:
        return models[m].batches * min(models[m].step_seconds.values())

    total = wall(models)
    while total > budget:
        cuttable = [m for m in trainable if models[m].epochs > 1]
        if not cuttable:
            break
        models[max(cuttable, key=lambda m: (models[m].epochs, per_epoch(m)))].epochs -= 1
        total = wall(models)
    grown = True
    while grown:
        grown = False
        for m in trainable:
            if models[m].epochs < models[m].cap:
                models[m].epochs += 1
                if wall(models) <= budget:
                    total, grown = wall(models), True
                else:
                    models[m].epochs -= 1
    return total


def plan_training(models: Sequence[str], data: str, minutes: float, epochs: int | None, quick: bool,
                  console=None, parallel: bool | None = None, reused: Sequence[str] = (),
                  int8_models: Sequence[str] = ()) -> TrainingPlan:
    """The plan for ``models``: ``quick`` (1 short epoch each), fixed ``epochs``, or fitted to ``minutes``.

    ``parallel`` forces the mode; None decides it from the probes. Models in ``reused`` are not
    trained (only a 1-thread step is timed, for the export and benchmark estimate). Models in
    ``int8_models`` also get int8 files, in that order, as far as the budget left after training
    for the fitted epochs allows: int8 files never cost a model an epoch (accuracy comes first).
    """
    from ssc_deploy.data import parse_spec
    from ssc_deploy.train.recipe import default_epochs

    import torch

    t0 = time.perf_counter()
    if parallel is None and torch.cuda.is_available():
        parallel = False  # one GPU: the trainer puts each model on it in turn (the CPU probe overestimates)
    cap = default_epochs(parse_spec(data)[0])
    plans: dict[str, ModelPlan] = {}
    for m in models:
        counts = (1,) if m in reused else THREAD_CANDIDATES
        if console is not None:
            console.print(f"  timing {m}: training steps at {' and '.join(map(str, counts))} thread(s)"
                          f"{', interleaved' if len(counts) > 1 else ''} ...", highlight=False)
        solo, batches = _solo_probe(m, data, counts)
        plans[m] = ModelPlan(epochs=cap, cap=cap, batches=batches, step_seconds={str(k): v for k, v in solo.items()},
                             reused=m in reused)
    if quick:
        for mp in plans.values():
            mp.epochs, mp.max_batches, mp.batches, mp.why = 1, QUICK_BATCHES, QUICK_BATCHES, "--quick"
    elif epochs is not None:
        for mp in plans.values():
            mp.epochs, mp.why = epochs, "--epochs"
    for m in reused:
        plans[m].epochs, plans[m].why = 0, "reused: trained by the same code, data and recipe"
    concurrent: dict[str, float] = {}
    to_train = [m for m in models if m not in reused]
    if len(to_train) > 1 and parallel is not False:
        if console is not None:
            console.print(f"  timing all {len(to_train)} side by side, 1 thread each ...", highlight=False)
        concurrent = _concurrent_probe(to_train, data)
        for m, s in concurrent.items():
            plans[m].concurrent_step_seconds = s
    probe_seconds = time.perf_counter() - t0
    post, _ = post_estimate(plans)
    budget = max(0.0, minutes * 60 - probe_seconds - post)
    options = {"sequential": training_wall("sequential", plans)}
    if concurrent:
        options["parallel"] = training_wall("parallel", plans)
    mode = {True: "parallel", False: "sequential"}.get(parallel) or min(options, key=options.get)
    fitted = quick or epochs is not None
    train_seconds = training_wall(mode, plans) if fitted else _fit(plans, budget, lambda ps: training_wall(mode, ps))
    left = None if fitted else budget - train_seconds
    chosen, dropped = _int8_that_fit(plans, int8_models, left)
    post, int8 = post_estimate(plans, chosen)
    for m, mp in plans.items():
        mp.threads = 1 if mode == "parallel" else int(min(mp.step_seconds, key=mp.step_seconds.get))
        if not fitted and not mp.reused:
            mp.why = (f"{mp.step_seconds['1'] * mp.batches:.0f} s/epoch at 1 thread alone, "
                      f"{mp.step_seconds.get('2', float('nan')) * mp.batches:.0f} s at 2")
    return TrainingPlan(mode=mode, models=plans, train_seconds=train_seconds, post_seconds=post, int8_seconds=int8,
                        int8_models=chosen, int8_dropped=dropped, probe_seconds=probe_seconds, options=options,
                        budget_seconds=minutes * 60)


def _int8_that_fit(plans: dict[str, ModelPlan], wanted: Sequence[str], left: float | None) -> tuple[list[str], list[str]]:
    """The models of ``wanted`` (in order) whose int8 files fit in ``left`` seconds (None: no limit), and the rest."""
    chosen: list[str] = []
    for m in wanted:
        if left is None or post_estimate(plans, [*chosen, m])[1] <= left:
            chosen.append(m)
    return chosen, [m for m in wanted if m not in chosen]


def post_estimate(plans: dict[str, ModelPlan], int8_models: Sequence[str] = ()) -> tuple[float, float]:
    """Planned seconds of the export and benchmark stages, and the int8 files' part of them.

    fp32: a fixed part plus a part that scales with the models' 1-thread training steps; int8:
    ``INT8_POST_RATIO`` times the fp32 estimate of the models that get int8 files (their share
    of the steps).
    """
    steps = {m: mp.step_seconds["1"] for m, mp in plans.items()}
    fp32 = POST_FIXED_SECONDS + POST_SECONDS_PER_STEP * sum(steps.values())
    share = sum(steps[m] for m in int8_models if m in steps) / (sum(steps.values()) or 1.0)
    int8 = INT8_POST_RATIO * fp32 * share
    return fp32 + int8, int8


def budget_note(plan: TrainingPlan) -> str | None:
    """A warning when a model gets fewer epochs than its recipe, with the budget that would fit them all."""
    short = [m for m, mp in plan.models.items()
             if mp.epochs < mp.cap and not mp.reused and mp.why not in ("--quick", "--epochs")]
    if not short:
        return _int8_note(plan)
    full = {m: ModelPlan(**{**asdict(mp), "epochs": mp.cap}) for m, mp in plan.models.items()}
    need = (plan.probe_seconds + plan.post_seconds + training_wall(plan.mode, full)) / 60
    cut = ", ".join(f"{m} {plan.models[m].epochs}" for m in short)
    int8 = _int8_note(plan)
    return (f"this budget allows fewer epochs than the recipe's {plan.models[short[0]].cap} ({cut}), so accuracy "
            f"will be below what the models reach; --minutes {math.ceil(need)} would allow all of them on this "
            "machine as loaded now" + (f"; {int8}" if int8 else ""))


def _int8_note(plan: TrainingPlan) -> str | None:
    """A note naming the models whose int8 files the budget left out, with the budget that would fit them."""
    if not plan.int8_dropped:
        return None
    post, _ = post_estimate(plan.models, [*plan.int8_models, *plan.int8_dropped])
    need = (plan.probe_seconds + plan.train_seconds + post) / 60
    return (f"no int8 files for {', '.join(plan.int8_dropped)}: they do not fit the time left after training for "
            f"the recipe's epochs; --minutes {math.ceil(need)} would fit them on this machine as loaded now")


def training_wall(mode: str, plans: dict[str, ModelPlan]) -> float:
    """Planned wall seconds of training ``plans`` in ``mode``, from the probes' figures.

    Sequential: each model at its fastest thread count, one after another. Parallel: one
    1-thread process a model, on the effective cores the side-by-side probe found (each
    process ran at solo/concurrent of its solo speed; their sum is the cores they shared).
    """
    plans = {m: mp for m, mp in plans.items() if not mp.reused}
    if mode == "sequential":
        return sum(_work(mp, min(mp.step_seconds.values()), mp.epochs) for mp in plans.values())
    cores = sum(mp.step_seconds["1"] / mp.concurrent_step_seconds for mp in plans.values()
                if mp.concurrent_step_seconds)
    return simulate_parallel({m: _work(mp, mp.step_seconds["1"], mp.epochs) for m, mp in plans.items()}, cores or 1.0)
