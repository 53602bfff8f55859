-- 0006 runtime: runs of `arbray run`, and the PositionManager's input log (event sourcing).
-- A run's PositionManager state is a function of its applied inputs, in seq order; a restarted
-- PositionManager replays them. Payloads are the runtime's own pickled records (trusted data).

CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    mode TEXT NOT NULL CHECK (mode IN ('paper', 'sim', 'live')),
    source TEXT NOT NULL,
    config {JSON} NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'stopped', 'failed')),
    started_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    stopped_ms BIGINT,
    summary {JSON}
);
CREATE INDEX IF NOT EXISTS ix_runs_started ON runs (started_ms);

CREATE TABLE IF NOT EXISTS pm_inputs (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    symbol TEXT,
    ts_ms BIGINT NOT NULL,
    payload {BLOB} NOT NULL,
    PRIMARY KEY (run_id, seq)
);
