"""Export the ARM lowering probe's files in their own process:
``python -m ssc_deploy.export.arm_probe_worker TARGET PRECISION OUT_DIR LOWERING...``.

:func:`ssc_deploy.export.arm_lowering.count_candidates` starts it when an export for an ARM
profile finds no cached count: the export that asks which lowering to use cannot import the
exporter to make the probe's files (the exporter imports the lowering choice: an import cycle),
so a child exports them, each lowering given by name (which asks for no choice), and prints
their paths as JSON, one a lowering; an :class:`~ssc_deploy.errors.SscDeployError` is one
``error:`` line on stderr and exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PROBE_CALIB = 16  # calibration images of the probe's int8 files (their accuracy is not what is counted)


def export_probe_files(target: str, precision: str, out_dir: Path, lowerings: list[str]) -> list[Path]:
    """The probe net (seed 0, untrained) exported for ``target`` at ``precision`` once per lowering."""
    import torch

    from .exporter import export_model
    from .lowering_probe import PROBE_IMAGES, PROBE_MODEL, PROBE_SIZE

    files = []
    for low in lowerings:
        torch.manual_seed(0)
        results = export_model(None, targets=[target], out_dir=out_dir / low, model_name=PROBE_MODEL,
                               in_size=PROBE_SIZE, lowering=low, precisions=[precision], progress=False,
                               n_verify=PROBE_IMAGES, calib=PROBE_CALIB, int8_lowering=low)
        files.append(results[0].artifact)
    return files


def main(argv: list[str] | None = None) -> int:
    """Export the files the arguments name and print their paths as a JSON list."""
    target, precision, out_dir, *lowerings = argv if argv is not None else sys.argv[1:]
    files = export_probe_files(target, precision, Path(out_dir), lowerings)
    print(json.dumps([str(f) for f in files]), flush=True)
    return 0


if __name__ == "__main__":
    from ssc_deploy.errors import run_script

    run_script(main)
