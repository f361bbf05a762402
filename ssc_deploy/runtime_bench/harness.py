"""The benchmark harness: artifacts x runtimes x thread counts x devices, one subprocess each.

``run_bench`` resolves what to measure (exported artifacts with their manifests,
checkpoints exported first, baselines by name), writes one inputs ``.npz`` per model
(real evaluation images, labels, PyTorch reference logits), runs the standalone device
runner for every combination on every device (remote devices in parallel, one thread each;
the host and emulated devices, which share this CPU, take turns; measurements on a device
strictly one after another), and returns a JSON-ready result:
``{"schema", "created", "tool_version", "status", "settings", "devices", "models", "rows"}``.

A failure in one row is recorded in that row (``status`` ``failed`` with a ``reason``) and
never loses the others; bad input found before measuring raises :class:`SscDeployError`.
See ``method.md`` beside this file for how the figures are measured.
"""

from __future__ import annotations

import datetime as _dt
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ssc_deploy import __version__
from ssc_deploy.checkpoint import sha256_file
from ssc_deploy.errors import SscDeployError

SCHEMA = "ssc-deploy-bench/1"
RUNTIMES = ("onnxruntime", "executorch", "tflite")
ARTIFACT_RUNTIME = {".onnx": "onnxruntime", ".pte": "executorch", ".tflite": "tflite"}
RUNTIME_TARGET = {"onnxruntime": "onnx", "executorch": "executorch", "tflite": "tflite"}
RUNTIME_PACKAGE = {"onnxruntime": ("onnxruntime", "onnx"), "executorch": ("executorch", "executorch"),
                   "tflite": ("ai-edge-litert", "tflite")}
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
DEFAULT_BASELINES = ("mobilenetv2", "igcv3-d-0.7x")
# Verification: an artifact whose logits differ more than this from PyTorch fails the row.
DEFAULT_ATOL = 1e-3
MIN_TOP1_AGREEMENT = 0.99

ProgressFn = Callable[[str], None]


@dataclass
class Artifact:
    """One exported file and what runs it."""

    path: Path
    runtime: str
    layout: str = "NCHW"
    manifest: dict[str, Any] | None = None

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size


@dataclass
class Model:
    """One model under test with its artifacts (one per runtime) and its evaluation inputs."""

    name: str
    family: str
    role: str  # "candidate" | "baseline"
    trained: bool
    input_shape: list[int] | None  # C, H, W
    mean: list[float] | None = None
    std: list[float] | None = None
    classes: list[str] | None = None
    params: int | None = None
    macs: int | None = None
    test_top1: float | None = None  # PyTorch accuracy of the checkpoint, when known
    checkpoint: Path | None = None
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    inputs: Path | None = None
    has_reference: bool = False
    notes: list[str] = field(default_factory=list)
    export_errors: dict[str, str] = field(default_factory=dict)
    exportable: bool = False  # exported for runtimes it lacks (checkpoints; artifacts only with --runtime)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "family": self.family, "role": self.role, "trained": self.trained,
            "input_shape": self.input_shape, "params": self.params, "macs": self.macs,
            "test_top1": self.test_top1, "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "artifacts": {rt: str(a.path) for rt, a in self.artifacts.items()}, "notes": self.notes,
        }


@dataclass
class BenchSettings:
    """Everything that shapes a benchmark run (stored with it)."""

    runtimes: list[str] | None = None  # None: what the artifacts need, else every installed one
    threads: list[int] = field(default_factory=lambda: [1])
    warmup: int = 10
    runs: int = 50
    data: str | None = None
    n_eval: int = 200
    baselines: list[str] = field(default_factory=lambda: list(DEFAULT_BASELINES))
    ratio_to: str | None = None  # the baseline ratio columns compare with (first baseline by default)
    atol: float = DEFAULT_ATOL
    timeout: float = 900.0
    runners: dict[str, str] = field(default_factory=dict)  # native tools: runtime -> path
    pin_cores: str | None = None
    lowering: str = "pad-slice"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --- resolving what to measure -----------------------------------------------------------


def runtime_for(path: Path) -> str | None:
    """The runtime that runs an artifact file, from its suffix."""
    return ARTIFACT_RUNTIME.get(path.suffix.lower())


def read_manifest(artifact: Path) -> dict[str, Any] | None:
    """The manifest beside ``artifact``; None when there is none; one-line error when it is broken."""
    try:
        from ssc_deploy.export.manifest import load_manifest, manifest_path
    except ImportError:  # pragma: no cover - export is part of the package
        return None
    if not manifest_path(artifact).exists():
        return None
    return load_manifest(artifact)


def _family(name: str) -> str:
    try:
        from ssc_deploy.models import model_family

        return model_family(name)
    except (ImportError, SscDeployError):
        return name.split("-")[0] if name else "unknown"


def model_from_artifact(path: Path, role: str = "candidate") -> Model:
    """A :class:`Model` from one artifact file and its manifest (latency only without one)."""
    runtime = runtime_for(path)
    if runtime is None:
        raise SscDeployError(f"{path}: not a model file ssc-deploy can run (.onnx, .pte, .tflite)")
    if not path.is_file():
        raise SscDeployError(f"{path}: no such artifact file")
    if path.stat().st_size == 0:
        raise SscDeployError(f"{path}: empty file, not a model")
    man = read_manifest(path)
    if man is None:
        return Model(name=path.stem, family="unknown", role=role, trained=False, input_shape=None,
                     artifacts={runtime: Artifact(path, runtime)},
                     notes=["no manifest: latency only (random input, no accuracy or parity)"])
    if man.get("runtime") and man["runtime"] != runtime:
        raise SscDeployError(f"{path}: its manifest says runtime '{man['runtime']}', the file is a {runtime} model")
    if man.get("sha256") and man["sha256"] != sha256_file(path):
        raise SscDeployError(f"{path}: the file does not match its manifest's sha256 (changed or corrupt)")
    m = man.get("model", {})
    inp = man.get("input", {})
    shape = list(inp.get("shape") or [])
    layout = inp.get("layout", "NCHW")
    chw = shape[1:] if len(shape) == 4 else None
    if chw and layout == "NHWC":
        chw = [chw[2], chw[0], chw[1]]
    src = man.get("source") or {}
    ckpt = Path(src["checkpoint"]) if src.get("checkpoint") else None
    return Model(
        name=m.get("name") or path.stem, family=m.get("family") or _family(m.get("name", "")), role=role,
        trained=bool(m.get("trained", src.get("test_top1") is not None)), input_shape=chw,
        mean=inp.get("mean"), std=inp.get("std"), classes=man.get("classes"),
        params=m.get("params"), macs=m.get("macs"), test_top1=src.get("test_top1"),
        checkpoint=ckpt if ckpt and ckpt.is_file() else None,
        artifacts={runtime: Artifact(path, runtime, layout=layout, manifest=man)},
    )


def _complexity(net, in_size: int) -> tuple[int | None, int | None]:
    try:
        from ssc_deploy.models.complexity import count_macs, count_params
    except ImportError:
        params = sum(p.numel() for p in net.parameters())
        return int(params), None
    try:
        return int(count_params(net)), int(count_macs(net, in_size=in_size))
    except TypeError:
        return int(count_params(net)), int(count_macs(net))


def model_from_checkpoint(path: Path, role: str = "candidate") -> Model:
    """A :class:`Model` from a checkpoint (exported later for the runtimes asked)."""
    from ssc_deploy.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    net = ckpt.build_model()
    params, macs = _complexity(net, ckpt.in_size)
    return Model(
        name=ckpt.model_name, family=_family(ckpt.model_name), role=role,
        trained=ckpt.metrics.get("test_top1") is not None, input_shape=list(ckpt.input_shape),
        mean=list(ckpt.mean), std=list(ckpt.std), classes=list(ckpt.classes), params=params, macs=macs,
        test_top1=ckpt.metrics.get("test_top1"), checkpoint=path,
    )


def untrained_baseline(name: str, like: Model, work: Path) -> Model:
    """A baseline built by name from the zoo with ``like``'s input and classes, random weights."""
    from ssc_deploy.checkpoint import Checkpoint, save_checkpoint
    from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD
    from ssc_deploy.models import create_model

    classes = like.classes or [str(i) for i in range(10)]
    shape = like.input_shape or [3, 32, 32]
    net = create_model(name, num_classes=len(classes), in_size=shape[-1]).eval()
    ckpt = Checkpoint(
        model_name=name, config={"num_classes": len(classes), "in_size": shape[-1]},
        state_dict=net.state_dict(), classes=classes, mean=list(like.mean or DEFAULT_MEAN),
        std=list(like.std or DEFAULT_STD), input_shape=list(shape),
        provenance={"tool_version": __version__, "note": "untrained baseline for latency"},
    )
    path = work / "baselines" / f"{name}.untrained.pt"
    save_checkpoint(ckpt, path)
    model = model_from_checkpoint(path, role="baseline")
    model.trained = False
    model.exportable = True
    model.notes.append("untrained: latency, size and MACs only")
    return model


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


def _merge(models: list[Model], new: Model) -> None:
    """Artifacts of one model (same name and checkpoint) given separately become one model."""
    for m in models:
        if m.name == new.name and m.role == new.role and m.input_shape == new.input_shape:
            for rt, a in new.artifacts.items():
                if rt in m.artifacts:
                    raise SscDeployError(f"{a.path}: {m.name} has two {rt} artifacts ({m.artifacts[rt].path}); pass one")
                m.artifacts[rt] = a
            m.checkpoint = m.checkpoint or new.checkpoint
            return
    models.append(new)


def check_same_input(models: list[Model]) -> None:
    """Models compared side by side must take the same input size."""
    sized = [m for m in models if m.input_shape]
    shapes = {tuple(m.input_shape) for m in sized}
    if len(shapes) > 1:
        desc = ", ".join(f"{m.name} takes {'x'.join(map(str, m.input_shape))}" for m in sized)
        raise SscDeployError(f"models with different input sizes cannot be compared: {desc}")


def installed_runtimes() -> list[str]:
    """Runtimes whose Python package is installed here."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for rt, (dist, _) in RUNTIME_PACKAGE.items():
        try:
            version(dist)
            out.append(rt)
        except PackageNotFoundError:
            continue
    return out


# --- preparing: exports and inputs --------------------------------------------------------


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]


def _export(checkpoint: Path, runtimes: list[str], out_dir: Path, lowering: str, data: str | None) -> list:
    from ssc_deploy.export import export_model

    return export_model(str(checkpoint), targets=tuple(RUNTIME_TARGET[rt] for rt in runtimes), out_dir=out_dir,
                        lowering=lowering, data=data, progress=False, force=True)


def export_for(model: Model, runtimes: list[str], out_dir: Path, lowering: str, data: str | None = None) -> None:
    """Export ``model.checkpoint`` for each runtime it lacks an artifact for; failures go in export_errors.

    All targets are exported together (one rewrite and one reference pass); when that fails,
    each target is tried alone so one failing target does not cost the others.
    """
    todo = [rt for rt in runtimes if rt not in model.artifacts]
    if not todo or model.checkpoint is None or not model.exportable:
        return
    try:
        import ssc_deploy.export  # noqa: F401
    except ImportError:
        for rt in todo:
            model.export_errors[rt] = "export is not available in this installation (ssc_deploy.export)"
        return
    dest = out_dir / f"{model.name}.{model.role}"
    try:
        results = _export(model.checkpoint, todo, dest, lowering, data)
    except Exception:  # noqa: BLE001 - retried one target at a time below, to name the failing one
        results = []
        for rt in todo:
            try:
                results += _export(model.checkpoint, [rt], dest, lowering, data)
            except SscDeployError as err:
                model.export_errors[rt] = f"export failed: {err}"
            except Exception as err:  # noqa: BLE001 - an exporter crash fails this row only
                model.export_errors[rt] = f"export failed: {type(err).__name__}: {_one_line(err)}"
    by_target = {t: rt for rt, t in RUNTIME_TARGET.items()}
    for res in results:
        man = dict(res.manifest or {})
        rt = man.get("runtime") or by_target.get(res.target, res.target)
        layout = (man.get("input") or {}).get("layout", "NCHW")
        model.artifacts[rt] = Artifact(Path(res.artifact), rt, layout=layout, manifest=man or None)
        mm = man.get("model") or {}
        model.params = model.params if model.params is not None else mm.get("params")
        model.macs = model.macs if model.macs is not None else mm.get("macs")


def write_inputs(model: Model, data: str | None, n_eval: int, work: Path) -> None:
    """Write the model's inputs .npz: real test images, labels when the classes match, PyTorch logits."""
    if model.input_shape is None or model.mean is None or model.std is None:
        return
    from ssc_deploy.data import DEFAULT_DATA, load_dataset, normalize

    ds = load_dataset(data or DEFAULT_DATA, "test")
    n = min(n_eval, len(ds)) if n_eval > 0 else len(ds)
    x = normalize(ds.images[:n], model.mean, model.std, model.input_shape[-1])
    arrays: dict[str, np.ndarray] = {"x": x.astype(np.float32)}
    if model.classes is None or len(model.classes) == len(ds.classes):
        arrays["labels"] = ds.labels[:n].astype(np.int64)
    else:
        model.notes.append(f"{len(model.classes)} classes, the data has {len(ds.classes)}: no accuracy")
    if model.checkpoint is not None:
        try:
            arrays["reference"] = reference_logits(model.checkpoint, x)
            model.has_reference = True
        except (SscDeployError, ImportError) as err:
            model.notes.append(f"no PyTorch reference ({err}): parity not checked")
    else:
        model.notes.append("no checkpoint: parity with PyTorch not checked")
    path = work / "inputs" / f"{model.name}.{model.role}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    model.inputs = path


def reference_logits(checkpoint: Path, x: np.ndarray) -> np.ndarray:
    """PyTorch logits of the checkpoint's model on ``x`` (batches of 64)."""
    import torch

    from ssc_deploy.checkpoint import load_checkpoint

    net = load_checkpoint(checkpoint).build_model().eval()
    outs = []
    with torch.no_grad():
        for i in range(0, x.shape[0], 64):
            outs.append(net(torch.from_numpy(x[i : i + 64])).float().numpy())
    return np.concatenate(outs).astype(np.float32)


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Job:
    """One measurement: a model's artifact for one runtime at one thread count, by one source."""

    model: Model
    runtime: str
    threads: int
    source: str = "device-runner"  # or "native-tool"


def _base_row(job: Job, device_info: dict[str, Any]) -> dict[str, Any]:
    m = job.model
    art = m.artifacts.get(job.runtime)
    return {
        "device": device_info.get("name", ""),
        "device_kind": device_info.get("kind", ""),
        "emulated": bool(device_info.get("emulated")),
        "model": m.name,
        "family": m.family,
        "role": m.role,
        "trained": m.trained,
        "runtime": job.runtime,
        "threads": job.threads,
        "source": job.source,
        "artifact": str(art.path) if art else None,
        "bytes": art.bytes if art else None,
        "sha256": (art.manifest or {}).get("sha256") if art else None,
        "layout": art.layout if art else None,
        "params": m.params,
        "macs": m.macs,
        "test_top1_pytorch": m.test_top1,
        "status": "failed",
        "reason": "",
    }


FIGURES = ("runtime_version", "load_ms", "import_ms", "throughput_ips", "peak_rss_mb", "top1", "top5", "n_eval", "runs",
           "warmup")


def row_from_result(row: dict[str, Any], res: dict[str, Any], atol: float) -> dict[str, Any]:
    """Fill a row from the runner's JSON result and decide its status."""
    if not res.get("ok"):
        row["status"] = "failed"
        row["reason"] = str(res.get("error") or "the runner reported a failure")
        return row
    for k in FIGURES:
        row[k] = res.get(k)
    for k, v in (res.get("latency_ms") or {}).items():
        row[f"latency_{k}_ms"] = v
    parity = res.get("parity") or {}
    row["parity_max_abs_diff"] = parity.get("max_abs_diff")
    row["parity_top1_agreement"] = parity.get("top1_agreement")
    row["device_machine"] = res.get("machine")
    row["device_python"] = res.get("python")
    if not row.get("trained"):
        row["top1"] = row["top5"] = None  # random weights: accuracy means nothing
    row["status"] = "ok"
    if parity:
        diff = parity.get("max_abs_diff")
        agree = parity.get("top1_agreement")
        if diff is not None and (diff != diff or diff > atol):  # NaN counts as a failure
            row["status"] = "verify-failed"
            row["reason"] = f"max |logit diff| vs PyTorch {diff:.2g} > atol {atol:g}"
        elif agree is not None and agree < MIN_TOP1_AGREEMENT:
            row["status"] = "verify-failed"
            row["reason"] = f"top-1 agrees with PyTorch on only {agree:.1%} of images"
    return row


def runner_args(job: Job, paths: dict[Path, str], warmup: int, runs: int) -> list[str]:
    """The device runner's command line for one job (device paths substituted)."""
    art = job.model.artifacts[job.runtime]
    args = ["--artifact", paths[art.path], "--runtime", job.runtime, "--threads", str(job.threads),
            "--warmup", str(warmup), "--runs", str(runs), "--layout", art.layout]
    if job.model.inputs is not None:
        args += ["--inputs", paths[job.model.inputs]]
    return args


def run_native_job(device, job: Job, paths: dict[Path, str], settings: BenchSettings) -> dict[str, Any]:
    """A native benchmark tool's figures for one job (latency and memory only)."""
    try:
        from ssc_deploy.devices.native_tools import run_native
    except ImportError:
        return {"ok": False, "error": "native tools are not available in this installation"}
    art = job.model.artifacts[job.runtime]
    res = run_native(device, job.runtime, settings.runners[job.runtime], paths[art.path], job.threads,
                     settings.warmup, settings.runs, settings.pin_cores, timeout=settings.timeout)
    lat = res.get("latency_ms") or {}
    mean = lat.get("mean") or lat.get("median")
    return {
        "ok": True, "latency_ms": lat, "runs": settings.runs, "warmup": settings.warmup,
        "peak_rss_mb": res.get("peak_memory_mb"), "load_ms": res.get("init_ms"),
        "throughput_ips": 1000.0 / mean if mean else None, "tool": res.get("tool"),
    }


def run_device_jobs(device, jobs: list[Job], settings: BenchSettings, progress: ProgressFn | None) -> list[dict[str, Any]]:
    """Run every job on one device, one after another; each failure stays in its row."""
    from ssc_deploy.devices.base import DeviceError

    try:
        info = device.info().__dict__
    except DeviceError as err:
        info = {"name": getattr(device, "name", "device"), "kind": "", "error": str(err)}
    rows: list[dict[str, Any]] = []
    files: list[Path] = []
    for job in jobs:
        art = job.model.artifacts.get(job.runtime)
        if art is not None and art.path not in files:
            files.append(art.path)
        if job.model.inputs is not None and job.model.inputs not in files:
            files.append(job.model.inputs)
    stage_error = None
    paths: dict[Path, str] = {}
    try:
        paths = device.stage(files) if files else {}
    except (DeviceError, OSError) as err:
        stage_error = str(err) if isinstance(err, DeviceError) else f"staging failed: {_one_line(err)}"
    for job in jobs:
        row = _base_row(job, info)
        label = f"{info.get('name')}: {job.model.name} {job.runtime} x{job.threads}"
        if progress:
            progress(label)
        if job.runtime in job.model.export_errors:
            row["reason"] = job.model.export_errors[job.runtime]
        elif stage_error:
            row["reason"] = stage_error
        else:
            try:
                if job.source == "native-tool":
                    res = run_native_job(device, job, paths, settings)
                else:
                    res = device.run_runner(runner_args(job, paths, settings.warmup, settings.runs), settings.timeout)
                row_from_result(row, res, settings.atol)
            except (DeviceError, SscDeployError) as err:
                row["reason"] = str(err)
            except Exception as err:  # noqa: BLE001 - a runner crash or malformed result fails this row only
                row["status"], row["reason"] = "failed", f"{type(err).__name__}: {_one_line(err)}"
        if job.source == "native-tool" and row["status"] == "ok":
            row["top1"] = row["top5"] = None
        rows.append(row)
    return rows


def add_ratios(rows: list[dict[str, Any]], baseline: str | None) -> None:
    """Ratio columns against ``baseline``'s row on the same device, runtime, threads and source.

    size/params/MACs/latency ratios are model / baseline (below 1 is better for the model);
    ``top1_delta`` is model - baseline. Latency ratios are never formed on emulated devices.
    """
    if not baseline:
        return
    base = {(r["device"], r["runtime"], r["threads"], r["source"]): r for r in rows
            if r["model"] == baseline and r["role"] == "baseline" and r["status"] in ("ok", "verify-failed")}
    for r in rows:
        b = base.get((r["device"], r["runtime"], r["threads"], r["source"]))
        r["ratio_to"] = baseline if b is not None else None
        for key, col in (("bytes", "size_ratio"), ("params", "params_ratio"), ("macs", "macs_ratio"),
                         ("latency_median_ms", "latency_ratio")):
            a, c = r.get(key), (b or {}).get(key)
            ok = b is not None and a and c and r["status"] in ("ok", "verify-failed")
            if key == "latency_median_ms" and (r.get("emulated") or (b or {}).get("emulated")):
                ok = False
            r[col] = a / c if ok else None
        t, tb = r.get("top1"), (b or {}).get("top1")
        r["top1_delta"] = t - tb if b is not None and t is not None and tb is not None else None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def prepare_models(sources: list[str | Path], settings: BenchSettings, work: Path) -> tuple[list[Model], list[str]]:
    """Resolve sources and baselines into models with artifacts for the runtimes asked.

    Returns the models and the runtimes to measure. Raises :class:`SscDeployError` for bad input.
    """
    classified = classify_sources(sources)
    if not classified and not settings.baselines:
        raise SscDeployError("nothing to benchmark: pass artifacts or checkpoints (or --baselines)")
    baseline_names = [b.strip().lower() for b in settings.baselines if b.strip()]
    models: list[Model] = []
    for kind, path in classified:
        m = model_from_artifact(path) if kind == "artifact" else model_from_checkpoint(path)
        m.exportable = kind == "checkpoint" or bool(settings.runtimes)
        if m.name in baseline_names:
            m.role = "baseline"
        _merge(models, m)
    check_same_input(models)

    installed = installed_runtimes()
    if settings.runtimes:
        unknown = [rt for rt in settings.runtimes if rt not in RUNTIMES]
        if unknown:
            raise SscDeployError(f"unknown runtime '{unknown[0]}' (use {', '.join(RUNTIMES)})")
        runtimes = list(dict.fromkeys(settings.runtimes))
    elif any(kind == "checkpoint" for kind, _ in classified) or not classified:
        runtimes = installed
    else:
        runtimes = [rt for rt in RUNTIMES if any(rt in m.artifacts for m in models)]

    like = next((m for m in models if m.role == "candidate"), models[0] if models else None)
    have = {m.name for m in models}
    for name in baseline_names:
        if name in have:
            continue
        if like is None:
            like = Model(name="", family="", role="candidate", trained=False, input_shape=[3, 32, 32])
        models.append(untrained_baseline(name, like, work))
    check_same_input(models)
    for m in models:
        export_for(m, runtimes, work / "exports", settings.lowering, settings.data)
    return models, runtimes


def plan_jobs(models: list[Model], runtimes: list[str], settings: BenchSettings) -> list[Job]:
    """Every (model, runtime, threads) to measure, device runner first, then native tools."""
    jobs = []
    for m in models:
        for rt in runtimes:
            if rt not in m.artifacts and rt not in m.export_errors:
                if m.checkpoint is None or not m.exportable:
                    continue  # an artifact-only model runs on its own runtimes only
                m.export_errors[rt] = "no artifact for this runtime"
            for t in settings.threads:
                jobs.append(Job(m, rt, t))
                if rt in settings.runners and rt in m.artifacts:
                    jobs.append(Job(m, rt, t, source="native-tool"))
    return jobs


def run_bench(
    sources: list[str | Path],
    settings: BenchSettings | None = None,
    devices: list | None = None,
    work_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Benchmark ``sources`` (artifacts and/or checkpoints) and the baselines on ``devices``.

    ``progress(label)`` is called before each measurement, ``on_plan(total)`` once the number
    of measurements is known. Returns the result dict written by ``--json``.
    """
    settings = settings or BenchSettings()
    if settings.warmup < 0 or settings.runs < 1:
        raise SscDeployError("--runs must be at least 1 and --warmup at least 0")
    if not settings.threads or any(t < 1 for t in settings.threads):
        raise SscDeployError("--threads takes positive thread counts, e.g. 1,2")
    if settings.lowering != "auto":
        try:  # needs torch; a board without it exports nothing, so there is nothing to check
            from ssc_deploy.export.lowerings import get_lowering
        except ImportError:
            pass
        else:
            get_lowering(settings.lowering)  # one line up front, not a failed row per checkpoint
    for rt in settings.runners:
        if rt not in RUNTIMES:
            raise SscDeployError(f"--runner: unknown runtime '{rt}' (use {', '.join(RUNTIMES)})")
    if devices is None:
        from ssc_deploy.devices.host import HostDevice

        devices = [HostDevice()]
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="ssc-deploy-bench-")
        work = Path(tmp.name)
    else:
        work = Path(work_dir)
        work.mkdir(parents=True, exist_ok=True)
    try:
        from ssc_deploy.devices.base import DeviceError

        try:
            infos = [d.info() for d in devices]
        except DeviceError as err:
            raise SscDeployError(str(err)) from None
        if settings.runtimes and any(i.kind == "host" for i in infos):
            installed = installed_runtimes()
            missing = [rt for rt in settings.runtimes if rt in RUNTIMES and rt not in installed]
            if missing:
                extra = RUNTIME_PACKAGE[missing[0]][1]
                raise SscDeployError(f"runtime '{missing[0]}' is not installed on this host: pip install 'ssc-deploy[{extra}]'")
        models, runtimes = prepare_models(sources, settings, work)
        for m in models:
            write_inputs(m, settings.data, settings.n_eval, work)
        jobs = plan_jobs(models, runtimes, settings)
        if not jobs:
            raise SscDeployError("nothing to measure: no artifact matches the runtimes asked (--runtime)")
        if on_plan:
            on_plan(len(jobs) * len(devices))
        # Devices that use this machine's CPU (the host, qemu emulation) take turns, so one never
        # slows the other's timings; remote devices run in parallel with them.
        local = [d for d, i in zip(devices, infos) if i.kind == "host" or i.emulated]
        groups = ([local] if local else []) + [[d] for d in devices if d not in local]

        def run_group(group: list) -> list[dict[str, Any]]:
            return [r for d in group for r in run_device_jobs(d, jobs, settings, progress)]

        with ThreadPoolExecutor(max_workers=len(groups)) as pool:
            parts = list(pool.map(run_group, groups))
        # Every device yields one row per job: put the rows back in --device order.
        by_device = {id(d): part[k * len(jobs):(k + 1) * len(jobs)]
                     for group, part in zip(groups, parts) for k, d in enumerate(group)}
        rows = [r for d in devices for r in by_device[id(d)]]
        baselines = [m.name for m in models if m.role == "baseline"]
        ratio_to = settings.ratio_to or (baselines[0] if baselines else None)
        add_ratios(rows, ratio_to)
        n_ok = sum(r["status"] == "ok" for r in rows)
        return {
            "schema": SCHEMA,
            "created": _now(),
            "tool_version": __version__,
            "status": "complete" if n_ok == len(rows) else ("failed" if n_ok == 0 else "partial"),
            "settings": {**settings.to_dict(), "runtimes": runtimes, "ratio_to": ratio_to},
            "devices": [_device_dict(d) for d in devices],
            "models": [m.describe() for m in models],
            "rows": rows,
        }
    finally:
        for d in devices:
            try:
                d.cleanup()
            except Exception:  # noqa: BLE001 - cleanup must not hide the results
                pass
        if tmp is not None:
            tmp.cleanup()


def _device_dict(device) -> dict[str, Any]:
    try:
        return dict(device.info().__dict__)
    except Exception as err:  # noqa: BLE001
        return {"name": getattr(device, "name", "device"), "error": str(err)}
