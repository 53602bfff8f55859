"""The market-wide scan on Ray: symbol shards as tasks (many symbols per task), ranked on the driver.

The driver puts the BTC/ETH references in the object store once; each task scores one shard with
the same ``score_shard`` the in-process scan uses, so results are identical to ``scan``. Never one
task or actor per symbol: shard count defaults to the worker count.

``ScreenerActor`` (named ``screener`` in namespace ``arbray``, ``num_cpus=0``) is the live screener:
one kline cache over the whole universe and the periodic ``ScreenerService`` (``start_screener``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from typing import Any

import ray

from arbray.feeds.config import Endpoints, FeedConfig
from arbray.feeds.rest import BinanceRest
from arbray.screener.cache import KlineCache
from arbray.screener.data import SymbolKlines
from arbray.screener.models import AtsConfig, ShortGridConfig
from arbray.screener.scan import ModelName, References, rank, score_shard, shards
from arbray.screener.service import ScreenerConfig, ScreenerService
from arbray.screener.universe import fetch_universe

from .runtime import NAMESPACE, _Booting

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
TASK_TIMEOUT_S = 600.0


def start_ray(num_cpus: int) -> None:
    """A private local Ray (free ports, never 6379, no dashboard), unless one is already initialised."""
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):  # inside a Ray job (e.g. a sweep submitted through the API): join it
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


@ray.remote(num_cpus=1)
def _score_shard_task(symbols: list[SymbolKlines], model: ModelName, refs: References, bars: int,
                      ats: AtsConfig, grid: ShortGridConfig) -> list[dict[str, Any]]:
    return score_shard(symbols, model, refs, bars, ats, grid)


def scan_ray(symbols: Sequence[SymbolKlines], model: ModelName, workers: int, bars: int = 300,
             ats: AtsConfig | None = None, grid: ShortGridConfig | None = None, per_worker: int = 1,
             timeout_s: float = TASK_TIMEOUT_S) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Scan ``symbols`` in ``workers × per_worker`` shards on the running Ray; (ranked, excluded)."""
    refs = ray.put(References.from_universe(symbols, bars))
    futures = [_score_shard_task.remote(shard, model, refs, bars, ats or AtsConfig(), grid or ShortGridConfig())
               for shard in shards(symbols, workers * per_worker)]
    rows = [row for part in ray.get(futures, timeout=timeout_s) for row in part]
    return rank(rows)


async def scan_ray_async(symbols: Sequence[SymbolKlines], model: ModelName, workers: int, bars: int = 300,
                         ats: AtsConfig | None = None, grid: ShortGridConfig | None = None,
                         timeout_s: float = TASK_TIMEOUT_S) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``scan_ray`` awaited from an asyncio actor (its event loop keeps serving the feed meanwhile)."""
    refs = ray.put(References.from_universe(symbols, bars))
    futures = [_score_shard_task.remote(shard, model, refs, bars, ats or AtsConfig(), grid or ShortGridConfig())
               for shard in shards(symbols, workers)]
    parts = await asyncio.wait_for(asyncio.gather(*futures), timeout_s)
    return rank([row for part in parts for row in part])


# ----------------------------------------------------------------------------- the periodic screener
SCREENER_ACTOR = "screener"
"""The screener actor's name in the runtime's namespace (``arbray``)."""
SCREENER_OPTIONS: dict[str, Any] = {"num_cpus": 0, "max_restarts": -1, "max_task_retries": 0, "max_concurrency": 100}


class _ScreenerActor(_Booting):
    """The kline cache and the periodic scan (``ScreenerService``) of one universe, journalled to ``dsn``.

    ``endpoints``: (ws_base, rest_base) of Binance or the simulator. ``symbols``: the universe, or None for
    every TRADING USDT perpetual of ``exchangeInfo``. ``workers`` ≥ 1 scans on that many Ray tasks (shards),
    0 in this actor. A restarted actor (``max_restarts=-1``) boots again: backfill, streams, scans.
    """

    def __init__(self, config_json: dict[str, Any], dsn: str | None, endpoints: tuple[str, str],
                 symbols: list[str] | None = None, workers: int = 0) -> None:
        cfg = ScreenerConfig.model_validate(config_json)
        self.cache: KlineCache | None = None
        self.svc: ScreenerService | None = None
        self.store: Any = None
        self._loop_task: asyncio.Task[None] | None = None

        async def boot() -> None:
            from arbray.storage import open_store

            ws_base, rest_base = endpoints
            ep = Endpoints(ws_base, rest_base, None)
            self.store = await open_store(dsn, migrate=False) if dsn else None
            universe = symbols
            if universe is None:
                async with BinanceRest(FeedConfig.for_endpoints(ep, ("BTCUSDT",)).rest_config()) as rest:
                    universe = list((await fetch_universe(rest)).symbols)
            self.cache = KlineCache(ep, universe, cfg.cache)
            await self.cache.start()
            scan_fn = None
            if workers >= 1:
                def scan_fn(s: Sequence[SymbolKlines], m: ModelName, b: int, a: AtsConfig,
                            g: ShortGridConfig) -> Any:
                    return scan_ray_async(s, m, workers, b, a, g)
            self.svc = ScreenerService(self.cache.core, cfg, self.store, scan_fn=scan_fn,
                                       source_name=f"kline_cache:{rest_base}")
            self._loop_task = asyncio.get_running_loop().create_task(self.svc.run(), name="screener")
        self._boot_in_background(boot, SCREENER_ACTOR)

    async def _svc(self) -> ScreenerService:
        await self.ready()
        assert self.svc is not None
        return self.svc

    async def latest(self, model: str, limit: int | None = None) -> dict[str, Any] | None:
        """The newest in-memory result of ``model`` (None before the first scan)."""
        return (await self._svc()).latest_result(model, limit)

    async def run_once(self) -> dict[str, Any]:
        """Scan now (besides the schedule); a summary per model."""
        done = await (await self._svc()).run_once()
        return {m: {k: v for k, v in r.items() if k != "results"} for m, r in done.items()}

    async def stats(self) -> dict[str, Any]:
        """The service's counters and the cache's status, REST cost and feed counters."""
        svc = await self._svc()
        assert self.cache is not None
        return {"screener": svc.stats(), **self.cache.stats()}

    async def stop(self) -> None:
        """Stop scanning, close the streams and the store."""
        await self.ready()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(BaseException):
                await self._loop_task
        if self.cache is not None:
            await self.cache.stop()
        if self.store is not None:
            await self.store.close()


ScreenerActor = ray.remote(_ScreenerActor)


def start_screener(config: ScreenerConfig, dsn: str | None, endpoints: tuple[str, str],
                   symbols: Sequence[str] | None = None, workers: int = 0) -> Any:
    """Create the named ``screener`` actor in the runtime's namespace (``await handle.ready.remote()`` next)."""
    return ScreenerActor.options(name=SCREENER_ACTOR, namespace=NAMESPACE, **SCREENER_OPTIONS).remote(
        config.model_dump(mode="json"), dsn, endpoints, list(symbols) if symbols is not None else None, workers)
