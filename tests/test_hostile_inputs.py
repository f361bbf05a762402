"""Hostile input, round 2 (issue 19): outputs that are inputs, foreign stores, bad numbers, hangs.

Each test names the hole it closes; every file involved is real (a real checkpoint, a real ONNX
artifact and manifest, a real results store), and each is checked byte for byte afterwards.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from ssc_deploy.cli import main
from ssc_deploy.errors import SscDeployError
from ssc_deploy.runtime_bench import store


def _one_error_line(capsys, *starts: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for s in starts:
        assert s in err, err
    return err


# -- hole 3: an output that is an input ------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A real checkpoint, an untrained ONNX artifact with its manifest and a results store holding one run."""
    import torch

    from ssc_deploy.checkpoint import Checkpoint, save_checkpoint
    from ssc_deploy.export import VerifyOptions, export_model
    from ssc_deploy.export.manifest import manifest_path
    from ssc_deploy.models import create_model

    d = tmp_path_factory.mktemp("inputs")
    net = create_model("ssc-net-1-9", num_classes=10, in_size=32)
    ckpt = d / "model.pt"
    save_checkpoint(Checkpoint("ssc-net-1-9", {"num_classes": 10, "in_size": 32},
                               {k: v for k, v in net.state_dict().items()}, [str(i) for i in range(10)],
                               [0.5] * 3, [0.25] * 3, [3, 32, 32]), ckpt)
    art = Path(export_model(None, model_name="ssc-net-1-9", targets=("onnx",), out_dir=d / "art",
                            progress=False, lowering="pad-slice", verify=VerifyOptions(n_verify=2))[0].artifact)
    db = d / "results.sqlite"
    store.save_run({"created": "now", "status": "complete", "rows": [{"model": "m", "status": "ok"}]}, db)
    del torch
    return {"checkpoint": ckpt, "artifact": art, "manifest": manifest_path(art), "store": db}


def _link(kind: str, target: Path, tmp: Path) -> Path:
    """``target`` itself, a symlink to it or a hard link to it."""
    if kind == "same":
        return target
    link = tmp / f"{kind}-{target.name}"
    (os.symlink if kind == "symlink" else os.link)(target, link)
    return link


def _output_is_input_cases():
    """Every command that writes a file x every option that names one x each input it could be x
    the file itself, a symlink or a hard link to it: (id, argv builder, input role, is-store)."""
    cases = []
    for option in ("--json", "--csv"):
        for role in ("checkpoint", "artifact", "manifest", "store"):
            cases.append((f"bench {option}={role}", lambda f, i, o=option: [
                "bench", str(i["checkpoint"]), str(i["artifact"]), "--baselines", "", "--db", str(i["store"]),
                o, str(f)], role))
    cases.append(("results --json=store", lambda f, i: ["results", "--db", str(i["store"]), "--json", str(f)], "store"))
    cases.append(("results --compare --json=store", lambda f, i: [
        "results", "--db", str(i["store"]), "--compare", "1", "1", "--json", str(f)], "store"))
    cases.append(("train --out=--init", lambda f, i: [
        "train", "--model", "ssc-net-1-9", "--init", str(i["checkpoint"]), "--out", str(f)], "checkpoint"))
    cases.append(("quickstart --db=OUT/bench.json", lambda f, i: [
        "quickstart", "--quick", "--out", str(f.parent), "--db", str(f.parent / "bench.json")], "quickstart"))
    return cases


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
@pytest.mark.parametrize("case", _output_is_input_cases(), ids=lambda c: c[0])
def test_an_output_that_is_an_input_is_refused(case, link, inputs, tmp_path, capsys):
    """Hole 3: `bench --json CKPT` replaced the checkpoint, `results --db S --json S` the history."""
    _, argv_for, role = case
    if role == "quickstart":
        if link != "same":
            pytest.skip("the quickstart's store case is one path")
        out = tmp_path / "qs"
        out.mkdir()
        db = out / "bench.json"
        store.save_run({"created": "now", "status": "complete", "rows": []}, db)
        before = db.read_bytes()
        assert main(argv_for(db, inputs)) == 2
        _one_error_line(capsys, "is the results store")
        assert db.read_bytes() == before
        return
    target = inputs[role]
    before = {k: p.read_bytes() for k, p in inputs.items()}
    out = _link(link, target, tmp_path)
    assert main(argv_for(out, inputs)) == 2
    _one_error_line(capsys, "is the results store" if role == "store" else "is an input",
                    *(() if role == "store" else ("--force",)))
    assert {k: p.read_bytes() for k, p in inputs.items()} == before
    assert out.exists() and (link != "symlink" or out.is_symlink())


@pytest.mark.parametrize("name", ["report.md", "accuracy_vs_latency.png"])
def test_a_report_dir_whose_files_are_inputs_is_refused(name, inputs, tmp_path, capsys):
    """`bench --report DIR` where DIR/report.md is (a hard link to) the checkpoint."""
    rep = tmp_path / "report"
    rep.mkdir()
    os.link(inputs["checkpoint"], rep / name)
    before = inputs["checkpoint"].read_bytes()
    assert main(["bench", str(inputs["checkpoint"]), "--baselines", "", "--no-store", "--report", str(rep)]) == 2
    _one_error_line(capsys, f"--report {rep / name}: is an input")
    assert inputs["checkpoint"].read_bytes() == before


def test_the_store_is_never_an_output_even_with_force(inputs, tmp_path, capsys):
    before = inputs["store"].read_bytes()
    assert main(["bench", str(inputs["artifact"]), "--baselines", "", "--db", str(inputs["store"]),
                 "--json", str(inputs["store"]), "--force"]) == 2
    _one_error_line(capsys, "is the results store")
    assert inputs["store"].read_bytes() == before


def test_two_outputs_in_one_file_are_refused(inputs, tmp_path, capsys):
    both = tmp_path / "out.json"
    assert main(["bench", str(inputs["artifact"]), "--baselines", "", "--no-store",
                 "--json", str(both), "--csv", str(both)]) == 2
    _one_error_line(capsys, "is also the --json file")
    assert not both.exists()


def test_export_names_an_input_it_would_overwrite(inputs, tmp_path, capsys):
    """`export --out DIR` where DIR/NAME.onnx is the checkpoint itself (a hard link)."""
    out = tmp_path / "exports"
    out.mkdir()
    os.link(inputs["checkpoint"], out / "ssc-net-1-9.onnx")
    before = inputs["checkpoint"].read_bytes()
    assert main(["export", str(out / "ssc-net-1-9.onnx"), "--out", str(out), "--no-progress"]) == 2
    _one_error_line(capsys, "is an input, the one being exported", "--force")
    assert inputs["checkpoint"].read_bytes() == before


def test_force_lets_an_input_be_overwritten_but_never_the_store(inputs, tmp_path):
    """The rule itself, on real files: an input given with --force is written; the store never is."""
    from ssc_deploy.output_paths import check_outputs

    copy = tmp_path / "copy.pt"
    copy.write_bytes(inputs["checkpoint"].read_bytes())
    check_outputs([("--json", copy)], inputs=[(copy, "an input")], force=True)
    with pytest.raises(SscDeployError, match="is an input"):
        check_outputs([("--json", copy)], inputs=[(copy, "an input")])
    with pytest.raises(SscDeployError, match="is the store"):
        check_outputs([("--json", tmp_path / "not-yet.sqlite")], stores=[(tmp_path / "not-yet.sqlite", "the store")],
                      force=True)


# -- hole 4: a foreign database is never changed; locked, WAL-mode and damaged stores -------------


def _lookalike(path: Path, wal: bool = False) -> bytes:
    """Someone else's database whose tables happen to be named meta, runs and rows (schema_version 1)."""
    with closing(sqlite3.connect(path)) as conn:
        if wal:
            conn.execute("PRAGMA journal_mode = WAL")
        with conn:
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
            conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, athlete TEXT, km REAL)")
            conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, boat TEXT, crew INTEGER)")
            conn.execute("INSERT INTO runs (athlete, km) VALUES ('alice', 10.5)")
    return path.read_bytes()


def test_a_lookalike_foreign_database_is_refused_before_it_is_migrated(tmp_path, capsys):
    """Hole 4: it was migrated (a column added, version set to 2), then refused as unwritable."""
    other = tmp_path / "training-log.sqlite"
    before = _lookalike(other)
    for call in (lambda: store.save_run({"rows": [{"model": "m"}]}, other), lambda: store.check_writable(other),
                 lambda: store.list_runs(other)):
        with pytest.raises(SscDeployError, match="not an ssc-deploy results store .*table has other columns"):
            call()
    assert main(["results", "--db", str(other)]) == 2
    _one_error_line(capsys, "not an ssc-deploy results store")
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["training-log.sqlite"]


def test_our_columns_under_another_application_id_are_foreign(tmp_path):
    ours = tmp_path / "ours.sqlite"
    store.save_run({"rows": [{"model": "m"}]}, ours)
    with closing(sqlite3.connect(ours)) as conn:
        assert conn.execute("PRAGMA application_id").fetchone()[0] == store.APPLICATION_ID  # written at creation
        conn.execute("PRAGMA application_id = 42")
        conn.commit()
    before = ours.read_bytes()
    with pytest.raises(SscDeployError, match="application id 0x2a"):
        store.save_run({"rows": []}, ours)
    assert ours.read_bytes() == before


def test_a_wal_mode_foreign_database_leaves_no_wal_or_shm_files(tmp_path, capsys):
    other = tmp_path / "wal.sqlite"
    before = _lookalike(other, wal=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wal.sqlite"]  # checkpointed and closed
    assert main(["results", "--db", str(other)]) == 2
    _one_error_line(capsys, "not an ssc-deploy results store")
    with pytest.raises(SscDeployError, match="not an ssc-deploy results store"):
        store.save_run({"rows": []}, other)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wal.sqlite"]
    assert other.read_bytes() == before


def test_a_locked_store_is_called_locked_not_foreign(tmp_path, capsys, monkeypatch):
    """A busy store was called "not a results database" after 30 s."""
    db = tmp_path / "r.sqlite"
    store.save_run({"rows": [{"model": "m"}]}, db)
    monkeypatch.setattr(store, "BUSY_TIMEOUT_S", 0.2)  # the real wait, shortened
    with closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        assert main(["results", "--db", str(db)]) == 2
        _one_error_line(capsys, "locked by another process")
        with pytest.raises(SscDeployError, match="locked by another process"):
            store.save_run({"rows": []}, db)
        holder.execute("ROLLBACK")
    assert len(store.list_runs(db)) == 1


@pytest.mark.parametrize("column, value", [("devices", "{not json"), ("settings", "[1, 2]")])
def test_bad_json_in_the_store_is_one_line(tmp_path, capsys, column, value):
    db = tmp_path / "r.sqlite"
    store.save_run({"rows": [{"model": "m"}]}, db)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(f"UPDATE runs SET {column} = ?", (value,))
    assert main(["results", "--db", str(db)]) == 2
    _one_error_line(capsys, f"run 1's {column} is not a JSON")


def test_a_damaged_row_is_one_line(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    store.save_run({"rows": [{"model": "m"}]}, db)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE rows SET data = 'nope'")
    assert main(["results", "--db", str(db), "--show", "1"]) == 2
    _one_error_line(capsys, "row 1 of run 1 is not a JSON dict")


# -- hole 5: every numeric option of every command, checked up front -------------------------------


def _numeric_cases():
    """(command argv before the option, option, bad value, words the one line must hold)."""
    art = "{artifact}"
    cases = []
    for value in ("nan", "inf", "-1", "0"):
        cases.append((["bench", art, "--baselines", "", "--no-store"], "--atol", value, "--atol must be"))
        cases.append((["bench", art, "--baselines", "", "--no-store"], "--timeout", value, "--timeout must be"))
    cases += [
        (["bench", art, "--baselines", "", "--no-store"], "--n-eval", "-1", "--n-eval must be at least 0"),
        (["bench", art, "--baselines", "", "--no-store"], "--runs", "0", "--runs must be at least 1"),
        (["bench", art, "--baselines", "", "--no-store"], "--warmup", "-1", "--warmup must be at least 0"),
        (["bench", art, "--baselines", "", "--no-store"], "--pin-cores", "zz", "--pin-cores takes a CPU list"),
        (["bench", art, "--baselines", "", "--no-store"], "--pin-cores", "7-4", "--pin-cores takes a CPU list"),
        (["bench", art, "--baselines", "", "--no-store"], "--threads", "100000", "at most 256 threads"),
        (["quickstart", "--out", "{tmp}/qs", "--no-store"], "--n-eval", "-1", "--n-eval must be at least 0"),
        (["quickstart", "--out", "{tmp}/qs", "--no-store"], "--minutes", "nan", "--minutes must be a finite"),
        (["quickstart", "--out", "{tmp}/qs", "--no-store"], "--runs", "0", "--runs must be at least 1"),
        (["export", "--model", "ssc-net-1-9", "--out", "{tmp}/ex"], "--atol", "nan", "atol must be a finite"),
        (["export", "--model", "ssc-net-1-9", "--out", "{tmp}/ex"], "--n-verify", "0", "n_verify must be at least 1"),
        (["export", "--model", "ssc-net-1-9", "--out", "{tmp}/ex", "--precision", "int8"], "--max-drop", "nan",
         "--max-drop"),
        (["train", "--model", "ssc-net-1-9", "--out", "{tmp}/t.pt"], "--lr", "nan", "--lr must be a finite"),
        (["train", "--model", "ssc-net-1-9", "--out", "{tmp}/t.pt"], "--weight-decay", "nan",
         "--weight-decay must be a finite"),
        (["train", "--model", "ssc-net-1-9", "--out", "{tmp}/t.pt"], "--threads", "100000", "at most 256 threads"),
        (["train", "--model", "ssc-net-1-9", "--out", "{tmp}/t.pt"], "--max-batches", "0", "--max-batches must be"),
        (["train", "--model", "ssc-net-1-9", "--out", "{tmp}/t.pt"], "--eval-every", "-1", "--eval-every must be"),
        (["train", "--model", "ssc-net-1-9", "--out", "{tmp}/t.pt"], "--nproc", "100000", "--nproc must be"),
        (["profile", art], "--threads", "100000", "at most 256 threads"),
        (["profile", art], "--runs", "0", "--runs must be at least 1"),
        (["models"], "--in-size", "2", "in_size must be at least 4"),
    ]
    return cases


@pytest.mark.parametrize("before, option, value, words",
                         [pytest.param(*c, id=f"{c[0][0]} {c[1]}={c[2]}") for c in _numeric_cases()])
def test_every_numeric_option_is_checked_before_any_work(before, option, value, words, inputs, tmp_path, capsys):
    """Hole 5: `bench --atol nan` passed a mismatched artifact as ok; `--n-eval -1`, `--timeout 0`,
    `--pin-cores zz` failed per measurement; `--threads 100000` hung."""
    argv = [a.format(artifact=inputs["artifact"], tmp=tmp_path) for a in before] + [option, value]
    assert main(argv) == 2
    _one_error_line(capsys, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing created


# -- hole 6: true messages and counts; standard output full or closed ------------------------------

CLI = [sys.executable, "-c", "import sys; from ssc_deploy.cli import main; sys.exit(main())"]


def test_the_fp16_refusal_is_true_on_a_cpu_with_avx512_fp16(capsys):
    """It said "no AVX512-FP16" about a CPU whose flags list avx512_fp16."""
    from ssc_deploy.cpu_features import CpuFeatures, cpu_features
    from ssc_deploy.export.validate import not_exported_reason

    sapphire = CpuFeatures("Intel Xeon Sapphire Rapids", "x86_64", ("avx512_fp16", "avx512f"), "avx512")
    line = not_exported_reason("executorch", "fp16", sapphire)
    assert "this CPU (Intel Xeon Sapphire Rapids) has avx512_fp16, not measured here" in line
    assert "on the CPU it was measured on" in line
    here = cpu_features()
    assert main(["export", "--model", "ssc-net-1-9", "-t", "executorch", "-p", "fp16"]) == 2
    err = _one_error_line(capsys, f"this CPU ({here.model or 'unknown'}) has")
    assert ("avx512_fp16" in err) == ("avx512_fp16" in here.vector_flags)


def test_a_loaded_program_counts_its_params_and_macs(tmp_path):
    """`.pt2` exports reported 0 params and 0 MACs (the graph keeps its weights as plain tensors)."""
    import torch

    from ssc_deploy.export.readers.program import load_program
    from ssc_deploy.export.options import ModelFacts
    from ssc_deploy.export.subject import describe_module
    from ssc_deploy.models.complexity import count_macs, count_params
    from tests.support.foreign_ssc import PlainCNN

    net = PlainCNN().eval()
    torch.export.save(torch.export.export(net, (torch.zeros(1, 3, 16, 16),)), tmp_path / "p.pt2")
    gm = load_program(tmp_path / "p.pt2").module
    assert count_params(gm) == count_params(net) > 0
    assert count_macs(gm, 16) == count_macs(net, 16) > 0
    subject = describe_module(gm, torch.zeros(1, 3, 16, 16), ModelFacts(name="p"))
    assert (subject.params, subject.macs) == (count_params(net), count_macs(net, 16))


def test_a_full_stdout_keeps_the_files_and_says_only_the_report_was_lost(tmp_path):
    """`export > /dev/full` exited 1 with a bare OSError."""
    out = tmp_path / "ex"
    with open("/dev/full", "w") as full:
        proc = subprocess.run([*CLI, "export", "--model", "ssc-net-1-9", "--out", str(out), "--no-progress",
                               "--lowering", "pad-slice", "--n-verify", "2"], stdout=full, stderr=subprocess.PIPE,
                              text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: cannot print to standard output"), proc.stderr
    assert "files the command wrote are complete and kept" in proc.stderr
    manifest = json.loads((out / "ssc-net-1-9.onnx.manifest.json").read_text())
    assert manifest["bytes"] == (out / "ssc-net-1-9.onnx").stat().st_size


def test_a_closed_stdout_is_an_error_not_silence(tmp_path):
    """`models >&-` exited 0 printing nothing."""
    proc = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *CLI, "models"], stderr=subprocess.PIPE, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == "error: standard output is closed: redirect it to a file or /dev/null instead\n"


def test_a_deleted_working_directory_is_one_line(tmp_path):
    """A deleted working directory gave oneMKL's fatal error and no error line."""
    gone = tmp_path / "gone"
    gone.mkdir()
    proc = subprocess.run(["sh", "-c", f'cd "{gone}" && rmdir "{gone}" && exec "$@"', "sh", *CLI, "models"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: the current directory is gone"), proc.stderr


# -- hole 7: sizes bounded before anything is built or allocated; FIFOs never block ----------------


@pytest.mark.parametrize("argv, words", [
    (["inspect", "--quant-error", "--model", "ssc-net-99-99"], "2,041 M parameters, more than the 100 M"),
    (["export", "--model", "mobilenetv2", "--in-size", "4096"], "G MACs per image, more than the 50 G"),
    (["models", "ssc-net-1-9", "--in-size", "1024"], "MiB of activations per image, more than the 512 MiB"),
])
def test_a_net_too_big_to_build_is_refused_in_one_line(argv, words, capsys, tmp_path):
    """`inspect --quant-error --model ssc-net-99-99` grew to 21 GB and was killed (no message)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert main([*argv, *(["--out", str(tmp_path / "ex")] if argv[0] == "export" else [])]) == 2
    _one_error_line(capsys, words)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 512 * 1024  # KiB: nothing was built
    assert list(tmp_path.iterdir()) == []


def test_the_zoo_at_its_sizes_is_inside_the_budget():
    from ssc_deploy.models import create_model, list_models

    for name in ("ssc-net-9-9", "ssc-net-4-18", "channel-sparse-resnet-9-0.25"):
        assert name in list_models()
        create_model(name, num_classes=100, in_size=64)


def test_a_huge_example_input_is_refused_before_the_model_runs(tmp_path):
    """A 4096x4096 example input to export_module raised a raw 32 GB RuntimeError."""
    import resource

    import torch

    from ssc_deploy import create_model, export_module

    net = create_model("ssc-net-1-9")
    example = torch.zeros(1, 3, 4096, 4096)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SscDeployError, match=r"ssc-net-1-9 on a 4096x4096 example_input needs .* per image") as exc:
        export_module(net, example, out_dir=tmp_path / "ex", progress=False)
    assert "\n" not in str(exc.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 512 * 1024
    assert not (tmp_path / "ex").exists()


# -- messages: class names of the Python API ---------------------------------------------------------


@pytest.mark.parametrize("names, words", [
    ("abcdefghij", "class_names must be a list of strings, got str"),
    ([None] * 10, "class_names must be non-empty strings, got None"),
    (["a", ""] + list("cdefghij"), "class_names must be non-empty strings, got ''"),
])
def test_class_names_that_are_not_names_are_refused(names, words, tmp_path):
    """A string (ten one-letter classes) or [None]*10 ("None" ten times) were accepted."""
    import torch

    from ssc_deploy import create_model, export_module
    from ssc_deploy.export import ModelFacts

    with pytest.raises(SscDeployError, match=re.escape(words)):
        export_module(create_model("ssc-net-1-9", in_size=16), torch.zeros(1, 3, 16, 16), ModelFacts(class_names=names),
                      out_dir=tmp_path / "ex", progress=False)
    assert not (tmp_path / "ex").exists()


# -- hole 8 (and the FIFO of hole 7): a bad lowering cache never costs an export --------------------


def _cache_entry_key(target: str = "onnx") -> str:
    from ssc_deploy.cpu_features import cpu_features
    from ssc_deploy.export.lowerings.selection import cache as lowering_cache
    from ssc_deploy.export.lowerings.selection.probe import PROBE_VERSION
    from ssc_deploy.export.targets import TARGETS
    from ssc_deploy.runtimes import by_target

    return lowering_cache.cache_key(by_target(target).runtime, TARGETS[target].runtime_version(), cpu_features(),
                                    PROBE_VERSION)


GOOD_ENTRY = {"runtime": "onnxruntime", "runtime_version": "1", "best": "dwconv",
              "medians_ms": {"dwconv": 1.0, "pad-slice": 2.0}, "probe": "p", "cpu": "c", "isa": "avx2"}


@pytest.mark.parametrize("bad", [{"measured": 12345}, {"probe": ["p"]}, {"seconds": "slow"}, {"vector_flags": "avx2"},
                                 {"medians_ms": {"dwconv": "fast"}}, {"load_average": True}, {"surprise": 1}])
def test_a_malformed_cache_entry_is_ignored_and_the_export_goes_on(bad, tmp_path, monkeypatch, capsys):
    """`"measured": 12345` broke every default export with "'int' object is not subscriptable"."""
    from ssc_deploy.export.lowerings.selection import cache as lowering_cache
    from ssc_deploy.export.lowerings.selection.choice import cached_or_known, known_fastest

    monkeypatch.setenv("SSC_DEPLOY_CACHE", str(tmp_path / "cache"))
    key = _cache_entry_key()
    (tmp_path / "cache").mkdir()
    lowering_cache.cache_path().write_text(json.dumps({"schema": lowering_cache.SCHEMA,
                                                       "entries": {key: {**GOOD_ENTRY, **bad}}}))
    assert lowering_cache.lookup(key) is None
    assert cached_or_known("onnx") == known_fastest("onnx")
    (tmp_path / "cache" / "ok.json").write_text(json.dumps({"schema": lowering_cache.SCHEMA,
                                                            "entries": {key: GOOD_ENTRY}}))
    os.replace(tmp_path / "cache" / "ok.json", lowering_cache.cache_path())
    assert lowering_cache.lookup(key) == lowering_cache.Measurement(**GOOD_ENTRY)  # the check refuses only bad ones


def test_the_default_export_survives_a_malformed_cache_entry(tmp_path, monkeypatch, capsys):
    from ssc_deploy.export.lowerings.selection import cache as lowering_cache

    monkeypatch.setenv("SSC_DEPLOY_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    lowering_cache.cache_path().write_text(json.dumps({"schema": lowering_cache.SCHEMA, "entries": {
        _cache_entry_key(): {**GOOD_ENTRY, "measured": 12345}}}))
    assert main(["export", "--model", "ssc-net-1-9", "--out", str(tmp_path / "ex"), "--no-progress", "--json",
                 "--n-verify", "2", "--in-size", "16"]) == 0
    assert (tmp_path / "ex" / "ssc-net-1-9.onnx").is_file()


def test_a_fifo_as_the_lowering_cache_never_blocks(tmp_path, monkeypatch):
    """A FIFO as the lowering cache blocked every export forever."""
    import threading

    from ssc_deploy.export.lowerings.selection import cache as lowering_cache
    from ssc_deploy.export.lowerings.selection.choice import cached_or_known, known_fastest

    monkeypatch.setenv("SSC_DEPLOY_CACHE", str(tmp_path))
    os.mkfifo(lowering_cache.cache_path())
    found: list = []
    worker = threading.Thread(target=lambda: found.append(cached_or_known("onnx")), daemon=True)
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():  # unblock the reader, then fail
        with open(lowering_cache.cache_path(), "w"):
            pass
        pytest.fail("reading the lowering cache blocked on a FIFO")
    assert found == [known_fastest("onnx")]


def test_read_regular_file_refuses_what_is_not_a_regular_file(tmp_path):
    from ssc_deploy.safe_read import read_regular_file

    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(SscDeployError, match="fifo: the sidecar is a FIFO; give a regular file"):
        read_regular_file(tmp_path / "fifo", 1024, "sidecar")
    with pytest.raises(SscDeployError, match="is a directory"):
        read_regular_file(tmp_path, 1024, "sidecar")
    (tmp_path / "big").write_bytes(b"x" * 2048)
    with pytest.raises(SscDeployError, match="larger than the 1,024 it may be"):
        read_regular_file(tmp_path / "big", 1024, "sidecar")
    (tmp_path / "ok").write_bytes(b"{}")
    assert read_regular_file(tmp_path / "ok", 1024) == b"{}"


# -- messages: names no file system takes, paths that are not text ----------------------------------


def test_a_300_character_sidecar_name_is_one_line_and_creates_no_out_dir(tmp_path, capsys):
    """It gave "error: OSError" with no path and left an empty out dir."""
    import torch

    from tests.support.foreign_ssc import PlainCNN

    program = tmp_path / "theirs.pt2"
    torch.export.save(torch.export.export(PlainCNN().eval(), (torch.zeros(1, 3, 16, 16),)), program)
    (tmp_path / "theirs.pt2.json").write_text(json.dumps({"name": "n" * 300}))
    out = tmp_path / "ex"
    assert main(["export", str(program), "--out", str(out), "--no-progress"]) == 2
    _one_error_line(capsys, "is 305 bytes; names here may have at most 223")
    assert not out.exists()


def test_an_out_dir_that_is_not_utf8_is_one_line(tmp_path, capsys):
    """An invalid UTF-8 --out reached the ONNX exporter ("TypeError: incompatible function arguments")."""
    out = os.fsdecode(bytes(tmp_path) + b"/bad\xffdir")
    assert main(["export", "--model", "ssc-net-1-9", "--in-size", "16", "--out", out, "--no-progress"]) == 2
    _one_error_line(capsys, "bad\\xffdir/ssc-net-1-9.onnx: is not valid UTF-8 text")
    assert list(tmp_path.iterdir()) == []
    assert main(["bench", "x.onnx", "--json", out + ".json", "--no-store"]) == 2
    _one_error_line(capsys, "--json", "is not valid UTF-8 text")


def test_a_pt2_export_never_writes_over_its_own_sidecar(tmp_path, capsys):
    """The .pt2 and the MODEL.pt2.json read with it are inputs of the export: a name that puts a manifest there is
    refused (without --force)."""
    import torch

    from tests.support.foreign_ssc import PlainCNN

    program = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(PlainCNN().eval(), (torch.zeros(1, 3, 16, 16),)), program)
    sidecar = tmp_path / "m.pt2.json"
    sidecar.write_text(json.dumps({"name": "m"}))
    os.link(sidecar, tmp_path / "m.onnx.manifest.json")  # the manifest's place is the sidecar itself
    before = sidecar.read_bytes()
    assert main(["export", str(program), "--out", str(tmp_path), "--no-progress"]) == 2
    _one_error_line(capsys, "m.onnx.manifest.json: is an input, the one being exported")
    assert sidecar.read_bytes() == before
