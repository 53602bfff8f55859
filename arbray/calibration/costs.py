"""Execution-cost analyser: expected vs realised cost per trade, decomposed, and the per-symbol cost table.

Per closed trade (its journal ``detail`` is the backtest's trade record; the signal's snapshot comes
from the score event at the signal time), in basis points of the entry notional:

- ``spread_bps``: half the quoted spread at the signal for each leg filled as taker (entry taker share
  + exit taker share; a maker fill pays no spread; exits are priced with the signal's spread);
- ``slippage_bps``: the entry's shortfall against the signal-time mid beyond that half spread, plus,
  for stop exits, the fill beyond the stop price beyond the half spread;
- ``fee_bps``: fees paid, both legs; ``funding_bps``: funding paid (negative when received);
- ``realised_bps`` = spread + slippage + fee (execution friction), ``total_bps`` adds funding;
- ``expected_bps``: what the fee model predicted at the signal — round-trip fees at the configured
  liquidity, the quoted spread when taking, and the configured slippage allowance.

Breakdowns by symbol, entry hour (UTC) and exit type; trends per period of the maker ratio (entry
and take-profit quantity filled as maker) and of friction in R (fees + entry slippage). The
``CostTable`` (median and p95 of ``realised_bps`` per symbol) is what the EV gate charges.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from arbray.execution.fees import DEFAULT_FEE_TIER, FEE_SCHEDULE, FeeRates, fee_rates
from arbray.scoring.config import FrozenModel
from arbray.storage.base import Store

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
Liquidity = Literal["maker", "taker"]
_NEEDED = ("strategy_id", "signal_ts_ms", "direction", "qty", "entry_price", "exit_price", "fees", "funding",
           "entry_maker_qty", "tp_maker_qty", "signal_price", "exit_reason", "entry_ts_ms")


class CostConfig(FrozenModel):
    """The fee model that states the expected cost of a trade, and the trend period."""

    fee_tier: str = Field(DEFAULT_FEE_TIER, description="fee schedule row (arbray.execution.fees)")
    liquidity: Liquidity = Field("taker", description="liquidity assumed by the expected cost")
    slippage_bps: float = Field(1.0, ge=0, le=100, description="round-trip slippage allowance in the expected cost")
    trend_period_ms: int | None = Field(None, ge=60_000, description="trend bucket; default: a day, an hour if the "
                                                                      "trades span less than three days")

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        if self.fee_tier not in FEE_SCHEDULE:
            return [(("fee_tier",), f"unknown fee tier; known: {', '.join(sorted(FEE_SCHEDULE))}")]
        return []


def expected_cost_bps(spread_bps: float | None, rates: FeeRates, liquidity: Liquidity, slippage_bps: float) -> float:
    """Round-trip cost the fee model predicts: fees of both legs, the spread when taking, slippage."""
    fee = 2 * (rates.maker if liquidity == "maker" else rates.taker) * 1e4
    spread = (spread_bps or 0.0) if liquidity == "taker" else 0.0
    return fee + spread + slippage_bps


def _mid(features: Mapping[str, Any] | None, fallback: float) -> tuple[float, float]:
    """Signal-time mid and half spread in bps from the snapshot (the signal price and 0 without a book)."""
    if features:
        bid, ask = features.get("best_bid"), features.get("best_ask")
        if bid and ask and ask >= bid:
            mid = (bid + ask) / 2
            return mid, (ask - bid) / mid * 1e4 / 2
    return fallback, 0.0


def trade_cost(detail: Mapping[str, Any], features: Mapping[str, Any] | None, config: CostConfig) -> dict[str, Any]:
    """The cost decomposition of one trade record (see the module docstring)."""
    side = 1 if detail["direction"] == "LONG" else -1
    qty, entry, exit_px = float(detail["qty"]), float(detail["entry_price"]), float(detail["exit_price"])
    notional = entry * qty
    mid, half = _mid(features, float(detail["signal_price"]))
    taker_in = 1 - min(1.0, float(detail["entry_maker_qty"]) / qty) if qty else 1.0
    taker_out = 1 - min(1.0, float(detail["tp_maker_qty"]) / qty) if qty else 1.0
    spread = half * (taker_in + taker_out)
    slip = side * (entry - mid) / mid * 1e4 - half * taker_in
    if detail["exit_reason"] == "sl" and detail.get("risk_distance"):
        stop = entry - side * float(detail["risk_distance"])
        slip += side * (stop - exit_px) / entry * 1e4 - half * taker_out
    fee = float(detail["fees"]) / notional * 1e4 if notional else 0.0
    funding = float(detail["funding"]) / notional * 1e4 if notional else 0.0
    spread_snap = None if not features else features.get("spread_bps")
    expected = expected_cost_bps(spread_snap if spread_snap is not None else 2 * half, fee_rates(config.fee_tier),
                                 config.liquidity, config.slippage_bps)
    realised = spread + slip + fee
    return {
        "strategy": detail["strategy_id"], "symbol": detail.get("symbol"), "entry_ms": detail["entry_ts_ms"],
        "hour": f"{(int(detail['entry_ts_ms'] or 0) // HOUR_MS) % 24:02d}", "exit_type": str(detail["exit_reason"]),
        "spread_bps": spread, "slippage_bps": slip, "fee_bps": fee, "funding_bps": funding,
        "realised_bps": realised, "total_bps": realised + funding, "expected_bps": expected,
        "error_bps": realised - expected, "maker_entry_qty": float(detail["entry_maker_qty"]),
        "tp_maker_qty": float(detail["tp_maker_qty"]),
        "tp_qty": float(detail.get("tp_maker_qty") or 0.0) + float(detail.get("tp_taker_qty") or 0.0), "qty": qty,
        "friction_r": float(detail.get("fees_r") or 0.0) + float(detail.get("entry_slippage_r") or 0.0),
        "net_r": detail.get("net_r"), "book_at_signal": half > 0,
    }


_COMPONENTS = ("spread_bps", "slippage_bps", "fee_bps", "funding_bps", "realised_bps", "total_bps", "expected_bps",
               "error_bps")


def _stats(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"trades": len(rows)}
    for c in _COMPONENTS:
        v = np.asarray([r[c] for r in rows], dtype=np.float64)
        out[c] = {"mean": float(v.mean()), "median": float(np.median(v)),
                  "p95": float(np.percentile(v, 95))} if v.size else None
    err = np.asarray([r["error_bps"] for r in rows], dtype=np.float64)
    out["mean_abs_error_bps"] = float(np.abs(err).mean()) if err.size else None
    return out


def _maker_ratios(rows: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    qty = sum(r["qty"] for r in rows)
    tp = sum(r["tp_qty"] for r in rows)
    return {"maker_ratio_entry": sum(r["maker_entry_qty"] for r in rows) / qty if qty else None,
            "maker_ratio_tp": sum(r["tp_maker_qty"] for r in rows) / tp if tp else None,
            "friction_r": float(np.mean([r["friction_r"] for r in rows])) if rows else None}


@dataclass(frozen=True, slots=True)
class SymbolCost:
    """Realised round-trip cost of one symbol's trades (bps of entry notional)."""

    n: int
    median_bps: float
    p95_bps: float


class CostTable(dict[str, SymbolCost]):
    """Realised cost per symbol: what the EV gate charges once a symbol has enough trades."""

    @classmethod
    def from_costs(cls, costs: Iterable[Mapping[str, Any]]) -> CostTable:
        by: dict[str, list[float]] = {}
        for c in costs:
            by.setdefault(str(c["symbol"]), []).append(float(c["realised_bps"]))
        return cls({s: SymbolCost(len(v), float(np.median(v)), float(np.percentile(v, 95)))
                    for s, v in sorted(by.items())})

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {s: {"n": c.n, "median_bps": c.median_bps, "p95_bps": c.p95_bps} for s, c in self.items()}


async def load_trade_costs(store: Store, config: CostConfig | None = None, run_id: str | None = None,
                           strategy: str | None = None) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The cost decomposition of every journalled trade (oldest first) and the trades skipped, by reason."""
    cfg = config or CostConfig()
    skipped: Counter[str] = Counter()
    trades: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = await store.trades(run_id=run_id, limit=1_000, cursor=cursor)
        trades += page.rows
        cursor = page.next_cursor
        if cursor is None:
            break
    wanted: dict[tuple[str, str, str], list[int]] = {}
    usable: list[dict[str, Any]] = []
    for t in reversed(trades):
        d = t.get("detail") or {}
        if any(d.get(k) is None for k in _NEEDED) or not float(d["qty"]) or not float(d["entry_price"]):
            skipped["incomplete_detail"] += 1
            continue
        if strategy is not None and d["strategy_id"] != strategy:
            continue
        usable.append(t)
        wanted.setdefault((t["run_id"], d["strategy_id"], t["symbol"]), []).append(int(d["signal_ts_ms"]))
    features: dict[tuple[str, str, str, int], Mapping[str, Any] | None] = {}
    for (run, strat, sym), ts_list in wanted.items():
        for e in await store.score_events_at(run, strat, sym, ts_list):
            features[(run, strat, sym, int(e["ts_ms"]))] = e.get("features")
    out = []
    for t in usable:
        d = {**t["detail"], "symbol": t["symbol"]}
        snap = features.get((t["run_id"], d["strategy_id"], t["symbol"], int(d["signal_ts_ms"])))
        if snap is None:
            skipped["no_signal_snapshot"] += 1  # still analysed: mid = signal price, spread unknown
        c = trade_cost(d, snap, cfg)
        c["trade_id"], c["run_id"] = t["trade_id"], t["run_id"]
        out.append(c)
    return out, skipped


def cost_report(costs: Sequence[Mapping[str, Any]], skipped: Mapping[str, int],
                config: CostConfig | None = None) -> dict[str, Any]:
    """Summary, breakdowns by symbol / hour / exit type, maker-ratio and friction trends, cost table."""
    cfg = config or CostConfig()
    times = [int(c["entry_ms"]) for c in costs]
    span = (max(times) - min(times)) if times else 0
    period = cfg.trend_period_ms or (DAY_MS if span >= 3 * DAY_MS else HOUR_MS)

    def breakdown(key: str) -> dict[str, Any]:
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for c in costs:
            groups.setdefault(str(c[key]), []).append(c)
        return {k: {**_stats(v), **_maker_ratios(v)} for k, v in sorted(groups.items())}

    trend: dict[int, list[Mapping[str, Any]]] = {}
    for c in costs:
        trend.setdefault(int(c["entry_ms"]) // period * period, []).append(c)
    return {
        "trades": len(costs), "skipped": dict(sorted(skipped.items())), "config": cfg.model_dump(mode="json"),
        "summary": {**_stats(costs), **_maker_ratios(costs)},
        "by_symbol": breakdown("symbol"), "by_hour": breakdown("hour"), "by_exit_type": breakdown("exit_type"),
        "by_strategy": breakdown("strategy"),
        "trend_period_ms": period,
        "trends": [{"start_ms": k, "trades": len(v), **_maker_ratios(v),
                    "realised_bps": float(np.mean([c["realised_bps"] for c in v]))}
                   for k, v in sorted(trend.items())],
        "cost_table": CostTable.from_costs(costs).to_dict(),
    }
