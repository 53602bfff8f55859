"""``FeatureSnapshot``: the immutable per-symbol feature record strategies score.

Units: coin quantities unless the name says ``usd``; ``*_ms`` are epoch milliseconds of exchange
time; ``atr_pct_5m``, ``oi_change_pct``, ``spot_perp_div`` and ``funding_rate`` are fractions
(0.01 = 1 %); ``spread_bps`` is basis points. A feature without data is ``None`` (JSON null),
never a default. ``quality`` lists data-quality flags (see ``QUALITY_FLAGS``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

QUALITY_FLAGS = {
    "no_trades": "no trade seen yet",
    "warming_up_24h": "less than 24h of trades behind this snapshot (24h windows, P95/P99 partial)",
    "warming_up_atr": "fewer closed 5m bars than the ATR length",
    "stale_trades": "no trade within stale_trade_ms",
    "book_awaiting_snapshot": "no depth snapshot applied yet (book features from bookTicker only)",
    "book_resyncing": "depth sequence broke; book cleared until the next snapshot",
    "stale_book": "no book update within stale_book_ms",
    "no_mark_price": "no markPrice update seen",
    "stale_mark_price": "no markPrice update within stale_mark_ms",
    "gap_filled": "taken while missed trades were refilled (e.g. after a restart): trade windows are exact, "
                  "book, bookTicker and mark fields are the latest known, not those of the snapshot's time",
}

CVD_WINDOWS = (("5m", 5), ("15m", 15), ("30m", 30), ("1h", 60), ("4h", 240), ("24h", 1440))


@dataclass(frozen=True, slots=True)
class FeatureSnapshot:
    symbol: str
    ts_ms: int
    price: float | None
    last_trade_ts_ms: int | None
    cvd_5m: float | None
    cvd_15m: float | None
    cvd_30m: float | None
    cvd_1h: float | None
    cvd_4h: float | None
    cvd_24h: float | None
    cvd_usd_5m: float | None
    cvd_usd_15m: float | None
    cvd_usd_30m: float | None
    cvd_usd_1h: float | None
    cvd_usd_4h: float | None
    cvd_usd_24h: float | None
    vwap_30m: float | None
    buy_vol_1m: float | None
    sell_vol_1m: float | None
    trade_count_1m: int
    volume_usd_24h: float | None
    atr_5m: float | None
    atr_1h: float | None
    atr_pct_5m: float | None
    atr_percentile_5m: float | None
    p95_qty_24h: float | None
    p99_qty_24h: float | None
    large_trade_qty: float | None
    large_trades_15m: int | None
    large_buy_qty_15m: float | None
    large_sell_qty_15m: float | None
    whale_flow_15m: float | None
    whale_trades_15m: int
    cvd_slope_30m_per_min: float | None
    cvd_accel_30m_per_min2: float | None
    cvd_mtf_agreement: float | None
    best_bid: float | None
    best_ask: float | None
    best_bid_qty: float | None
    best_ask_qty: float | None
    spread_bps: float | None
    microprice: float | None
    obi_10: float | None
    depth_bid_qty_10: float | None
    depth_ask_qty_10: float | None
    mark_price: float | None
    index_price: float | None
    spot_perp_div: float | None
    funding_rate: float | None
    next_funding_time_ms: int | None
    open_interest: float | None
    oi_change_pct: float | None
    oi_change_horizon_min: float
    long_short_ratio: float | None
    top_trader_long_ratio: float | None
    liq_long_usd_5m: float
    liq_short_usd_5m: float
    book_state: str
    quality: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the field names as keys (``quality`` as a list)."""
        out = {f: getattr(self, f) for f in _FIELD_NAMES}
        out["quality"] = list(self.quality)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSnapshot:
        kw: dict[str, Any] = {f: d.get(f) for f in _FIELD_NAMES}
        kw["quality"] = tuple(d.get("quality") or ())
        return cls(**kw)


_FIELD_NAMES = tuple(f.name for f in fields(FeatureSnapshot))
