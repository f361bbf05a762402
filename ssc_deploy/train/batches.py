"""One epoch's batches: each rank's shard in an order seeded by (seed, epoch), each batch augmented
from a generator seeded by (seed, epoch, rank, batch), so a resumed run draws the batches the
uninterrupted one would have."""

from __future__ import annotations

import numpy as np
import torch

from ssc_deploy.data import ImageSet
from ssc_deploy.data.transforms import Augment, resize_uint8, to_normalized_float

from .distributed import Dist


def to_tensor(ds: ImageSet, in_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as uint8 NCHW resized to ``in_size``, labels as int64."""
    x = torch.from_numpy(np.ascontiguousarray(ds.images.transpose(0, 3, 1, 2)))
    return resize_uint8(x, in_size), torch.from_numpy(ds.labels.astype(np.int64))


def _batch_seed(seed: int, epoch: int, rank: int, batch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank, batch]).generate_state(1)[0])


class EpochBatches(torch.utils.data.Dataset):
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


def epoch_batches(n: int, per_rank_batch: int, d: Dist, seed: int, epoch: int, max_batches: int | None) -> list[torch.Tensor]:
    """This rank's index batches of epoch ``epoch`` (a last batch of one sample dropped; at most ``max_batches``)."""
    sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=d.world_size, rank=d.rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    order = torch.tensor(list(iter(sampler)), dtype=torch.long)
    batches = list(order.split(per_rank_batch))
    if len(batches) > 1 and len(batches[-1]) < 2:  # BatchNorm cannot train on one sample
        batches.pop()
    return batches[:max_batches] if max_batches else batches
