"""The SQLite results store and ``ssc-deploy results``: listing, comparing, regressions, bad files."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from contextlib import closing

import pytest

from ssc_deploy.cli import main
from ssc_deploy.errors import SscDeployError
from ssc_deploy.runtime_bench import store, store_compare
from tests.support.stores import SCHEMA_2_ROWS


def _row(model="ssc-net-1-9", runtime="onnxruntime", lat=2.0, top1=0.95, status="ok", emulated=False, device="host"):
    return {"device": device, "model": model, "runtime": runtime, "threads": 1, "source": "device-runner",
            "status": status, "latency_median_ms": lat, "top1": top1, "emulated": emulated, "bytes": 1000}


def _result(rows, status="complete"):
    return {"schema": "ssc-deploy-bench/1", "created": "2026-11-23T18:00:00Z", "tool_version": "0.1.0",
            "status": status, "settings": {"runtimes": ["onnxruntime"], "threads": [1]},
            "devices": [{"name": "host", "kind": "host", "runtimes": {"onnxruntime": "1.32.0"}}], "rows": rows}


def test_save_list_and_load(tmp_path):
    db = tmp_path / "r.sqlite"
    a = store.save_run(_result([_row(), _row(runtime="tflite", status="failed", lat=None, top1=None)]), db)
    b = store.save_run(_result([_row()]), db, label="second")
    assert (a, b) == (1, 2)
    runs = store.list_runs(db)
    assert [r.id for r in runs] == [2, 1]
    assert runs[1].n_rows == 2 and runs[1].n_ok == 1 and runs[0].label == "second"
    assert runs[1].devices[0]["runtimes"] == {"onnxruntime": "1.32.0"}
    rows = store.load_run_rows(1, db)
    assert rows[1]["runtime"] == "tflite" and rows[1]["status"] == "failed"


def test_default_db_honours_the_cache_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SSC_DEPLOY_CACHE", str(tmp_path / "cache"))
    assert store.default_db_path() == tmp_path / "cache" / "results.sqlite"
    monkeypatch.delenv("SSC_DEPLOY_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert store.default_db_path() == tmp_path / "xdg" / "ssc-deploy" / "results.sqlite"


def test_compare_flags_slowdowns_and_accuracy_drops(tmp_path):
    db = tmp_path / "r.sqlite"
    a = store.save_run(_result([_row(lat=2.0), _row(runtime="tflite", lat=3.0), _row(model="igcv3-d-0.7x", lat=1.0),
                                _row(device="arm64-emulated", emulated=True, lat=100.0)]), db)
    b = store.save_run(_result([_row(lat=2.1), _row(runtime="tflite", lat=3.5), _row(model="igcv3-d-0.7x", top1=0.90),
                                _row(device="arm64-emulated", emulated=True, lat=200.0),
                                _row(model="new-net")]), db)
    comp = {(c["device"], c["model"], c["runtime"]): c for c in store_compare.compare_runs(a, b, db)}
    assert comp[("host", "ssc-net-1-9", "onnxruntime")]["regression"] is False  # 5% slower: noise
    slow = comp[("host", "ssc-net-1-9", "tflite")]
    assert slow["regression"] and slow["latency_ratio"] == pytest.approx(3.5 / 3.0) and "17% slower" in slow["reasons"]
    drop = comp[("host", "igcv3-d-0.7x", "onnxruntime")]
    assert drop["regression"] and drop["top1_delta"] == pytest.approx(-0.05)
    emu = comp[("arm64-emulated", "ssc-net-1-9", "onnxruntime")]
    assert emu["latency_ratio"] == pytest.approx(2.0) and emu["regression"] is False
    assert comp[("host", "new-net", "onnxruntime")]["in_a"] is False


def test_results_cli_lists_and_compares(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    store.save_run(_result([_row(lat=2.0)]), db)
    store.save_run(_result([_row(lat=2.0)]), db)
    store.save_run(_result([_row(lat=3.0)]), db)
    assert main(["results", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "stored benchmark runs" in out and "complete" in out
    assert main(["results", "--db", str(db), "--compare", "1", "2", "--json", str(tmp_path / "c.json")]) == 0
    assert "no regressions" in capsys.readouterr().out
    assert json.loads((tmp_path / "c.json").read_text())[0]["latency_ratio"] == pytest.approx(1.0)
    assert main(["results", "--db", str(db), "--compare", "1", "3"]) == 1
    cap = capsys.readouterr()
    assert "REGRESSION: 50% slower" in cap.out
    assert cap.err == "error: 1 regression(s) in run 3 against run 1 (more than 10% slower, or lower top-1)\n"
    assert main(["results", "--db", str(db), "--show", "3"]) == 0
    assert "ssc-net-1-9" in capsys.readouterr().out


def test_results_cli_bad_input_is_one_line(tmp_path, capsys):
    db = tmp_path / "r.sqlite"
    assert main(["results", "--db", str(db)]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no results store yet" in err and err.count("\n") == 1
    store.save_run(_result([_row()]), db)
    assert main(["results", "--db", str(db), "--compare", "1", "7"]) != 0
    err = capsys.readouterr().err
    assert "no run 7" in err and err.count("\n") == 1
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"definitely not sqlite" * 100)
    assert main(["results", "--db", str(junk)]) != 0
    err = capsys.readouterr().err
    assert "not a results database" in err and err.count("\n") == 1
    assert junk.read_bytes() == b"definitely not sqlite" * 100  # never overwritten


def test_failed_save_leaves_the_store_unchanged(tmp_path):
    db = tmp_path / "r.sqlite"
    store.save_run(_result([_row()]), db)
    bad = _result([_row(), {"device": "host", "model": "x", "runtime": "onnxruntime", "threads": "not-a-number"}])
    with pytest.raises((ValueError, SscDeployError)):
        store.save_run(bad, db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0] == 1


def _foreign(path):
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('alice')")
    return path.read_bytes()


def test_a_foreign_database_is_refused_and_left_untouched(tmp_path, capsys):
    other = tmp_path / "other.sqlite"
    before = _foreign(other)
    assert main(["results", "--db", str(other)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {other}: not an ssc-deploy results store")
    for call in (lambda: store.save_run(_result([_row()]), other), lambda: store.check_writable(other),
                 lambda: store.load_run_rows(1, other)):
        with pytest.raises(SscDeployError, match="not an ssc-deploy results store"):
            call()
    assert other.read_bytes() == before


def test_listing_never_writes(tmp_path, capsys):
    """An empty SQLite file stays empty when listed; a store is opened read-only (no schema written)."""
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    assert main(["results", "--db", str(empty)]) == 0
    assert empty.read_bytes() == b""
    assert store.list_runs(empty) == []
    with pytest.raises(SscDeployError, match="no run 1"):
        store.load_run_rows(1, empty)


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory on a read-only tmpfs holding one results store (root is not stopped by chmod)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    try:
        store.save_run(_result([_row()]), ro / "r.sqlite")
        if subprocess.run(["mount", "-o", "remount,ro", str(ro)], capture_output=True).returncode:
            pytest.skip("cannot remount the tmpfs read-only")
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_a_store_on_a_read_only_file_system(read_only_dir, capsys):
    db = read_only_dir / "r.sqlite"
    assert main(["results", "--db", str(db)]) == 0  # listing works: opened read-only
    assert "complete" in capsys.readouterr().out
    for target in (db, read_only_dir / "new.sqlite"):
        for call in (store.check_writable, lambda t: store.save_run(_result([_row()]), t)):
            with pytest.raises(SscDeployError, match=r"cannot write the results store .*read-only file system") as exc:
                call(target)
            assert "\n" not in str(exc.value)
    assert store.list_runs(db)[0].n_rows == 1


def test_a_file_in_the_way_of_the_store(tmp_path, monkeypatch):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be\n")
    monkeypatch.setenv("SSC_DEPLOY_CACHE", str(blocker))
    for call in (store.check_writable, lambda: store.save_run(_result([_row()]))):
        with pytest.raises(SscDeployError, match=rf"cannot write the results store .*{blocker} is a file, not a directory"):
            call()
    with pytest.raises(SscDeployError, match=r"is a file, not a directory"):
        store.save_run(_result([_row()]), blocker / "deeper" / "r.sqlite")
    assert blocker.read_text() == "a file where the cache directory should be\n"




def test_a_schema_2_store_gets_the_interval_columns_and_never_the_predictions(tmp_path):
    db = tmp_path / "v2.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executescript(SCHEMA_2_ROWS)
    row = {**_row(), "top1_ci_low": 0.91, "top1_ci_high": 0.97, "predictions": [1, 2, 3]}
    assert store.save_run(_result([row]), db) == 2
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "3"
        got = conn.execute("SELECT run_id, top1, top1_ci_low, top1_ci_high, data FROM rows ORDER BY id").fetchall()
    assert [g[:4] for g in got] == [(1, 0.95, None, None), (2, 0.95, 0.91, 0.97)]
    assert "predictions" not in json.loads(got[1][4]) and json.loads(got[1][4])["top1_ci_low"] == 0.91
    assert store.load_run_rows(2, db)[0]["top1_ci_high"] == 0.97
    fresh = tmp_path / "new.sqlite"
    store.save_run(_result([row]), fresh)
    with closing(sqlite3.connect(fresh)) as conn:
        assert conn.execute("SELECT top1_ci_low, top1_ci_high FROM rows").fetchone() == (0.91, 0.97)
