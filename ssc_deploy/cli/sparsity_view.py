"""``ssc-deploy inspect --sparsity FILE``: the table of :func:`ssc_deploy.export.readers.sparsity.sparsity_report`."""

from __future__ import annotations

import json
from pathlib import Path

from ssc_deploy.display import as_text


def print_sparsity(path: Path, as_json: bool) -> None:
    """Print the per-conv sparsity table of a ``.pt2`` or checkpoint (or its JSON)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ssc_deploy.export.readers.sparsity import sparsity_report

    report = sparsity_report(path)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    console = Console(soft_wrap=True)
    table = Table("conv", "weight", "groups", "zeros", "shift + 1x1", "MACs before", "MACs after",
                  title=Text.assemble("Convolutions of ", as_text(report["model"], "bold"),
                                      f" at {report['in_size']} px ({len(report['convs'])} convs)"))
    for c in report["convs"]:
        done = "yes" if c["rewritten"] else ("(1x1)" if c["weight_shape"][2:] == [1, 1] else f"no: {c['note']}")
        table.add_row(as_text(c["name"]), "x".join(map(str, c["weight_shape"])), str(c["groups"]), f"{c['zero_fraction']:.1%}",
                      as_text(done), f"{c['macs_before']:,}", f"{c['macs_after']:,}")
    console.print(table)
    found = sum(c["rewritten"] for c in report["convs"])
    console.print(f"{found} SSC kernels rewritten; conv MACs {report['conv_macs_before'] / 1e6:.2f} M -> "
                  f"{report['conv_macs_after'] / 1e6:.2f} M; {len(report['shifts'])} written-out shifts recognised; "
                  f"{report['batchnorms']} BatchNorms (folded at export)")
    for s in report["shifts"]:
        console.print(as_text(f"shift {s['name']}: {s['written_as']}, {s['channels']} channels, {s['directions']} directions"))
