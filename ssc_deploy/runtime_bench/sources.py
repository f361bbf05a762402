"""What the user passed: each source classified (artifact or checkpoint) and read into a :class:`Model`."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ssc_deploy.display import shown
from ssc_deploy.errors import SscDeployError
from ssc_deploy.runtimes import by_suffix

from .model_under_test import Artifact, Model
from .precision import precision_from_name, stem_without_precision

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


def runtime_for(path: Path) -> str | None:
    """The runtime that runs an artifact file, from its suffix."""
    spec = by_suffix(path.suffix)
    return spec.runtime if spec else None


def classify_sources(sources: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """Each source as ("artifact" | "checkpoint", path); one-line errors for missing or unknown files."""
    out = []
    for s in sources:
        p = Path(s)
        if not p.exists():
            raise SscDeployError(f"{p}: no such file")
        if p.is_dir():
            raise SscDeployError(f"{p}: is a directory (pass the artifact or checkpoint files)")
        if runtime_for(p):
            out.append(("artifact", p))
        elif p.suffix.lower() in CHECKPOINT_SUFFIXES:
            out.append(("checkpoint", p))
        else:
            raise SscDeployError(f"{p}: not an artifact (.onnx, .pte, .tflite) or a checkpoint (.pt, .pth, .ckpt)")
    return out


def read_manifest(artifact: Path):
    """The :class:`~ssc_deploy.export.manifest.Manifest` beside ``artifact``, every field checked;
    None when there is none; one-line error naming the file and field when it is broken."""
    from ssc_deploy.export.manifest import Manifest

    return Manifest.beside(artifact)


def family_of(name: str) -> str:
    """The zoo family of ``name``; its first word when the zoo does not know it (or is not installed)."""
    try:
        from ssc_deploy.models.registry import known_family
    except ImportError:  # no torch on this machine: no zoo
        known_family = None
    family = known_family(name) if known_family else None
    return family or (name.split("-")[0] if name else "unknown")


def model_from_artifact(path: Path, role: str = "candidate") -> Model:
    """A :class:`Model` from one artifact file and its manifest (latency only without one).

    The manifest is data: its names never become paths, and the checkpoint it names is not
    loaded (pass the checkpoint too for PyTorch parity).
    """
    runtime = runtime_for(path)
    if runtime is None:
        raise SscDeployError(f"{path}: not a model file ssc-deploy can run (.onnx, .pte, .tflite)")
    if not path.is_file():
        raise SscDeployError(f"{path}: no such artifact file")
    if path.stat().st_size == 0:
        raise SscDeployError(f"{path}: empty file, not a model")
    man = read_manifest(path)
    if man is None:
        prec = precision_from_name(path)
        return Model(name=stem_without_precision(path), family="unknown", role=role, trained=False, input_shape=None,
                     artifacts={(runtime, prec): Artifact(path, runtime, precision=prec)},
                     notes=["no manifest: latency only (random input, no accuracy or parity)"])
    man.check_artifact(path, runtime)
    art = Artifact(path, runtime, layout=man.input.layout, manifest=man.to_dict(), precision=man.precision)
    return Model(
        name=man.model.name, family=man.model.family or family_of(man.model.name), role=role,
        trained=man.model.trained, input_shape=man.input_chw, mean=man.input.mean, std=man.input.std,
        classes=man.classes, params=man.model.params, macs=man.model.macs, test_top1=man.source.test_top1,
        artifacts={(runtime, man.precision): art},
    )


def model_from_checkpoint(path: Path, role: str = "candidate") -> Model:
    """A :class:`Model` from a checkpoint, its net kept in memory (exported later for the runtimes asked)."""
    from ssc_deploy.checkpoint import load_checkpoint
    from ssc_deploy.models.complexity import net_complexity

    ckpt = load_checkpoint(path)
    net = ckpt.build_model()
    params, macs = net_complexity(net, ckpt.in_size)
    return Model(
        name=ckpt.model_name, family=family_of(ckpt.model_name), role=role,
        trained=ckpt.metrics.get("test_top1") is not None, input_shape=list(ckpt.input_shape),
        mean=list(ckpt.mean), std=list(ckpt.std), classes=list(ckpt.classes), params=params, macs=macs,
        test_top1=ckpt.metrics.get("test_top1"), checkpoint=path, module=net,
    )


def merge_model(models: list[Model], new: Model) -> None:
    """Artifacts of one model (same name and checkpoint) given separately become one model."""
    for m in models:
        if m.name == new.name and m.role == new.role and m.input_shape == new.input_shape:
            for key, a in new.artifacts.items():
                if key in m.artifacts:
                    what = key[0] if key[1] == "fp32" else " ".join(key)
                    raise SscDeployError(f"{a.path}: {shown(m.name)} has two {what} artifacts "
                                         f"({m.artifacts[key].path}); pass one")
                m.artifacts[key] = a
            m.checkpoint = m.checkpoint or new.checkpoint
            if m.module is None:
                m.module = new.module
            return
    models.append(new)


def check_same_input(models: list[Model]) -> None:
    """Models compared side by side must take the same input size."""
    sized = [m for m in models if m.input_shape]
    shapes = {tuple(m.input_shape) for m in sized}
    if len(shapes) > 1:
        desc = ", ".join(f"{shown(m.name)} takes {'x'.join(map(str, m.input_shape))}" for m in sized)
        raise SscDeployError(f"models with different input sizes cannot be compared: {desc}")


def load_sources(classified: list[tuple[str, Path]], baseline_names: list[str],
                 runtimes_asked: bool) -> list[Model]:
    """The models of the classified sources (artifacts of one model merged); those named among
    ``baseline_names`` become baselines. Artifacts are exported for other runtimes only when
    runtimes were asked for by name."""
    models: list[Model] = []
    for kind, path in classified:
        m = model_from_artifact(path) if kind == "artifact" else model_from_checkpoint(path)
        m.exportable = kind == "checkpoint" or runtimes_asked
        if m.name in baseline_names:
            m.role = "baseline"
        merge_model(models, m)
    check_same_input(models)
    return models
