"""The export's option objects (issue 21 item 1): few parameters, each default defined once, target-only
options reaching only their target, the CLI's flags building the same objects, the README example true."""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path

import pytest

from ssc_deploy.errors import SscDeployError
from ssc_deploy.export import (ExecutorchOptions, ModelFacts, OnnxOptions, QuantOptions, TfliteOptions, VerifyOptions,
                               export_model, export_module)
from ssc_deploy.export import options as defaults
from ssc_deploy.export.targets import TARGET_OPTIONS, TARGETS
from ssc_deploy.export.validate import check_options, select_target_options
from ssc_deploy.runtimes import TARGET_NAMES

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_entry_points_take_at_most_twelve_parameters():
    from ssc_deploy.runtime_bench.bench_run import run_and_publish

    counts = {f.__name__: len(inspect.signature(f).parameters) for f in (export_module, export_model, run_and_publish)}
    assert counts == {"export_module": 12, "export_model": 11, "run_and_publish": 5}


@pytest.mark.parametrize("cls", [ModelFacts, VerifyOptions, QuantOptions, *TARGET_OPTIONS.values()])
def test_option_objects_are_frozen_and_build_with_no_arguments(cls):
    obj = cls()
    field = dataclasses.fields(obj)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, field, None)


def test_every_target_has_its_options_class_and_no_catch_all_keywords():
    assert list(TARGET_OPTIONS) == list(TARGET_NAMES)
    for name, cls in TARGET_OPTIONS.items():
        assert cls.target == name
    from ssc_deploy.export.targets.executorch import quantized as et8
    from ssc_deploy.export.targets.onnx import quantized as onnx8
    from ssc_deploy.export.targets.tflite import quantized as tflite8

    functions = [TARGETS[t].export for t in TARGET_NAMES] + [m.export_int8 for m in (et8, onnx8, tflite8)]
    functions.append(tflite8.export_fp16)
    for f in functions:
        params = inspect.signature(f).parameters.values()
        assert not [p for p in params if p.kind is p.VAR_KEYWORD], f"{f.__module__}.{f.__name__} swallows **kwargs"
        assert "options" in inspect.signature(f).parameters, f.__module__


def test_each_target_gets_its_own_options_and_a_name_gets_the_defaults():
    checked = check_options([OnnxOptions(opset=13, strict=True), "tflite", "executorch"], "fp32")
    assert checked.targets == ("onnx", "tflite", "executorch")
    assert checked.target("onnx") == OnnxOptions(opset=13, strict=True)
    assert checked.target("tflite") == TfliteOptions() and checked.target("executorch") == ExecutorchOptions()
    assert check_options("all", "fp32").per_target == {t: cls() for t, cls in TARGET_OPTIONS.items()}


def test_cli_defaults_are_the_option_defaults():
    """The flags' defaults come from the one definition (no literal 17, 256, 1.0 ... in the CLI)."""
    from ssc_deploy.cli.export_cmd import export_cmd

    flags = {name: p.default.default for name, p in inspect.signature(export_cmd).parameters.items()}
    assert flags["opset"] == OnnxOptions().opset == defaults.DEFAULT_OPSET
    assert (flags["atol"], flags["n_verify"]) == (VerifyOptions().atol, VerifyOptions().n_verify)
    q = QuantOptions()
    assert (flags["calib"], flags["max_drop"], flags["gate_images"], flags["gate_alpha"]) == (
        q.calib, q.max_drop, q.gate_images, q.gate_alpha)
    from ssc_deploy.accuracy_stats import ALPHA
    from ssc_deploy.runtime_bench.precision import DEFAULT_MAX_DROP

    assert q.gate_alpha == ALPHA and DEFAULT_MAX_DROP is defaults.DEFAULT_MAX_DROP


def test_the_options_module_loads_without_torch_or_numpy():
    import subprocess

    code = ("import sys; import ssc_deploy.export.options, ssc_deploy.cli; "
            "sys.exit(('torch' in sys.modules) + 2 * ('numpy' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(verify={"n_verify": 4}), "verify must be a VerifyOptions, got dict"),
    (dict(quant=VerifyOptions()), "quant must be a QuantOptions, got VerifyOptions"),
    (dict(verify=VerifyOptions(n_verify=None)), "n_verify takes a whole number, got None"),
    (dict(verify=VerifyOptions(n_verify=0)), "n_verify"),
])
def test_option_objects_of_the_wrong_kind_are_one_line(kwargs, message):
    with pytest.raises(SscDeployError, match=message):
        check_options("onnx", "fp32", **kwargs)


def test_cli_flags_of_targets_not_asked_for_are_checked_as_before():
    every = [OnnxOptions(opset=13), TfliteOptions(nhwc=True), ExecutorchOptions()]
    # in the order --target gives (the files are written in that order)
    assert select_target_options("tflite,onnx", every, "fp32") == [TfliteOptions(nhwc=True), OnnxOptions(opset=13)]
    with pytest.raises(SscDeployError, match=r"^--strip-names applies to tflite int8 exports only"):
        select_target_options("onnx", [TfliteOptions(strip_names=True)], "int8")
    with pytest.raises(SscDeployError, match=r"^--strip-names applies to tflite int8 exports only"):
        check_options(TfliteOptions(strip_names=True), "fp32")


@pytest.mark.slow
def test_the_readme_python_api_example_runs(tmp_path, monkeypatch):
    """The README's example exports and verifies (fp32 and untrained int8, onnx and NHWC tflite)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the README's own example
    names = sorted(p.name for p in (tmp_path / "dist").iterdir() if p.suffix in (".onnx", ".tflite", ".ort"))
    assert names == ["ssc-net-1-9.int8.onnx", "ssc-net-1-9.int8.ort", "ssc-net-1-9.int8.tflite", "ssc-net-1-9.onnx",
                     "ssc-net-1-9.ort", "ssc-net-1-9.tflite"]
