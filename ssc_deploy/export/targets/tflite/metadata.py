"""TFLite Metadata in an exported .tflite: what MediaPipe's ``ImageClassifier`` (and the older Task
Library and Android Studio's model binding) read to feed the file and name its outputs.

Built with MediaPipe's metadata writer tables (``metadata_writers.metadata_info``, the ``app``
extra) and packed with its schema modules: the model's name, version and description; the input as an RGB image with its
normalisation; the output as category scores (our logits) with the class names as the associated
label file ``labels.txt``. MediaPipe normalises a pixel ``p`` in 0-255 as ``(p - mean) / std``, so
our ``(p / 255 - mean) / std`` is written as ``mean * 255`` and ``std * 255``. MediaPipe takes one
normalisation for all channels (it refuses per-channel values that differ, "Per-channel image
normalization is not available") and an NHWC image input: :func:`mediapipe_warnings` says when a
file misses either.

Not ``metadata_writers.image_classifier.MetadataWriter``: mediapipe 1.2.2's populator and
displayer (``mediapipe.tasks.python.metadata.metadata``) import ``mediapipe.tasks.cc...
_pywrap_metadata_version``, which the wheel does not ship, so they fail to import; and the writer
fixes the name ("ImageClassifier") and description, has no version and writes the label file in the
locale's encoding. This module packs what the populator would: the metadata flatbuffer (``M001``,
its minimum parser version 1.0.0: it uses no field added later) as the model's ``TFLITE_METADATA``
buffer, and the UTF-8 label file as a zip archive appended to the model.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any, Sequence

from ssc_deploy.atomic import write_bytes_atomic
from ssc_deploy.errors import SscDeployError, missing_package

LABEL_FILE = "labels.txt"
INPUT_NAME = "image"
OUTPUT_NAME = "score"
PIXEL_MAX = 255.0
METADATA_BUFFER = "TFLITE_METADATA"  # the model metadata entry MediaPipe and the Task Library look for
METADATA_ID, MODEL_ID = b"M001", b"TFL3"
MIN_PARSER_VERSION = "1.0.0"


def check_installed() -> None:
    """One-line 'install the extra' error unless MediaPipe's metadata writer imports."""
    try:
        _schemas()
    except ImportError:
        raise missing_package("mediapipe", "app") from None


def check_labels(classes: Any, num_outputs: int | None = None) -> list[str]:
    """The class names as label-file lines; one-line error for none, a count that is not the
    output's, or a name that is not one line of text."""
    if not isinstance(classes, (list, tuple)) or not classes:
        raise SscDeployError("TFLite metadata: no class names to write as labels")
    for name in classes:
        if not isinstance(name, str) or not name.strip():
            raise SscDeployError(f"TFLite metadata: class name {name!r} is not a non-empty string")
        if any(c in name for c in "\r\n\x00") or name != name.strip():
            raise SscDeployError(f"TFLite metadata: class name {name!r} cannot be one line of the label file "
                                 "(line break, NUL or surrounding spaces)")
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise SscDeployError(f"TFLite metadata: class name {name!r} is not valid UTF-8 text") from None
    if num_outputs is not None and len(classes) != num_outputs:
        raise SscDeployError(f"TFLite metadata: {len(classes)} class names for {num_outputs} outputs")
    return list(classes)


def pixel_normalisation(mean: Sequence[float], std: Sequence[float]) -> tuple[list[float], list[float]]:
    """Our ``(p / 255 - mean) / std`` as MediaPipe's ``(p - mean) / std`` on 0-255 pixels."""
    return [float(m) * PIXEL_MAX for m in mean], [float(s) * PIXEL_MAX for s in std]


def mediapipe_warnings(layout: str, mean: Sequence[float], std: Sequence[float]) -> list[str]:
    """Why MediaPipe's ImageClassifier would refuse a file of this layout and normalisation (none: it loads)."""
    warnings = []
    if layout != "NHWC":
        warnings.append(f"the .tflite input is {layout}: MediaPipe's ImageClassifier needs an NHWC image input")
    if len(set(mean)) > 1 or len(set(std)) > 1:
        warnings.append("the normalisation differs per channel: MediaPipe's ImageClassifier takes one mean/std "
                        "for all channels (its apps must normalise the tensor themselves)")
    return warnings


def with_metadata(model: bytes, *, name: str, version: str, description: str, classes: Sequence[str],
                  mean: Sequence[float], std: Sequence[float]) -> bytes:
    """The .tflite ``model`` with TFLite Metadata and the label file packed in (replacing any there)."""
    import flatbuffers

    info, utils, fb, schema = _schemas()
    labels = check_labels(classes, _output_size(model, schema))
    norm_mean, norm_std = pixel_normalisation(mean, std)
    image = info.InputImageTensorMd(
        name=INPUT_NAME, description="RGB image; MediaPipe resizes it to the input size and normalises it",
        norm_mean=norm_mean, norm_std=norm_std, color_space_type=fb.ColorSpaceType.RGB,
        tensor_type=utils.get_input_tensor_types(model)[0])
    scores = info.ClassificationTensorMd(
        name=OUTPUT_NAME, description="one score per class (logits: softmax gives probabilities)",
        label_files=[info.LabelFileMd(LABEL_FILE)], tensor_type=utils.get_output_tensor_types(model)[0])
    subgraph = fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [image.create_metadata()]
    subgraph.outputTensorMetadata = [scores.create_metadata()]
    root = info.GeneralMd(name=name, version=version, description=description).create_metadata()
    root.subgraphMetadata = [subgraph]
    root.minParserVersion = MIN_PARSER_VERSION
    builder = flatbuffers.Builder(0)
    builder.Finish(root.Pack(builder), METADATA_ID)
    packed = _with_buffer(model, bytes(builder.Output()), schema)
    out = io.BytesIO(packed)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:  # appended after the flatbuffer
        archive.writestr(LABEL_FILE, "\n".join(labels).encode("utf-8"))
    return out.getvalue()


def write_metadata(path: Path, facts: dict[str, Any], *, precision: str, version: str) -> int:
    """Rewrite the .tflite at ``path`` (temp + rename) with TFLite Metadata from the export's
    ``facts`` (``ssc_deploy_model``, ``classes``, ``mean``, ``std``); returns the bytes it added."""
    before = path.read_bytes()
    name = str(facts["ssc_deploy_model"])
    classes = facts.get("classes")
    description = (f"{name} ({precision}) image classifier over {len(classes or [])} classes, "
                   "exported and verified by ssc-deploy")
    data = with_metadata(before, name=name, version=version, description=description, classes=classes,
                         mean=facts["mean"], std=facts["std"])
    write_bytes_atomic(path, data)
    return len(data) - len(before)


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The TFLite Metadata of ``path`` as plain data (None when it has none): name, version,
    description, input normalisation (0-255 pixels), the label file's name and lines.

    One-line error for metadata that does not parse, a label file it names but the file does not
    pack, one that is not UTF-8 or whose line count is not the output size.
    """
    _, _, fb, schema = _schemas()
    model = path.read_bytes()
    raw = _metadata_buffer(model, schema)
    if raw is None:
        return None
    try:
        root = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAs(raw, 0))
        sub = (root.subgraphMetadata or [fb.SubGraphMetadataT()])[0]
        inp = (sub.inputTensorMetadata or [fb.TensorMetadataT()])[0]
        out = (sub.outputTensorMetadata or [fb.TensorMetadataT()])[0]
    except Exception as err:  # noqa: BLE001 - a damaged table is one line
        raise SscDeployError(f"{path}: its TFLite metadata does not parse ({type(err).__name__})") from None
    norm = next((u.options for u in inp.processUnits or []
                 if u.optionsType == fb.ProcessUnitOptions.NormalizationOptions), None)
    result: dict[str, Any] = {
        "name": _text(root.name), "version": _text(root.version), "description": _text(root.description),
        "min_parser_version": _text(root.minParserVersion),
        "input": {"name": _text(inp.name), "mean_0_255": _floats(norm and norm.mean),
                  "std_0_255": _floats(norm and norm.std)},
        "output": {"name": _text(out.name), "label_file": None, "labels": None},
    }
    labels = [f for f in out.associatedFiles or [] if f.type == fb.AssociatedFileType.TENSOR_AXIS_LABELS]
    if labels:
        label_name = _text(labels[0].name)
        lines = _label_lines(path, model, label_name)
        size = _output_size(model, schema)
        if size is not None and len(lines) != size:
            raise SscDeployError(f"{path}: label file '{label_name}' has {len(lines)} names for {size} outputs")
        result["output"].update(label_file=label_name, labels=lines)
    return result


def _label_lines(path: Path, model: bytes, name: str) -> list[str]:
    """The lines of the label file ``name`` packed in ``model``; one-line error if absent or not UTF-8."""
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            raw = archive.read(name)
    except (zipfile.BadZipFile, KeyError):
        raise SscDeployError(f"{path}: TFLite metadata names label file '{name}' but the file packs none") from None
    try:
        return raw.decode("utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise SscDeployError(f"{path}: label file '{name}' is not UTF-8 (byte {err.start})") from None


def _with_buffer(model: bytes, metadata: bytes, schema) -> bytes:
    """``model`` re-serialised with ``metadata`` as its (only) TFLITE_METADATA buffer; anything
    appended after the old flatbuffer (packed files) is dropped, and buffers the converter or
    quantizer stored after it (``offset``/``size``, as fp16 files have) are moved inside it."""
    import flatbuffers
    import numpy as np

    tree = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model, 0))
    for buf in tree.buffers or []:
        if buf.offset > 1:  # 0: inline data; 1: the converter's placeholder for an empty buffer
            if buf.offset + buf.size > len(model):
                raise SscDeployError("TFLite metadata: a buffer of the model points past its end")
            buf.data = np.frombuffer(model, np.uint8, buf.size, buf.offset).copy()
            buf.offset = buf.size = 0
    entry = schema.BufferT()
    entry.data = list(metadata)
    tree.buffers = list(tree.buffers or [])
    tree.metadata = [m for m in tree.metadata or [] if _text(m.name) != METADATA_BUFFER]
    tree.buffers.append(entry)
    field = schema.MetadataT()
    field.name, field.buffer = METADATA_BUFFER, len(tree.buffers) - 1
    tree.metadata.append(field)
    builder = flatbuffers.Builder(max(1024, len(model) + len(metadata)))
    builder.Finish(tree.Pack(builder), MODEL_ID)
    return bytes(builder.Output())


def _metadata_buffer(model: bytes, schema) -> bytes | None:
    """The bytes of the model's TFLITE_METADATA buffer, or None."""
    root = schema.Model.GetRootAs(model, 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if _text(entry.Name()) == METADATA_BUFFER:
            data = root.Buffers(entry.Buffer()).DataAsNumpy()
            return None if isinstance(data, int) else data.tobytes()
    return None


def _output_size(model: bytes, schema) -> int | None:
    """Scores per image of the model's first output (None when it is not (1, N))."""
    graph = schema.Model.GetRootAs(model, 0).Subgraphs(0)
    shape = [int(d) for d in graph.Tensors(graph.Outputs(0)).ShapeAsNumpy()]
    return shape[-1] if len(shape) == 2 else None


def _text(value: Any) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _floats(values: Any) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


def _schemas():
    """MediaPipe's metadata writer tables and utils, its metadata schema and the TFLite schema
    (ImportError without mediapipe)."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb
    from mediapipe.tasks.metadata import schema_py_generated as schema
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_info, writer_utils

    return metadata_info, writer_utils, fb, schema
