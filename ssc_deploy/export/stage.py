"""Export step 3, one target: export the deployment net, run the file in its runtime on the
verification images, require parity with PyTorch, and write the manifest beside it (in scratch)."""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ssc_deploy import __version__
from ssc_deploy.atomic import check_free_space
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

SPACE_MARGIN = 4 << 20  # converters' graphs, metadata and the manifest beside the weights


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
    check_free_space(path.parent, space_needed(subject), f"the {target} export", shown_as=path.parent.parent)
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
    output_shape = _check_outputs(outputs, subject, target)
    parity = compare(lowered.reference, outputs, options.atol, lowered.data)
    require_parity(parity, target, info.output_name)
    manifest = _manifest(target, path, info, subject, lowered, parity, output_shape)
    try:
        manifest_path(path).write_text(manifest.dumps(), encoding="utf-8")
    except OSError as err:
        raise SscDeployError(f"{target}: cannot write the manifest ({err.strerror or err}); no artifact was written") from None
    return StagedArtifact(target, path, manifest, time.perf_counter() - start)


def space_needed(subject: ExportSubject) -> int:
    """Bytes one target's export may need in scratch: the float32 weights a few times over, and a margin."""
    return 3 * 4 * subject.params + SPACE_MARGIN


def _check_outputs(outputs, subject: ExportSubject, target: str) -> list[int]:
    """The artifact's own output shape for one image; one-line error unless it is one logit per class."""
    shape = [int(d) for d in getattr(outputs, "shape", ())]
    if len(shape) != 2 or shape[1] != len(subject.classes):
        raise SscDeployError(f"{target}: the artifact outputs shape {shape[1:]} per image, but there are "
                             f"{len(subject.classes)} class names; no artifact was written")
    return [1, shape[1]]


def _manifest(target: str, path: Path, info: TargetExport, subject: ExportSubject, lowered: LoweredNets,
              parity: Parity, output_shape: list[int]) -> Manifest:
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
        output=OutputSpec(name=info.output_name, shape=output_shape, kind="logits"),
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
