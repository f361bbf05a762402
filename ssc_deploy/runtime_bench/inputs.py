"""The inputs ``.npz`` of each model: real test images, labels when the classes match, PyTorch logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssc_deploy.atomic import atomic_path
from ssc_deploy.display import shown
from ssc_deploy.errors import SscDeployError

from .model_under_test import Model
from .reference import reference_logits


def write_inputs(model: Model, data: str | None, n_eval: int, work: Path) -> None:
    """Write the model's inputs .npz: real test images, labels when the classes match, PyTorch logits."""
    if model.input_shape is None or model.mean is None or model.std is None:
        return
    from ssc_deploy.data import DEFAULT_DATA, load_dataset, normalize

    ds = load_dataset(data or DEFAULT_DATA, "test")
    n = min(n_eval, len(ds)) if n_eval > 0 else len(ds)
    x = normalize(ds.images[:n], model.mean, model.std, model.input_shape[-1], source=f"{shown(model.name)}: input")
    arrays: dict[str, np.ndarray] = {"x": x.astype(np.float32)}
    if model.classes is None or len(model.classes) == len(ds.classes):
        arrays["labels"] = ds.labels[:n].astype(np.int64)
    else:
        model.notes.append(f"{len(model.classes)} classes, the data has {len(ds.classes)}: no accuracy")
    if model.checkpoint is not None or model.module is not None:
        try:
            arrays["reference"] = reference_logits(model, x)
            model.has_reference = True
        except (SscDeployError, ImportError) as err:
            model.notes.append(f"no PyTorch reference ({err}): parity not checked")
    else:
        model.notes.append("no checkpoint: parity with PyTorch not checked (pass the checkpoint with the artifact)")
    path = work / "inputs" / f"{model.file_stem}.npz"
    with atomic_path(path) as tmp:  # an interrupted run leaves no half-written inputs
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    model.inputs = path
