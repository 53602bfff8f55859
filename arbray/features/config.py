"""Feature-engine configuration (frozen, validated, exportable as JSON Schema)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS


class FeatureConfig(BaseModel):
    """Parameters of ``SymbolFeatures``; windows are in exchange-time milliseconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    atr_length: int = Field(14, ge=2, le=200, description="Wilder ATR length in bars")
    atr_percentile_history: int = Field(288, ge=10, le=10_000, description="closed 5m bars in the percentile")
    max_gap_bars: int = Field(12, ge=0, le=1_000, description="longest trade-less gap filled with flat bars")
    bars_kept: int = Field(300, ge=64, le=10_000, description="closed 5m and 1h bars kept (the ats_v2 kind's "
                                                               "kline factors read up to 300)")
    quantile_min_trades: int = Field(100, ge=1, description="trades in 24h before P95/P99 are reported")
    large_trade_window_ms: int = Field(15 * MINUTE_MS, gt=0)
    whale_window_ms: int = Field(15 * MINUTE_MS, gt=0)
    slope_step_ms: int = Field(MINUTE_MS, gt=0, description="time step of CVD slope/acceleration")
    obi_levels: int = Field(10, ge=1, le=1000)
    oi_change_horizon_ms: int = Field(15 * MINUTE_MS, gt=0)
    liquidation_window_ms: int = Field(5 * MINUTE_MS, gt=0)
    stale_trade_ms: int = Field(60_000, gt=0, description="no trade for this long flags stale_trades")
    stale_book_ms: int = Field(30_000, gt=0)
    stale_mark_ms: int = Field(30_000, gt=0)
    flush_trades: int = Field(4096, ge=1, le=1_000_000, description="pending raw trades before a numpy flush")
    retention_margin_ms: int = Field(HOUR_MS, ge=0, description="kept beyond the longest 24h window")

    @model_validator(mode="after")
    def _windows_fit(self) -> FeatureConfig:
        longest = max(self.large_trade_window_ms, self.whale_window_ms, 30 * MINUTE_MS + 2 * self.slope_step_ms)
        if longest > 24 * HOUR_MS + self.retention_margin_ms:
            raise ValueError("a window exceeds the 24h retention plus retention_margin_ms")
        return self
