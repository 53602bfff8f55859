-- 0004 calibration: labelled outcomes of score events, stored calibrators, calibrated probabilities.
-- Times are UTC epoch milliseconds. See docs/calibration.md.

ALTER TABLE score_events ADD COLUMN p_calibrated DOUBLE PRECISION;
ALTER TABLE score_events ADD COLUMN calibrator_version TEXT;

-- One row per labelled score event. status 'ok' means every outcome column that applies is set;
-- otherwise it names why the outcomes are NULL (no_side, no_atr, no_price, gap), so a backfill never
-- retries an event that cannot be labelled and nothing is silently dropped.
CREATE TABLE IF NOT EXISTS score_labels (
    event_id BIGINT PRIMARY KEY REFERENCES score_events (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    price_source TEXT NOT NULL CHECK (price_source IN ('trade', 'mark')),
    data_source TEXT NOT NULL CHECK (data_source IN ('recording', 'agg_trades', 'klines')),
    entry_price DOUBLE PRECISION,
    atr DOUBLE PRECISION,
    y_binary_30m INTEGER CHECK (y_binary_30m IN (0, 1)),
    y_binary_60m INTEGER CHECK (y_binary_60m IN (0, 1)),
    y_return_15m DOUBLE PRECISION,
    y_return_30m DOUBLE PRECISION,
    y_return_60m DOUBLE PRECISION,
    mfe_r_60m DOUBLE PRECISION,
    mae_r_60m DOUBLE PRECISION,
    first_hit TEXT CHECK (first_hit IN ('target', 'stop')),
    first_hit_ms BIGINT,
    label_version TEXT NOT NULL,
    labelled_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_score_labels_status ON score_labels (status);

-- Versioned score → probability maps per strategy (the config's strategy_id). Every calibration
-- run stores a new row; the newest active row per strategy is the one applied live.
CREATE TABLE IF NOT EXISTS calibrators (
    id {ID},
    strategy TEXT NOT NULL,
    version TEXT NOT NULL UNIQUE,
    method TEXT NOT NULL CHECK (method IN ('bootstrap', 'bucket', 'isotonic')),
    score_field TEXT NOT NULL,
    label TEXT NOT NULL,
    n_samples INTEGER NOT NULL,
    n_wins INTEGER NOT NULL,
    params {JSON} NOT NULL,
    metrics {JSON},
    train_from_ms BIGINT,
    train_to_ms BIGINT,
    created_ms BIGINT NOT NULL,
    active BOOLEAN NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_calibrators_strategy ON calibrators (strategy, active, id);
