"""CLI: ``export`` (checkpoint -> verified ONNX / .pte / .tflite + manifests) and ``inspect``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ssc_deploy.display import as_text, markup_safe
from ssc_deploy.runtimes import DEFAULT_TARGET, TARGET_NAMES, by_target

from ssc_deploy.export.options import (DEFAULT_ALPHA, DEFAULT_ATOL, DEFAULT_CALIB, DEFAULT_GATE_IMAGES,
                                       DEFAULT_MAX_DROP, DEFAULT_N_VERIFY, DEFAULT_NHWC, DEFAULT_OPSET,
                                       VerifyOptions)

from .app import app


def _console():
    from rich.console import Console

    return Console(soft_wrap=True)


@app.command("export")
def export_cmd(
    checkpoint: Optional[Path] = typer.Argument(
        None, help="Checkpoint to export (from `ssc-deploy train`), or a program saved with torch.export.save (.pt2). "
                   "Leave out and give --model for an untrained net."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m",
        help="Export an untrained net of this architecture (for latency work; accuracy is then not applicable). "
             "With a CHECKPOINT holding a bare state_dict, names its architecture."),
    target: list[str] = typer.Option(
        [DEFAULT_TARGET], "--target", "-t",
        help=f"{', '.join(TARGET_NAMES)} or all; repeat the option or give a comma list for several."),
    out: Path = typer.Option(Path("exports"), "--out", "-o", help="Directory the artifacts and manifests are written to."),
    lowering: str = typer.Option(
        "fast", "--lowering",
        help="How Shift and ChannelShuffle become plain graph ops (see `ssc-deploy export --list-lowerings`). "
             "'fast' (default): per target, the lowering measured fastest on this CPU (measured once on a small "
             "SSC net, cached in ~/.cache/ssc-deploy; SSC_DEPLOY_MEASURE_LOWERINGS=0 skips measuring); "
             "'fast-table': the known fastest for this CPU's vector ISA, never measured; "
             "'auto' exports each candidate of this net, checks parity, times it here and keeps the fastest per target."),
    for_device: str = typer.Option(
        "host", "--for",
        help="The device the files are for: host (default), or arm64-emulated[:PROFILE] (cortex-a76 default, "
             "cortex-a53, neoverse-n1, max): --lowering fast then picks per target and precision the lowering with "
             "the fewest ARM instructions on that profile (counted once on the emulated device, cached)."),
    opset: int = typer.Option(DEFAULT_OPSET, "--opset", help="ONNX opset version."),
    nhwc: bool = typer.Option(
        DEFAULT_NHWC, "--nhwc/--nchw", help="TFLite only: channel-last (N, H, W, C) input, the layout "
        "MediaPipe's ImageClassifier needs (the default), or NCHW like the other targets."),
    strict: bool = typer.Option(
        False, "--strict", help="ExecuTorch only: fail when a compute op is not delegated to XNNPACK (default: warn)."),
    atol: float = typer.Option(DEFAULT_ATOL, "--atol", help="Largest allowed abs difference between runtime and PyTorch logits."),
    data: Optional[str] = typer.Option(
        None, "--data",
        help="Images to verify on (digits, cifar10:PATH, folder:PATH, ...); default: the checkpoint's data, else digits."),
    n_verify: int = typer.Option(DEFAULT_N_VERIFY, "--n-verify", help="How many test images each artifact is verified on."),
    num_classes: int = typer.Option(10, "--num-classes", help="With --model: number of classes of the untrained net."),
    in_size: int = typer.Option(32, "--in-size", help="With --model: input height and width in pixels."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite artifacts that already exist in --out."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifests as one JSON list instead of tables."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Do not draw a progress bar."),
    list_lowerings: bool = typer.Option(False, "--list-lowerings", help="List the shift lowerings and exit."),
    classes: Optional[str] = typer.Option(
        None, "--classes", help="With a .pt2: class names, comma-separated (default: MODEL.pt2.json beside it, else 0, 1, ...)."),
    mean: Optional[str] = typer.Option(
        None, "--mean", help="With a .pt2: the input normalisation mean, 3 comma-separated numbers (default: MODEL.pt2.json)."),
    std: Optional[str] = typer.Option(
        None, "--std", help="With a .pt2: the input normalisation std, 3 comma-separated numbers (default: MODEL.pt2.json)."),
    precision: str = typer.Option(
        "fp32", "--precision", "-p",
        help="fp32, int8 and/or fp16 as a comma list (e.g. fp32,int8). int8/fp16 files are NAME.int8.SUFFIX / "
             "NAME.fp16.SUFFIX, gated on test top-1 instead of --atol; fp16 is exported for tflite only."),
    calib: int = typer.Option(DEFAULT_CALIB, "--calib", help="int8: how many training images (fixed seed) calibrate the activation ranges."),
    max_drop: float = typer.Option(
        DEFAULT_MAX_DROP, "--max-drop",
        help="int8/fp16: largest allowed top-1 drop in points against the fp32 PyTorch model on the test split; "
             "a drop beyond it that is also significant (see --gate-alpha) fails that file: the worst layers are "
             "kept in float and it is tried again (a few at a time), else it is named, the other files are written "
             "and the exit code is 3."),
    gate_images: int = typer.Option(DEFAULT_GATE_IMAGES, "--gate-images",
                                    help="int8/fp16: at most this many test images for the accuracy gate "
                                         "(default: the whole test split of digits and CIFAR)."),
    gate_alpha: float = typer.Option(
        DEFAULT_ALPHA, "--gate-alpha",
        help="int8/fp16: a drop beyond --max-drop fails only when the exact McNemar p of the test images that "
             "flip is below this (1: the drop alone decides)."),
    int8_scheme: Optional[str] = typer.Option(
        None, "--int8-scheme",
        help="onnx int8: u8s8 (default on x86 with VNNI/AMX), u8s8-rr (reduce_range: the default on x86 CPUs without VNNI, where u8s8 saturates) or s8s8 (default on ARM)."),
    keep_float: Optional[str] = typer.Option(
        None, "--keep-float",
        help="int8: comma list of conv/linear layers left in float (e.g. fc); "
             "`ssc-deploy inspect CKPT --quant-error` lists them, worst first. Without it a failed gate retries "
             "with the worst layers in float; 'none' turns that off."),
    group_merge: Optional[str] = typer.Option(
        None, "--group-merge",
        help="int8: merge every K neighbouring groups of each grouped 1x1 conv into one block-diagonal group "
             "(exact; larger int8 kernels, K times the layer's weights), or per stage/layer as PREFIX=K,... "
             "(e.g. stage1=3,stage2=2). Default 1: no merge."),
    int8_weights: Optional[str] = typer.Option(
        None, "--int8-weights",
        help="int8 weight scales: per-channel (default), per-tensor-grouped (one scale per grouped conv: "
             "smaller files, the accuracy gate still applies) or per-tensor."),
    strip_names: bool = typer.Option(
        False, "--strip-names",
        help="tflite int8: empty the tensor names except input and output (a tenth of an int8 SSC-Net file; "
             "outputs checked unchanged)."),
) -> None:
    """Export a trained checkpoint (or an untrained --model) to ONNX, ExecuTorch .pte and/or TFLite.

    Every artifact is first run in its own runtime on real images and compared with PyTorch;
    beyond --atol the export fails and nothing is written. A JSON manifest lands beside each file.
    """
    from ssc_deploy.errors import SscDeployError
    from ssc_deploy.export import available_lowerings

    if list_lowerings:
        _print_lowerings(available_lowerings(), as_json)
        return
    if checkpoint is None and model is None:
        raise SscDeployError("nothing to export: give a CHECKPOINT or --model NAME")
    if checkpoint is not None and checkpoint.suffix.lower() == ".pt2":
        if precision.strip().lower() != "fp32":
            raise SscDeployError("--precision: a .pt2 program exports fp32 only (int8/fp16 need a checkpoint or --model)")
        if for_device.strip() not in ("", "host"):
            raise SscDeployError("--for: a .pt2 program exports for the host only (give a checkpoint or --model)")
        if group_merge is not None or int8_weights is not None or strip_names:
            raise SscDeployError("--group-merge, --int8-weights and --strip-names apply to int8 exports only "
                                 "(a .pt2 program exports fp32 only)")
        from ssc_deploy.export.readers.program import export_program_cli

        targets = _target_options(target, "fp32", opset=opset, nhwc=nhwc, strict=strict)
        results = export_program_cli(
            checkpoint, classes, mean, std, targets=targets, out_dir=out, lowering=lowering,
            verify=VerifyOptions(data=data, n_verify=n_verify, atol=atol), force=force,
            progress=not no_progress and not as_json)
    else:
        from ssc_deploy.export import ExportIncomplete, QuantOptions
        from ssc_deploy.export.exporter import check_export_options, export_module, load_for_export

        export = dict(
            targets=_target_options(target, precision, opset=opset, nhwc=nhwc, strict=strict, int8_scheme=int8_scheme,
                                    strip_names=strip_names),
            precisions=precision, lowering=lowering, for_device=for_device,
            verify=VerifyOptions(data=data, n_verify=n_verify, atol=atol),
            quant=QuantOptions(calib=calib, max_drop=max_drop, gate_images=gate_images, gate_alpha=gate_alpha,
                               keep_float=keep_float or (), int8_weights=int8_weights, int8_group_merge=group_merge))
        check_export_options(**export)  # before anything is loaded
        try:
            results = export_module(*load_for_export(checkpoint, model_name=model, num_classes=num_classes,
                                                     in_size=in_size),
                                    out_dir=out, force=force, progress=not no_progress and not as_json, **export)
        except ExportIncomplete as err:  # the files that passed are on disk: show them, then the failure
            if not as_json:
                _print_results(err.results)
                for line in err.failed[1:]:
                    _console().print(as_text(f"failed: {line}", "yellow"))
            raise
    if as_json:
        print(json.dumps([{"artifact": str(r.artifact), "manifest_path": str(r.manifest_path), **r.manifest} for r in results], indent=2))
        return
    _print_results(results)


def _target_options(target: list[str], precision: str, *, opset: int, nhwc: bool, strict: bool,
                    int8_scheme: str | None = None, strip_names: bool = False) -> list:
    """The target option objects of the targets ``--target`` names, built from the flags (each flag
    checked even for a target not named, as before; an int8-only flag of such a target refused)."""
    from ssc_deploy.export import ExecutorchOptions, OnnxOptions, TfliteOptions
    from ssc_deploy.export.validate import select_target_options

    every = [OnnxOptions(opset=opset, int8_scheme=int8_scheme, strict=strict),
             TfliteOptions(nhwc=nhwc, strip_names=strip_names, strict=strict), ExecutorchOptions(strict=strict)]
    return select_target_options(target, every, precision)


def _print_lowerings(entries, as_json: bool) -> None:
    if as_json:
        print(json.dumps({n: {"description": e.description, "runtimes": e.runtimes} for n, e in entries.items()}, indent=2))
        return
    from rich.table import Table

    table = Table("lowering", "for runtimes", "what it does", title="Shift lowerings")
    for name, entry in entries.items():
        table.add_row(name, ", ".join(entry.runtimes or ["all"]), entry.description)
    _console().print(table)
    print("default: fast, per target the lowering measured fastest on this CPU (cached; fast-table: the known "
          "fastest per vector ISA; auto: a full measured search)")


def _print_results(results) -> None:
    from rich.table import Table
    from rich.text import Text

    console = _console()
    if not results:
        return
    m = results[0].manifest
    trained = m["model"]["trained"]
    top1 = m["source"]["test_top1"]
    acc = "not applicable (untrained --model export)" if not trained else (f"{top1:.2%}" if top1 is not None else "not recorded")
    macs = m["model"]["macs"]
    console.print(Text.assemble(as_text(m["model"]["name"], "bold"), f": {m['model']['params']:,} params"
                                + (f", {macs / 1e6:.1f} M MACs" if macs else "")
                                + f", test top-1 {acc}"))
    p0 = m["parity"]
    quantized = any(r.manifest.get("quantization") is not None for r in results)  # fp32 only: the table as before
    table = Table("target", *(("precision",) if quantized else ()), "file", "KiB", "input", "max |diff|", "top-1 agree",
                  "status", title=f"Verified against PyTorch on {p0['n_images']} {p0['data']} test images "
                                  f"(atol {p0['atol']:g}" + ("; int8/fp16: the accuracy gate below)" if quantized else ")"))
    for r in results:
        p = r.manifest["parity"]
        table.add_row(
            r.target, *((r.manifest.get("precision", "fp32"),) if quantized else ()), as_text(r.artifact.name),
            f"{r.manifest['bytes'] / 1024:.0f}", r.manifest["input"]["layout"], f"{p['max_abs_diff']:.1e}",
            f"{p['top1_agreement']:.0%}", "[green]passed[/green]" if p["passed"] else "[red]failed[/red]",
        )
    console.print(table)
    if quantized:
        _print_gate(console, results)
    console.print(as_text(f"written to {results[0].artifact.parent}/ (each with a .manifest.json)"))
    for r in results:
        why = r.manifest["model"].get("lowering_reason")
        console.print(as_text(f"{r.key}: lowering {r.manifest['model']['lowering']}" + (f" ({why})" if why else "")))
    for r in results:
        if "delegation" in r.manifest:
            _print_delegation(console, r.manifest["delegation"])
        ops = r.manifest["op_histogram"]
        if "TRANSPOSE" in ops or r.manifest["input"]["layout"] == "NHWC":  # the layout's cost, in LiteRT's op names
            console.print(as_text(f"{by_target(r.target).label} ops ({r.manifest['input']['layout']} input): "
                                  + ", ".join(f"{k} {v}" for k, v in ops.items()) + f"  TRANSPOSE: {ops.get('TRANSPOSE', 0)}"))
        for w in r.warnings:
            console.print(f"[yellow]warning:[/yellow] {r.key}: {markup_safe(w)}")


def _print_gate(console, results) -> None:
    """The accuracy gate of the int8/fp16 files: test top-1 through the runtime against fp32 PyTorch."""
    from rich.table import Table

    from ssc_deploy.accuracy_stats import format_p, significant

    table = Table("target", "precision", "images", "top-1 fp32", "top-1", "drop [95 % interval]",
                  "right->wrong / wrong->right", "McNemar p", "max drop",
                  title="Accuracy gate: test top-1 through the runtime vs the fp32 PyTorch model on the same images")
    kept = []
    for r in results:
        q = r.manifest.get("quantization")
        if q is None:
            continue
        acc = q.get("accuracy")
        if q.get("kept_float_after_gate"):
            kept.append((r, q["kept_float_after_gate"]))
        cells = (("-", "-", "-", "untrained: skipped", "-", "-", "-") if not acc else (
            str(acc["n_images"]), f"{acc['fp32_top1']:.2%}", f"{acc['top1']:.2%}",
            f"{acc['drop']:+.2f} pts" + (f" [{acc['drop_ci'][0]:+.2f}, {acc['drop_ci'][1]:+.2f}]" if acc.get("drop_ci") else ""),
            f"{acc.get('right_to_wrong', '-')} / {acc.get('wrong_to_right', '-')}",
            format_p(acc.get("p")) + ("" if acc.get("p") is None or significant(acc["p"], acc.get("alpha", 0.05))
                                      else " (not significant)"),
            f"{acc['max_drop']:g} pts"))
        table.add_row(r.target, r.manifest["precision"], *cells)
    console.print(table)
    for r, k in kept:
        size = (f", {r.manifest['bytes'] / k['all_int8_bytes']:.2f}x the all-int8 file's size "
                f"({r.manifest['bytes'] / 1024:.0f} KiB vs {k['all_int8_bytes'] / 1024:.0f} KiB)" if k.get("all_int8_bytes") else "")
        speed = (f", {k['latency_ratio_vs_all_int8']:.2f}x its median latency ({k['timed_on']})"
                 if k.get("latency_ratio_vs_all_int8") else "")
        console.print(as_text(f"{r.key}: the all-int8 file failed the gate (drop {k['all_int8_accuracy']['drop']:.2f} "
                              f"pts); kept in float: {', '.join(k['layers'])}{size}{speed}"))


def _manifest_rows(m) -> list[tuple[str, str]]:
    """``inspect``'s field/value rows of a checked :class:`Manifest`."""
    p, inp, src, model = m.parity, m.input, m.source, m.model
    params = "?" if model.params is None else f"{model.params:,}"
    return [
        ("model", f"{model.name} ({model.family}), {params} params, {_mega(model.macs)} MACs, lowering {model.lowering}"),
        ("trained", str(model.trained)),
        ("runtime", f"{m.runtime} {m.runtime_version}"),
        ("exporter", ", ".join(f"{k} {v}" for k, v in m.exporter.items())),
        ("input", f"{inp.name} {inp.shape} {inp.dtype} {inp.layout}, (pixel/255 - mean) / std, "
                  f"mean {inp.mean}, std {inp.std}"),
        ("output", f"{m.output.name} {m.output.shape} {m.output.kind}"),
        ("classes", ", ".join(m.classes[:20]) + (" ..." if len(m.classes) > 20 else "")),
        ("parity", f"max |diff| {p.max_abs_diff:.2e}, top-1 agreement {p.top1_agreement:.1%} on "
                   f"{p.n_images} {p.data} images (atol {p.atol:g}, {'passed' if p.passed else 'FAILED'})"),
        ("source", f"{src.checkpoint or 'untrained'} sha256 {str(src.checkpoint_sha256)[:16]}, "
                   f"test top-1 {src.test_top1}"),
        ("sha256", m.sha256),
        ("created", f"{m.created} by ssc-deploy {m.ssc_deploy_version}"),
    ]


def _mega(n) -> str:
    return f"{n / 1e6:.1f} M" if isinstance(n, (int, float)) else "?"


def _print_delegation(console, delegation: dict) -> None:
    from rich.table import Table

    table = Table("op", "delegated", "not delegated",
                  title=f"ExecuTorch: XNNPACK delegation ({delegation.get('delegated_subgraphs', 0)} subgraphs, "
                        f"{delegation.get('delegated_nodes', 0)} ops delegated, {delegation.get('not_delegated_nodes', 0)} not)")
    for op, row in delegation.get("by_op", {}).items():
        nd = row.get("not_delegated", 0)
        table.add_row(as_text(op), str(row.get("delegated", 0)), f"[red]{nd}[/red]" if nd else "0")
    console.print(table)


@app.command("inspect")
def inspect_cmd(
    artifact: Optional[Path] = typer.Argument(
        None, help="An exported .onnx, .pte or .tflite file (or its .manifest.json); with --quant-error, a checkpoint."),
    as_json: bool = typer.Option(False, "--json", help="Print manifest and op histogram (or the layer table) as JSON."),
    quant_error: bool = typer.Option(
        False, "--quant-error",
        help="Per-layer int8 error of a CHECKPOINT (or an untrained --model): SQNR and cosine of each conv/linear "
             "output, int8-simulated against fp32 on the calibration images, worst first."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="With --quant-error: an untrained net of this architecture (or the architecture "
                                    "of a bare state_dict CHECKPOINT)."),
    calib: int = typer.Option(DEFAULT_CALIB, "--calib", help="With --quant-error: how many training images to calibrate on."),
    lowering: str = typer.Option("dwconv", "--lowering",
                                 help="With --quant-error: the shift lowering of the deployment net."),
    keep_float: Optional[str] = typer.Option(
        None, "--keep-float", help="With --quant-error: comma list of conv/linear layers left in float32."),
    data: Optional[str] = typer.Option(
        None, "--data", help="With --quant-error: calibration data (default: the checkpoint's data, else digits)."),
    sparsity: bool = typer.Option(
        False, "--sparsity", help="Each conv of a .pt2 program or CHECKPOINT: shape, fraction of zero weights, whether "
                                  "the export rewrites it as shift + 1x1 conv (else why not), MACs before/after."),
) -> None:
    """Print an artifact's manifest and the op histogram read from the file itself (or, with --quant-error,
    a checkpoint's per-layer int8 error)."""
    from ssc_deploy.errors import SscDeployError
    from ssc_deploy.export.readers.artifact import inspect_artifact

    if quant_error:
        _print_quant_error(artifact, model, calib, lowering, keep_float, data, as_json)
        return
    if sparsity and artifact is not None:
        from .sparsity_view import print_sparsity

        print_sparsity(artifact, as_json)
        return
    if artifact is None:
        raise SscDeployError("nothing to inspect: give an ARTIFACT (or a CHECKPOINT with --quant-error)")
    if model is not None:
        raise SscDeployError("--model only applies with --quant-error (an artifact names its own model)")
    info = inspect_artifact(artifact)
    manifest = None
    if info["manifest"] is not None:
        from ssc_deploy.export.manifest import Manifest, manifest_path

        manifest = Manifest.from_dict(info["manifest"], str(manifest_path(info["file"])))  # every field checked
    if as_json:
        print(json.dumps(info, indent=2))
        return
    from rich.table import Table
    from rich.text import Text

    console = _console()
    console.print(Text.assemble(as_text(info["file"], "bold"), f" ({info['target']}, {info['bytes']:,} bytes)"))
    if manifest is None:
        console.print("[yellow]no manifest beside this file[/yellow]")
    else:
        table = Table("field", "value", show_header=False, title="Manifest")
        for k, v in _manifest_rows(manifest):
            table.add_row(k, as_text(v))  # everything from the file is data, never markup
        console.print(table)
        if manifest.delegation is not None:
            _print_delegation(console, manifest.delegation)
    from .metadata_view import print_metadata

    print_metadata(console, info["target"], info["metadata"])
    table = Table("op", "count", title="Ops in the file")
    for op, n in info["op_histogram"].items():
        table.add_row(as_text(op), str(n))
    console.print(table)


def _print_quant_error(checkpoint, model, calib, lowering, keep_float, data, as_json: bool) -> None:
    """``inspect --quant-error``: the per-layer int8 error table, worst first (or its JSON)."""
    from rich.table import Table
    from rich.text import Text

    from ssc_deploy.export.quantize.error_report import quant_error_report

    report = quant_error_report(checkpoint, model_name=model, calib=calib, lowering=lowering,
                                keep_float=(keep_float or "").split(","), data=data)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    console = _console()
    cal = report["calibration"]
    table = Table(title=Text.assemble("Per-layer int8 error of ", as_text(report["model"], "bold"),
                                      f" ({len(report['layers'])} layers, worst first)"))
    table.add_column("layer", no_wrap=True, overflow="fold")
    table.add_column("kind", no_wrap=True)
    for head in ("SQNR dB", "cosine", "chain dB"):
        table.add_column(head, justify="right", no_wrap=True)
    for e in report["layers"]:
        own = ("float", "1") if e["float_kept"] else (_db(e["sqnr_db"]), f"{e['cosine']:.5f}")
        table.add_row(as_text(e["name"]), e["kind"], *own, _db(e["chain_sqnr_db"]))
    console.print(table)
    console.print(Text.assemble(
        f"{report['scheme']}; lowering {report['lowering']}; calibrated on {cal['n']} ", as_text(cal["data"]),
        f" {cal['split']} images (seed {cal['seed']}, {cal['transforms']} transforms)"
        + ("" if report["trained"] else "; untrained net") + f"; {report['seconds']:.1f} s"))
    console.print("SQNR, cosine: the layer alone in int8 (fp32 input, its own input rounding, int8 weights); "
                  "chain: the same op in the whole int8 net, every earlier layer's error included (--json: its cosine)")


def _db(value) -> str:
    return value if isinstance(value, str) else f"{value:.1f}"
