"""``ScreenerService`` over a kline cache core and a real store (SQLite and PostgreSQL): aligned ticks on
an injected clock, ranked runs journalled (migration 0007) and read back, failures counted not fatal."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from arbray.clock import ManualClock
from arbray.screener.backfill import BackfillConfig, parse_klines
from arbray.screener.cache import KlineCacheConfig, KlineCacheCore
from arbray.screener.data import SymbolKlines
from arbray.screener.models import AtsConfig, ShortGridConfig
from arbray.screener.scan import ModelName, scan
from arbray.screener.service import ScreenerConfig, ScreenerService
from arbray.screener.synth import synthetic_universe
from arbray.storage import open_store
from tests.integration.storage_backends import dsn, make_dsn, pg_database, run

pytestmark = pytest.mark.integration
__all__ = ["dsn", "make_dsn", "pg_database"]
T0 = 1_767_225_600_000


def filled_core(n: int = 12, bars: int = 300) -> KlineCacheCore:
    """A cache core backfilled with a synthetic universe (as REST rows), ready to scan."""
    core = KlineCacheCore([s.symbol for s in synthetic_universe(n)],
                          KlineCacheConfig(backfill=BackfillConfig(bars=bars)), ManualClock(T0))
    for s in synthetic_universe(n, bars=bars + 1):
        assert s.taker_buy is not None
        rows = [[int(t), str(o), str(h), str(lo), str(c), str(v), int(t) + 299_999, str(v * c), 1, str(tb), "0", "0"]
                for t, o, h, lo, c, v, tb in zip(s.ts_ms, s.open, s.high, s.low, s.close, s.volume, s.taker_buy,
                                                 strict=True)]
        core.merge(s.symbol, "5m", parse_klines("5m", rows, Counter()), known_ms=None)
    return core


def test_ticks_are_aligned_and_runs_are_journalled(dsn: str) -> None:
    async def go() -> None:
        store = await open_store(dsn)
        try:
            clock = ManualClock(T0 + 12_345)

            async def sleep(s: float) -> None:
                clock.set(clock.now_ms() + int(s * 1000))

            core = filled_core()
            svc = ScreenerService(core, ScreenerConfig(interval_s=60, store_top=5), store, clock, sleep=sleep)
            await svc.run(ticks=2)
            assert svc.counts == {"runs:ats_v2": 2, "runs:short_grid": 2} and svc.failures == {}
            latest = svc.latest_result("short_grid", limit=3)
            assert latest is not None and latest["started_ms"] == T0 + 120_000  # second aligned tick
            want, _ = scan(core.panel("5m", 300), "short_grid", 300)
            assert [r["symbol"] for r in latest["results"]] == [r["symbol"] for r in want[:3]]
            runs = await store.screen_runs()
            assert [r["model"] for r in runs.rows] == ["short_grid", "ats_v2", "short_grid", "ats_v2"]
            assert runs.rows[0]["symbols"] == 12 and runs.rows[0]["ranked"] == 12
            assert runs.rows[0]["config"]["short_grid"]["w_volatility"] == 0.4
            page = await store.screen_runs("ats_v2", limit=1)
            assert len(page.rows) == 1 and page.next_cursor is not None
            older = await store.screen_runs("ats_v2", limit=1, cursor=page.next_cursor)
            assert older.rows[0]["started_ms"] == T0 + 60_000 and older.next_cursor is None
            stored = await store.latest_screen_run("ats_v2")
            assert stored is not None and len(stored["results"]) == 5  # store_top
            top = stored["results"][0]
            mem = svc.latest_result("ats_v2")
            assert mem is not None and top["symbol"] == mem["results"][0]["symbol"] and top["rank"] == 1
            assert top["score"] == pytest.approx(mem["results"][0]["score"])
            assert top["factors"]["natr"] == pytest.approx(mem["results"][0]["factors"]["natr"])
            assert top["factors"]["spread_bps"] is None and "order_book" in top["missing"]
            assert top["explanation"].startswith("hybrid→V1") and top["mode"] == "v1"
            assert await store.latest_screen_run("nope") is None
            counts = await store.row_counts()
            assert counts["screen_runs"] == 4 and counts["screen_results"] == 20
            deleted = await store.apply_retention(T0 + 31 * 86_400_000)
            assert deleted["screen_results"] == 20 and deleted["screen_runs"] == 4
        finally:
            await store.close()

    run(go())


def test_not_ready_skips_and_failures_are_counted() -> None:
    async def go() -> None:
        empty = KlineCacheCore(["BTCUSDT"], KlineCacheConfig(), ManualClock(T0))
        svc = ScreenerService(empty, ScreenerConfig(), None, ManualClock(T0))
        assert await svc.run_once() == {} and svc.counts["skipped_not_ready"] == 1

        def broken(symbols: Sequence[SymbolKlines], model: ModelName, bars: int, ats: AtsConfig,
                   grid: ShortGridConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            if model == "ats_v2":
                raise RuntimeError("boom")
            return scan(symbols, model, bars, ats, grid)

        class DownStore:
            async def insert_screen_run(self, run: Any, results: Any) -> int:
                raise ConnectionError("journal down")

        svc2 = ScreenerService(filled_core(4), ScreenerConfig(min_symbols=2), DownStore(),  # type: ignore[arg-type]
                               ManualClock(T0), scan_fn=broken)
        out = await svc2.run_once()
        assert list(out) == ["short_grid"] and out["short_grid"]["id"] is None
        assert len(out["short_grid"]["results"]) == 4
        assert svc2.failures == {"scan:ats_v2:RuntimeError": 1, "store:ConnectionError": 1}
        few = ScreenerService(filled_core(4), ScreenerConfig(min_symbols=10), None, ManualClock(T0))
        assert await few.run_once() == {} and few.counts["skipped_few_symbols"] == 1
        assert few.next_tick_ms(T0 + 1) == T0 + 60_000

    run(go())


def test_config_rules() -> None:
    with pytest.raises(ValueError, match="not a cache interval"):
        ScreenerConfig(timeframe="1h")
    with pytest.raises(ValueError, match="exceeds what the cache keeps"):
        ScreenerConfig(bars=400)
    with pytest.raises(ValueError, match="unique"):
        ScreenerConfig(models=("ats_v2", "ats_v2"))
