"""report.md's images that flip: each artifact against PyTorch fp32 on the same test images (the flip
table and matrix), and a picture grid of the images an int8 file gets wrong that fp32 gets right.

Drawn from the result alone: each row's ``predictions`` and each model's ``eval_labels``,
``eval_predictions_pytorch`` and ``classes`` (:func:`.paired.eval_facts`); the grid's pictures are
the evaluation data's test images, loaded again by index. Class and model names come from files:
data, escaped for Markdown and for matplotlib, never part of a file name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ssc_deploy.accuracy_stats import format_p, significant
from ssc_deploy.display import md_cell, shown
from ssc_deploy.errors import SscDeployError, one_line

from .plots import pyplot, save_png
from .rows import PREDICTIONS

GRID_FILE = "flips_int8.png"
GRID_PER_ARTIFACT = 8  # pictures per int8 file
_MEASURED = ("ok", "verify-failed")


def _rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Measured, trained device-runner rows with predictions, at each device's lowest thread count."""
    rows = [r for r in result.get("rows", []) if r.get("status") in _MEASURED and r.get("trained")
            and r.get(PREDICTIONS) and r.get("source") == "device-runner"]
    low = {}
    for r in rows:
        low[r["device"]] = min(low.get(r["device"], r["threads"]), r["threads"])
    return [r for r in rows if r["threads"] == low[r["device"]]]


def _label(r: dict[str, Any], multi_device: bool) -> str:
    text = f"{r['runtime']} {r.get('precision', 'fp32')}"
    return text + (f" on {r['device']}" if multi_device else "")


def flip_sections(result: dict[str, Any], out_dir: Path | None) -> list[str]:
    """The report's "Images that flip" section (empty when no row has predictions and labels)."""
    facts = {m.get("name"): m for m in result.get("models", [])}
    rows = [r for r in _rows(result) if (facts.get(r["model"]) or {}).get("eval_labels") is not None
            and (facts.get(r["model"]) or {}).get("eval_predictions_pytorch") is not None]
    if not rows:
        return []
    multi = len({r["device"] for r in rows}) > 1
    out = ["## Images that flip", "",
           "Each file against the PyTorch fp32 model on the same test images: how many images change class, how "
           "many PyTorch gets right and the file wrong (right->wrong) and the reverse, and the exact McNemar p of "
           "those two counts (\"not significant\": p >= 0.05, the file and PyTorch cannot be told apart on these "
           "images).", ""]
    for model in dict.fromkeys(r["model"] for r in rows):
        mrows = [r for r in rows if r["model"] == model]
        out += [f"### {md_cell(model)}", ""] + _vs_pytorch_table(mrows, multi) + [""]
        out += _matrix(mrows, facts[model], multi) + [""]
    grid = _grid(rows, facts, result, out_dir)
    return out + grid


def _vs_pytorch_table(rows: list[dict[str, Any]], multi: bool) -> list[str]:
    lines = ["| file | images | class changed | right->wrong | wrong->right | McNemar p | |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r.get("vs_pytorch_p")
        verdict = "-" if p is None else ("significant" if significant(p) else "not significant")
        cells = [md_cell(_label(r, multi)), str(len(r[PREDICTIONS])), *(
            "-" if r.get(k) is None else str(r[k])
            for k in ("vs_pytorch_changed", "vs_pytorch_right_to_wrong", "vs_pytorch_wrong_to_right")),
            format_p(p), verdict]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _matrix(rows: list[dict[str, Any]], fact: dict[str, Any], multi: bool) -> list[str]:
    """The flip matrix: for each pair of PyTorch fp32 and the files, how many images change class."""
    preds = [("PyTorch fp32", list(fact["eval_predictions_pytorch"]))]
    preds += [(_label(r, multi), list(r[PREDICTIONS])) for r in rows]
    n = min(len(p) for _, p in preds)
    arr = np.array([p[:n] for _, p in preds], dtype=np.int64)
    lines = [f"Flip matrix: images (of {n}) whose predicted class differs between the row and the column.", "",
             "| | " + " | ".join(md_cell(name) for name, _ in preds) + " |", "|---|" + "---|" * len(preds)]
    for i, (name, _) in enumerate(preds):
        lines.append(f"| {md_cell(name)} | " + " | ".join(str(int(np.sum(arr[i] != arr[j]))) for j in range(len(preds)))
                     + " |")
    return lines


def _grid_items(rows, facts) -> list[tuple[dict[str, Any], list[int]]]:
    """Each int8 row on the first device with the images PyTorch fp32 gets right and it gets wrong."""
    device = rows[0]["device"]
    out = []
    for r in rows:
        if r.get("precision") != "int8" or r["device"] != device:
            continue
        f = facts[r["model"]]
        y, ref, mine = (np.asarray(v, dtype=np.int64) for v in (f["eval_labels"], f["eval_predictions_pytorch"],
                                                                  r[PREDICTIONS]))
        n = min(len(y), len(ref), len(mine))
        lost = np.flatnonzero((ref[:n] == y[:n]) & (mine[:n] != y[:n]))
        out.append((r, [int(i) for i in lost]))
    return out


def _grid(rows, facts, result, out_dir: Path | None) -> list[str]:
    items = _grid_items(rows, facts)
    if not items:
        return []
    head = ["### Images an int8 file gets wrong that fp32 gets right", ""]
    for r, lost in items:
        head.append(f"- {md_cell(r['model'])} {md_cell(r['runtime'])} int8: {len(lost)} image(s)"
                    + (f" (test indices {', '.join(map(str, lost[:20]))}{', ...' if len(lost) > 20 else ''})"
                       if lost else ""))
    head.append("")
    if out_dir is None or not any(lost for _, lost in items):
        return head
    try:
        from ssc_deploy.data import DEFAULT_DATA, load_dataset

        images = load_dataset((result.get("settings") or {}).get("data") or DEFAULT_DATA, "test").images
        _draw(items, facts, images, out_dir / GRID_FILE)
    except (SscDeployError, ImportError, OSError, IndexError) as err:
        return head + [f"(picture grid not drawn: {md_cell(one_line(err))})", ""]
    return head + ["Each picture: the true class, PyTorch fp32's (right) and the int8 file's (wrong) prediction.", "",
                   f"![images that flip]({GRID_FILE})", ""]


def _name(classes: list[str] | None, i: int) -> str:
    """Class ``i``'s name as plot text: printable, short, no ``$`` for mathtext."""
    text = shown(classes[i]) if classes and 0 <= i < len(classes) else str(i)
    return (text[:14] + "~" if len(text) > 15 else text).replace("$", r"\$")


def _draw(items, facts, images: np.ndarray, path: Path) -> None:
    plt = pyplot()
    shown_items = [(r, lost[:GRID_PER_ARTIFACT]) for r, lost in items if lost]
    cols = max(len(lost) for _, lost in shown_items)
    fig, axes = plt.subplots(len(shown_items), cols, figsize=(1.7 * cols, 2.1 * len(shown_items)), squeeze=False)
    for row_axes, (r, lost) in zip(axes, shown_items):
        f = facts[r["model"]]
        classes = f.get("classes")
        for k, ax in enumerate(row_axes):
            ax.axis("off")
            if k >= len(lost):
                continue
            i = lost[k]
            ax.imshow(images[i], interpolation="nearest")
            ax.set_title(f"true {_name(classes, f['eval_labels'][i])}\nfp32 {_name(classes, f['eval_predictions_pytorch'][i])}"
                         f"\nint8 {_name(classes, r[PREDICTIONS][i])}", fontsize=7)
        row_axes[0].text(-0.15, 0.5, (shown(r["model"]) + f"\n{r['runtime']} int8").replace("$", r"\$"),
                         transform=row_axes[0].transAxes, ha="right", va="center", fontsize=7)
    fig.suptitle("Test images the int8 file gets wrong and PyTorch fp32 gets right", fontsize=9,
                 y=1.0 + 0.3 / len(shown_items))  # above the three-line titles
    save_png(fig, path)
    plt.close(fig)
