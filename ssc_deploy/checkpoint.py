"""Self-describing, safely loadable checkpoints.

A checkpoint is one ``torch.save`` file holding only plain containers, strings, numbers
and tensors, so it loads with ``torch.load(..., weights_only=True)``; a file that carries
pickled code is refused and its code never runs.

Layout (format version 1)::

    {
      "format": "ssc-deploy-checkpoint", "format_version": 1,
      "model": {"name": "ssc-net-3-9", "config": {"num_classes": 10, "in_size": 32}},
      "state_dict": {...},
      "classes": ["0", "1", ...],
      "input": {"shape": [3, 32, 32], "mean": [...], "std": [...], "layout": "NCHW"},
      "metrics": {"test_top1": 0.93, ...},
      "provenance": {"tool_version": "0.1.0", "torch_version": "...", "data": "digits", ...},
      "training_state": {...}   # optional: optimizer/scheduler/epoch, for --resume
    }
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssc_deploy.atomic import atomic_path
from ssc_deploy.errors import SscDeployError

FORMAT = "ssc-deploy-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """The parsed contents of a checkpoint file."""

    model_name: str
    config: dict[str, Any]
    state_dict: dict[str, Any]
    classes: list[str]
    mean: list[float]
    std: list[float]
    input_shape: list[int]
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    training_state: dict[str, Any] | None = None
    sha256: str = ""
    path: str = ""

    @property
    def num_classes(self) -> int:
        return int(self.config.get("num_classes", len(self.classes)))

    @property
    def in_size(self) -> int:
        return int(self.config.get("in_size", self.input_shape[-1]))

    def build_model(self):
        """Instantiate the architecture and load the weights (strict, with a clear mismatch error)."""
        from ssc_deploy.models import create_model

        extra = {k: v for k, v in self.config.items() if k not in ("num_classes", "in_size")}
        try:
            model = create_model(self.model_name, num_classes=self.num_classes, in_size=self.in_size, **extra)
        except (TypeError, ValueError) as err:
            raise SscDeployError(
                f"{self.path or 'checkpoint'}: its model config {self.config} does not fit '{self.model_name}' ({err})"
            ) from None
        load_state_dict_checked(model, self.state_dict, self.path or "checkpoint")
        model.eval()
        return model

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": {"name": self.model_name, "config": dict(self.config)},
            "state_dict": self.state_dict,
            "classes": list(self.classes),
            "input": {"shape": list(self.input_shape), "mean": list(self.mean), "std": list(self.std), "layout": "NCHW"},
            "metrics": dict(self.metrics),
            "provenance": dict(self.provenance),
        }
        if self.training_state is not None:
            out["training_state"] = self.training_state
        return out


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> None:
    """Write atomically: the old file survives any failure.

    The written bytes are read back with ``weights_only=True`` before they replace
    ``path``, so a checkpoint that could not be loaded safely (say, one holding a
    ``TorchVersion`` or another non-plain object) is never written.
    """
    import torch

    with atomic_path(path) as tmp:
        torch.save(ckpt.to_dict(), tmp)
        try:
            torch.load(tmp, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any failure: do not replace the file
            lines = [ln for ln in str(err).splitlines() if "Unsupported global" in ln] or str(err).splitlines() or [type(err).__name__]
            raise SscDeployError(f"{path}: not written: the checkpoint would not load with weights_only=True ({lines[0].strip()})") from None


def _safe_torch_load(path: Path) -> Any:
    import torch

    if not path.exists():
        raise SscDeployError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise SscDeployError(f"{path}: is a directory, not a checkpoint file")
    if path.stat().st_size == 0:
        raise SscDeployError(f"{path}: empty file, not a checkpoint")
    with open(path, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive; a few legacy files are a raw pickle (protocol 2: 0x80 0x02).
    if head[:2] != b"PK" and head[:1] != b"\x80":
        raise SscDeployError(f"{path}: not a PyTorch checkpoint (it is neither a zip archive nor a pickle)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - the weights-only unpickler runs no code; any failure means a bad file
        text = str(err).strip()
        if "Weights only load failed" in text or "Unsupported global" in text:
            raise SscDeployError(
                f"{path}: refused: the file carries pickled Python objects beyond tensors and plain "
                "data (it could run code), so it was not loaded"
            ) from None
        first = text.splitlines()[0] if text else type(err).__name__
        if isinstance(err, pickle.UnpicklingError):
            raise SscDeployError(f"{path}: not a readable checkpoint ({first})") from None
        raise SscDeployError(f"{path}: truncated or not a PyTorch checkpoint ({first})") from None


def load_checkpoint(path: str | Path, model_name: str | None = None, num_classes: int | None = None) -> Checkpoint:
    """Load a checkpoint safely (``weights_only=True``).

    A bare ``state_dict`` is accepted when ``model_name`` names the architecture; the class
    count is then read from the classifier's weight unless ``num_classes`` is given.
    Raises :class:`SscDeployError` with one clear line for every kind of bad file.
    """
    path = Path(path)
    obj = _safe_torch_load(path)
    digest = sha256_file(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        version = obj.get("format_version")
        if version != FORMAT_VERSION:
            raise SscDeployError(f"{path}: checkpoint format version {version} is not supported (this tool reads {FORMAT_VERSION})")
        try:
            model = obj["model"]
            inp = obj["input"]
            ckpt = Checkpoint(
                model_name=model_name or model["name"],
                config=dict(model.get("config", {})),
                state_dict=obj["state_dict"],
                classes=[str(c) for c in obj["classes"]],
                mean=[float(v) for v in inp["mean"]],
                std=[float(v) for v in inp["std"]],
                input_shape=[int(v) for v in inp["shape"]],
                metrics=dict(obj.get("metrics", {})),
                provenance=dict(obj.get("provenance", {})),
                training_state=obj.get("training_state"),
            )
        except (KeyError, TypeError) as err:
            raise SscDeployError(f"{path}: checkpoint is missing the field {err}") from None
        if not isinstance(ckpt.state_dict, dict):
            raise SscDeployError(f"{path}: the checkpoint's state_dict is a {type(ckpt.state_dict).__name__}, not a dict")
    elif isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj) and _looks_like_state_dict(obj):
        if not model_name:
            raise SscDeployError(f"{path}: a bare state_dict does not say its architecture: pass --model NAME")
        n = num_classes or _guess_num_classes(obj)
        from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD

        ckpt = Checkpoint(
            model_name=model_name,
            config={"num_classes": n, "in_size": 32},
            state_dict=obj,
            classes=[str(i) for i in range(n)],
            mean=list(DEFAULT_MEAN),
            std=list(DEFAULT_STD),
            input_shape=[3, 32, 32],
            provenance={"source": "bare state_dict"},
        )
    else:
        raise SscDeployError(f"{path}: not an ssc-deploy checkpoint or a state_dict")
    ckpt.sha256 = digest
    ckpt.path = str(path)
    return ckpt


def _looks_like_state_dict(obj: dict) -> bool:
    import torch

    return all(isinstance(v, torch.Tensor) for v in obj.values())


def _guess_num_classes(state_dict: dict) -> int:
    last_2d = [v for k, v in state_dict.items() if k.endswith("weight") and v.dim() == 2]
    return int(last_2d[-1].shape[0]) if last_2d else 10


def load_state_dict_checked(model, state_dict: dict, source: str) -> None:
    """``load_state_dict(strict=True)`` with one line naming the first mismatch."""
    import torch

    own = model.state_dict()
    for key, value in own.items():
        if key not in state_dict:
            raise SscDeployError(f"{source}: does not match the architecture: missing key '{key}'")
        if not isinstance(state_dict[key], torch.Tensor):
            raise SscDeployError(f"{source}: '{key}' is a {type(state_dict[key]).__name__} in the file, not a tensor")
        if tuple(state_dict[key].shape) != tuple(value.shape):
            raise SscDeployError(
                f"{source}: does not match the architecture: '{key}' has shape "
                f"{tuple(state_dict[key].shape)} in the file, {tuple(value.shape)} in the model"
            )
    for key in state_dict:
        if key not in own:
            raise SscDeployError(f"{source}: does not match the architecture: unexpected key '{key}'")
    model.load_state_dict(state_dict, strict=True)

