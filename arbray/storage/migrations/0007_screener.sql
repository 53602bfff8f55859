-- 0007 screener: the periodic market-wide scans of arbray.screener.service and their ranked results.
-- One screen_runs row per scan (model, timeframe, where the bars came from, what it cost); one
-- screen_results row per ranked symbol. Factors, components and missing inputs are JSON; a factor
-- whose input was missing is null, never a filler value. Times are UTC epoch milliseconds.

CREATE TABLE IF NOT EXISTS screen_runs (
    id {ID},
    model TEXT NOT NULL CHECK (model IN ('ats_v2', 'short_grid')),
    timeframe TEXT NOT NULL,
    source TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT NOT NULL,
    symbols INTEGER NOT NULL,
    ranked INTEGER NOT NULL,
    excluded INTEGER NOT NULL,
    config {JSON} NOT NULL,
    stats {JSON}
);
CREATE INDEX IF NOT EXISTS ix_screen_runs_model ON screen_runs (model, started_ms);

CREATE TABLE IF NOT EXISTS screen_results (
    run_id BIGINT NOT NULL REFERENCES screen_runs (id) ON DELETE CASCADE,
    rank INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    score DOUBLE PRECISION,
    probability_up DOUBLE PRECISION,
    mode TEXT,
    factors {JSON} NOT NULL,
    components {JSON} NOT NULL,
    missing {JSON} NOT NULL,
    explanation TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    PRIMARY KEY (run_id, rank)
);
CREATE INDEX IF NOT EXISTS ix_screen_results_symbol ON screen_results (symbol, started_ms);

-- A scan a minute over 500 symbols is ~720k result rows a day: keep 30 days of both.
INSERT INTO retention_policy (table_name, time_column, keep_days) VALUES
    ('screen_results', 'started_ms', 30),
    ('screen_runs', 'started_ms', 30)
ON CONFLICT (table_name) DO NOTHING;
