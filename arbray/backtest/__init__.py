"""The deterministic backtest engine, statistics and reports (Ray-free; sweeps live in arbray.actors)."""
