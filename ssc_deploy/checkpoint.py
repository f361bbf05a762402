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
from ssc_deploy.errors import SscDeployError, one_line

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


# Largest pickle protocol the weights-only unpickler reads (4 and 5 use FRAME, which it does not).
MAX_PICKLE_PROTOCOL = 3
# A zip's entries may expand to this many times the file's size, and at least this much:
# torch.save stores its entries uncompressed, so only a crafted file (a deflate bomb) goes beyond.
MAX_EXPANSION = 10
MIN_EXPANSION_BYTES = 64 << 20


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def _check_pickle_protocol(head: bytes, path: Path) -> None:
    if head[:1] == b"\x80" and len(head) > 1 and head[1] > MAX_PICKLE_PROTOCOL:
        raise SscDeployError(
            f"{path}: written with pickle protocol {head[1]}, which the safe (weights-only) loader cannot read: "
            f"re-save it with torch.save's default pickle_protocol"
        )


def _check_zip(path: Path) -> None:
    """Refuse a zip that is not a torch archive, or whose declared contents are far larger than the file."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            pickles = [i for i in infos if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1]
            if not pickles:
                raise SscDeployError(f"{path}: not a PyTorch checkpoint (a zip archive without a data.pkl record)")
            declared = sum(i.file_size for i in infos)
            limit = max(MAX_EXPANSION * path.stat().st_size, MIN_EXPANSION_BYTES)
            if declared > limit:
                raise SscDeployError(
                    f"{path}: refused: the archive declares {_size(declared)} of contents in a "
                    f"{_size(path.stat().st_size)} file (compressed beyond what torch.save writes: a zip bomb?)"
                )
            with z.open(pickles[0]) as f:
                _check_pickle_protocol(f.read(2), path)
    except zipfile.BadZipFile as err:
        raise SscDeployError(f"{path}: truncated or not a PyTorch checkpoint (not a complete zip archive: {err})") from None


def _safe_torch_load(path: Path) -> Any:
    import warnings

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
    if head[:2] == b"PK":
        _check_zip(path)
    elif head[:1] == b"\x80":
        _check_pickle_protocol(head, path)
    else:
        raise SscDeployError(f"{path}: not a PyTorch checkpoint (it is neither a zip archive nor a pickle)")
    try:
        with warnings.catch_warnings():
            # "Detected pickle protocol 3": the load works; the warning would be a stray line before ours.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - the weights-only unpickler runs no code; any failure means a bad file
        text = str(err).strip()
        if "Unsupported global" in text:
            raise SscDeployError(
                f"{path}: refused: the file carries pickled Python objects beyond tensors and plain "
                "data (it could run code), so it was not loaded"
            ) from None
        detail = next((ln.strip() for ln in text.splitlines() if "Unsupported" in ln), None)
        if detail:
            raise SscDeployError(f"{path}: not a readable checkpoint (the safe loader stopped at: {detail})") from None
        first = one_line(err)
        if isinstance(err, pickle.UnpicklingError):
            raise SscDeployError(f"{path}: not a readable checkpoint ({first})") from None
        raise SscDeployError(f"{path}: truncated or not a PyTorch checkpoint ({first})") from None


def _parse(obj: dict, path: Path, model_name: str | None) -> Checkpoint:
    """The fields of a format-1 checkpoint, each checked: a wrong one is named in one line."""
    from ssc_deploy.data.normalization import check_mean_std

    try:
        model, inp, state_dict, classes = obj["model"], obj["input"], obj["state_dict"], obj["classes"]
        name, config = model_name or model["name"], model.get("config", {})
        shape, mean, std = inp["shape"], inp["mean"], inp["std"]
    except (KeyError, TypeError, AttributeError) as err:
        raise SscDeployError(f"{path}: checkpoint is missing the field {err}") from None
    if not isinstance(name, str) or not name.strip():
        raise SscDeployError(f"{path}: the model name is {name!r}, not a string such as 'ssc-net-1-9'")
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise SscDeployError(f"{path}: the model config must be a dict of named values, not {config!r}")
    if not isinstance(classes, (list, tuple)) or not classes:
        raise SscDeployError(f"{path}: 'classes' must be a list of names, not {classes!r}")
    if (not isinstance(shape, (list, tuple)) or len(shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise SscDeployError(f"{path}: 'input.shape' must be 3 positive integers (C, H, W), not {shape!r}")
    mean, std = check_mean_std(mean, std, shape[0], str(path))
    if not isinstance(state_dict, dict):
        raise SscDeployError(f"{path}: the checkpoint's state_dict is a {type(state_dict).__name__}, not a dict")
    for field_name in ("metrics", "provenance"):
        if not isinstance(obj.get(field_name, {}), dict):
            raise SscDeployError(f"{path}: '{field_name}' must be a dict, not {type(obj[field_name]).__name__}")
    return Checkpoint(
        model_name=name, config=dict(config), state_dict=state_dict, classes=[str(c) for c in classes],
        mean=mean, std=std, input_shape=list(shape), metrics=dict(obj.get("metrics", {})),
        provenance=dict(obj.get("provenance", {})), training_state=obj.get("training_state"),
    )


def _check_finite(state_dict: dict, path: Path) -> None:
    import torch

    for key, value in state_dict.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise SscDeployError(f"{path}: the tensor '{key}' holds NaN or infinite values: "
                                 "the file is damaged (or its training diverged); not loaded")


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
        ckpt = _parse(obj, path, model_name)
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
    _check_finite(ckpt.state_dict, path)
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

