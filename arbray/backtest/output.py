"""The backtest output folder: summary.json, trades.jsonl, signals.jsonl, equity.csv, report.html.

Files are written in a fixed order from sorted data with orjson, so two runs of the same input
and configuration produce byte-identical trades.jsonl and signals.jsonl.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import orjson

from arbray.backtest.engine import BacktestResult
from arbray.backtest.stats import full_stats, trade_record


def summarize(res: BacktestResult, trades: list[dict[str, Any]]) -> dict[str, Any]:
    """Overall and per-strategy statistics, config hashes and data ranges."""
    firsts = [a for a, _ in res.symbols.values() if a is not None]
    lasts = [b for _, b in res.symbols.values() if b is not None]
    span = (max(lasts) - min(firsts)) if firsts and lasts else 0
    flips = sum(ex.flips for ex in res.executors.values())
    overall = full_stats(trades, flips, span, res.equity, None)
    per = {}
    for sid, ex in res.executors.items():
        own = [t for t in trades if t["strategy_id"] == sid]
        st = full_stats(own, ex.flips, span, res.equity, sid)
        st["final_balance"] = ex.account.balance
        st["skips"] = dict(sorted(ex.counters.items()))
        st["risk_history"] = [list(h) for h in res.risks[sid].history]
        per[sid] = st
    return {
        **overall,
        "config_hashes": {"backtest": res.config.config_hash,
                          **{c.strategy_id: c.config_hash for c in res.strategies}},
        "data_ranges": {s: {"first_ts_ms": a, "last_ts_ms": b} for s, (a, b) in res.symbols.items()},
        "replay": res.replay.to_dict(),
        "trades_processed": res.trades_processed,
        "engine_events": res.events_processed,
        "signals": len(res.signals),
        "by_strategy": per,
    }


def write_outputs(res: BacktestResult, out: Path) -> dict[str, Any]:
    """Write the output folder and return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    trades = [trade_record(m) for m in res.machines()]
    with (out / "trades.jsonl").open("wb") as fh:
        for t in trades:
            fh.write(orjson.dumps(t) + b"\n")
    with (out / "signals.jsonl").open("wb") as fh:
        for s in res.signals:
            fh.write(orjson.dumps(s) + b"\n")
    with (out / "equity.csv").open("w", encoding="ascii") as fh:
        fh.write("ts_ms,strategy_id,balance,equity\n")
        for ts, sid, bal, eq in res.equity:
            fh.write(f"{ts},{sid},{bal:.6f},{eq:.6f}\n")
    summary = summarize(res, trades)
    (out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    (out / "report.html").write_text(render_report(summary, res.equity), encoding="utf-8")
    return summary


def _polyline(points: list[tuple[float, float]], w: int, h: int, color: str) -> str:
    if len(points) < 2:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (w - 20) / (x1 - x0 or 1)
    sy = (h - 20) / (y1 - y0 or 1)
    pts = " ".join(f"{10 + (x - x0) * sx:.1f},{h - 10 - (y - y0) * sy:.1f}" for x, y in points)
    return (f'<svg width="{w}" height="{h}" style="border:1px solid #ccc"><polyline fill="none" stroke="{color}" '
            f'stroke-width="1.5" points="{pts}"/><text x="12" y="14" font-size="11">{y1:.2f}</text>'
            f'<text x="12" y="{h - 12}" font-size="11">{y0:.2f}</text></svg>')


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))


def _table(title: str, rows: dict[str, dict[str, Any]]) -> str:
    if not rows:
        return f"<h3>{html.escape(title)}</h3><p>none</p>"
    cols = list(next(iter(rows.values())))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(f"<tr><td>{html.escape(k)}</td>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in cols) + "</tr>"
                   for k, r in rows.items())
    return f"<h3>{html.escape(title)}</h3><table><tr><th></th>{head}</tr>{body}</table>"


_KEYS = ("trades", "win_rate", "gross_r", "fees_r", "funding_r", "net_r", "profit_factor", "payoff",
         "max_drawdown_r", "max_drawdown_pct", "sharpe", "sortino", "exposure", "maker_ratio_entry",
         "maker_ratio_tp", "friction_r", "entry_timeout_rate", "tp_overshoot_rate", "flips_per_position")


def render_report(summary: dict[str, Any], equity: list[tuple[int, str, float, float]]) -> str:
    """A self-contained HTML page: headline numbers, equity and drawdown curves, breakdown tables."""
    total: dict[int, float] = {}
    for ts, _, _, eq in equity:
        total[ts] = total.get(ts, 0.0) + eq
    curve = sorted(total.items())
    peak, dd = float("-inf"), []
    for ts, v in curve:
        peak = max(peak, v)
        dd.append((float(ts), v - peak))
    head = "".join(f"<tr><td>{k}</td><td>{_fmt(summary.get(k))}</td></tr>" for k in _KEYS)
    per = {sid: {k: s.get(k) for k in ("trades", "win_rate", "net_r", "fees_r", "profit_factor", "max_drawdown_r")}
           for sid, s in summary["by_strategy"].items()}
    tables = "".join(_table(f"By {name.replace('by_', '').replace('_', ' ')}", summary[name])
                     for name in ("by_exit_reason", "by_symbol", "by_direction", "by_score_band", "by_hour"))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>arbray backtest</title><style>"
        "body{font-family:sans-serif;margin:20px}table{border-collapse:collapse;margin-bottom:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px;text-align:right}</style></head><body>"
        "<h1>arbray backtest</h1><table>" + head + "</table>"
        "<h3>Equity (all strategies, quote)</h3>" + _polyline([(float(t), v) for t, v in curve], 900, 220, "#1565c0")
        + "<h3>Drawdown (quote)</h3>" + _polyline(dd, 900, 160, "#c62828")
        + _table("By strategy", per) + tables + "</body></html>"
    )
