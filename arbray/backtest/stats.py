"""Statistics and KPIs of a backtest, per strategy and overall (digest §5.4 and §6.4).

Input is the list of trade records (``trade_record``) and the equity series. A win is
``net_r > 0``; profit factor is Σ wins / |Σ losses| in R; drawdown is measured on the cumulative
net R in close order (and in % on the equity series); Sharpe and Sortino use daily (UTC) net R
sums, annualised with √365.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from arbray.execution.machine import PositionMachine

DAY_MS = 86_400_000
SCORE_BANDS: tuple[tuple[float, str], ...] = ((90.0, "90+"), (80.0, "80-90"), (70.0, "70-80"), (60.0, "60-70"),
                                               (float("-inf"), "<60"))
"""Score bands for the breakdown: (lower bound, label), highest first."""


def score_band(score: float) -> str:
    return next(label for lo, label in SCORE_BANDS if score >= lo)


def _clean(x: float | None) -> float | None:
    """Drop binary noise from sums of step-sized quantities and averaged prices (10 decimals)."""
    return None if x is None else round(x, 10)


def trade_record(m: PositionMachine) -> dict[str, Any]:
    """The ``trades.jsonl`` record of a finished machine."""
    p = m.pos
    slip_quote = (p.avg_entry - p.signal_price) * p.side * p.entry_qty
    # a position closed while its entry was still working (a risk exit) never reached "open": its entry
    # time is that of its first entry fill
    entry_ts = p.opened_ms if p.opened_ms is not None else next((f.ts_ms for f in p.fills if f.side == p.side), None)
    return {
        "position_id": p.position_id, "strategy_id": p.strategy_id, "symbol": p.symbol,
        "direction": "LONG" if p.side > 0 else "SHORT", "score": p.score, "tier": p.tier,
        "signal_ts_ms": p.signal_ts_ms, "entry_ts_ms": entry_ts, "exit_ts_ms": p.closed_ms,
        "signal_price": p.signal_price, "entry_price": _clean(p.avg_entry), "exit_price": _clean(p.avg_exit),
        "qty": _clean(p.entry_qty),
        "risk_usd": p.risk_usd, "risk_distance": p.risk_distance, "exit_reason": p.exit_reason,
        "gross_r": p.r(p.price_pnl), "fees_r": p.r(p.fees), "funding_r": p.r(p.funding), "net_r": p.r(p.net_pnl),
        "pnl_quote": p.net_pnl, "fees": p.fees, "funding": p.funding,
        "entry_maker_qty": _clean(p.entry_maker_qty), "tp_maker_qty": _clean(p.tp_maker_qty),
        "tp_taker_qty": _clean(p.tp_taker_qty),
        "entry_slippage_r": p.r(slip_quote), "entry_timed_out": m.entry_timed_out,
        "tp_legs_crossed": sum(1 for g in m.legs if g.cross_ts is not None or g.filled > 0),
        "tp_legs_fallback": sum(1 for g in m.legs if g.fallback),
        "fills": len(p.fills),
    }


def _pf(wins: float, losses: float) -> float | None:
    return wins / losses if losses > 0 else None


def core_stats(trades: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """R statistics of a set of trades (no breakdowns)."""
    n = len(trades)
    net = [t["net_r"] for t in trades]
    wins = [x for x in net if x > 0]
    losses = [x for x in net if x <= 0]
    avg_win = sum(wins) / len(wins) if wins else None
    avg_loss = sum(losses) / len(losses) if losses else None
    peak = cum = mdd = 0.0
    for x in net:
        cum += x
        peak = max(peak, cum)
        mdd = max(mdd, peak - cum)
    return {
        "trades": n,
        "win_rate": len(wins) / n if n else None,
        "gross_r": sum(t["gross_r"] for t in trades),
        "fees_r": sum(t["fees_r"] for t in trades),
        "funding_r": sum(t["funding_r"] for t in trades),
        "net_r": sum(net),
        "profit_factor": _pf(sum(wins), -sum(losses)),
        "avg_win_r": avg_win,
        "avg_loss_r": avg_loss,
        "payoff": avg_win / -avg_loss if avg_win is not None and avg_loss else None,
        "max_drawdown_r": mdd,
    }


def _daily_ratios(trades: Sequence[dict[str, Any]]) -> tuple[float | None, float | None]:
    days: dict[int, float] = defaultdict(float)
    for t in trades:
        days[(t["exit_ts_ms"] or 0) // DAY_MS] += t["net_r"]
    if len(days) < 2:
        return None, None
    lo, hi = min(days), max(days)
    series = [days.get(d, 0.0) for d in range(lo, hi + 1)]
    mean = sum(series) / len(series)
    sd = math.sqrt(sum((x - mean) ** 2 for x in series) / (len(series) - 1))
    down = [min(0.0, x) for x in series]
    dd = math.sqrt(sum(x * x for x in down) / len(series))
    ann = math.sqrt(365)
    return (mean / sd * ann if sd > 0 else None), (mean / dd * ann if dd > 0 else None)


def _breakdown(trades: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in trades:
        groups[key(t)].append(t)
    return {k: {x: core_stats(v)[x] for x in ("trades", "win_rate", "net_r", "fees_r")}
            for k, v in sorted(groups.items())}


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def execution_kpis(trades: Sequence[dict[str, Any]], flips: int) -> dict[str, Any]:
    """Maker ratios, friction, entry timeout and TP overshoot rates, flips per position."""
    n = len(trades)
    entry_qty = sum(t["qty"] for t in trades)
    tp_q = sum(t["tp_maker_qty"] + t["tp_taker_qty"] for t in trades)
    crossed = sum(t["tp_legs_crossed"] for t in trades)
    return {
        "maker_ratio_entry": _ratio(sum(t["entry_maker_qty"] for t in trades), entry_qty),
        "maker_ratio_tp": _ratio(sum(t["tp_maker_qty"] for t in trades), tp_q),
        "friction_r": (sum(t["fees_r"] + t["entry_slippage_r"] for t in trades) / n) if n else None,
        "entry_timeout_rate": _ratio(sum(1 for t in trades if t["entry_timed_out"]), n),
        "tp_overshoot_rate": _ratio(sum(t["tp_legs_fallback"] for t in trades), crossed),
        "flips_per_position": _ratio(flips, n),
    }


def equity_drawdown_pct(equity: Sequence[tuple[int, str, float, float]], strategy_id: str | None) -> float:
    """Largest peak-to-trough fall of the equity series in % (summed over strategies when None)."""
    by_ts: dict[int, float] = defaultdict(float)
    for ts, sid, _, eq in equity:
        if strategy_id is None or sid == strategy_id:
            by_ts[ts] += eq
    peak, mdd = 0.0, 0.0
    for ts in sorted(by_ts):
        v = by_ts[ts]
        peak = max(peak, v)
        if peak > 0:
            mdd = max(mdd, (peak - v) / peak * 100)
    return mdd


def full_stats(trades: Sequence[dict[str, Any]], flips: int, span_ms: int,
               equity: Sequence[tuple[int, str, float, float]], strategy_id: str | None) -> dict[str, Any]:
    """Core stats, risk ratios, exposure, breakdowns and execution KPIs."""
    out = core_stats(trades)
    out["sharpe"], out["sortino"] = _daily_ratios(trades)
    out["max_drawdown_pct"] = equity_drawdown_pct(equity, strategy_id)
    held = sum(t["exit_ts_ms"] - t["entry_ts_ms"] for t in trades
               if t["exit_ts_ms"] is not None and t["entry_ts_ms"] is not None)
    out["exposure"] = held / span_ms if span_ms > 0 else None
    out.update(execution_kpis(trades, flips))
    out["by_symbol"] = _breakdown(trades, lambda t: t["symbol"])
    out["by_direction"] = _breakdown(trades, lambda t: t["direction"])
    out["by_hour"] = _breakdown(trades, lambda t: f"{(t['entry_ts_ms'] or 0) // 3_600_000 % 24:02d}")
    out["by_score_band"] = _breakdown(trades, lambda t: score_band(t["score"]))
    out["by_exit_reason"] = _breakdown(trades, lambda t: str(t["exit_reason"]))
    return out
