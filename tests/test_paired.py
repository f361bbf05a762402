"""The paired comparisons behind each delta (runtime_bench/paired.py) on rows built by hand: which row
pairs with which, the flip counts and McNemar p, and what is never paired."""

from __future__ import annotations

import numpy as np

from ssc_deploy.runtime_bench.paired import COLUMNS, add_paired, eval_facts
from ssc_deploy.runtime_bench.table import csv_columns, to_csv

LABELS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]


def _row(model, precision="fp32", device="host", role="candidate", pred=LABELS, trained=True, status="ok"):
    return {"device": device, "model": model, "role": role, "runtime": "onnxruntime", "precision": precision,
            "threads": 1, "source": "device-runner", "status": status, "trained": trained, "predictions": list(pred)}


def test_each_delta_gets_the_flips_of_its_own_reference():
    wrong3 = [1, 2, 3] + LABELS[3:]  # the first three images wrong
    rows = [
        _row("net"), _row("net", "int8", pred=wrong3),  # int8 loses 3 images against its fp32 file
        _row("base", role="baseline", pred=wrong3), _row("base", "int8", role="baseline", pred=wrong3),
        _row("net", "int8", device="board", pred=[1] + LABELS[1:]),  # on the board: loses only image 0 vs x86
    ]
    add_paired(rows, {"net": {"eval_labels": LABELS}, "base": {"eval_labels": LABELS}}, "base")
    fp32, int8, base, base8, board = rows
    assert (int8["vs_fp32_right_to_wrong"], int8["vs_fp32_wrong_to_right"], int8["vs_fp32_changed"],
            int8["vs_fp32_p"]) == (3, 0, 3, 0.25)
    assert fp32["vs_fp32_p"] is None  # fp32 has no fp32 reference but itself
    assert (fp32["vs_base_right_to_wrong"], fp32["vs_base_wrong_to_right"], fp32["vs_base_p"]) == (0, 3, 0.25)
    assert (int8["vs_base_right_to_wrong"], int8["vs_base_wrong_to_right"], int8["vs_base_p"]) == (0, 0, 1.0)
    assert base["vs_base_p"] is None  # the baseline against itself: nothing
    # the board's int8 row against the host's int8 row of the same file: image 0 right on both (wrong3 has 0 -> 1,
    # wrong on both), images 1 and 2 right on the board only
    assert (board["device_right_to_wrong"], board["device_wrong_to_right"], board["device_changed"]) == (0, 2, 2)
    assert board["device_p"] == 0.5 and int8["device_p"] is None and base8["vs_base_p"] is None


def test_untrained_failed_or_unlabelled_rows_are_never_paired():
    rows = [_row("net"), _row("net", "int8", trained=False), _row("other"), _row("other", "int8", status="failed"),
            _row("nolabels"), _row("nolabels", "int8")]
    add_paired(rows, {"net": {"eval_labels": LABELS}, "other": {"eval_labels": LABELS},
                      "nolabels": {"eval_labels": None}}, None)
    assert all(r[c] is None for r in rows for c in COLUMNS)


def test_fewer_images_on_one_side_pair_the_first_ones():
    rows = [_row("net"), _row("net", device="emulated", pred=[9, 1, 2])]  # the emulated device ran 3 images
    add_paired(rows, {"net": {"eval_labels": LABELS}}, None)
    assert (rows[1]["device_right_to_wrong"], rows[1]["device_changed"]) == (1, 1)


def test_predictions_stay_out_of_the_csv():
    rows = [_row("net"), _row("net", "int8")]
    add_paired(rows, {"net": {"eval_labels": LABELS}}, None)
    assert "predictions" not in csv_columns(rows) and "vs_fp32_p" in csv_columns(rows)
    assert "[0, 1" not in to_csv({"rows": rows})


def test_eval_facts_read_the_inputs_file(tmp_path):
    path = tmp_path / "in.npz"
    ref = np.eye(10, dtype=np.float32)[[3, 1, 2]]
    np.savez(path, x=np.zeros((3, 3, 2, 2), np.float32), labels=np.array([0, 1, 2]), reference=ref)

    class M:
        name, inputs, classes = "net", path, ["a", "b"]

    assert eval_facts([M()]) == {"net": {"eval_labels": [0, 1, 2], "eval_predictions_pytorch": [3, 1, 2],
                                         "classes": ["a", "b"]}}
