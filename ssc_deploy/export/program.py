"""Loading a ``.pt2`` program (``torch.export.save``) without running code from it.

``torch.export.load`` is not safe on an untrusted file (its own docstring says so): it unpickles
weights and constants marked ``use_pickle`` (``torch.load(weights_only=False)``), opaque
constants (``pickle.loads``), torchbind objects, the example inputs when the weights-only load of
them fails (it then retries with ``weights_only=False``), and the legacy archive layouts;
``sympy.sympify`` (an ``eval``) parses symbolic shape expressions; graph node targets are looked
up as any attribute path under ``torch`` (``torch.os.system`` resolves), and
``ExportedProgram.module()`` ``exec``s the archive's ``guards_code``.

:func:`load_program` therefore reads the file once into memory and, from those bytes, refuses
an archive unless: it is a zip of a sane size with no duplicate names; its members are exactly
the plain-data layout ``torch.export.save`` writes for one program (JSON, raw tensor records,
the example inputs); no weight or constant is pickled and every constant is a tensor; the
example inputs load with ``weights_only=True``; the graph has no symbolic expression, no
guards code, and calls only ``torch.ops.aten`` operators (and ``getitem``). Only then are the
same bytes given to ``torch.export.load``; the loaded graph's targets are checked again and
the module is built by :func:`~ssc_deploy.export.foreign.graph.program_graph` (no
``.module()``, no guards).
"""

from __future__ import annotations

import io
import json
import operator
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssc_deploy.errors import SscDeployError

SIDECAR_SUFFIX = ".json"  # model.pt2 -> model.pt2.json
_SIDECAR_KEYS = {"classes", "mean", "std", "name", "trained"}
_MEMBER = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|models/model\.json"
    r"|data/weights/model_weights_config\.json|data/weights/weight_\d+|data/constants/model_constants_config\.json"
    r"|data/constants/tensor_\d+|data/sample_inputs/model\.pt|extra/[A-Za-z0-9_.-]+)")
_ATEN_TARGET = re.compile(r"torch\.ops\.aten\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+|_operator\.getitem")
# Keys of the serialized graph that hold expressions sympy parses with eval.
_EXPRESSION_KEYS = {"as_expr", "expr_str"}


@dataclass(frozen=True)
class LoadedProgram:
    """A checked program, the module built from its graph, and the facts beside it."""

    module: Any  # fx.GraphModule: the program's graph with its weights, batch-generic
    in_size: int
    sha256: str
    sidecar: dict[str, Any]  # the checked JSON beside the file ({} when there is none)


def _refuse(path: Path, why: str) -> SscDeployError:
    return SscDeployError(f"{path}: refused: {why}, so it was not loaded")


def _archive(path: Path, data: bytes) -> tuple[zipfile.ZipFile, str]:
    from ssc_deploy.checkpoint import MAX_EXPANSION, MIN_EXPANSION_BYTES

    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        infos = z.infolist()
    except zipfile.BadZipFile as err:
        raise SscDeployError(f"{path}: not a torch.export program (not a complete zip archive: {err})") from None
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise _refuse(path, "the archive holds two members of one name")
    if sum(i.file_size for i in infos) > max(MAX_EXPANSION * len(data), MIN_EXPANSION_BYTES):
        raise _refuse(path, "the archive declares far more contents than the file holds (a zip bomb?)")
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or f"{next(iter(roots))}/models/model.json" not in names:
        raise SscDeployError(f"{path}: not a torch.export program (no models/model.json in one archive folder)")
    root = next(iter(roots)) + "/"
    for name in names:
        if not _MEMBER.fullmatch(name[len(root):]):
            raise _refuse(path, f"the archive member '{name[len(root):][:80]}' is not part of the plain-data program "
                                "layout (pickled weights, objects or another program)")
    return z, root


def _walk(obj: Any):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


def _check_payload_config(z: zipfile.ZipFile, member: str, prefix: str, path: Path) -> None:
    config = json.loads(z.read(member)).get("config", {})
    for fqn, meta in config.items():
        if meta.get("use_pickle") or not re.fullmatch(rf"{prefix}_\d+", str(meta.get("path_name", ""))):
            raise _refuse(path, f"'{fqn[:80]}' is stored as a pickled object, not a raw tensor")


def _check_members(z: zipfile.ZipFile, root: str, path: Path) -> None:
    import torch

    try:
        graph = json.loads(z.read(root + "models/model.json"))
        _check_payload_config(z, root + "data/weights/model_weights_config.json", "weight", path)
        _check_payload_config(z, root + "data/constants/model_constants_config.json", "tensor", path)
    except (KeyError, ValueError, AttributeError) as err:
        raise SscDeployError(f"{path}: not a readable torch.export program ({type(err).__name__}: {str(err)[:200]})") from None
    if graph.get("guards_code"):
        raise _refuse(path, "it carries guards code (Python that torch would exec)")
    if graph.get("range_constraints"):
        raise _refuse(path, "it has symbolic (dynamic) shapes, whose expressions torch parses with eval; "
                            "save the program with static shapes")
    for key, value in _walk(graph):
        if key in _EXPRESSION_KEYS:
            raise _refuse(path, "it holds a symbolic expression, which torch parses with eval")
        if key == "target" and isinstance(value, str) and not _ATEN_TARGET.fullmatch(value):
            raise _refuse(path, f"the graph calls '{value[:80]}', which is not an aten operator")
    sample = root + "data/sample_inputs/model.pt"
    if sample in z.namelist():
        try:
            torch.load(io.BytesIO(z.read(sample)), weights_only=True)
        except Exception:  # noqa: BLE001 - torch would retry this with weights_only=False
            raise _refuse(path, "its example inputs are pickled Python objects beyond tensors") from None


def _check_loaded(program, path: Path) -> None:
    import torch

    for node in program.graph.nodes:
        if node.op == "call_function" and not (node.target is operator.getitem or (
                isinstance(node.target, torch._ops.OpOverload) and node.target.namespace == "aten")):
            raise _refuse(path, f"the graph calls {node.target!r}, which is not an aten operator")
        if node.op not in ("placeholder", "call_function", "output"):
            raise _refuse(path, f"the graph has a '{node.op}' node")


def read_sidecar(path: Path) -> dict[str, Any]:
    """The checked ``<file>.json`` beside ``path`` ({} when there is none)."""
    side = path.with_name(path.name + SIDECAR_SUFFIX)
    if not side.exists():
        return {}
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise SscDeployError(f"{side}: not a readable JSON file ({str(err)[:200]})") from None
    if not isinstance(data, dict) or set(data) - _SIDECAR_KEYS:
        extra = sorted(set(data) - _SIDECAR_KEYS) if isinstance(data, dict) else type(data).__name__
        raise SscDeployError(f"{side}: expected an object with {', '.join(sorted(_SIDECAR_KEYS))}; got {extra}")
    for key in ("classes", "mean", "std"):
        v = data.get(key)
        if v is not None and not (isinstance(v, list) and all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in v)):
            raise SscDeployError(f"{side}: '{key}' must be a list of {'names' if key == 'classes' else 'numbers'}")
    if "name" in data and not isinstance(data["name"], str):
        raise SscDeployError(f"{side}: 'name' must be a string")
    if "trained" in data and not isinstance(data["trained"], bool):
        raise SscDeployError(f"{side}: 'trained' must be true or false")
    return data


def load_program(path: str | Path) -> LoadedProgram:
    """Check and load a ``.pt2`` (see the module docstring); one-line error for a bad or refused file."""
    import hashlib

    import torch

    from .foreign.graph import input_shape, program_graph
    from .subject import CHANNELS

    path = Path(path)
    if not path.is_file():
        raise SscDeployError(f"{path}: {'is a directory, not a program file' if path.is_dir() else 'no such file'}")
    data = path.read_bytes()
    z, root = _archive(path, data)
    _check_members(z, root, path)
    try:
        program = torch.export.load(io.BytesIO(data))
    except Exception as err:  # noqa: BLE001 - a damaged program is one line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise SscDeployError(f"{path}: not a readable torch.export program ({type(err).__name__}: {first})") from None
    _check_loaded(program, path)
    module = program_graph(program)
    shape = input_shape(module)
    if len(shape) != 4 or shape[:2] != (1, CHANNELS) or shape[2] != shape[3]:
        raise SscDeployError(f"{path}: the program takes input {list(shape)}; expected [1, {CHANNELS}, S, S]")
    return LoadedProgram(module, shape[2], hashlib.sha256(data).hexdigest(), read_sidecar(path))


def export_program(path: str | Path, *, class_names=None, mean=None, std=None, **options) -> list:
    """Export a ``.pt2`` with :func:`~ssc_deploy.export.exporter.export_module`; ``class_names``,
    ``mean`` and ``std`` (else the JSON beside the file, else the defaults) go to its manifests."""
    import torch

    from .exporter import export_module

    loaded = load_program(path)
    side = loaded.sidecar
    return export_module(
        loaded.module, torch.zeros(1, 3, loaded.in_size, loaded.in_size),
        name=options.pop("name", None) or side.get("name") or Path(path).stem,
        class_names=class_names if class_names is not None else side.get("classes"),
        mean=mean if mean is not None else side.get("mean"), std=std if std is not None else side.get("std"),
        trained=bool(side.get("trained", False)), checkpoint=str(path), checkpoint_sha256=loaded.sha256, **options)


def _numbers(text: str | None, flag: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise SscDeployError(f"{flag} must be comma-separated numbers, got '{text}'") from None


def export_program_cli(path: Path, classes: str | None, mean: str | None, std: str | None, **options) -> list:
    """``ssc-deploy export MODEL.pt2``: the comma-separated flags parsed, then :func:`export_program`."""
    names = None if classes is None else [c.strip() for c in classes.split(",")]
    return export_program(path, class_names=names, mean=_numbers(mean, "--mean"), std=_numbers(std, "--std"), **options)
