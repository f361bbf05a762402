"""The JSON manifest written beside every artifact, for apps and the benchmark runner.

File: ``<artifact>.manifest.json`` (e.g. ``ssc-net-1-9.onnx.manifest.json``). Schema
``ssc-deploy-manifest/1``::

    {
      "schema": "ssc-deploy-manifest/1",
      "file": "ssc-net-1-9.onnx",            # artifact file name, beside the manifest
      "sha256": "...", "bytes": 812345,       # of the artifact
      "target": TARGET,                       # a target name of the runtime table (ssc_deploy/runtimes.py)
      "precision": "fp32" | "int8" | "fp16",  # numeric precision of the file ("fp32" when absent)
      "runtime": RUNTIME,                     # what runs it: that row's runtime name
      "runtime_version": "1.32.0",            # of the runtime the parity check used
      "exporter": {"torch": "...", PACKAGE: "...", ...},   # versions of what wrote it (ONNX: and "opset": 17)
      "model": {"name", "family", "params", "macs", "lowering", "lowering_reason", "trained": bool},
                # lowering_reason: why this lowering, e.g. "measured on this CPU (avx512) ..." (null: not recorded)
      "input": {"name", "shape": [1, 3, 32, 32], "dtype": "float32", "layout": "NCHW" | "NHWC",
                "mean": [...], "std": [...], "scale": "pixel/255"},
                # feed (pixel / 255 - mean) / std, per channel, in "layout"
      "output": {"name", "shape": [1, num_classes], "kind": "logits"},
      "classes": ["0", "1", ...],             # index -> class name
      "parity": {"data", "n_images", "max_abs_diff", "top1_agreement", "atol", "passed"},
                # int8/fp16: "passed" follows the accuracy gate below, not atol
      "quantization": null | {                # null for fp32 (and absent in older manifests)
          "scheme": "u8s8" | ..., "weights": "int8 per-channel (symmetric)",
          "activations": "int8 per-tensor", "io": "float32", "keep_float": [layer, ...],
          "calibration": {"data", "split": "train", "n", "seed", "transforms": "eval"},
          "group_merge": {"k": "3" | "stage1=3,...", "merged_layers", "groups": {layer: "9->3"},
                          "weights_added"},   # only with --group-merge (lowerings/group_merge.py)
          "accuracy": {"data", "split": "test", "n_images", "fp32_top1", "top1", "drop",
                       "agreement", "max_drop", "passed",    # null when the net is untrained
                       "fp32_top1_ci", "top1_ci", "drop_ci",  # 95 % intervals: Wilson, paired Newcombe
                       "right_to_wrong", "wrong_to_right", "p", "alpha"},  # flips vs fp32, exact McNemar p
                # top1, fp32_top1, their intervals and agreement are fractions; drop, drop_ci, max_drop points;
                # passed: not (drop > max_drop and p < alpha) (ssc_deploy.accuracy_stats.gate_fails)
          "kept_float_after_gate": null | {...},  # int8: layers the gate's retry kept in float, their cost
          ...},                               # and the target's own facts (chain check counts)
      "source": {"checkpoint": path | null, "checkpoint_sha256": hex | null,
                 "test_top1": float | null},  # null for an untrained --model export
      "delegation": {...},                    # executorch only: XNNPACK delegation by op
      "op_histogram": {"Conv": 12, ...},      # ops in the artifact's graph
      "rewrite": {"max_abs_diff": ...},       # rewritten vs original PyTorch net
      "warnings": [...],                      # the exporter's warnings (e.g. ops left undelegated)
      "ssc_deploy_version": "0.1.0",
      "created": "2026-11-23T18:00:00Z"
    }

:class:`Manifest` is that document as a dataclass (``to_dict()`` is the JSON above, key for key
and in that order); the exporter builds it, readers get it from :meth:`Manifest.read` or
:meth:`Manifest.beside`. Nothing here imports torch or numpy: a board with only a runtime reads
manifests too.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ssc_deploy.errors import SscDeployError
from ssc_deploy.export.quantize import PRECISIONS

SCHEMA = "ssc-deploy-manifest/1"
SUFFIX = ".manifest.json"
REQUIRED = ("schema", "file", "sha256", "bytes", "target", "runtime", "model", "input", "output", "classes", "parity")
SCALE = "pixel/255"  # inputs are (pixel / 255 - mean) / std
MAX_BYTES = 16 << 20  # a manifest of 1000 class names is ~30 KB


@dataclass(kw_only=True)
class ModelInfo:
    """``model``: what was exported."""

    name: str = ""
    family: str | None = None
    params: int | None = None
    macs: int | None = None
    lowering: str | None = None
    lowering_reason: str | None = None
    trained: bool = False


@dataclass(kw_only=True)
class InputSpec:
    """``input``: the one input tensor and how to fill it."""

    name: str | None = None
    shape: list[int] = field(default_factory=list)
    dtype: str = "float32"
    layout: str = "NCHW"
    mean: list[float] | None = None
    std: list[float] | None = None
    scale: str = SCALE

    @property
    def chw(self) -> list[int] | None:
        """(C, H, W) of the input whatever its layout; None when the shape is not 4-D."""
        if len(self.shape) != 4:
            return None
        if self.layout == "NHWC":
            return [self.shape[3], self.shape[1], self.shape[2]]
        return list(self.shape[1:])


@dataclass(kw_only=True)
class OutputSpec:
    """``output``: the logits tensor."""

    name: str | None = None
    shape: list[int] = field(default_factory=list)
    kind: str = "logits"


@dataclass(kw_only=True)
class SourceInfo:
    """``source``: the checkpoint the weights came from (all None for an untrained export)."""

    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    test_top1: float | None = None


@dataclass(kw_only=True)
class Parity:
    """``parity``: how closely a runtime's logits match PyTorch's on the same images."""

    data: str
    n_images: int
    max_abs_diff: float
    top1_agreement: float
    atol: float
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        """The ``parity`` object of the manifest."""
        return asdict(self)


@dataclass(kw_only=True)
class Manifest:
    """One artifact's manifest; the field order is the key order of the JSON file."""

    schema: str = SCHEMA
    file: str
    sha256: str
    bytes: int
    target: str
    precision: str = "fp32"
    runtime: str
    runtime_version: str | None = None
    exporter: dict[str, Any] = field(default_factory=dict)
    model: ModelInfo
    input: InputSpec
    output: OutputSpec
    classes: list[str]
    parity: Parity
    quantization: dict[str, Any] | None = None  # int8/fp16 only: scheme, calibration, accuracy
    source: SourceInfo = field(default_factory=SourceInfo)
    delegation: dict[str, Any] | None = None  # executorch only; absent from the JSON otherwise
    op_histogram: dict[str, int] = field(default_factory=dict)
    rewrite: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    ssc_deploy_version: str | None = None
    created: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The manifest as written to disk (plain JSON types, keys in schema order)."""
        data = asdict(self)
        if self.delegation is None:
            del data["delegation"]
        return data

    def dumps(self) -> str:
        """The indented JSON text of the manifest file."""
        return dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any], origin: str = "manifest") -> "Manifest":
        """Parse a manifest dict (as :func:`load_manifest` returns); missing optional keys get defaults.

        Every field is checked against its type (a manifest is data from anywhere): the first wrong
        one is the one-line error naming ``origin`` and the field. A manifest without
        ``model.trained`` counts as trained when it records a test top-1.
        """
        _check_schema(data, origin)
        source = _section(SourceInfo, data.get("source", {}), "source", origin)
        model = dict(_object(data["model"], "model", origin))
        model.setdefault("trained", source.test_top1 is not None)
        top = _checked(cls, data, "", origin)
        top.update(model=_section(ModelInfo, model, "model", origin),
                   input=_section(InputSpec, data["input"], "input", origin),
                   output=_section(OutputSpec, data["output"], "output", origin),
                   parity=_section(Parity, data["parity"], "parity", origin), source=source)
        manifest = cls(**top)
        _check_consistent(manifest, origin)
        return manifest

    @classmethod
    def read(cls, artifact: str | Path) -> "Manifest":
        """The manifest beside ``artifact`` (or a manifest path itself); one-line errors."""
        return cls.from_dict(load_manifest(artifact), str(_manifest_file(artifact)))

    @classmethod
    def beside(cls, artifact: str | Path) -> "Manifest | None":
        """The manifest beside ``artifact``; None when there is none, one-line error when it is broken."""
        if not manifest_path(artifact).exists():
            return None
        return cls.read(artifact)

    @property
    def input_chw(self) -> list[int] | None:
        """(C, H, W) of the model input in NCHW order, whichever layout the artifact takes."""
        return self.input.chw

    @property
    def checkpoint_file(self) -> Path | None:
        """The source checkpoint when it is still on this machine, else None."""
        path = Path(self.source.checkpoint) if self.source.checkpoint else None
        return path if path is not None and path.is_file() else None

    def check_artifact(self, artifact: str | Path, runtime: str | None = None) -> None:
        """Raise the one-line error when ``artifact`` is not the file this manifest describes.

        ``runtime`` (the runtime the file's suffix names, if given) must be the manifest's.
        """
        from ssc_deploy.checkpoint import sha256_file

        if runtime is not None and self.runtime and self.runtime != runtime:
            raise SscDeployError(f"{artifact}: its manifest says runtime '{self.runtime}', the file is a {runtime} model")
        if self.sha256 and self.sha256 != sha256_file(artifact):
            raise SscDeployError(f"{artifact}: the file does not match its manifest's sha256 (changed or corrupt)")


def _check_schema(data: Any, origin: str) -> None:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise SscDeployError(f"{origin}: not an {SCHEMA} manifest")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise SscDeployError(f"{origin}: manifest is missing {', '.join(missing)}")


def _object(value: Any, key: str, origin: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SscDeployError(f"{origin}: manifest field '{key}' is not a JSON object")
    return value


def _section(cls: type, value: Any, key: str, origin: str):
    """The dataclass ``cls`` from the manifest object ``value``; keys it does not know are ignored."""
    return cls(**_checked(cls, _object(value, key, origin), key, origin))


_SECTIONS = ("model", "input", "output", "parity", "source")
MAX_INT = 2**53  # JSON's exact integers; counts and sizes beyond it are corrupt
MAX_DIM = 1 << 16  # a tensor dimension (image side, channels, classes)
_SCALARS = {"str": str, "int": int, "float": (int, float), "bool": bool, "Any": object}


def _checked(cls: type, value: dict[str, Any], key: str, origin: str) -> dict[str, Any]:
    """The keys of ``value`` that ``cls`` has, each checked against its annotation; required ones present."""
    out = {}
    for f in fields(cls):
        if not key and f.name in _SECTIONS:  # the manifest's own sections, parsed by the caller
            continue
        where = f"{key}.{f.name}" if key else f.name
        if f.name not in value:
            if f.default is MISSING and f.default_factory is MISSING:
                raise SscDeployError(f"{origin}: manifest field '{key or f.name}' is incomplete (no '{f.name}')")
            continue
        _check_type(value[f.name], str(f.type), where, origin)
        out[f.name] = value[f.name]
    return out


def _check_type(value: Any, annotation: str, where: str, origin: str) -> None:
    """One-line error unless ``value`` fits ``annotation`` (``str``, ``int | None``, ``list[float]``, ...)."""
    kind, optional = annotation.removesuffix(" | None"), annotation.endswith(" | None")
    if value is None and optional:
        return
    inner = re.fullmatch(r"(list|dict)\[(?:str, )?(\w+)\]", kind)
    if inner:
        container = list if inner[1] == "list" else dict
        if not isinstance(value, container):
            _wrong(where, origin, f"a JSON {'array' if container is list else 'object'}", value)
        items = value if container is list else value.values()
        if container is dict and not all(isinstance(k, str) for k in value):
            _wrong(where, origin, "an object with string keys", value)
        for item in items:
            _check_type(item, inner[2], where, origin)
        return
    expected = _SCALARS[kind]
    if (kind in ("int", "float") and isinstance(value, bool)) or not isinstance(value, expected):
        _wrong(where, origin, {"str": "a string", "int": "an integer", "float": "a number",
                               "bool": "true or false"}.get(kind, kind), value)
    if kind == "int" and not 0 <= value <= MAX_INT:
        raise SscDeployError(f"{origin}: manifest field '{where}' is out of range ({_brief(value)})")
    if kind == "float" and not math.isfinite(value):
        raise SscDeployError(f"{origin}: manifest field '{where}' is not a finite number ({value})")


def _wrong(where: str, origin: str, expected: str, value: Any) -> None:
    raise SscDeployError(f"{origin}: manifest field '{where}' must be {expected}, got {_brief(value)}")


def _brief(value: Any) -> str:
    """A short, printable description of a bad value."""
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _check_consistent(m: "Manifest", origin: str) -> None:
    """What each field's type cannot say: shapes, layout, normalisation and classes agree."""
    def bad(where: str, why: str) -> None:
        raise SscDeployError(f"{origin}: manifest field '{where}' {why}")

    if not m.model.name.strip():
        bad("model.name", "is empty")
    if m.precision not in PRECISIONS:
        bad("precision", f"must be one of {', '.join(PRECISIONS)}, got {_brief(m.precision)}")
    if m.input.layout not in ("NCHW", "NHWC"):
        bad("input.layout", f"must be NCHW or NHWC, got {_brief(m.input.layout)}")
    for where, shape in (("input.shape", m.input.shape), ("output.shape", m.output.shape)):
        if shape and (len(shape) > 8 or not all(1 <= d <= MAX_DIM for d in shape)):
            bad(where, f"is not a tensor shape ({_brief(shape) if len(shape) > 8 else shape})")
    if m.input.shape and len(m.input.shape) != 4:
        bad("input.shape", f"must be (1, C, H, W) or (1, H, W, C), got {m.input.shape}")
    channels = m.input_chw[0] if m.input_chw else None
    for where, values in (("input.mean", m.input.mean), ("input.std", m.input.std)):
        if values is not None and channels is not None and len(values) != channels:
            bad(where, f"has {len(values)} values for {channels} input channels")
    if m.input.std is not None and any(v <= 0 for v in m.input.std):
        bad("input.std", "must be positive")
    if m.classes and len(m.output.shape) == 2 and m.output.shape[1] != len(m.classes):
        bad("classes", f"has {len(m.classes)} names but output.shape is {m.output.shape}")
    if m.delegation is not None:
        for key, kind in (("delegated_subgraphs", "int"), ("delegated_nodes", "int"), ("not_delegated_nodes", "int"),
                          ("by_op", "dict[str, Any]")):
            _check_type(m.delegation.get(key, 0 if kind == "int" else {}), kind, f"delegation.{key}", origin)
        for op, row in m.delegation.get("by_op", {}).items():
            _check_type(row, "dict[str, int]", f"delegation.by_op.{op}", origin)


def manifest_path(artifact: str | Path) -> Path:
    """Where the manifest of ``artifact`` lives."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + SUFFIX)


def _manifest_file(artifact: str | Path) -> Path:
    path = Path(artifact)
    return path if path.name.endswith(SUFFIX) else manifest_path(path)


def dumps(manifest: dict[str, Any]) -> str:
    """The manifest as the indented JSON written to disk."""
    return json.dumps(manifest, indent=2, sort_keys=False) + "\n"


def load_manifest(artifact: str | Path) -> dict[str, Any]:
    """Read the manifest beside ``artifact`` (or a manifest path itself) as a dict; one-line errors.

    :meth:`Manifest.read` gives the same as a :class:`Manifest`.
    """
    path = _manifest_file(artifact)
    if not path.exists():
        raise SscDeployError(f"{path}: no manifest (was the artifact exported by ssc-deploy?)")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise SscDeployError(f"{path}: {path.stat().st_size:,} bytes is too large for a manifest")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:  # bad JSON, undecodable text, absurd digits or nesting
        why = "nested too deeply" if isinstance(err, RecursionError) else err
        raise SscDeployError(f"{path}: not a valid JSON manifest ({why})") from None
    except OSError as err:  # a directory or an unreadable file in the manifest's place
        raise SscDeployError(f"{path}: cannot read the manifest ({err.strerror or err})") from None
    _check_schema(data, str(path))
    return data
