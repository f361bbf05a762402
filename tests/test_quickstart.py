"""``ssc-deploy quickstart --quick``: the whole chain (train, export x3, bench, report, store) for real."""

from __future__ import annotations

import json

import pytest

from ssc_deploy.cli import main


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 259 s on a quiet 2-core host, 646 s on a loaded one: at most half its timeout
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
            # --quick: int8 files of the model under test only
            assert (out / "artifacts" / f"{name}.int8{suffix}").is_file() == (name == "ssc-net-1-9")
    res = json.loads((out / "bench.json").read_text())
    assert len(res["rows"]) == 12 and res["status"] == "complete", res["quickstart"]["not_exported"]
    int8 = [r for r in res["rows"] if r["precision"] == "int8"]
    assert {(r["model"], r["runtime"]) for r in int8} == {("ssc-net-1-9", rt) for rt in ("onnxruntime", "executorch",
                                                                                             "tflite")}
    assert all(r["vs_fp32_size_ratio"] < 1 and r["vs_fp32_speedup"] > 0 for r in int8)
    assert {r["runtime"] for r in res["rows"]} == {"onnxruntime", "executorch", "tflite"}
    ssc = [r for r in res["rows"] if r["model"] == "ssc-net-1-9" and r["precision"] == "fp32"]
    assert all(r["role"] == "candidate" and r["ratio_to"] == "mobilenetv2" and r["size_ratio"] < 1 for r in ssc)
    assert all(r["top1"] is not None and r["parity_max_abs_diff"] < 1e-3 for r in res["rows"] if r not in int8)
    assert (out / "bench.csv").read_text().count("\n") == 13
    assert "![accuracy_vs_latency](accuracy_vs_latency.png)" in (out / "report" / "report.md").read_text()
    assert (out / "report" / "accuracy_vs_latency.png").stat().st_size > 1000
    assert "done" in stdout and "1/4 plan" in stdout and "4/4 benchmark" in stdout
    assert main(["results", "--db", str(db)]) == 0
    assert "12/12" in capsys.readouterr().out


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
    (["--minutes", "-1"], "--minutes must be a positive number"),
])
def test_quickstart_bad_options_are_one_line(tmp_path, capsys, argv, needle):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), "--no-store", *argv]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1


def test_plan_fits_epochs_to_the_budget_from_a_real_probe():
    from rich.console import Console

    from ssc_deploy.pipeline.plan import budget_note, plan_training
    from ssc_deploy.train.recipe import default_epochs

    cap = default_epochs("digits")
    plan = plan_training(["ssc-net-1-9"], "digits", minutes=0.01, epochs=None, quick=False, console=Console(quiet=True))
    entry = plan.models["ssc-net-1-9"]
    assert set(entry.step_seconds) == {"1", "2"} and all(v > 0 for v in entry.step_seconds.values())
    assert entry.cap == cap == 4 and entry.max_batches is None and entry.batches == 45
    assert entry.epochs == 1  # 0.6 s of budget holds less than an epoch: the floor is one
    assert entry.threads == int(min(entry.step_seconds, key=entry.step_seconds.get))
    assert plan.mode == "sequential" and "parallel" not in plan.options  # one model: nothing to run side by side
    assert plan.train_seconds > 0 and plan.post_seconds > 0 and plan.probe_seconds > 0
    note = budget_note(plan)
    assert note is not None and f"fewer epochs than the recipe's {cap} (ssc-net-1-9 1)" in note and "--minutes" in note


def test_int8_files_never_cost_an_epoch():
    from rich.console import Console

    from ssc_deploy.pipeline.plan import budget_note, plan_training

    quiet = Console(quiet=True)
    roomy = plan_training(["ssc-net-1-9"], "digits", minutes=60, epochs=None, quick=False, console=quiet,
                          int8_models=["ssc-net-1-9"])
    without = plan_training(["ssc-net-1-9"], "digits", minutes=60, epochs=None, quick=False, console=quiet)
    assert roomy.int8_models == ["ssc-net-1-9"] and roomy.int8_seconds > 0 and not roomy.int8_dropped
    assert roomy.models["ssc-net-1-9"].epochs == without.models["ssc-net-1-9"].epochs == 4
    tight = plan_training(["ssc-net-1-9"], "digits", minutes=0.01, epochs=None, quick=False, console=quiet,
                          int8_models=["ssc-net-1-9"])
    assert tight.int8_models == [] and tight.int8_dropped == ["ssc-net-1-9"] and tight.int8_seconds == 0
    assert "no int8 files for ssc-net-1-9" in budget_note(tight)


def test_parallel_simulation_shares_the_cores():
    from ssc_deploy.pipeline.plan import simulate_parallel

    assert simulate_parallel({"a": 10.0, "b": 10.0}, cores=2.0) == pytest.approx(10.0)
    # Three jobs on two cores: 2/3 speed until the short one ends, then full speed.
    assert simulate_parallel({"a": 4.0, "b": 10.0, "c": 10.0}, cores=2.0) == pytest.approx(6.0 + 6.0)
    assert simulate_parallel({"a": 5.0}, cores=0.5) == pytest.approx(10.0)


def test_quickstart_reuses_checkpoints_of_the_same_run(tmp_path):
    """Second run trains nothing; --retrain retrains; a checkpoint of another recipe is retrained."""
    from rich.console import Console

    from ssc_deploy.checkpoint import load_checkpoint
    from ssc_deploy.pipeline.quickstart import QuickstartOptions, train_stage
    from ssc_deploy.train import TrainConfig, train_model

    out = tmp_path / "qs"
    opts = QuickstartOptions(out=out, models=["ssc-net-1-9"], quick=True)
    ck = out / "checkpoints" / "ssc-net-1-9.pt"

    def run(**changes):
        console = Console(record=True, width=200)
        for k, v in changes.items():
            setattr(opts, k, v)
        plan, _, _ = train_stage(opts, out, console)
        return plan.models["ssc-net-1-9"], console.export_text(), load_checkpoint(ck).provenance["created"], ck.stat().st_mtime_ns

    first, text, _, mtime = run()
    assert not first.reused and "(trained)" in text and "reusing" not in text
    assert f"ssc-net-1-9: 1 epoch(s), {first.threads} thread(s) (--quick)" in text
    assert "planned: probe " in text and "export and benchmark" in text and "training sequential" in text
    again, text, _, mtime2 = run()
    assert again.reused and mtime2 == mtime and "reusing ssc-net-1-9" in text and "(reused)" in text
    assert "ssc-net-1-9: no training (reused: trained by the same code, data and recipe)" in text
    forced, text, _, mtime3 = run(retrain=True)
    assert not forced.reused and mtime3 != mtime2 and "(trained)" in text
    # The same run under the paper's recipe is another run: not reused.
    train_model(TrainConfig("ssc-net-1-9", data="digits", epochs=1, max_batches=4, recipe="paper", out=ck, force=True,
                            progress=False, threads=1))
    other, text, _, _ = run(retrain=False)
    assert not other.reused and "(trained)" in text and load_checkpoint(ck).provenance["recipe"] == "digits-fast"
