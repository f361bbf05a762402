"""Loading a ``.pt2`` program (``torch.export.save``) without running code from it.

``torch.export.load`` is not safe on an untrusted file (its own docstring says so): it unpickles
weights and constants marked ``use_pickle`` (``torch.load(weights_only=False)``), opaque
constants (``pickle.loads``), torchbind objects, the example inputs when the weights-only load of
them fails (it then retries with ``weights_only=False``), and the legacy archive layouts;
``sympy.sympify`` (an ``eval``) parses symbolic shape expressions; graph node targets are looked
up as any attribute path under ``torch`` (``torch.os.system`` resolves), and
``ExportedProgram.module()`` ``exec``s the archive's ``guards_code``. Even plain aten operators
are not all pure: ``aten.from_file(filename, shared=True)`` maps a file of the program's choosing
and an ``aten.copy_`` into it writes that file when the graph runs.

:func:`load_program` therefore reads the file once into memory and checks those bytes: a zip of
sane size whose members are stored (not compressed) back to back from the first byte to the
central directory, each local header agreeing with its central-directory record, no duplicate
names (so a second archive hidden before, between or after the members is refused rather than
read differently by Python's and torch's zip readers); its members exactly the plain-data layout
``torch.export.save`` writes for one program (JSON, raw tensor records whose declared shape fits
their bytes, the example inputs); no weight or constant pickled; the example inputs loading with
``weights_only=True``; no symbolic expression, no guards code; every graph node one of
:data:`ALLOWED_OPS`, the pure tensor operators a convolutional classifier needs (anything else is
refused by name). Only then is a fresh archive built from the members it read, with the example
inputs re-serialised from their weights-only load, and that is what ``torch.export.load`` sees:
the bytes checked are the bytes loaded, and torch has nothing left to unpickle. The loaded graph's
targets are checked against the same list and the module is built by
:func:`~ssc_deploy.export.foreign.graph.program_graph` (no ``.module()``, no guards).
"""

from __future__ import annotations

import io
import json
import operator
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssc_deploy.errors import SscDeployError, one_line
from ssc_deploy.quiet import quiet_native
from ssc_deploy.safe_read import read_regular_file

SIDECAR_SUFFIX = ".json"  # model.pt2 -> model.pt2.json
MAX_SIDECAR_BYTES = 1 << 20
MAX_PROGRAM_BYTES = 4 << 30
_SIDECAR_KEYS = {"classes", "mean", "std", "name", "trained"}
_MEMBER = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|models/model\.json"
    r"|data/weights/model_weights_config\.json|data/weights/weight_\d+|data/constants/model_constants_config\.json"
    r"|data/constants/tensor_\d+|data/sample_inputs/model\.pt|extra/[A-Za-z0-9_.-]+)")
# The pure tensor operators a convolutional classifier's graph may call, as ``aten.NAME.OVERLOAD``:
# no file, storage, device, random or out= variants. What torch.export writes for every zoo family
# and the usual layers of other CNNs; a graph calling anything else is refused with the op's name.
ALLOWED_OPS = frozenset(f"aten.{op}" for op in """
    conv1d.default conv2d.default convolution.default _convolution.default linear.default addmm.default mm.default
    bmm.default matmul.default t.default
    batch_norm.default _native_batch_norm_legit_no_training.default native_batch_norm.default layer_norm.default
    native_layer_norm.default group_norm.default native_group_norm.default instance_norm.default
    relu.default relu_.default relu6.default hardtanh.default hardtanh_.default hardswish.default hardswish_.default
    hardsigmoid.default hardsigmoid_.default sigmoid.default sigmoid_.default tanh.default tanh_.default gelu.default
    silu.default silu_.default leaky_relu.default leaky_relu_.default elu.default elu_.default prelu.default
    clamp.default clamp_.default clamp_min.default clamp_max.default softmax.int _softmax.default log_softmax.int
    _log_softmax.default
    adaptive_avg_pool2d.default _adaptive_avg_pool2d.default avg_pool2d.default max_pool2d.default
    max_pool2d_with_indices.default mean.dim mean.default sum.dim_IntList amax.default
    add.Tensor add_.Tensor add.Scalar sub.Tensor sub.Scalar rsub.Scalar mul.Tensor mul_.Tensor mul.Scalar div.Tensor
    div.Scalar neg.default rsqrt.default sqrt.default pow.Tensor_Scalar abs.default
    view.default reshape.default _unsafe_view.default flatten.using_ints permute.default transpose.int contiguous.default
    clone.default alias.default detach.default squeeze.dim squeeze.dims squeeze.default unsqueeze.default
    expand.default cat.default stack.default split.Tensor split_with_sizes.default chunk.default slice.Tensor
    select.int narrow.default pad.default constant_pad_nd.default roll.default index_select.default flip.default
    channel_shuffle.default pixel_shuffle.default dropout.default to.dtype _to_copy.default
    _assert_scalar.default _assert_tensor_metadata.default
""".split())
# Keys of the serialized graph that hold expressions sympy parses with eval.
_EXPRESSION_KEYS = {"as_expr", "expr_str"}
_ZIP_LOCAL = struct.Struct("<4s5H3L2H")  # local file header: signature .. extra field length
_ZIP_END = struct.Struct("<4s4H2LH")  # end of central directory record
_DESCRIPTOR_SIG = b"PK\x07\x08"
# Members torch's archive writer adds itself when the fresh archive is built.
_WRITER_RECORDS = {".data/version", ".data/serialization_id", "byteorder"}


@dataclass(frozen=True)
class LoadedProgram:
    """A checked program, the module built from its graph, and the facts beside it."""

    module: Any  # fx.GraphModule: the program's graph with its weights, batch-generic
    in_size: int
    sha256: str
    sidecar: dict[str, Any]  # the checked JSON beside the file ({} when there is none)


def _refuse(path: Path, why: str) -> SscDeployError:
    return SscDeployError(f"{path}: refused: {why}, so it was not loaded")


def _check_layout(path: Path, data: bytes, infos: list[zipfile.ZipInfo], start_dir: int) -> None:
    """Members stored back to back from byte 0 up to the central directory, which ends the file:
    nothing before, between or after them that another zip reader could take for a member."""
    pos = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        where = "before the first member" if pos == 0 else f"between members (at byte {pos})"
        if info.header_offset != pos or data[pos:pos + 4] != b"PK\x03\x04":
            raise _refuse(path, f"the archive has data {where}: a second archive could hide there")
        if info.compress_type != zipfile.ZIP_STORED:
            raise _refuse(path, f"the archive member '{info.filename[:80]}' is compressed; torch.export.save stores them")
        _, _, flags, method, _, _, crc, csize, _, name_len, extra_len = _ZIP_LOCAL.unpack_from(data, pos)
        name = data[pos + _ZIP_LOCAL.size:pos + _ZIP_LOCAL.size + name_len]
        if method != zipfile.ZIP_STORED or name.decode("utf-8", "replace") != info.filename:
            raise _refuse(path, f"the local header of '{info.filename[:80]}' disagrees with the archive's directory")
        pos += _ZIP_LOCAL.size + name_len + extra_len + info.compress_size
        if flags & 0x08:  # sizes follow the data in a descriptor, with or without its signature
            has_sig = data[pos:pos + 4] == _DESCRIPTOR_SIG
            pos += (4 if has_sig else 0) + (20 if info.compress_size >= 0xFFFFFFFF else 12)
        elif crc != info.CRC or csize != info.compress_size:
            raise _refuse(path, f"the local header of '{info.filename[:80]}' disagrees with the archive's directory")
    if pos != start_dir:
        raise _refuse(path, f"the archive has data between its last member and its directory (at byte {pos})")
    end = len(data) - _ZIP_END.size
    if end < 0 or _ZIP_END.unpack_from(data, end)[0] != b"PK\x05\x06" or data[-2:] != b"\x00\x00":
        raise _refuse(path, "the archive has data after its directory")


def _archive(path: Path, data: bytes) -> tuple[str, dict[str, bytes]]:
    """The archive's root folder and every member's bytes, each read once by one parser."""
    from ssc_deploy.checkpoint import MAX_EXPANSION, MIN_EXPANSION_BYTES

    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        infos = z.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as err:
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
    _check_layout(path, data, infos, z.start_dir)
    try:
        return root, {i.filename[len(root):]: z.read(i) for i in infos}
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError) as err:
        raise SscDeployError(f"{path}: not a readable torch.export program (a damaged archive member: {err})") from None


def _walk(obj: Any):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v)


def _ints(values: Any) -> list[int]:
    out = [v.get("as_int") if isinstance(v, dict) else None for v in values] if isinstance(values, list) else [None]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in out):
        raise ValueError("a tensor's sizes, strides and offset must be whole numbers >= 0")
    return out


def _check_payload_config(members: dict[str, bytes], config_name: str, directory: str, prefix: str,
                          path: Path) -> None:
    """Every weight (or constant) a raw tensor record whose declared shape fits its bytes."""
    from torch._export.serde.serialize import _SERIALIZE_TO_TORCH_DTYPE

    config = json.loads(members[config_name])
    config = config.get("config", {}) if isinstance(config, dict) else None
    if not isinstance(config, dict):
        raise ValueError(f"{config_name} is not an object of tensor records")
    for fqn, meta in config.items():
        name = str(meta.get("path_name", "")) if isinstance(meta, dict) else ""
        if not isinstance(meta, dict) or meta.get("use_pickle") or not re.fullmatch(rf"{prefix}_\d+", name):
            raise _refuse(path, f"'{fqn[:80]}' is stored as a pickled object, not a raw tensor")
        tensor = meta.get("tensor_meta") or {}
        dtype = _SERIALIZE_TO_TORCH_DTYPE.get(tensor.get("dtype")) if isinstance(tensor, dict) else None
        record = members.get(f"{directory}/{name}")
        if dtype is None or record is None:
            raise ValueError(f"'{fqn[:80]}' has no tensor type or no record")
        sizes, strides = _ints(tensor.get("sizes")), _ints(tensor.get("strides"))
        offset = _ints([tensor.get("storage_offset")])[0]
        if len(sizes) != len(strides):
            raise ValueError(f"'{fqn[:80]}' has {len(sizes)} sizes but {len(strides)} strides")
        span = 0 if 0 in sizes else offset + 1 + sum((n - 1) * st for n, st in zip(sizes, strides))
        if span * dtype.itemsize > len(record):
            raise _refuse(path, f"'{fqn[:80]}' declares {span * dtype.itemsize} bytes of data but its record "
                                f"holds {len(record)}")


def _check_members(members: dict[str, bytes], path: Path) -> bytes | None:
    """The checks on the members' contents; returns the example inputs re-serialised (None without)."""
    import torch

    try:
        graph = json.loads(members["models/model.json"])
        if not isinstance(graph, dict):
            raise ValueError(f"models/model.json holds a {type(graph).__name__}, not a program object")
        _check_payload_config(members, "data/weights/model_weights_config.json", "data/weights", "weight", path)
        _check_payload_config(members, "data/constants/model_constants_config.json", "data/constants", "tensor", path)
    except (KeyError, ValueError, AttributeError, TypeError) as err:
        raise SscDeployError(f"{path}: not a readable torch.export program ({type(err).__name__}: {one_line(err)})") from None
    if graph.get("guards_code"):
        raise _refuse(path, "it carries guards code (Python that torch would exec)")
    if graph.get("range_constraints"):
        raise _refuse(path, "it has symbolic (dynamic) shapes, whose expressions torch parses with eval; "
                            "save the program with static shapes")
    for key, value in _walk(graph):
        if key in _EXPRESSION_KEYS:
            raise _refuse(path, "it holds a symbolic expression, which torch parses with eval")
        if key == "target" and isinstance(value, str) and value != "_operator.getitem" and not (
                value.startswith("torch.ops.") and value[len("torch.ops."):] in ALLOWED_OPS):
            raise _refuse(path, f"the graph calls '{value[:80]}', which is not one of the pure tensor operators "
                                "a classifier needs")
    sample = members.get("data/sample_inputs/model.pt")
    if sample is None:
        return None
    try:
        inputs = torch.load(io.BytesIO(sample), weights_only=True)
    except Exception:  # noqa: BLE001 - torch would retry this with weights_only=False
        raise _refuse(path, "its example inputs are pickled Python objects beyond tensors") from None
    buf = io.BytesIO()
    torch.save(inputs, buf)
    return buf.getvalue()


def _rebuilt(members: dict[str, bytes], sample: bytes | None) -> io.BytesIO:
    """A fresh archive of the checked members (torch's own writer), for torch.export.load to read."""
    from torch.export.pt2_archive._package import PT2ArchiveWriter

    out = io.BytesIO()
    with PT2ArchiveWriter(out) as writer:
        for name, data in members.items():
            if name not in _WRITER_RECORDS:
                writer.write_bytes(name, sample if name == "data/sample_inputs/model.pt" and sample else data)
    out.seek(0)
    return out


def _check_loaded(program, path: Path) -> None:
    import torch

    for node in program.graph.nodes:
        if node.op == "call_function" and not (node.target is operator.getitem or (
                isinstance(node.target, torch._ops.OpOverload) and str(node.target) in ALLOWED_OPS)):
            raise _refuse(path, f"the graph calls {str(node.target)[:80]!r}, which is not one of the pure tensor "
                                "operators a classifier needs")
        if node.op not in ("placeholder", "call_function", "output"):
            raise _refuse(path, f"the graph has a '{node.op}' node")


def read_sidecar(path: Path) -> dict[str, Any]:
    """The checked ``<file>.json`` beside ``path`` ({} when there is none)."""
    side = path.with_name(path.name + SIDECAR_SUFFIX)
    if not side.exists():
        return {}
    try:
        data = json.loads(read_regular_file(side, MAX_SIDECAR_BYTES, "JSON sidecar").decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise SscDeployError(f"{side}: not a readable JSON file ({one_line(err)})") from None
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

    from ssc_deploy.export.foreign.graph import input_shape, program_graph
    from ssc_deploy.export.subject import CHANNELS

    path = Path(path)
    if not path.exists() or path.is_dir():
        raise SscDeployError(f"{path}: {'is a directory, not a program file' if path.is_dir() else 'no such file'}")
    data = read_regular_file(path, MAX_PROGRAM_BYTES, "program")
    _, members = _archive(path, data)
    sample = _check_members(members, path)
    try:
        with quiet_native():
            program = torch.export.load(_rebuilt(members, sample))
    except Exception as err:  # noqa: BLE001 - a damaged program is one line
        first = one_line(err)
        raise SscDeployError(f"{path}: not a readable torch.export program ({type(err).__name__}: {first})") from None
    _check_loaded(program, path)
    module = program_graph(program)
    shape = input_shape(module)
    if len(shape) != 4 or shape[:2] != (1, CHANNELS) or shape[2] != shape[3]:
        raise SscDeployError(f"{path}: the program takes input {list(shape)}; expected [1, {CHANNELS}, S, S]")
    return LoadedProgram(module, shape[2], hashlib.sha256(data).hexdigest(), read_sidecar(path))


def export_program(path: str | Path, *, class_names=None, mean=None, std=None, name: str | None = None,
                   **options) -> list:
    """Export a ``.pt2`` with :func:`~ssc_deploy.export.exporter.export_module` (``options``: its keyword
    options); ``name``, ``class_names``, ``mean`` and ``std`` (else the JSON beside the file, else the
    defaults) go to its manifests."""
    import torch

    from ssc_deploy.export.exporter import export_module
    from ssc_deploy.export.options import ModelFacts

    loaded = load_program(path)
    side = loaded.sidecar
    facts = ModelFacts(
        name=name or side.get("name") or Path(path).stem,
        class_names=class_names if class_names is not None else side.get("classes"),
        mean=mean if mean is not None else side.get("mean"), std=std if std is not None else side.get("std"),
        trained=bool(side.get("trained", False)), checkpoint=str(path), checkpoint_sha256=loaded.sha256)
    return export_module(loaded.module, torch.zeros(1, 3, loaded.in_size, loaded.in_size), facts, **options)


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
