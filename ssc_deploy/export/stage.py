"""Export step 3, one target: export the deployment net, run the file in its runtime on the
verification images, require parity with PyTorch, and write the manifest beside it (in scratch)."""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ssc_deploy import __version__
from ssc_deploy.checkpoint import sha256_file
from ssc_deploy.errors import SscDeployError
from ssc_deploy.runtimes import by_target

from ._common import TargetExport
from .lowered import LoweredNets
from .manifest import SCALE, InputSpec, Manifest, ModelInfo, OutputSpec, Parity, manifest_path
from .subject import ExportSubject
from .targets import TARGETS
from .validate import ExportOptions
from .verify import compare, require_parity


@dataclass(frozen=True)
class StagedArtifact:
    """A verified artifact and its manifest, written in the scratch directory."""

    target: str
    path: Path
    manifest: Manifest
    seconds: float


def export_target(target: str, subject: ExportSubject, lowered: LoweredNets, options: ExportOptions,
                  path: Path) -> StagedArtifact:
    """Export ``target`` to ``path``, verify it and write its manifest beside it.

    A converter crash becomes the one-line error (set ``SSC_DEPLOY_DEBUG=1`` for the traceback);
    parity beyond ``options.atol`` is the exit-code-3 error.
    """
    start = time.perf_counter()
    mod = TARGETS[target]
    metadata = {"ssc_deploy_model": subject.name, "classes": subject.classes, "mean": subject.mean,
                "std": subject.std, "scale": SCALE, "output": "logits"}
    try:
        info = mod.export(lowered.net_for(target), subject.example, path, opset=options.opset, nhwc=options.nhwc,
                          strict=options.strict, metadata=metadata)
        outputs = mod.run(path, lowered.images, nhwc=info.layout == "NHWC")
    except SscDeployError:
        raise
    except Exception as err:  # noqa: BLE001 - converter failures become one line
        if os.environ.get("SSC_DEPLOY_DEBUG"):
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise SscDeployError(f"{target}: export failed ({type(err).__name__}: {first}); no artifact was written") from None
    parity = compare(lowered.reference, outputs, options.atol, lowered.data)
    require_parity(parity, target, info.output_name)
    manifest = _manifest(target, path, info, subject, lowered, parity)
    manifest_path(path).write_text(manifest.dumps(), encoding="utf-8")
    return StagedArtifact(target, path, manifest, time.perf_counter() - start)


def _manifest(target: str, path: Path, info: TargetExport, subject: ExportSubject, lowered: LoweredNets,
              parity: Parity) -> Manifest:
    """The one place a manifest is built."""
    lowering = lowered.lowerings[target]
    return Manifest(
        file=path.name,
        sha256=sha256_file(path),
        bytes=path.stat().st_size,
        target=target,
        runtime=by_target(target).runtime,
        runtime_version=TARGETS[target].runtime_version(),
        exporter=info.exporter,
        model=ModelInfo(name=subject.name, family=subject.family, params=subject.params, macs=subject.macs,
                        lowering=lowering, trained=subject.trained),
        input=InputSpec(name=info.input_name, shape=info.input_shape, dtype="float32", layout=info.layout,
                        mean=subject.mean, std=subject.std, scale=SCALE),
        output=OutputSpec(name=info.output_name, shape=[1, len(subject.classes)], kind="logits"),
        classes=subject.classes,
        parity=parity,
        source=subject.source,
        delegation=info.extra.get("delegation"),
        op_histogram=info.op_histogram,
        rewrite={"max_abs_diff": lowered.rewrite_diff[lowering]},
        warnings=info.warnings,
        ssc_deploy_version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
