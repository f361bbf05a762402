"""Files an app loads as they are: TFLite Metadata read by MediaPipe's own ImageClassifier."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from ssc_deploy.data import load_dataset, normalize
from ssc_deploy.errors import SscDeployError
from ssc_deploy.export import QuantOptions, TfliteOptions, VerifyOptions, export_model
from ssc_deploy.export.targets.tflite import metadata as tflite_metadata
from ssc_deploy.export.targets.tflite import target as tflite_target
from ssc_deploy.train import TrainConfig, train_model

pytest.importorskip("mediapipe")
N_IMAGES = 40


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """SSC-Net-1-9 trained briefly on digits, exported to tflite fp32, int8 and fp16 with the defaults."""
    root = tmp_path_factory.mktemp("app")
    ckpt = root / "ssc19.pt"
    train_model(TrainConfig("ssc-net-1-9", epochs=2, max_batches=20, out=ckpt, progress=False, threads=1))
    results = export_model(str(ckpt), targets="tflite", out_dir=root / "out", precisions="fp32,int8,fp16", lowering="pad-slice",
                           verify=VerifyOptions(n_verify=8), quant=QuantOptions(gate_images=64, max_drop=100.0),
                           progress=False)
    return {r.precision: r for r in results}


def _mediapipe_top1(path, images: np.ndarray) -> tuple[list[int], list[str], np.ndarray]:
    """MediaPipe ImageClassifier's top category (index, name) and every score for each uint8 HWC image."""
    from mediapipe.tasks.python.core import base_options
    from mediapipe.tasks.python.vision import image_classifier
    from mediapipe.tasks.python.vision.core import image as mp_image

    options = image_classifier.ImageClassifierOptions(
        base_options=base_options.BaseOptions(model_asset_path=str(path)))
    index, names, scores = [], [], []
    with image_classifier.ImageClassifier.create_from_options(options) as classifier:
        for img in images:
            result = classifier.classify(mp_image.Image(image_format=mp_image.ImageFormat.SRGB,
                                                        data=np.ascontiguousarray(img)))
            cats = result.classifications[0].categories
            index.append(cats[0].index)
            names.append(cats[0].category_name)
            row = np.zeros(len(cats), np.float32)
            for c in cats:
                row[c.index] = c.score
            scores.append(row)
    return index, names, np.stack(scores)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8", "fp16"])
def test_mediapipe_classifies_each_tflite_with_our_labels_and_top1(exported, precision):
    r = exported[precision]
    m = r.manifest
    assert m["input"]["layout"] == "NHWC" and m["input"]["shape"] == [1, 32, 32, 3]
    assert m["exporter"]["tflite_metadata"]["bytes_added"] > 0
    assert not [w for w in m["warnings"] if "MediaPipe" in w or "TFLite Metadata" in w]
    test = load_dataset("digits", "test")
    images = test.images[:N_IMAGES]
    ours = tflite_target.run(r.artifact, normalize(images, m["input"]["mean"], m["input"]["std"]), nhwc=True)
    assert len(set(ours.argmax(1).tolist())) > 3  # a trained net: the comparison below can fail
    index, names, scores = _mediapipe_top1(r.artifact, images)
    assert index == ours.argmax(1).tolist()
    assert names == [m["classes"][i] for i in index]
    # MediaPipe's (p - mean*255) / (std*255) is our normalisation: the scores are our logits
    assert np.abs(scores - ours).max() < (1e-3 if precision != "int8" else 0.1) * (np.abs(ours).max() + 1)


@pytest.mark.slow
def test_inspect_shows_the_tflite_metadata(exported):
    from ssc_deploy.export import inspect_artifact

    r = exported["int8"]
    meta = inspect_artifact(r.artifact)["metadata"]
    assert meta["name"] == "ssc-net-1-9" and "int8" in meta["description"] and meta["version"]
    assert meta["output"]["label_file"] == "labels.txt" and meta["output"]["labels"] == r.manifest["classes"]
    mean = [v * 255 for v in r.manifest["input"]["mean"]]
    assert np.allclose(meta["input"]["mean_0_255"], mean, rtol=1e-6)


def _tiny_tflite(tmp_path, classes=4):
    import torch
    from torch import nn

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, classes)).eval()
    path = tmp_path / "tiny.tflite"
    with torch.no_grad():
        tflite_target.export(net, torch.zeros(1, 3, 8, 8), path, TfliteOptions(nhwc=True))
    return path


@pytest.mark.parametrize("classes, needle", [
    ([], "no class names"),
    (["a", "b", "c"], "3 class names for 4 outputs"),
    (["a", "b\nc", "d", "e"], "cannot be one line"),
    (["a", "b", "c", "\udcff"], "not valid UTF-8"),
])
def test_bad_label_inputs_are_one_line(tmp_path, classes, needle):
    path = _tiny_tflite(tmp_path)
    with pytest.raises(SscDeployError, match=needle) as err:
        tflite_metadata.write_metadata(path, {"ssc_deploy_model": "t", "classes": classes, "mean": [0.5] * 3,
                                              "std": [0.25] * 3}, precision="fp32", version="1")
    assert "\n" not in str(err.value)


def test_a_non_utf8_or_short_label_file_is_one_line_on_reading(tmp_path):
    path = _tiny_tflite(tmp_path)
    facts = {"ssc_deploy_model": "t", "classes": list("abcd"), "mean": [0.5] * 3, "std": [0.25] * 3}
    tflite_metadata.write_metadata(path, facts, precision="fp32", version="1")
    assert tflite_metadata.read_metadata(path)["output"]["labels"] == list("abcd")
    body = path.read_bytes()
    flat = body[: body.index(b"PK\x03\x04")]
    for labels, needle in ((b"a\nb\xff\nc\nd", "not UTF-8"), (b"a\nb", "2 names for 4 outputs")):
        out = io.BytesIO(flat)
        with zipfile.ZipFile(out, "a") as archive:
            archive.writestr("labels.txt", labels)
        path.write_bytes(out.getvalue())
        with pytest.raises(SscDeployError, match=needle):
            tflite_metadata.read_metadata(path)
    path.write_bytes(flat)
    with pytest.raises(SscDeployError, match="packs none"):
        tflite_metadata.read_metadata(path)


def test_a_file_without_metadata_reads_as_none(tmp_path):
    assert tflite_metadata.read_metadata(_tiny_tflite(tmp_path)) is None


def test_per_channel_normalisation_and_nchw_are_named_for_mediapipe():
    assert tflite_metadata.mediapipe_warnings("NHWC", [0.5] * 3, [0.2] * 3) == []
    warned = tflite_metadata.mediapipe_warnings("NCHW", [0.4, 0.5, 0.6], [0.2] * 3)
    assert len(warned) == 2 and "NHWC" in warned[0] and "per channel" in warned[1]


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    """An untrained SSC-Net-1-9 (BatchNorm randomised) exported to onnx fp32 and int8."""
    import torch

    from ssc_deploy.export import export_module
    from ssc_deploy.models import create_model
    from support.models import randomize_bn

    out = tmp_path_factory.mktemp("ort")
    results = export_module(randomize_bn(create_model("ssc-net-1-9")), torch.zeros(1, 3, 32, 32), targets="onnx",
                            out_dir=out, precisions="fp32,int8", lowering="pad-slice",
                            verify=VerifyOptions(n_verify=8), progress=False)
    return out, {r.precision: r for r in results}


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_every_onnx_gets_a_verified_ort_file_and_operator_config(onnx_files, precision):
    from ssc_deploy.export.targets.onnx import target as onnx_target
    from ssc_deploy.export.targets.onnx.ort_format import run_ort

    out, results = onnx_files
    r = results[precision]
    ort = r.manifest["exporter"]["ort_format"]
    ort_file, config = out / ort["file"], out / ort["operator_config"]
    assert ort_file.name == r.artifact.name[: -len(".onnx")] + ".ort" and ort["bytes"] == ort_file.stat().st_size
    assert config.read_text().count(";") >= 2 and any(op.endswith(":Conv") or "Conv" in op
                                                      for op in ort["required_operators"])
    assert ort["parity"]["passed"] and ort["parity"]["max_abs_diff"] <= ort["parity"]["atol"]
    test = load_dataset("digits", "test")
    x = normalize(test.images[:16], r.manifest["input"]["mean"], r.manifest["input"]["std"])
    want = onnx_target.run(r.artifact, x)
    assert np.abs(run_ort(ort_file, x) - want).max() <= ort["parity"]["atol"]
    assert not list(out.glob(".ort.*")) and not list(out.glob(".*.export.*"))  # temp dirs gone


def test_inspect_shows_onnx_metadata_props_and_its_ort_file(onnx_files):
    from ssc_deploy.export import inspect_artifact

    out, results = onnx_files
    meta = inspect_artifact(results["fp32"].artifact)["metadata"]
    assert meta["metadata_props"]["classes"] == [str(i) for i in range(10)]
    assert meta["ort_file"]["file"] == "ssc-net-1-9.ort"


def test_an_existing_ort_file_is_refused_without_force(onnx_files, tmp_path):
    import torch

    from ssc_deploy.export import export_module
    from ssc_deploy.models import create_model

    (tmp_path / "ssc-net-1-9.ort").write_bytes(b"mine")
    with pytest.raises(SscDeployError, match=r"ssc-net-1-9\.ort.* already exists"):
        export_module(create_model("ssc-net-1-9"), torch.zeros(1, 3, 32, 32), targets="onnx", out_dir=tmp_path,
                      lowering="pad-slice", verify=VerifyOptions(n_verify=4), progress=False)
    assert (tmp_path / "ssc-net-1-9.ort").read_bytes() == b"mine"


def test_bad_onnx_classes_metadata_is_one_line(onnx_files, tmp_path):
    import onnx

    from ssc_deploy.export.readers.embedded import embedded_metadata

    out, results = onnx_files
    model = onnx.load(str(results["fp32"].artifact))
    for value, needle in (('["a", "b"]', "2 names for 10 outputs"), ('{"a": 1}', "not a JSON list of strings")):
        next(p for p in model.metadata_props if p.key == "classes").value = value
        onnx.save(model, str(tmp_path / "bad.onnx"))
        with pytest.raises(SscDeployError, match=needle):
            embedded_metadata("onnx", tmp_path / "bad.onnx")


def test_inspect_rows_of_each_format():
    from ssc_deploy.export.readers.embedded import metadata_rows

    assert metadata_rows("executorch", None)[0][1].startswith("none")
    rows = dict(metadata_rows("tflite", {"name": "m", "version": "1", "description": "d", "min_parser_version": "1.0.0",
                                          "input": {"name": "image", "mean_0_255": [127.5], "std_0_255": [63.75]},
                                          "output": {"name": "score", "label_file": "labels.txt",
                                                     "labels": ["[red]x[/red]", "b"]}}))
    assert rows["label file"] == "labels.txt (2 names): [red]x[/red], b" and "127.5" in rows["input"]
