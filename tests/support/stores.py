"""A results store as an older version of the tool wrote it."""

# Schema 2: rows have precision but neither instruction nor top-1 interval columns.
SCHEMA_2_ROWS = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, tool_version TEXT NOT NULL,
    status TEXT NOT NULL, devices TEXT NOT NULL, settings TEXT NOT NULL, label TEXT NOT NULL DEFAULT '');
CREATE TABLE rows (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    device TEXT NOT NULL, model TEXT NOT NULL, runtime TEXT NOT NULL, precision TEXT NOT NULL DEFAULT 'fp32',
    threads INTEGER NOT NULL, source TEXT NOT NULL, status TEXT NOT NULL, latency_median_ms REAL, top1 REAL,
    data TEXT NOT NULL);
CREATE INDEX rows_run ON rows(run_id);
INSERT INTO meta VALUES ('schema_version', '2');
INSERT INTO runs (created, tool_version, status, devices, settings) VALUES ('t', '0.1', 'complete', '[]', '{}');
INSERT INTO rows (run_id, device, model, runtime, threads, source, status, latency_median_ms, top1, data)
    VALUES (1, 'host', 'ssc-net-1-9', 'onnxruntime', 1, 'device-runner', 'ok', 2.0, 0.95, '{"model": "ssc-net-1-9"}');
"""
