"""``ssc-deploy quickstart --quick``: the whole chain (train, export x3, bench, report, store) for real."""

from __future__ import annotations

import json

import pytest

from ssc_deploy.cli import main


@pytest.mark.slow
def test_quickstart_quick_runs_the_whole_chain(tmp_path, capsys):
    out, db = tmp_path / "qs", tmp_path / "r.sqlite"
    rc = main(["quickstart", "--quick", "--out", str(out), "--db", str(db)])
    stdout = capsys.readouterr().out
    assert rc == 0, stdout
    for name in ("ssc-net-1-9", "mobilenetv2", "igcv3-d-0.7x"):
        assert (out / "checkpoints" / f"{name}.pt").is_file()
        for suffix in (".onnx", ".pte", ".tflite"):
            assert (out / "artifacts" / f"{name}{suffix}").is_file()
            assert (out / "artifacts" / f"{name}{suffix}.manifest.json").is_file()
    res = json.loads((out / "bench.json").read_text())
    assert len(res["rows"]) == 9 and res["status"] == "complete"
    assert {r["runtime"] for r in res["rows"]} == {"onnxruntime", "executorch", "tflite"}
    ssc = [r for r in res["rows"] if r["model"] == "ssc-net-1-9"]
    assert all(r["role"] == "candidate" and r["ratio_to"] == "mobilenetv2" and r["size_ratio"] < 1 for r in ssc)
    assert all(r["top1"] is not None and r["parity_max_abs_diff"] < 1e-3 for r in res["rows"])
    assert (out / "bench.csv").read_text().count("\n") == 10
    assert "![accuracy_vs_latency](accuracy_vs_latency.png)" in (out / "report" / "report.md").read_text()
    assert (out / "report" / "accuracy_vs_latency.png").stat().st_size > 1000
    assert "done" in stdout and "1/4 plan" in stdout and "4/4 benchmark" in stdout
    assert main(["results", "--db", str(db)]) == 0
    assert "9/9" in capsys.readouterr().out


def test_quickstart_refuses_a_non_empty_out_dir(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["quickstart", "--quick", "--out", str(tmp_path), "--no-store"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is not empty" in err and err.count("\n") == 1
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("argv, needle", [
    (["--models", "nosuchnet"], "unknown model 'nosuchnet'"),
    (["--runtime", "coreml"], "unknown runtime 'coreml'"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--minutes", "-1"], "--minutes must be positive"),
])
def test_quickstart_bad_options_are_one_line(tmp_path, capsys, argv, needle):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), "--no-store", *argv]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1


def test_plan_fits_epochs_to_the_budget_from_a_real_probe():
    from rich.console import Console

    from ssc_deploy.pipeline.plan import budget_note, plan_epochs
    from ssc_deploy.train import DEFAULT_EPOCHS

    cap = DEFAULT_EPOCHS["digits"]
    plan = plan_epochs(["ssc-net-1-9"], "digits", minutes=0.01, epochs=None, quick=False, console=Console(quiet=True))
    entry = plan["ssc-net-1-9"]
    assert entry["seconds_per_epoch"] > 0 and entry["cap"] == cap and entry["max_batches"] is None
    assert entry["epochs"] == 1  # 0.6 s of training budget holds less than an epoch: the floor is one
    note = budget_note(["ssc-net-1-9"], plan)
    assert note is not None and f"gets 1 of the recipe's {cap} epochs" in note and "--minutes" in note
    fixed = plan_epochs(["a", "b"], "digits", minutes=1, epochs=3, quick=False, console=None)
    assert [p["epochs"] for p in fixed.values()] == [3, 3] and budget_note(["a", "b"], fixed) is None
