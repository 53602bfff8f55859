"""A backtest journals into both real backends, and the read models see it like a live run."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from arbray.backtest.engine import Backtest, BacktestConfig
from arbray.backtest.journal import ScoreCollector, journal_backtest, strategy_uuid
from arbray.backtest.output import write_outputs
from arbray.scoring.presets import load_presets
from arbray.storage import open_store
from tests.integration.storage_backends import dsn, make_dsn, pg_database, run
from tests.unit.backtest.synth import records, synth_trades

__all__ = ["dsn", "make_dsn", "pg_database"]  # the storage fixtures, both backends
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def backtest(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, ScoreCollector, Path]:
    configs = [c for c in load_presets() if c.strategy_id in ("v53", "BTC_CVD15mx1h_TPbalanced", "v51_baseline")]
    collector = ScoreCollector()
    res = Backtest(configs, BacktestConfig(), score_sink=collector).run([records(*synth_trades(hours=4))])
    out = tmp_path_factory.mktemp("bt")
    write_outputs(res, out)
    return res, collector, out


def test_backtest_journal_matches_outputs_and_is_idempotent(
    dsn: str, backtest: tuple[object, ScoreCollector, Path]
) -> None:
    res, collector, out = backtest
    trades = [orjson.loads(x) for x in (out / "trades.jsonl").read_bytes().splitlines()]
    signals = (out / "signals.jsonl").read_bytes().splitlines()
    assert trades and len(collector) > 0

    async def go() -> None:
        store = await open_store(dsn)
        try:
            counts = await journal_backtest(store, res, collector, "bt-test")  # type: ignore[arg-type]
            assert counts["trades"] == len(trades) and counts["signals"] == len(signals)
            assert counts["score_events"] == len(collector)
            again = await journal_backtest(store, res, collector, "bt-test")  # type: ignore[arg-type]
            assert again["trades"] == again["fills"] == again["signals"] == 0  # nothing written twice
            page = await store.trades(run_id="bt-test", limit=1000)
            assert len(page.rows) == len(trades) and page.next_cursor is None
            sid = strategy_uuid("bt-test", trades[0]["strategy_id"])
            own = [t for t in trades if t["strategy_id"] == trades[0]["strategy_id"]]
            stats = await store.strategy_stats(sid)
            assert stats["trades"] == len(own)
            assert (await store.get_strategy(sid) or {})["slug"] == f"{trades[0]['strategy_id']}@bt-test"
            scores = await store.score_history("v53", run_id="bt-test", limit=100_000)
            assert len(scores) == sum(1 for _, rs in collector.batches for r in rs if r.strategy_id == "v53")
        finally:
            await store.close()

    run(go())
