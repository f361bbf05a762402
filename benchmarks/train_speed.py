"""Training throughput for issue 11: images/s of a full training step, before/after the fast layer forms.

A step is forward, cross-entropy, backward and an SGD step with Nesterov momentum and weight
decay as in ``ssc_deploy.train.recipe`` (random 32x32 inputs: speed does not depend on the
values). "before" builds each model with the reference layer forms (the layers as first written,
``set_fast_forms(model, False)``), "after" with the fast forms (the default); both are timed in
this one process, interleaved: every round runs one timed step of every (model, form, batch,
threads) cell in turn (the order reversed every other round), with ``torch.set_num_threads``
set per cell, so load from other processes hits all alike. The host's SGEMM rate (``torch.mm`` 1024^2, best of 5) is measured once a round
per thread count. Reported: median images/s, the after/before ratio, effective GMAC/s (3x the
forward MACs of ``complexity.count_macs``: forward plus the two backward products) and that
rate as a share of the SGEMM rate.

    python benchmarks/train_speed.py                              # the full table (~15 min on 2 busy cores)
    python benchmarks/train_speed.py --models ssc-net-1-9 --batches 32 --threads 1 --rounds 3
    python benchmarks/train_speed.py --profile ssc-net-1-9       # also the torch profiler, before and after
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

MODELS = ("ssc-net-1-9", "ssc-net-3-9", "mobilenetv2", "igcv3-d-0.7x")
FORMS = ("before", "after")
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                "amx_tile", "asimd", "sve")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS), help="models, comma-separated")
    p.add_argument("--batches", default="32,128", help="batch sizes, comma-separated")
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (one timed step of every cell each)")
    p.add_argument("--in-size", type=int, default=32, help="input height and width")
    p.add_argument("--profile", default="", help="models to run the torch profiler on (batch 32, 1 thread), comma-separated")
    p.add_argument("--json", default=None, help="write all rows as JSON here")
    p.add_argument("--markdown", default=None, help="write the table as Markdown here")
    return p.parse_args(argv)


def cpu_description() -> str:
    """The CPU's model name and the vector instruction sets it reports."""
    from ssc_deploy.devices.host import _cpu_model

    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    flags = set(value.split())
                    break
    except OSError:
        pass
    vector = [f for f in VECTOR_FLAGS if f in flags]
    return f"{_cpu_model()} ({', '.join(vector) or 'no vector flags found'})"


class Contender:
    """One model in one form, with its optimizer, ready to take training steps."""

    def __init__(self, name: str, form: str, in_size: int) -> None:
        import torch

        from ssc_deploy.models import create_model
        from ssc_deploy.models.complexity import count_macs
        from ssc_deploy.models.layers import set_fast_forms
        from ssc_deploy.train.recipe import default_recipe

        torch.manual_seed(0)
        self.name, self.form = name, form
        self.model = set_fast_forms(create_model(name, in_size=in_size), form == "after").train()
        self.macs = count_macs(self.model, in_size)
        recipe = default_recipe("cifar10")
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                         nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)

    def step(self, x, y) -> None:
        import torch.nn.functional as F

        loss = F.cross_entropy(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def profile_summary(contender: Contender, x, y, steps: int = 3, rows: int = 12) -> str:
    """The torch profiler's table of the ops that take the most self CPU time over ``steps`` steps."""
    from torch.profiler import ProfilerActivity, profile

    contender.step(x, y)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            contender.step(x, y)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from ssc_deploy.atomic import write_text_atomic
    from ssc_deploy.timing import sgemm_gmacs

    models = [m for m in args.models.split(",") if m]
    batches = [int(b) for b in args.batches.split(",") if b]
    threads = [int(t) for t in args.threads.split(",") if t]
    cpu = cpu_description()
    print(f"CPU: {cpu}; torch {torch.__version__}", flush=True)
    contenders = {(m, f): Contender(m, f, args.in_size) for m in models for f in FORMS}
    gen = torch.Generator().manual_seed(0)
    data = {b: (torch.randn(b, 3, args.in_size, args.in_size, generator=gen), torch.randint(0, 10, (b,), generator=gen))
            for b in batches}
    cells = [(key, b, t) for b in batches for t in threads for key in contenders]
    for key, b, t in cells:  # warm-up: first steps at a shape allocate and pick kernels
        torch.set_num_threads(t)
        contenders[key].step(*data[b])
    times: dict[tuple, list[float]] = {(key, b, t): [] for key, b, t in cells}
    sgemm: dict[int, list[float]] = {t: [] for t in threads}
    for r in range(args.rounds):
        for t in threads:
            sgemm[t].append(sgemm_gmacs(threads=t))
        for key, b, t in cells if r % 2 == 0 else cells[::-1]:  # alternate who runs first: no order bias
            torch.set_num_threads(t)
            t0 = time.perf_counter()
            contenders[key].step(*data[b])
            times[(key, b, t)].append(time.perf_counter() - t0)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    sgemm_rate = {t: statistics.median(v) for t, v in sgemm.items()}

    rows = []
    for m in models:
        for b in batches:
            for t in threads:
                row = {"model": m, "batch": b, "threads": t, "macs": contenders[(m, "after")].macs,
                       "sgemm_gmacs_per_s": sgemm_rate[t]}
                for f in FORMS:
                    s = statistics.median(times[((m, f), b, t)])
                    gmacs = 3 * row["macs"] * b / s / 1e9
                    row[f] = {"step_s": s, "images_per_s": b / s, "gmacs_per_s": gmacs,
                              "share_of_sgemm": gmacs / sgemm_rate[t]}
                row["speedup"] = row["after"]["images_per_s"] / row["before"]["images_per_s"]
                rows.append(row)

    header = ["model", "batch", "threads", "img/s before", "img/s after", "after/before",
              "GMAC/s before", "GMAC/s after", "% SGEMM before", "% SGEMM after"]
    md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        be, af = r["before"], r["after"]
        md.append("| " + " | ".join([
            r["model"], str(r["batch"]), str(r["threads"]), f"{be['images_per_s']:.1f}", f"{af['images_per_s']:.1f}",
            f"{r['speedup']:.2f}x", f"{be['gmacs_per_s']:.2f}", f"{af['gmacs_per_s']:.2f}",
            f"{100 * be['share_of_sgemm']:.1f}", f"{100 * af['share_of_sgemm']:.1f}"]) + " |")
    sg = ", ".join(f"{t} thread(s) {v:.1f} GMAC/s" for t, v in sgemm_rate.items())
    md += ["", f"CPU: {cpu}. SGEMM (torch.mm 1024^2, best of 5, median over {args.rounds} rounds): {sg}. "
           f"Medians of {args.rounds} interleaved steps; GMAC/s = 3 x forward MACs x batch / step time."]
    print("\n".join(md))

    for m in [p for p in args.profile.split(",") if p]:
        torch.set_num_threads(1)
        x, y = torch.randn(32, 3, args.in_size, args.in_size), torch.randint(0, 10, (32,))
        for f in FORMS:
            key = (m, f)
            contender = contenders[key] if key in contenders else Contender(m, f, args.in_size)
            print(f"\nprofile: {m}, {f}, batch 32, 1 thread\n{profile_summary(contender, x, y)}")

    if args.json:
        write_text_atomic(args.json, json.dumps({"cpu": cpu, "sgemm_gmacs_per_s": sgemm_rate, "rows": rows}, indent=2))
    if args.markdown:
        write_text_atomic(args.markdown, "\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    from ssc_deploy.errors import run_script

    run_script(main)
