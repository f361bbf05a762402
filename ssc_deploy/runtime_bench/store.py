"""The results store: every benchmark run appended to one SQLite file, so regressions show
(:mod:`.store_compare` compares two runs).

Default location ``~/.cache/ssc-deploy/results.sqlite`` (``$SSC_DEPLOY_CACHE`` or
``$XDG_CACHE_HOME/ssc-deploy`` when set; ``--db`` overrides). Each run keeps its devices,
runtime versions and the tool version; each row keeps its key columns for queries (device,
model, runtime, precision, threads, source, status, latency, top-1 and its 95 % interval) and the
whole row as JSON but its per-image predictions,
so new figures need no schema change. A store of an older schema is read as it is (its rows
are fp32) and migrated in place when a run is appended to it.

Listing opens the file read-only; a database that is not ours is refused before anything
is written. A caller with results worth keeping checks :func:`check_writable` first and
calls :func:`save_run` last: both raise a one-line :class:`SscDeployError`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

from ssc_deploy.errors import SscDeployError

from .precision import DEFAULT_PRECISION
from .rows import PREDICTIONS

SCHEMA_VERSION = 3
# Schema 1 had no precision column; opening it to append adds the column (its rows are fp32).
# Schema 2 had no instructions_per_inference and top-1 interval columns (NULL for the rows stored before).
OLDER_VERSIONS = ("1", "2")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    tool_version TEXT NOT NULL,
    status TEXT NOT NULL,
    devices TEXT NOT NULL,
    settings TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS rows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    device TEXT NOT NULL,
    model TEXT NOT NULL,
    runtime TEXT NOT NULL,
    precision TEXT NOT NULL DEFAULT 'fp32',
    threads INTEGER NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    latency_median_ms REAL,
    top1 REAL,
    data TEXT NOT NULL,
    instructions_per_inference REAL,
    top1_ci_low REAL,
    top1_ci_high REAL
);
CREATE INDEX IF NOT EXISTS rows_run ON rows(run_id);
"""


def default_db_path() -> Path:
    """Where results go unless ``--db`` says otherwise."""
    base = os.environ.get("SSC_DEPLOY_CACHE")
    if base:
        return Path(base).expanduser() / "results.sqlite"
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return root / "ssc-deploy" / "results.sqlite"


@dataclass
class RunSummary:
    """One stored run, as ``ssc-deploy results`` lists it."""

    id: int
    created: str
    tool_version: str
    status: str
    devices: list[dict[str, Any]]
    settings: dict[str, Any]
    label: str
    n_rows: int
    n_ok: int


_OUR_TABLES = {"meta", "runs", "rows"}
# Written as ``PRAGMA application_id`` when a store is created ("SSCD"); stores made before it carry 0.
APPLICATION_ID = 0x53534344
# Seconds a store locked by another process is waited for before giving up.
BUSY_TIMEOUT_S = 30.0
# The columns each schema version added to the one before (version -> table -> column names).
_ADDED_IN = {"2": {"rows": {"precision"}}, "3": {"rows": {"instructions_per_inference", "top1_ci_low", "top1_ci_high"}}}


def _locked(err: sqlite3.Error) -> bool:
    return isinstance(err, sqlite3.OperationalError) and any(w in str(err) for w in ("locked", "busy"))


def _busy_error(path: Path) -> SscDeployError:
    return SscDeployError(f"{path}: the results store is locked by another process (still busy after "
                          f"{BUSY_TIMEOUT_S:g} s); try again when that run has finished")


def _columns(conn: sqlite3.Connection, table: str) -> set[tuple[str, str, int, int]]:
    """A table's columns as (name, declared type, not null, primary key)."""
    return {(name, str(kind).upper(), int(notnull), int(pk))
            for _, name, kind, notnull, _, pk in conn.execute(f'PRAGMA table_info("{table}")')}


def _expected_columns() -> dict[str, set[tuple[str, str, int, int]]]:
    """Our tables' columns, read from :data:`_SCHEMA` itself (built in memory)."""
    with closing(sqlite3.connect(":memory:")) as mem:
        mem.executescript(_SCHEMA)
        return {t: _columns(mem, t) for t in _OUR_TABLES}


def _tables(conn: sqlite3.Connection, path: Path) -> set[str]:
    """The file's table names (reading them is the first access: a non-SQLite file fails here)."""
    try:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} - {"sqlite_sequence"}
    except sqlite3.DatabaseError as err:
        if _locked(err):
            raise _busy_error(path) from None
        raise SscDeployError(f"{path}: not a results database ({err})") from None


def _foreign(path: Path, why: str) -> SscDeployError:
    return SscDeployError(f"{path}: not an ssc-deploy results store ({why}); it is left as it is: pass another --db")


def _check_ours(conn: sqlite3.Connection, path: Path) -> str | None:
    """The schema version of one of our stores (this one or an older one it migrates), None for an
    empty database; a foreign or newer one raises, before anything is written to it.

    Ours: the application id is ours (or 0, stores made before it), exactly our three tables, each
    with exactly our columns (an older schema: without the columns later versions added, _ADDED_IN).
    """
    tables = _tables(conn, path)
    if not tables:
        return None
    if tables != _OUR_TABLES:
        names = ", ".join(sorted(tables)[:5])
        raise _foreign(path, f"its tables: {names}")
    try:
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        if app_id not in (0, APPLICATION_ID):
            raise _foreign(path, f"application id {app_id:#x}")
        if _columns(conn, "meta") != _expected_columns()["meta"]:
            raise _foreign(path, "its meta table has other columns")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        found = str(row[0]) if row else "unknown"
        if found != str(SCHEMA_VERSION) and found not in OLDER_VERSIONS:
            raise SscDeployError(f"{path}: results store schema {found} is not supported (this tool reads {SCHEMA_VERSION})")
        for table, columns in _expected_columns().items():
            have = _columns(conn, table)
            later = {c for v, added in _ADDED_IN.items() if int(v) > int(found) for c in added.get(table, ())}
            if have != {c for c in columns if c[0] not in later}:
                raise _foreign(path, f"its {table} table has other columns")
    except sqlite3.DatabaseError as err:
        if _locked(err):
            raise _busy_error(path) from None
        raise SscDeployError(f"{path}: not a results database ({err})") from None
    return found


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring an older store to this schema in one transaction (schema 1: add ``rows.precision``, fp32;
    schemas 1 and 2: add ``rows.instructions_per_inference``, ``top1_ci_low``/``top1_ci_high``, NULL for the
    rows already there).

    The version is read again under the write lock, so two processes never migrate twice.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if str(version) == "1":
            conn.execute("ALTER TABLE rows ADD COLUMN precision TEXT NOT NULL DEFAULT 'fp32'")
        if str(version) in ("1", "2"):
            conn.execute("ALTER TABLE rows ADD COLUMN instructions_per_inference REAL")
            conn.execute("ALTER TABLE rows ADD COLUMN top1_ci_low REAL")
            conn.execute("ALTER TABLE rows ADD COLUMN top1_ci_high REAL")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _uri(path: Path, mode: str, immutable: bool = False) -> str:
    return f"file:{quote(str(path.resolve()))}?mode={mode}" + ("&immutable=1" if immutable else "")


def _wal_without_log(path: Path) -> bool:
    """Whether ``path`` is an SQLite file in WAL mode with no ``-wal`` log beside it: opened as usual,
    even read-only, SQLite would leave ``-wal`` and ``-shm`` files there. Its content is all in the
    file, so it is read as immutable (our stores never use WAL; a foreign one is then left exactly
    as it was)."""
    from ssc_deploy.safe_read import read_head

    head = read_head(path, 20, "results store")
    return (len(head) == 20 and head[:16] == b"SQLite format 3\x00" and head[18] == 2
            and not path.with_name(path.name + "-wal").exists())


def _open_read(path: Path) -> sqlite3.Connection | None:
    """The store opened read-only (``mode=ro``: listing never writes a byte); None when it is empty."""
    if not path.exists():
        raise SscDeployError(f"{path}: no results store yet (run ssc-deploy bench first, or pass --db)")
    if path.is_dir():
        raise SscDeployError(f"{path}: is a directory, not a results database")
    immutable = _wal_without_log(path)
    try:
        conn = sqlite3.connect(_uri(path, "ro", immutable), uri=True, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as err:
        raise SscDeployError(f"{path}: cannot open the results store ({err})") from None
    try:
        if _check_ours(conn, path) is not None:
            return conn
    except BaseException:
        conn.close()
        raise
    conn.close()
    return None


def _unwritable(path: Path, why: str) -> SscDeployError:
    return SscDeployError(f"cannot write the results store {path}: {why}")


def check_writable(db: str | Path | None = None) -> Path:
    """The store's path if a run can be appended there; else one-line :class:`SscDeployError`.

    Writes nothing, so a long run can check its store first and save last: the store
    refuses a foreign or non-SQLite file, a directory, a file where a directory should
    be, and a read-only file system or directory.
    """
    path = Path(db) if db else default_db_path()
    if path.is_dir():
        raise SscDeployError(f"{path}: is a directory, not a results database")
    if path.exists():
        conn = _open_read(path)
        if conn is not None:
            conn.close()
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise _unwritable(path, f"{ancestor} is a file, not a directory")
    # access(2) also answers EROFS for root, whom permission bits do not stop.
    for target in ([path] if path.exists() else []) + [ancestor]:
        if not os.access(target, os.W_OK):
            why = "read-only file system" if _read_only_fs(target) else "permission denied"
            raise _unwritable(path, f"{why} ({target})")
    return path


def _read_only_fs(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def _open_write(path: Path) -> sqlite3.Connection:
    """The store opened for appending, created with our schema when new or empty."""
    check_writable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _unwritable(path, err.strerror or str(err)) from None
    try:
        conn = sqlite3.connect(_uri(path, "rwc"), uri=True, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as err:
        raise _unwritable(path, str(err)) from None
    try:
        version = _check_ours(conn, path)
        if version is None:
            with conn:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif version != str(SCHEMA_VERSION):
            _migrate(conn)
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as err:
        conn.close()
        if _locked(err):
            raise _busy_error(path) from None
        raise _unwritable(path, str(err)) from None
    except BaseException:
        conn.close()
        raise
    return conn


def save_run(result: dict[str, Any], db: str | Path | None = None, label: str = "") -> int:
    """Append a bench result (the dict ``--json`` writes) as one run; return its id.

    The run and its rows go in one transaction: a failure leaves the store as it was.
    """
    path = Path(db) if db else default_db_path()
    existed = path.exists()
    try:
        return _append_run(path, result, label)
    except BaseException:
        if not existed:  # a store this save created holds nothing: no empty file left behind (full disk)
            for leftover in (path, path.with_name(path.name + "-journal")):
                if leftover.is_file():
                    leftover.unlink()
        raise


def _append_run(path: Path, result: dict[str, Any], label: str) -> int:
    with closing(_open_write(path)) as conn:
        try:
            with conn:
                cur = conn.execute(
                    "INSERT INTO runs (created, tool_version, status, devices, settings, label) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        result.get("created", ""),
                        result.get("tool_version", ""),
                        result.get("status", ""),
                        json.dumps(result.get("devices", [])),
                        json.dumps(result.get("settings", {})),
                        label,
                    ),
                )
                run_id = int(cur.lastrowid)
                conn.executemany(
                    "INSERT INTO rows (run_id, device, model, runtime, precision, threads, source, status,"
                    " latency_median_ms, top1, data, instructions_per_inference, top1_ci_low, top1_ci_high)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            run_id,
                            r.get("device", ""),
                            r.get("model", ""),
                            r.get("runtime", ""),
                            r.get("precision") or DEFAULT_PRECISION,
                            int(r.get("threads") or 0),
                            r.get("source", ""),
                            r.get("status", ""),
                            r.get("latency_median_ms"),
                            r.get("top1"),
                            json.dumps({k: v for k, v in r.items() if k != PREDICTIONS}),  # per-image: bench.json only
                            r.get("instructions_per_inference"),
                            r.get("top1_ci_low"),
                            r.get("top1_ci_high"),
                        )
                        for r in result.get("rows", [])
                    ],
                )
        except sqlite3.Error as err:
            if _locked(err):
                raise _busy_error(path) from None
            raise _unwritable(path, str(err)) from None
    return run_id


def _stored_json(text: Any, path: Path, where: str, kind: type) -> Any:
    """A JSON field read back from the store, as ``kind``; a damaged one is a one-line error naming it."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        value = None
    if not isinstance(value, kind):
        raise SscDeployError(f"{path}: {where} is not a JSON {kind.__name__}: the store is damaged there")
    return value


@contextmanager
def _queries(path: Path) -> Iterator[None]:
    """Queries on an open store: a lock held too long or a damaged file is a one-line error."""
    try:
        yield
    except sqlite3.Error as err:
        if _locked(err):
            raise _busy_error(path) from None
        raise SscDeployError(f"{path}: cannot read the results store ({err})") from None


def list_runs(db: str | Path | None = None, limit: int = 20) -> list[RunSummary]:
    """The latest ``limit`` runs, newest first."""
    path = Path(db) if db else default_db_path()
    conn = _open_read(path)
    if conn is None:
        return []
    with closing(conn), _queries(path):
        rows = conn.execute(
            "SELECT r.id, r.created, r.tool_version, r.status, r.devices, r.settings, r.label,"
            " COUNT(x.id), SUM(CASE WHEN x.status = 'ok' THEN 1 ELSE 0 END)"
            " FROM runs r LEFT JOIN rows x ON x.run_id = r.id GROUP BY r.id ORDER BY r.id DESC LIMIT ?",
            (limit,),
        ).fetchall()
    return [
        RunSummary(id=i, created=c, tool_version=v, status=s,
                   devices=_stored_json(d, path, f"run {i}'s devices", list),
                   settings=_stored_json(st, path, f"run {i}'s settings", dict),
                   label=lb, n_rows=int(n or 0), n_ok=int(k or 0))
        for i, c, v, s, d, st, lb, n, k in rows
    ]


def load_run_rows(run_id: int, db: str | Path | None = None) -> list[dict[str, Any]]:
    """Every row of one run, as stored."""
    path = Path(db) if db else default_db_path()
    conn = _open_read(path)
    with closing(conn) if conn else nullcontext(), _queries(path):
        if conn is None or conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise SscDeployError(f"no run {run_id} in {path} (ssc-deploy results lists them)")
        rows = [_stored_json(d, path, f"row {i} of run {run_id}", dict)
                for i, d in conn.execute("SELECT id, data FROM rows WHERE run_id = ? ORDER BY id", (run_id,))]
    for r in rows:
        r.setdefault("precision", DEFAULT_PRECISION)  # rows stored before precision was a column
    return rows
