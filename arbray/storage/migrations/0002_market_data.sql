-- 0002 recorded market data and its retention policy. Times are UTC epoch milliseconds.

CREATE TABLE IF NOT EXISTS agg_trades (
    symbol TEXT NOT NULL,
    agg_id BIGINT NOT NULL,
    price DOUBLE PRECISION NOT NULL,
    qty DOUBLE PRECISION NOT NULL,
    first_trade_id BIGINT NOT NULL,
    last_trade_id BIGINT NOT NULL,
    time_ms BIGINT NOT NULL,
    is_buyer_maker BOOLEAN NOT NULL,
    PRIMARY KEY (symbol, agg_id)
);
CREATE INDEX IF NOT EXISTS ix_agg_trades_symbol_time ON agg_trades (symbol, time_ms);

CREATE TABLE IF NOT EXISTS klines (
    symbol TEXT NOT NULL,
    interval TEXT NOT NULL,
    open_ms BIGINT NOT NULL,
    close_ms BIGINT NOT NULL,
    open DOUBLE PRECISION NOT NULL,
    high DOUBLE PRECISION NOT NULL,
    low DOUBLE PRECISION NOT NULL,
    close DOUBLE PRECISION NOT NULL,
    volume DOUBLE PRECISION NOT NULL,
    quote_volume DOUBLE PRECISION NOT NULL,
    trades BIGINT NOT NULL,
    taker_buy_volume DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (symbol, interval, open_ms)
);

CREATE TABLE IF NOT EXISTS funding_rates (
    symbol TEXT NOT NULL,
    funding_ms BIGINT NOT NULL,
    rate DOUBLE PRECISION NOT NULL,
    mark_price DOUBLE PRECISION,
    PRIMARY KEY (symbol, funding_ms)
);

CREATE TABLE IF NOT EXISTS open_interest (
    symbol TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    open_interest DOUBLE PRECISION NOT NULL,
    open_interest_value DOUBLE PRECISION,
    PRIMARY KEY (symbol, ts_ms)
);

CREATE TABLE IF NOT EXISTS liquidations (
    symbol TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
    price DOUBLE PRECISION NOT NULL,
    qty DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (symbol, ts_ms, side, price, qty)
);

CREATE TABLE IF NOT EXISTS retention_policy (
    table_name TEXT PRIMARY KEY,
    time_column TEXT NOT NULL,
    keep_days INTEGER NOT NULL CHECK (keep_days > 0)
);
INSERT INTO retention_policy (table_name, time_column, keep_days) VALUES
    ('agg_trades', 'time_ms', 30),
    ('liquidations', 'ts_ms', 365),
    ('open_interest', 'ts_ms', 365),
    ('klines', 'open_ms', 3650),
    ('funding_rates', 'funding_ms', 3650),
    ('score_events', 'ts_ms', 365)
ON CONFLICT (table_name) DO NOTHING;
