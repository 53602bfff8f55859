"""``ScreenerService``: the periodic market-wide scan over the kline cache, journalled and kept in memory.

Every ``interval_s`` (aligned to multiples of it on the injected clock) the service takes the cache's
panel (closed bars only, no REST), runs each configured model (``ats_v2``, ``short_grid``) through the
scan function — the in-process ``scan`` or the Ray shard scan the actor passes in — and stores each
ranked result as one ``screen_runs`` row plus its ``screen_results`` rows (migration 0007). The latest
result per model stays in memory for callers that do not read the journal.

Nothing stops the loop: a cache that is not ready yet or has too few symbols skips the tick, a scan or
store failure is counted by reason (``stats()["failures"]``) and the next tick runs as usual.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from pydantic import Field

from arbray.clock import Clock, SystemClock
from arbray.scoring.config import FrozenModel
from arbray.screener.backfill import Interval
from arbray.screener.cache import KlineCacheConfig
from arbray.screener.data import SymbolKlines
from arbray.screener.models import AtsConfig, ShortGridConfig
from arbray.screener.scan import ModelName, scan
from arbray.storage.base import Store

log = logging.getLogger(__name__)

Ranked = tuple[list[dict[str, Any]], list[dict[str, Any]]]
ScanFn = Callable[[Sequence[SymbolKlines], ModelName, int, AtsConfig, ShortGridConfig], Ranked | Awaitable[Ranked]]
"""``scan``'s signature: (symbols, model, bars, ats, grid) → (ranked, excluded), or an awaitable of it
(the actor's Ray shard scan awaits its tasks instead of blocking the event loop)."""
Sleep = Callable[[float], Awaitable[None]]


class ScreenerConfig(FrozenModel):
    """The periodic scan: how often, which models, over which bars, and the cache it reads."""

    interval_s: float = Field(60.0, ge=1, le=86_400, description="scan period (aligned to its multiples)")
    models: tuple[ModelName, ...] = Field(("ats_v2", "short_grid"), min_length=1)
    timeframe: Interval | None = Field(None, description="cache interval scanned (None: the cache's first)")
    bars: int = Field(300, ge=60, le=1_499, description="most recent closed bars per symbol")
    store_top: int | None = Field(None, ge=1, description="ranked rows journalled per run (None: all)")
    min_symbols: int = Field(1, ge=1, description="skip a tick while fewer symbols have bars")
    ats: AtsConfig = Field(default_factory=AtsConfig)
    grid: ShortGridConfig = Field(default_factory=ShortGridConfig)
    cache: KlineCacheConfig = Field(default_factory=KlineCacheConfig, description="the live kline cache")

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        out: list[tuple[tuple[str, ...], str]] = []
        if len(set(self.models)) != len(self.models):
            out.append((("models",), "models must be unique"))
        if self.timeframe is not None and self.timeframe not in self.cache.intervals:
            out.append((("timeframe", "cache"), f"timeframe {self.timeframe} is not a cache interval"))
        if self.bars > self.cache.backfill.bars:
            out.append((("bars", "cache"), f"bars ({self.bars}) exceeds what the cache keeps "
                                           f"({self.cache.backfill.bars})"))
        return out

    @property
    def scan_timeframe(self) -> str:
        return self.timeframe or self.cache.intervals[0]


class PanelSource(Protocol):
    """Where the bars come from: ``KlineCacheCore`` (or anything with the same two methods)."""

    def ready(self, interval: str | None = None) -> bool: ...

    def panel(self, interval: str | None = None, bars: int | None = None,
              symbols: Sequence[str] | None = None) -> list[SymbolKlines]: ...


class ScreenerService:
    """Runs the scans (see the module doc). ``store`` may be None (memory only)."""

    def __init__(self, source: PanelSource, config: ScreenerConfig | None = None, store: Store | None = None,
                 clock: Clock | None = None, scan_fn: ScanFn | None = None, source_name: str = "kline_cache",
                 sleep: Sleep | None = None) -> None:
        self.source = source
        self.config = config or ScreenerConfig()
        self.store = store
        self.clock = clock or SystemClock()
        self.scan_fn: ScanFn = scan_fn or scan
        self.source_name = source_name
        self._sleep: Sleep = sleep or asyncio.sleep
        self.latest: dict[str, dict[str, Any]] = {}
        self.counts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()

    def _model_config(self, model: ModelName) -> dict[str, Any]:
        cfg = self.config
        part = cfg.ats if model == "ats_v2" else cfg.grid
        return {"bars": cfg.bars, "timeframe": cfg.scan_timeframe, model: part.model_dump(mode="json")}

    async def run_once(self) -> dict[str, dict[str, Any]]:
        """One tick: every model over the current panel; returns the new latest results by model."""
        cfg, tf = self.config, self.config.scan_timeframe
        if not self.source.ready(tf):
            self.counts["skipped_not_ready"] += 1
            return {}
        panel = self.source.panel(tf, cfg.bars)
        if len(panel) < cfg.min_symbols:
            self.counts["skipped_few_symbols"] += 1
            return {}
        done: dict[str, dict[str, Any]] = {}
        for model in cfg.models:
            started = self.clock.now_ms()
            try:
                out = self.scan_fn(panel, model, cfg.bars, cfg.ats, cfg.grid)
                ranked, excluded = await out if inspect.isawaitable(out) else out
            except Exception as exc:  # a broken scan must not stop the next tick; it is counted
                self.failures[f"scan:{model}:{type(exc).__name__}"] += 1
                log.exception("screener scan %s failed", model)
                continue
            finished = self.clock.now_ms()
            reasons = Counter(str(r.get("excluded") or "unscorable") for r in excluded)
            run = {"model": model, "timeframe": tf, "source": self.source_name, "started_ms": started,
                   "finished_ms": finished, "symbols": len(panel), "ranked": len(ranked), "excluded": len(excluded),
                   "config": self._model_config(model),
                   "stats": {"scan_ms": finished - started, "excluded_by_reason": dict(sorted(reasons.items()))}}
            kept = ranked if cfg.store_top is None else ranked[:cfg.store_top]
            run_id: int | None = None
            if self.store is not None:
                try:
                    run_id = await self.store.insert_screen_run(run, kept)
                except Exception as exc:  # the journal may be down; the in-memory result still updates
                    self.failures[f"store:{type(exc).__name__}"] += 1
                    log.exception("screener run not journalled")
            self.counts[f"runs:{model}"] += 1
            done[model] = self.latest[model] = {**run, "id": run_id, "results": kept}
        return done

    def next_tick_ms(self, now_ms: int) -> int:
        """The next multiple of ``interval_s`` after ``now_ms``."""
        step = int(self.config.interval_s * 1000)
        return (now_ms // step + 1) * step

    async def run(self, ticks: int | None = None) -> None:
        """Scan at every tick until cancelled (or ``ticks`` times)."""
        n = 0
        while ticks is None or n < ticks:
            due = self.next_tick_ms(self.clock.now_ms())
            while (wait := due - self.clock.now_ms()) > 0:
                await self._sleep(wait / 1000)
            await self.run_once()
            n += 1

    def latest_result(self, model: str, limit: int | None = None) -> dict[str, Any] | None:
        """The newest in-memory result of ``model`` (its first ``limit`` rows)."""
        run = self.latest.get(model)
        if run is None:
            return None
        return {**run, "results": run["results"][:limit] if limit is not None else run["results"]}

    def stats(self) -> dict[str, Any]:
        """Runs per model, skipped ticks, failures by reason and each model's latest run summary."""
        return {"counts": dict(sorted(self.counts.items())), "failures": dict(sorted(self.failures.items())),
                "latest": {m: {k: v for k, v in r.items() if k != "results"} for m, r in self.latest.items()},
                "interval_s": self.config.interval_s, "models": list(self.config.models),
                "timeframe": self.config.scan_timeframe}

