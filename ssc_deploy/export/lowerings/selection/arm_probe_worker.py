"""Export the ARM lowering probe's files in their own process:
``python -m ssc_deploy.export.lowerings.selection.arm_probe_worker --target T --precision P --out DIR --model M --in-size S
--n-verify N --calib C [--strict] [--keep-going] LOWERING...``.

:func:`ssc_deploy.export.lowerings.selection.arm.probe_files` starts it when an export for an ARM profile
finds no cached count: the export that asks which lowering to use cannot import the exporter to
make the probe's files (the exporter imports the lowering choice: an import cycle), so a child
exports them, each lowering given by name (which asks for no choice), and prints their paths as
a JSON list, one a lowering; an :class:`~ssc_deploy.errors.SscDeployError` is one ``error:``
line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def export_probe_files(args: argparse.Namespace) -> list[Path | None]:
    """The untrained probe net (seed 0) exported for ``args.target`` at ``args.precision`` once per lowering
    (with ``--keep-going``, None for a lowering whose export fails)."""
    import torch

    from ssc_deploy.errors import SscDeployError
    from ssc_deploy.export.exporter import export_module, load_for_export
    from ssc_deploy.export.targets import TARGET_OPTIONS
    from ssc_deploy.export.options import QuantOptions, VerifyOptions

    target = TARGET_OPTIONS[args.target](strict=args.strict)
    files: list[Path | None] = []
    for low in args.lowerings:
        torch.manual_seed(0)
        try:
            results = export_module(*load_for_export(None, model_name=args.model, in_size=args.in_size),
                                    targets=[target], out_dir=Path(args.out) / low, lowering=low,
                                    precisions=[args.precision], progress=False,
                                    verify=VerifyOptions(n_verify=args.n_verify),
                                    quant=QuantOptions(calib=args.calib, int8_lowering=low))
        except SscDeployError:
            if not args.keep_going:
                raise
            files.append(None)
            continue
        files.append(results[0].artifact)
    return files


def main(argv: list[str] | None = None) -> int:
    """Export the files the arguments name and print their paths as a JSON list."""
    p = argparse.ArgumentParser(prog="python -m ssc_deploy.export.lowerings.selection.arm_probe_worker")
    for name in ("--target", "--precision", "--out", "--model"):
        p.add_argument(name, required=True)
    for name in ("--in-size", "--n-verify", "--calib"):
        p.add_argument(name, type=int, required=True)
    p.add_argument("--strict", action="store_true", help="a broken int8 chain is an error")
    p.add_argument("--keep-going", action="store_true", help="a lowering that fails to export is null")
    p.add_argument("lowerings", nargs="+")
    files = export_probe_files(p.parse_args(argv))
    print(json.dumps([str(f) for f in files]), flush=True)
    return 0


if __name__ == "__main__":
    from ssc_deploy.errors import run_script

    run_script(main)
