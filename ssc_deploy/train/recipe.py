"""The paper's optimisation recipe (Lu et al. 2019, "Initialization and hyper-parameters").

SGD with Nesterov momentum 0.9 and mini-batches of 128 for every data set. CIFAR: 160
epochs, learning rate 0.1 divided by 10 at 50 % and 75 % of the epochs (epochs 80 and
120), weight decay 2e-4. ImageNet 32x32: 40 epochs, learning rate 0.01 divided by 10
every 10 epochs (25 % of the run), weight decay 1e-4. Image folders follow CIFAR. The
digits default uses the CIFAR schedule over fewer epochs (measured to reach >= 90 % test
accuracy with SSC-Net-1-9; see ``DEFAULT_EPOCHS``) and batches of 32 (``DEFAULT_BATCH_SIZE``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ssc_deploy.errors import SscDeployError

DEFAULT_EPOCHS = {"digits": 6, "cifar10": 160, "cifar100": 160, "imagenet32": 40, "folder": 160}
# The 1,437 digits images give only 11 steps an epoch at 128; 32 gives 45 (and, measured
# here, SSC-Net-1-9 passed 90 % test top-1 after 3 epochs at 32 but not at 128).
DEFAULT_BATCH_SIZE = {"digits": 32}
DEFAULT_LR = {"imagenet32": 0.01}
DEFAULT_WEIGHT_DECAY = {"imagenet32": 1e-4}
CIFAR_LR = 0.1
CIFAR_WEIGHT_DECAY = 2e-4
BATCH_SIZE = 128
MOMENTUM = 0.9


@dataclass(frozen=True)
class Recipe:
    """Everything that fixes the optimisation, stored in the checkpoint for ``--resume``."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    milestones: tuple[int, ...]
    gamma: float = 0.1
    momentum: float = MOMENTUM
    nesterov: bool = True

    def lr_at(self, epoch: int) -> float:
        """Learning rate for the 0-based ``epoch``: divided by 10 at each milestone reached."""
        return self.lr * self.gamma ** sum(1 for m in self.milestones if epoch >= m)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recipe":
        d = dict(d)
        d["milestones"] = tuple(int(m) for m in d.get("milestones", ()))
        return cls(**d)


def milestones_for(data_kind: str, epochs: int) -> tuple[int, ...]:
    """Epochs at which the learning rate drops: 50 %/75 % (CIFAR), every 25 % (ImageNet32).

    Fractions are rounded half to even (``round``): 160 epochs -> (80, 120), 6 -> (3, 4).
    """
    fractions = (0.25, 0.5, 0.75) if data_kind == "imagenet32" else (0.5, 0.75)
    return tuple(sorted({max(1, round(f * epochs)) for f in fractions if round(f * epochs) < epochs}))


def default_recipe(
    data_kind: str,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
) -> Recipe:
    """The paper's recipe for ``data_kind``; any argument given overrides its default."""
    epochs = DEFAULT_EPOCHS.get(data_kind, 160) if epochs is None else int(epochs)
    batch_size = DEFAULT_BATCH_SIZE.get(data_kind, BATCH_SIZE) if batch_size is None else int(batch_size)
    lr = DEFAULT_LR.get(data_kind, CIFAR_LR) if lr is None else float(lr)
    weight_decay = DEFAULT_WEIGHT_DECAY.get(data_kind, CIFAR_WEIGHT_DECAY) if weight_decay is None else float(weight_decay)
    if epochs < 1:
        raise SscDeployError(f"--epochs must be at least 1 (got {epochs})")
    if batch_size < 1:
        raise SscDeployError(f"--batch-size must be at least 1 (got {batch_size})")
    if not lr > 0:
        raise SscDeployError(f"--lr must be positive (got {lr})")
    if weight_decay < 0:
        raise SscDeployError(f"--weight-decay must not be negative (got {weight_decay})")
    return Recipe(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                  milestones=milestones_for(data_kind, epochs))
