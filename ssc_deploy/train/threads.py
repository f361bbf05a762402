"""How many torch CPU threads a training process gets: timed, not guessed.

On a shared machine the load average says little about how fast a training step runs with
one thread or two (measured here with the load average near 8: SSC-Net-1-9 at batch 32 took
0.85 s a step with 1 thread and 6.4 s with 2). So each candidate count is timed on a few
real training steps of a throw-away copy of the model, interleaved (1, 2, 1, 2, ...) so a
change of load hits every candidate alike, and the fastest median wins. A candidate more than
``DROP_RATIO`` times slower than the best after the first timed round is not timed again (on a
loaded host a 2-thread step can take 5-10 s).
"""

from __future__ import annotations

import copy
import os
import statistics
import time

import torch
import torch.nn.functional as F

ROUNDS = 3  # timed steps per candidate (after one untimed warm-up step each)
DROP_RATIO = 2.0


def candidates(procs_per_host: int = 1) -> list[int]:
    """Thread counts worth timing: 1, 2 and all of this process's share of the cores."""
    share = max(1, (os.cpu_count() or 1) // max(1, procs_per_host))
    return sorted({n for n in (1, 2, share) if n <= share})


def time_threads(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor], counts: list[int],
                 rounds: int = ROUNDS) -> dict[int, float]:
    """Median seconds of one training step (forward, backward, SGD update) at each thread count."""
    net = copy.deepcopy(model).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    x, y = batch
    previous = torch.get_num_threads()

    def step() -> None:
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times: dict[int, list[float]] = {n: [] for n in counts}
    try:
        for n in counts:
            torch.set_num_threads(n)
            step()
        timing = list(counts)
        for _ in range(rounds):
            for n in timing:
                torch.set_num_threads(n)
                t0 = time.perf_counter()
                step()
                times[n].append(time.perf_counter() - t0)
            best = min(min(times[n]) for n in timing)
            timing = [n for n in timing if min(times[n]) <= DROP_RATIO * best]
    finally:
        torch.set_num_threads(previous)
    return {n: statistics.median(v) for n, v in times.items()}


def fastest(seconds: dict[int, float]) -> int:
    """The thread count with the shortest step; fewer threads on a tie within 5 %."""
    best = min(seconds.values())
    return min(n for n, s in seconds.items() if s <= best * 1.05)
