"""The market-wide scan: factors for every symbol, a model score each, one ranking.

Symbols are grouped into panels of equal bar count and timeframe so every factor runs vectorised
over the whole panel. ``score_shard`` is the unit of work (pure, picklable in and out) that the
in-process scan and the Ray scan (``arbray.actors.screen``) both call; ``rank`` orders the union.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from arbray.screener.data import SymbolKlines
from arbray.screener.factors import compute_factors
from arbray.screener.models import AtsConfig, ModelResult, ShortGridConfig, ats_v2, short_grid

ModelName = Literal["ats_v2", "short_grid"]
MIN_COMPUTE_BARS = 60
"""Below this the longest fixed factor windows (50-bar regression, 25-bar volume, 14-bar ATR) do not fit."""


@dataclass(frozen=True)
class References:
    """BTC and ETH series per timeframe, for β/ρ (the I factor)."""

    by_timeframe: dict[str, tuple[SymbolKlines | None, SymbolKlines | None]]

    @classmethod
    def from_universe(cls, symbols: Sequence[SymbolKlines], bars: int) -> References:
        out: dict[str, tuple[SymbolKlines | None, SymbolKlines | None]] = {}
        for tf in {s.timeframe for s in symbols}:
            btc = next((s.tail(bars) for s in symbols if s.symbol == "BTCUSDT" and s.timeframe == tf), None)
            eth = next((s.tail(bars) for s in symbols if s.symbol == "ETHUSDT" and s.timeframe == tf), None)
            out[tf] = (btc, eth)
        return cls(out)


def score_shard(symbols: Sequence[SymbolKlines], model: ModelName, refs: References, bars: int = 300,
                ats: AtsConfig | None = None, grid: ShortGridConfig | None = None) -> list[dict[str, Any]]:
    """Factors and model output for one shard of symbols, as unranked result rows."""
    ats = ats or AtsConfig()
    grid = grid or ShortGridConfig()
    groups: dict[tuple[str, int], list[SymbolKlines]] = {}
    rows: list[dict[str, Any]] = []
    for s in symbols:
        n = min(bars, s.bars)
        if n < MIN_COMPUTE_BARS:
            rows.append(_row(s, ModelResult(s.symbol, None, {}, [], f"excluded: {n} bars < {MIN_COMPUTE_BARS}",
                                            excluded="min_bars"), {}))
            continue
        groups.setdefault((s.timeframe, n), []).append(s.tail(n))
    for (tf, n), panel in groups.items():
        btc, eth = refs.by_timeframe.get(tf, (None, None))
        factors, missing = compute_factors(panel, btc, eth)
        for i, s in enumerate(panel):
            f = {k: float(v[i]) for k, v in factors.items()}
            res = (ats_v2(s.symbol, f, missing[i], ats) if model == "ats_v2"
                   else short_grid(s.symbol, tf, n, f, missing[i], grid))
            rows.append(_row(s, res, f))
    return rows


def _row(s: SymbolKlines, res: ModelResult, f: dict[str, float]) -> dict[str, Any]:
    return {
        "symbol": s.symbol, "timeframe": s.timeframe, "rank": None, "score": res.score,
        "factors": {k: (v if math.isfinite(v) else None) for k, v in f.items()},
        "components": res.components, "missing": res.missing, "explanation": res.explanation,
        "rank_key": res.extra.get("rank_key"), "probability_up": res.extra.get("probability_up"),
        "mode": res.extra.get("mode"), "excluded": res.excluded,
    }


def rank(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ranked, excluded): rows with a score sorted by rank key (GSS, or |score| for ats_v2) descending,
    ties by symbol; ranks start at 1. Excluded or unscorable rows come back separately."""
    ok = [r for r in rows if r["excluded"] is None and r["rank_key"] is not None]
    out = sorted(ok, key=lambda r: (-r["rank_key"], r["symbol"], r["timeframe"]))
    ranked = [{**{k: v for k, v in r.items() if k not in ("rank_key", "excluded")}, "rank": i + 1}
              for i, r in enumerate(out)]
    excluded = [r for r in rows if r["excluded"] is not None or r["rank_key"] is None]
    return ranked, excluded


def shards(symbols: Sequence[SymbolKlines], n: int) -> list[list[SymbolKlines]]:
    """``n`` contiguous, near-equal shards (many symbols per shard); empty shards are dropped."""
    size = max(1, math.ceil(len(symbols) / max(1, n)))
    return [list(symbols[i:i + size]) for i in range(0, len(symbols), size)]


def scan(symbols: Sequence[SymbolKlines], model: ModelName, bars: int = 300, ats: AtsConfig | None = None,
         grid: ShortGridConfig | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The whole universe in this process: (ranked results, excluded rows)."""
    refs = References.from_universe(symbols, bars)
    return rank(score_shard(symbols, model, refs, bars, ats, grid))
