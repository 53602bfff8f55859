-- 0001 core: strategies, ledger, score events, signals, orders, fills, positions, trades, risk.
-- Portable DDL: {ID} and {JSON} are the only dialect tokens (see arbray/storage/schema.py).
-- Every *_ms column is UTC epoch milliseconds. Strategy ids are canonical UUID strings.

CREATE TABLE IF NOT EXISTS strategies (
    strategy_id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    config {JSON} NOT NULL,
    config_hash TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'paused', 'deprecated')),
    initial_balance DOUBLE PRECISION NOT NULL,
    current_balance DOUBLE PRECISION NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    status_changed_ms BIGINT NOT NULL,
    paused_ms BIGINT,
    resumed_ms BIGINT,
    deprecated_ms BIGINT,
    last_run_ms BIGINT
);
CREATE INDEX IF NOT EXISTS ix_strategies_status ON strategies (status);

CREATE TABLE IF NOT EXISTS strategy_events (
    id {ID},
    strategy_id TEXT NOT NULL REFERENCES strategies (strategy_id),
    ts_ms BIGINT NOT NULL,
    event TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT,
    detail {JSON}
);
CREATE INDEX IF NOT EXISTS ix_strategy_events_strategy ON strategy_events (strategy_id, ts_ms);

CREATE TABLE IF NOT EXISTS balance_ledger (
    id {ID},
    strategy_id TEXT NOT NULL REFERENCES strategies (strategy_id),
    ts_ms BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('initial', 'deposit', 'withdrawal', 'realised_pnl', 'fee', 'funding')),
    amount DOUBLE PRECISION NOT NULL,
    balance_after DOUBLE PRECISION NOT NULL,
    ref TEXT,
    UNIQUE (strategy_id, kind, ref)
);
CREATE INDEX IF NOT EXISTS ix_balance_ledger_strategy ON balance_ledger (strategy_id, ts_ms, id);

CREATE TABLE IF NOT EXISTS score_events (
    id {ID},
    run_id TEXT NOT NULL,
    strategy TEXT NOT NULL,
    kind TEXT NOT NULL,
    version TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    symbol TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    side TEXT CHECK (side IN ('LONG', 'SHORT')),
    side_allowed BOOLEAN NOT NULL,
    total DOUBLE PRECISION NOT NULL,
    gate_passed BOOLEAN NOT NULL,
    block_reason TEXT,
    tier TEXT,
    is_entry BOOLEAN NOT NULL,
    is_flip_signal BOOLEAN NOT NULL,
    layers {JSON} NOT NULL,
    gates {JSON} NOT NULL,
    missing {JSON} NOT NULL,
    inputs {JSON} NOT NULL,
    features {JSON},
    UNIQUE (run_id, strategy, symbol, ts_ms)
);
CREATE INDEX IF NOT EXISTS ix_score_events_strategy_ts ON score_events (run_id, strategy, ts_ms);
CREATE INDEX IF NOT EXISTS ix_score_events_symbol_ts ON score_events (symbol, ts_ms);
CREATE INDEX IF NOT EXISTS ix_score_events_release ON score_events (version, config_hash, ts_ms);

CREATE TABLE IF NOT EXISTS signals (
    id {ID},
    run_id TEXT NOT NULL,
    strategy_id TEXT NOT NULL REFERENCES strategies (strategy_id),
    symbol TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('LONG', 'SHORT')),
    action TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    tier TEXT,
    price DOUBLE PRECISION,
    detail {JSON},
    UNIQUE (run_id, strategy_id, symbol, ts_ms, action)
);
CREATE INDEX IF NOT EXISTS ix_signals_strategy_ts ON signals (strategy_id, ts_ms);

CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    strategy_id TEXT NOT NULL REFERENCES strategies (strategy_id),
    symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    order_type TEXT NOT NULL,
    time_in_force TEXT,
    price DOUBLE PRECISION,
    stop_price DOUBLE PRECISION,
    qty DOUBLE PRECISION NOT NULL,
    reduce_only BOOLEAN NOT NULL,
    venue_order_id TEXT,
    state TEXT NOT NULL,
    filled_qty DOUBLE PRECISION NOT NULL,
    avg_price DOUBLE PRECISION,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_orders_strategy ON orders (strategy_id, created_ms);
CREATE INDEX IF NOT EXISTS ix_orders_state ON orders (state);

CREATE TABLE IF NOT EXISTS order_events (
    id {ID},
    client_order_id TEXT NOT NULL REFERENCES orders (client_order_id),
    ts_ms BIGINT NOT NULL,
    state TEXT NOT NULL,
    detail {JSON},
    UNIQUE (client_order_id, ts_ms, state)
);

CREATE TABLE IF NOT EXISTS positions (
    position_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    strategy_id TEXT NOT NULL REFERENCES strategies (strategy_id),
    symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('LONG', 'SHORT')),
    status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    qty DOUBLE PRECISION NOT NULL,
    entry_price DOUBLE PRECISION NOT NULL,
    stop_price DOUBLE PRECISION,
    realised_pnl DOUBLE PRECISION NOT NULL,
    fees DOUBLE PRECISION NOT NULL,
    funding DOUBLE PRECISION NOT NULL,
    opened_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    closed_ms BIGINT
);
CREATE INDEX IF NOT EXISTS ix_positions_status ON positions (status, strategy_id);

CREATE TABLE IF NOT EXISTS fills (
    fill_id TEXT PRIMARY KEY,
    client_order_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    strategy_id TEXT NOT NULL REFERENCES strategies (strategy_id),
    position_id TEXT,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    price DOUBLE PRECISION NOT NULL,
    qty DOUBLE PRECISION NOT NULL,
    fee DOUBLE PRECISION NOT NULL,
    fee_asset TEXT NOT NULL,
    is_maker BOOLEAN NOT NULL,
    venue_trade_id TEXT,
    ts_ms BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_fills_order ON fills (client_order_id);
CREATE INDEX IF NOT EXISTS ix_fills_strategy_ts ON fills (strategy_id, ts_ms);

CREATE TABLE IF NOT EXISTS trades (
    id {ID},
    trade_id TEXT NOT NULL UNIQUE,
    run_id TEXT NOT NULL,
    strategy_id TEXT NOT NULL REFERENCES strategies (strategy_id),
    position_id TEXT,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('LONG', 'SHORT')),
    qty DOUBLE PRECISION NOT NULL,
    entry_price DOUBLE PRECISION NOT NULL,
    entry_ms BIGINT NOT NULL,
    exit_price DOUBLE PRECISION NOT NULL,
    exit_ms BIGINT NOT NULL,
    exit_reason TEXT NOT NULL,
    pnl DOUBLE PRECISION NOT NULL,
    fees DOUBLE PRECISION NOT NULL,
    funding DOUBLE PRECISION NOT NULL,
    risk_distance DOUBLE PRECISION,
    r_multiple DOUBLE PRECISION,
    score DOUBLE PRECISION,
    tier TEXT,
    detail {JSON}
);
CREATE INDEX IF NOT EXISTS ix_trades_strategy_exit ON trades (strategy_id, exit_ms, id);
CREATE INDEX IF NOT EXISTS ix_trades_exit ON trades (exit_ms, id);

CREATE TABLE IF NOT EXISTS risk_state (
    scope TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    detail {JSON},
    updated_ms BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS risk_events (
    id {ID},
    ts_ms BIGINT NOT NULL,
    scope TEXT NOT NULL,
    level TEXT NOT NULL CHECK (level IN ('info', 'warning', 'error', 'critical')),
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    detail {JSON}
);
CREATE INDEX IF NOT EXISTS ix_risk_events_ts ON risk_events (ts_ms);
