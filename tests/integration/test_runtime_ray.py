"""The runtime on a real local Ray: parity with the backtest, the full pipeline, and crash recovery.

Each run launches the real actors (Journal, Strategy, PositionManager, RiskGuard, SymbolState, the
simulator) in the ``arbray`` namespace, replays a recording through the simulator's WebSocket and
REST at ``max`` speed with the real feed client, and is compared with ``Backtest`` on the same file.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.runtime_support import EAGER, backtest, backtest_view, generated_recording, journal_view

pytestmark = pytest.mark.integration
ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[2]
REAL = REPO / "arbray" / "data" / "btcusdt_20240719.gz"


@pytest.fixture(scope="module")
def ray_up() -> Iterator[None]:
    from arbray.actors.run import start_ray

    owns, _ = start_ray(None, 2, dashboard=False, metrics_port=None)
    yield
    if owns:
        ray.shutdown()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_recording(tmp_path_factory.mktemp("gen") / "btcusdt_sim.gz", hours=2.0, seed=11)


@pytest.fixture(scope="module")
def eager_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("strategies") / "eager_btc.yaml"
    p.write_text(yaml.safe_dump(EAGER), encoding="utf-8")
    return p


def replay_config(path: Path, strategies: list[str], **over: Any) -> Any:
    import argparse

    from arbray.cli_run import build_config, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    argv = ["run", "--replay", str(path), "--speed", "max", "--symbols", "BTCUSDT", "--no-api"]
    for s in strategies:
        argv += ["--strategy", s]
    cfg = build_config(parser.parse_args(argv))
    return cfg.model_copy(update=over) if over else cfg


async def _open(dsn: str) -> Any:
    from arbray.storage import open_store

    return await open_store(dsn, migrate=False)


def run_replay(cfg: Any, dsn: str, crash: list[tuple[float, str]] | None = None) -> tuple[dict[str, Any], Any]:
    """Launch, wait for the replay to drain (killing actors at the given shares of the file), stop."""
    from arbray.actors.control import ActorRuntimeControl
    from arbray.actors.run import final_summary, launch, replay_drained, stop, stop_feeds

    from arbray.runtime.control import RuntimeUnavailable

    async def go() -> tuple[dict[str, Any], Any]:
        run = await launch(cfg, dsn)
        control = ActorRuntimeControl("arbray")
        pending = sorted(crash or [])
        total = sum(1 for _ in _lines(cfg.sim.replay))
        deadline = time.monotonic() + 600
        try:
            while time.monotonic() < deadline:
                try:
                    if pending:
                        done = (await control.stats())["messages"] / total
                        while pending and done >= pending[0][0]:
                            _, name = pending.pop(0)
                            ray.kill(run.handles[name], no_restart=False)  # Ray restarts it: no suppression
                    if not pending and await replay_drained(run, control, quiet_s=1.5):
                        break
                except RuntimeUnavailable:  # an actor is restarting
                    pass
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the replay did not drain within 600 s")
            await stop_feeds(run)
            summary = await final_summary(run, "test")
        finally:
            await stop(run)
        store = await _open(dsn)
        try:
            view = await journal_view(store)
        finally:
            await store.close()
        return summary, view
    return asyncio.run(go())


def _lines(path: str) -> Iterator[bytes]:
    import gzip

    with gzip.open(path, "rb") as fh:
        yield from fh


def _feature_diffs(got: dict[Any, dict[str, Any]], want: dict[Any, dict[str, Any]]) -> list[Any]:
    """Every (snapshot, field, runtime value, backtest value) that differs, and snapshots only one side has."""
    out: list[Any] = [(k, "missing in the runtime") for k in want.keys() - got.keys()]
    out += [(k, "not in the backtest") for k in got.keys() - want.keys()]
    for k in sorted(got.keys() & want.keys()):
        a, b = got[k], want[k]
        out += [(k, f, a.get(f), b.get(f)) for f in sorted(a.keys() | b.keys()) if a.get(f) != b.get(f)]
    return out


def _until(view: dict[str, Any]) -> int:
    return max(k[2] for k in view["scores"])


def test_replay_of_a_real_recording_equals_its_backtest(ray_up: None, tmp_path: Path) -> None:
    cfg = replay_config(REAL, ["BTC_CVD5mx30m_TPaggressive", "v53", "v51_baseline"])
    from arbray.runtime.local import run_strategies

    summary, view = run_replay(cfg, f"sqlite:///{tmp_path / 'j.db'}")
    res, coll = backtest(REAL, run_strategies(cfg))
    ref = backtest_view(res, coll, _until(view))
    assert summary["rejects"] == 0 and summary["book_resyncs"] == 0
    assert view["scores"] == ref["scores"] and len(ref["scores"]) > 0
    assert _feature_diffs(view["features"], ref["features"]) == []  # every snapshot, field for field
    assert view["signals"] == ref["signals"]


@pytest.fixture(scope="module")
def generated_run(ray_up: None, generated: Path, eager_file: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cfg = replay_config(generated, [str(eager_file), "v51_baseline", "BTC_CVD5mx30m_TPaggressive"])
    from arbray.runtime.local import run_strategies

    summary, view = run_replay(cfg, f"sqlite:///{tmp_path_factory.mktemp('run') / 'j.db'}")
    res, coll = backtest(generated, run_strategies(cfg))
    return {"cfg": cfg, "summary": summary, "view": view, "ref": backtest_view(res, coll, _until(view)),
            "bt_trades": res.trades_processed}


def test_full_pipeline_journals_features_scores_orders_and_trades(generated_run: dict[str, Any]) -> None:
    c = generated_run["view"]["counts"]
    assert c["score_events"] > 0 and c["signals"] > 0 and c["orders"] > 0 and c["fills"] > 0
    assert c["trades"] > 0 and c["positions"] > 0
    assert c["agg_trades"] == generated_run["bt_trades"]  # every trade recorded, once
    assert generated_run["view"]["duplicate_agg_trades"] == 0


def test_replay_of_a_generated_recording_equals_its_backtest(generated_run: dict[str, Any]) -> None:
    view, ref = generated_run["view"], generated_run["ref"]
    assert _feature_diffs(view["features"], ref["features"]) == []
    assert view["scores"] == ref["scores"]
    assert view["signals"] == ref["signals"]
    assert view["trades"] == ref["trades"]


def test_killing_the_position_manager_mid_run_loses_and_duplicates_nothing(
        generated_run: dict[str, Any], tmp_path: Path) -> None:
    summary, view = run_replay(generated_run["cfg"], f"sqlite:///{tmp_path / 'j.db'}",
                               crash=[(0.3, "position_manager"), (0.7, "position_manager")])
    base = generated_run["view"]
    assert summary["actor_restarts"] >= 2
    assert view["signals"] == base["signals"]
    assert view["trades"] == base["trades"]
    assert view["counts"]["orders"] == base["counts"]["orders"]
    assert view["counts"]["fills"] == base["counts"]["fills"]


def test_killing_the_symbol_state_mid_run_loses_and_duplicates_nothing(
        generated_run: dict[str, Any], tmp_path: Path) -> None:
    """The restarted SymbolState re-warms from the journal's trades, fills the rest by REST and
    re-emits every boundary the PositionManager had not applied: no trade is lost or doubled and the
    same signals come out. What a restart cannot bring back is the top of book and mark price during
    the outage (the simulator, at max speed, ran on without a reader), so an entry's maker price may
    differ: those snapshots say so (quality ``gap_filled``) and trades are compared by their signal."""
    summary, view = run_replay(generated_run["cfg"], f"sqlite:///{tmp_path / 'j.db'}",
                               crash=[(0.4, "symbol_state_0")])
    base = generated_run["view"]
    assert summary["actor_restarts"] >= 1
    assert view["counts"]["agg_trades"] == base["counts"]["agg_trades"]  # re-warmed from the journal + REST fill
    assert view["duplicate_agg_trades"] == 0
    assert view["scores"].keys() == base["scores"].keys()  # every boundary, once
    assert view["signals"] == base["signals"]
    assert sorted(t[:4] for t in view["trades"]) == sorted(t[:4] for t in base["trades"])  # same trades, by signal
    restored = [f for f in view["features"].values() if "gap_filled" in f["quality"]]
    print(f"symbol state restart: {len(restored)} snapshots flagged gap_filled; trades differing in execution: "
          f"{sorted(set(view['trades']) ^ set(base['trades']))}")


def test_hot_reload_halt_and_emergency_close_on_the_simulator(ray_up: None, tmp_path: Path) -> None:
    """On the live simulator (10× speed, 15 s cycles of market time): a config edited in the journal is
    scored from the next cycle on; block-new stops new entries within a cycle; emergency close flattens
    every position. Times are compared in market time (the simulator's clock). The run's screener actor
    scans the simulator's universe from its kline cache (every 5 s of wall time) into the journal."""
    import argparse

    from arbray.actors.control import ActorRuntimeControl
    from arbray.actors.run import launch, stop

    from arbray.cli_run import build_config, register
    from arbray.runtime.strategies import live_uuid
    from arbray.scoring.registry import parse_config
    from arbray.storage.records import StrategyRecord

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    cfg = build_config(parser.parse_args(["run", "--symbols", "BTCUSDT", "--every", "15s", "--no-api",
                                          "--screen-every", "5s",
                                          "--speed", "10", "--history-hours", "6", "--strategy", "sim_demo_btc",
                                          "--strategy", "BTC_CVD5mx30m_TPaggressive"]))
    dsn = f"sqlite:///{tmp_path / 'j.db'}"

    async def scores_of(store: Any, name: str, since: int) -> list[dict[str, Any]]:
        async with store.connection() as c:
            return await c.fetch("SELECT ts_ms, config_hash FROM score_events WHERE strategy = ? AND ts_ms >= ? "
                                 "ORDER BY ts_ms", (name, since))

    async def wait(check: Any, timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = await check()
            if got:
                return got
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    async def go() -> None:
        run = await launch(cfg, dsn)
        control = ActorRuntimeControl("arbray")
        store = await _open(dsn)

        async def market_ms() -> int:
            return int((await run.handles["sim_exchange"].state.remote())["market_ms"])
        try:
            # --- hot reload: an edit in the journal is scored within one cycle
            name = "BTC_CVD5mx30m_TPaggressive"
            row = await store.get_strategy(live_uuid(name))
            assert row is not None
            edited = parse_config({**row["config"], "entry_score": 78})
            await wait(lambda: scores_of(store, name, 0), 30, "the first scores")
            t_edit = await market_ms()
            await store.upsert_strategy(StrategyRecord(
                strategy_id=row["strategy_id"], slug=name, display_name=name, kind=edited.kind,
                config=edited.model_dump(mode="json"), config_hash=edited.config_hash,
                initial_balance=row["initial_balance"], created_ms=row["created_ms"]))
            new = await wait(lambda: _with_hash(scores_of(store, name, t_edit), edited.config_hash), 15,
                             "a score with the edited config")
            assert new[0]["ts_ms"] - t_edit <= 2 * cfg.every_ms  # the boundary in flight, then the next one
            late = await wait(lambda: scores_of(store, name, t_edit + 2 * cfg.every_ms), 15, "later scores")
            assert all(r["config_hash"] == edited.config_hash for r in late)

            # --- a position opens (the eager preset); emergency close flattens everything and halts
            await wait(lambda: _open_positions(control), 120, "an open position")
            await control.risk_command("emergency_close", "test", "test")
            assert (await control.risk())["state"] == "HALTED"
            await wait(lambda: _flat(control), 30, "every position closed")

            async def risk_exits() -> int:
                async with store.connection() as c:
                    return int((await c.fetch("SELECT COUNT(*) AS n FROM trades WHERE exit_reason = 'risk'"))[0]["n"])
            assert await wait(risk_exits, 10, "the flattened trade in the journal") >= 1

            # --- resume, then block-new stops new entries within a cycle
            await control.risk_command("resume", "test", "test")
            await control.risk_command("block_new", "test", "test")
            t_block = await market_ms()
            assert (await control.risk())["state"] == "REDUCING"
            await asyncio.sleep(8 * cfg.every_ms / 10_000)  # eight cycles of market time
            async with store.connection() as c:
                entries = await c.fetch("SELECT ts_ms FROM signals WHERE ts_ms >= ? AND action = 'entry'",
                                        (t_block + cfg.every_ms,))
                refused = await c.fetch("SELECT COUNT(*) AS n FROM signals WHERE ts_ms >= ? AND action LIKE 'risk:%'",
                                        (t_block,))
            assert entries == []
            print(f"reload after {new[0]['ts_ms'] - t_edit} ms; entries refused while blocked: {refused[0]['n']}")

            # --- the screener: every model's scan of the whole simulated universe, journalled
            async def scans() -> dict[str, Any]:
                async with store.connection() as c:
                    rows = await c.fetch("SELECT model, symbols, ranked, excluded FROM screen_runs")
                return {r["model"]: r for r in rows}
            done = await wait(lambda: _all_models(scans()), 60, "a scan of each model")
            assert all(r["symbols"] >= 1 and r["ranked"] + r["excluded"] == r["symbols"] for r in done.values()), done
            assert done["ats_v2"]["ranked"] >= 1  # short_grid's filters may exclude the lone symbol
            async with store.connection() as c:
                ranked = await c.fetch("SELECT DISTINCT symbol FROM screen_results")
            assert "BTCUSDT" in {r["symbol"] for r in ranked}
        finally:
            await store.close()
            await stop(run)
    asyncio.run(go())


async def _all_models(rows: Any) -> Any:
    got = await rows
    return got if set(got) == {"ats_v2", "short_grid"} else None


async def _with_hash(rows: Any, config_hash: str) -> list[dict[str, Any]]:
    return [r for r in await rows if r["config_hash"] == config_hash]


async def _open_positions(control: Any) -> bool:
    return any(p["qty"] for p in await control.positions())


async def _flat(control: Any) -> bool:
    return not await control.positions()
