"""``export_model``: checkpoint (or untrained architecture) -> verified artifacts + manifests."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ssc_deploy import __version__
from ssc_deploy.errors import SscDeployError

from ssc_deploy.quiet import quiet_native
from .autotune import choose_lowerings
from .lowerings import DEFAULT_LOWERING, get_lowering
from .manifest import SCHEMA, dumps, manifest_path
from .targets import TARGETS
from .verify import Parity, compare, require_parity

DEFAULT_N_VERIFY = 32
MIN_OPSET, MAX_OPSET = 13, 21
REWRITE_ATOL = 1e-5


@dataclass
class ExportResult:
    """One verified artifact on disk and its manifest."""

    target: str
    artifact: Path
    manifest_path: Path
    manifest: dict[str, Any]
    parity: Parity
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Source:
    model: Any
    name: str
    classes: list[str]
    mean: list[float]
    std: list[float]
    in_size: int
    trained: bool
    data: str | None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    test_top1: float | None = None


def resolve_targets(targets: str | Iterable[str]) -> list[str]:
    """Normalise ``"all"``, a comma list or an iterable of names into known target names (in order)."""
    items = [targets] if isinstance(targets, str) else list(targets)
    names: list[str] = []
    for item in items:
        for name in str(item).split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name == "all":
                names.extend(TARGETS)
            elif name in TARGETS:
                names.append(name)
            else:
                raise SscDeployError(f"unknown target '{name}' (use one of: {', '.join(TARGETS)}, all)")
    if not names:
        raise SscDeployError(f"no target given (use one of: {', '.join(TARGETS)}, all)")
    return list(dict.fromkeys(names))


def _load_source(source, model_name, num_classes, in_size) -> _Source:
    from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD
    from ssc_deploy.models import create_model

    if source is not None:
        from ssc_deploy.checkpoint import load_checkpoint

        ckpt = load_checkpoint(source, model_name=model_name)
        model = ckpt.build_model()
        metrics = ckpt.metrics or {}
        top1 = metrics.get("test_top1")
        return _Source(
            model=model, name=ckpt.model_name.strip().lower(), classes=list(ckpt.classes),
            mean=list(ckpt.mean), std=list(ckpt.std), in_size=ckpt.in_size, trained=True,
            data=(ckpt.provenance or {}).get("data"), checkpoint=str(source),
            checkpoint_sha256=ckpt.sha256, test_top1=float(top1) if top1 is not None else None,
        )
    if not model_name:
        raise SscDeployError("nothing to export: give a checkpoint or --model NAME")
    model = create_model(model_name, num_classes=num_classes, in_size=in_size).eval()
    return _Source(
        model=model, name=model_name.strip().lower(), classes=[str(i) for i in range(num_classes)],
        mean=list(DEFAULT_MEAN), std=list(DEFAULT_STD), in_size=in_size, trained=False, data=None,
    )


def _prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise SscDeployError(f"{out_dir}: exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SscDeployError(f"{out_dir}: cannot create the output directory ({err.strerror or err})") from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise SscDeployError(f"{out_dir}: output directory is not writable")


def _complexity(model, in_size: int) -> tuple[int, int | None]:
    params = int(sum(p.numel() for p in model.parameters()))
    try:
        from ssc_deploy.models.complexity import count_macs, count_params
    except ImportError:
        return params, None
    with contextlib.suppress(Exception):
        params = int(count_params(model))
    for call in (lambda: count_macs(model, in_size=in_size), lambda: count_macs(model, (1, 3, in_size, in_size)),
                 lambda: count_macs(model)):
        with contextlib.suppress(Exception):
            return params, int(call())
    return params, None


def _eval_images(src: _Source, data: str | None, n: int) -> tuple[np.ndarray, str]:
    from ssc_deploy.data import DEFAULT_DATA, eval_batch

    spec = data or src.data or DEFAULT_DATA
    try:
        images, _ = eval_batch(spec, n, src.mean, src.std, src.in_size)
    except SscDeployError:
        if data is not None or spec == DEFAULT_DATA:
            raise
        # The checkpoint's training data is not on this machine: parity needs real images, not those ones.
        spec = DEFAULT_DATA
        images, _ = eval_batch(spec, n, src.mean, src.std, src.in_size)
    return images, spec


def _family(name: str) -> str | None:
    from ssc_deploy.models import model_family

    with contextlib.suppress(Exception):
        return model_family(name)
    return None


def _progress(enabled: bool):
    if not enabled:
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    # A private handle on the real stderr: the converters' own output is silenced meanwhile.
    stream = os.fdopen(os.dup(2), "w", closefd=True)
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                        console=Console(file=stream), transient=True)

    @contextlib.contextmanager
    def ctx():
        try:
            with progress:
                yield progress
        finally:
            stream.close()

    return ctx()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def export_model(
    source: str | os.PathLike | None = None,
    targets: str | Sequence[str] = ("onnx",),
    out_dir: str | os.PathLike = "exports",
    model_name: str | None = None,
    lowering: str = DEFAULT_LOWERING,
    opset: int = 17,
    nhwc: bool = False,
    strict: bool = False,
    atol: float = 1e-4,
    data: str | None = None,
    n_verify: int = DEFAULT_N_VERIFY,
    force: bool = False,
    progress: bool = True,
    num_classes: int = 10,
    in_size: int = 32,
) -> list[ExportResult]:
    """Export a checkpoint (or, with ``source=None``, an untrained ``model_name``) to each target.

    Every artifact is run in its own runtime on ``n_verify`` real test images (``data``, else
    the checkpoint's data, else the default data) and compared with the PyTorch net; all
    targets are staged in a scratch directory and moved into ``out_dir`` only when every one
    passes, so a failure leaves nothing new behind and loses nothing already there.
    ``model_name`` with a checkpoint names the architecture of a bare state_dict.
    Raises :class:`SscDeployError` (one line) on bad input and failed verification.
    """
    import torch

    names = resolve_targets(targets)
    if lowering != "auto":  # auto: chosen per target by measurement (export/autotune.py)
        get_lowering(lowering)
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise SscDeployError(f"opset {opset} is not supported (use {MIN_OPSET}..{MAX_OPSET})")
    if not (atol > 0 and np.isfinite(atol)):
        raise SscDeployError(f"atol must be a positive number, got {atol}")
    if n_verify < 1:
        raise SscDeployError(f"n_verify must be at least 1, got {n_verify}")
    with quiet_native():
        for name in names:
            TARGETS[name].check_installed()

    src = _load_source(source, model_name, num_classes, in_size)
    images, data_spec = _eval_images(src, data, n_verify)
    out_dir = Path(out_dir)
    finals = {t: out_dir / f"{src.name}{TARGETS[t].SUFFIX}" for t in names}
    created = not out_dir.exists()
    _prepare_out_dir(out_dir)
    existing = [p for t in names for p in (finals[t], manifest_path(finals[t])) if p.exists() or p.is_symlink()]
    for p in existing:
        if p.is_dir():  # --force replaces files only: os.replace cannot put a file over a directory
            raise SscDeployError(f"{p}: exists and is a directory; nothing was exported")
    if existing and not force:
        raise SscDeployError(f"{existing[0]}: already exists (use --force to overwrite)")

    from .rewrite import deployment_rewrite

    results: list[ExportResult] = []
    scratch = Path(tempfile.mkdtemp(prefix=f".{src.name}.export.", dir=out_dir))
    try:
        with _progress(progress) as bar, quiet_native(), torch.no_grad():
            task = bar.add_task(f"{src.name}: rewrite", total=1 + len(names)) if bar else None
            x = torch.from_numpy(images)
            reference = src.model.eval()(x).numpy()
            chosen = choose_lowerings(src.model, lowering, names, images, atol=atol)
            nets, rewrite_parity = {}, {}
            for low in dict.fromkeys(chosen.values()):
                nets[low] = deployment_rewrite(src.model, low)
                # Artifacts are compared with the original net; this check only says when the rewrite is to blame.
                rewrite_parity[low] = compare(reference, nets[low](x).numpy(), max(atol, REWRITE_ATOL), data_spec)
                if not rewrite_parity[low].passed:
                    raise SscDeployError(
                        f"deployment rewrite ({low}) changed the outputs by {rewrite_parity[low].max_abs_diff:.3g} "
                        f"(> {rewrite_parity[low].atol:g}); nothing was exported", exit_code=3)
            params, macs = _complexity(src.model, src.in_size)
            example = x[:1].clone()
            staged = []
            for t in names:
                if bar:
                    bar.update(task, advance=1, description=f"{src.name}: {t} export + verify")
                start = time.perf_counter()
                mod = TARGETS[t]
                path = scratch / finals[t].name
                metadata = {"ssc_deploy_model": src.name, "classes": src.classes, "mean": src.mean,
                            "std": src.std, "scale": "pixel/255", "output": "logits"}
                try:
                    info = mod.export(nets[chosen[t]], example, path, opset=opset, nhwc=nhwc, strict=strict, metadata=metadata)
                    outputs = mod.run(path, images, nhwc=info.layout == "NHWC")
                except SscDeployError:
                    raise
                except Exception as err:  # noqa: BLE001 - converter failures become one line
                    if os.environ.get("SSC_DEPLOY_DEBUG"):
                        raise
                    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
                    raise SscDeployError(f"{t}: export failed ({type(err).__name__}: {first}); no artifact was written") from None
                parity = compare(reference, outputs, atol, data_spec)
                require_parity(parity, t, info.output_name)
                manifest = {
                    "schema": SCHEMA,
                    "file": finals[t].name,
                    "sha256": _sha256(path),
                    "bytes": path.stat().st_size,
                    "target": t,
                    "runtime": mod.RUNTIME,
                    "runtime_version": mod.runtime_version(),
                    "exporter": info.exporter,
                    "model": {"name": src.name, "family": _family(src.name), "params": params, "macs": macs,
                              "lowering": chosen[t], "trained": src.trained},
                    "input": {"name": info.input_name, "shape": info.input_shape, "dtype": "float32",
                              "layout": info.layout, "mean": src.mean, "std": src.std, "scale": "pixel/255"},
                    "output": {"name": info.output_name, "shape": [1, len(src.classes)], "kind": "logits"},
                    "classes": src.classes,
                    "parity": parity.as_dict(),
                    "source": {"checkpoint": src.checkpoint, "checkpoint_sha256": src.checkpoint_sha256,
                               "test_top1": src.test_top1},
                    **({"delegation": info.extra["delegation"]} if "delegation" in info.extra else {}),
                    "op_histogram": info.op_histogram,
                    "rewrite": {"max_abs_diff": rewrite_parity[chosen[t]].max_abs_diff},
                    "warnings": info.warnings,
                    "ssc_deploy_version": __version__,
                    "created": _now(),
                }
                (scratch / manifest_path(finals[t]).name).write_text(dumps(manifest), encoding="utf-8")
                staged.append((t, path, manifest, parity, info.warnings, time.perf_counter() - start))
            if bar:
                bar.update(task, advance=1, description=f"{src.name}: done")
        for t, path, manifest, parity, warns, seconds in staged:
            final = finals[t]
            try:
                os.replace(path, final)
                os.replace(scratch / manifest_path(final).name, manifest_path(final))
            except OSError as err:
                done = ", ".join(r.target for r in results) or "none"
                raise SscDeployError(f"{final}: cannot move the verified {t} artifact into place "
                                     f"({err.strerror or err}); targets written: {done}") from None
            results.append(ExportResult(t, final, manifest_path(final), manifest, parity, warns, seconds))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if created and not results:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only succeeds when empty: a directory we made for nothing goes again
    return results


def _sha256(path: Path) -> str:
    from ssc_deploy.checkpoint import sha256_file

    return sha256_file(path)
