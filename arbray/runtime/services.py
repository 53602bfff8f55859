"""The runtime's services: the async logic each actor runs, written once without Ray.

A service owns one core object and talks to the others through *ports* — small async interfaces.
In one process (``arbray.runtime.local``) a port is the other service itself; on Ray
(``arbray.actors``) it is an actor handle. So the actors only wire and batch, and the whole
runtime is testable in-process.

- ``SymbolStateService``: a ``SymbolStateCore`` fed by a ``MarketFeed``; numbers every trade batch
  and boundary per symbol, has each boundary scored by the strategy port, and sends the items in
  order to the position port, keeping each until it is acknowledged (so a PositionManager restart
  loses nothing); records aggTrades; reports heartbeats; warms up from klines and journaled trades.
- ``StrategyService``: a ``ScoringCore`` whose configs follow the journal; journals every score.
- ``PositionManagerService``: a ``PositionManagerCore`` behind a ``Sequencer``; applies, journals
  (input log and outputs) and only then acknowledges; rebuilds itself from its input log; turns a
  stale permission into HALTED (fail-closed).
- ``RiskGuardService``: a ``RiskGuardCore`` publishing permissions to the position port, persisted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from arbray.clock import Clock, SystemClock
from arbray.features.snapshot import FeatureSnapshot
from arbray.marketdata.events import Kline, TradeBatch
from arbray.metrics import Metrics, NullMetrics
from arbray.runtime.control import RiskCommand
from arbray.runtime.journal import InputRow, JournalCore, decode_item, encode_item
from arbray.runtime.position_manager import (
    BalanceItem,
    BoundaryItem,
    Item,
    Outputs,
    Permission,
    PermissionItem,
    PositionManagerConfig,
    PositionManagerCore,
    Sequencer,
    StrategiesItem,
    StreamItem,
    TradesItem,
    VenueItem,
)
from arbray.runtime.risk_guard import RiskGuardConfig, RiskGuardCore
from arbray.runtime.scoring import PostProcessor, ScoringCore
from arbray.runtime.strategies import StrategySet, load_strategies
from arbray.runtime.symbol_state import SymbolStateConfig, SymbolStateCore, TradeSlice
from arbray.scoring.result import ScoreResult
from arbray.storage.base import Store

log = logging.getLogger("arbray.runtime")


# ----------------------------------------------------------------------------------------- ports
class ScorerPort(Protocol):
    async def score(self, snap: FeatureSnapshot, extras: dict[str, float | None]) -> list[ScoreResult]: ...


class PositionPort(Protocol):
    async def submit(self, source: str, items: list[StreamItem]) -> dict[str, Any]: ...
    async def stream_positions(self) -> dict[str, dict[str, int]]: ...


class JournalPort(Protocol):
    async def fence(self, epoch: int) -> None: ...
    async def record(self, inputs: Sequence[InputRow], outputs: Outputs | None, epoch: int = 0) -> None: ...
    async def scores(self, snap: FeatureSnapshot, results: list[ScoreResult]) -> None: ...
    async def agg_trades(self, batch: TradeSlice) -> None: ...
    async def risk(self, state: str, detail: dict[str, Any]) -> None: ...


class GuardPort(Protocol):
    async def heartbeat(self, source: str, health: dict[str, dict[str, Any]]) -> None: ...
    async def trades_closed(self, closed: list[tuple[str, float, int]]) -> None: ...


class PermissionPort(Protocol):
    async def permission(self, p: Permission) -> None: ...


class JournalService:
    """``JournalPort`` over a ``JournalCore`` (the Journal actor's body)."""

    def __init__(self, core: JournalCore) -> None:
        self.core = core

    async def fence(self, epoch: int) -> None:
        await self.core.fence(epoch)

    async def record(self, inputs: Sequence[InputRow], outputs: Outputs | None, epoch: int = 0) -> None:
        await self.core.record(inputs, outputs, epoch)

    async def scores(self, snap: FeatureSnapshot, results: list[ScoreResult]) -> None:
        self.core.scores(snap, results)

    async def agg_trades(self, batch: TradeSlice) -> None:
        self.core.agg_trades(batch)

    async def risk(self, state: str, detail: dict[str, Any]) -> None:
        await self.core.risk(state, detail)

    async def flush(self) -> None:
        await self.core.flush()

    def stats(self) -> dict[str, Any]:
        return self.core.stats()


def _quantile(xs: Iterable[float], q: float) -> float | None:
    """The ``q`` quantile of ``xs`` (nearest rank, ms rounded to µs), None when empty."""
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3) if s else None


def _spawn(tasks: set[asyncio.Task[Any]], coro: Awaitable[Any], name: str) -> None:
    """Run ``coro`` in the background, logging (not swallowing) a failure."""
    async def run() -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %s failed", name)
    t = asyncio.get_running_loop().create_task(run(), name=name)
    tasks.add(t)
    t.add_done_callback(tasks.discard)


# ----------------------------------------------------------------------------------------- symbol state
@dataclass
class _Pending:
    """An outbox entry: a trade batch, or a boundary whose scores are still being computed."""

    item: StreamItem | None
    score: asyncio.Task[list[ScoreResult]] | None = None
    snap: FeatureSnapshot | None = None
    seq: int = 0
    trigger_ns: int = 0


@dataclass
class SymbolStateStats:
    submits: int = 0
    items_sent: int = 0
    resends: int = 0
    submit_errors: int = 0
    score_errors: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    score_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    """From the boundary's trigger message to its scores back from the Strategy actor."""


class SymbolStateService:
    """Market data in, numbered items out (see the module docstring)."""

    def __init__(self, name: str, symbols: Sequence[str], config: SymbolStateConfig, scorer: ScorerPort,
                 pm: PositionPort, journal: JournalPort | None, guard: GuardPort | None,
                 feed_factory: Callable[[SymbolStateCore], Any] | None = None,
                 record_trades: bool = True, clock: Clock | None = None, metrics: Metrics | None = None) -> None:
        self.name = name
        self.metrics: Metrics = metrics or NullMetrics()
        self._reported: Counter[tuple[str, str, str]] = Counter()  # (metric, symbol, label) → last total
        self.config = config
        self.scorer, self.pm, self.journal, self.guard = scorer, pm, journal, guard
        self.core = SymbolStateCore(symbols, self, config, clock)
        self.feed_factory = feed_factory
        self.feed: Any = None
        self.record_trades = record_trades
        self.seq: dict[str, int] = dict.fromkeys(symbols, 0)
        self.outbox: dict[str, deque[_Pending]] = {s: deque() for s in symbols}
        self._sent: dict[str, int] = {}  # per symbol: the highest sequence number sent (maybe not applied)
        self.stats_ = SymbolStateStats()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running = False

    # ---- SymbolOutputs (called synchronously by the core) ---------------------------------------
    def trades(self, batch: TradeSlice) -> None:
        s = batch.symbol
        self.seq[s] += 1
        self.outbox[s].append(_Pending(TradesItem(s, self.seq[s], batch)))
        if self.record_trades and self.journal is not None:
            _spawn(self._tasks, self.journal.agg_trades(batch), "journal.agg_trades")
        self._wake.set()

    def boundary(self, snap: FeatureSnapshot, extras: dict[str, float | None], trigger_recv_ns: int) -> None:
        s = snap.symbol
        self.seq[s] += 1
        task = asyncio.get_running_loop().create_task(self.scorer.score(snap, extras))
        if trigger_recv_ns:
            task.add_done_callback(lambda _: self.stats_.score_ms.append((time.time_ns() - trigger_recv_ns) / 1e6))
        self.outbox[s].append(_Pending(None, task, snap, self.seq[s], trigger_recv_ns))
        self._wake.set()

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self, warm: Mapping[str, tuple[list[Kline] | None, TradeBatch | None]] | None = None) -> None:
        """Line up with what the PositionManager already applied, warm up (klines; after a restart the
        journal's trades, re-emitting every boundary it has not applied), start the feed and the loops."""
        positions = await self.pm.stream_positions()
        for sym, pos in positions.items():
            if sym in self.seq:
                self.seq[sym] = self._sent[sym] = pos["seq"]
        for sym, (klines, trades) in (warm or {}).items():
            b = positions.get(sym, {}).get("boundary_ms", -1)
            self.core.warm_up(sym, klines, trades, b if b >= 0 else None)
        self._running = True
        _spawn(self._tasks, self._sender(), f"{self.name}.sender")
        _spawn(self._tasks, self._ticker(), f"{self.name}.ticker")
        _spawn(self._tasks, self._heartbeats(), f"{self.name}.heartbeats")
        if self.feed_factory is not None:
            self.feed = self.feed_factory(self.core)
            gap = getattr(self.feed, "gap_pending", None)
            if gap is not None:
                self.core.gap_pending = gap
            await self.feed.start()

    async def stop(self) -> None:
        self._running = False
        if self.feed is not None:
            await self.feed.stop()
        self.core.flush()
        self._wake.set()
        deadline = time.monotonic() + 5.0
        while any(self.outbox.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    async def _ticker(self) -> None:
        while self._running:
            self.core.tick()
            await asyncio.sleep(0.02)

    async def _heartbeats(self) -> None:
        while self._running:
            self._record_metrics()
            if self.guard is not None:
                try:
                    await self.guard.heartbeat(self.name, self.core.health())
                except Exception:  # the guard restarting: its silence already blocks us (fail-closed)
                    self.stats_.submit_errors += 1
            await asyncio.sleep(1.0)

    def _record_metrics(self) -> None:
        """Counters as deltas since the last report; data age and snapshot build times."""
        m, now = self.metrics, self.core.clock.now_ms()
        feed = self.feed.stats() if self.feed is not None else {}
        syms = list(self.core.symbols)
        who = syms[0] if len(syms) == 1 else "all"  # the feed counts per stream type over all its symbols
        totals: dict[tuple[str, str, str], int] = {}
        for stream, n in (feed.get("messages") or {}).items():
            totals[("arbray_messages", who, stream)] = int(n)
        for reason, n in self.core.rejects.items():
            totals[("arbray_messages_rejected", who, reason.split(":")[0])] = n
        totals[("arbray_feed_reconnects", who, "")] = int(feed.get("reconnects") or 0)
        for sym, s in self.core.symbols.items():
            totals[("arbray_book_resyncs", sym, "sequence")] = s.book.resyncs
            totals[("arbray_aggtrade_gaps", sym, "")] = int(s.features.stats["trade_id_gaps"])
            if s.last_message_ms is not None:
                m.set("arbray_data_age_seconds", (now - s.last_message_ms) / 1000, symbol=sym)
        label = {"arbray_messages": "stream", "arbray_messages_rejected": "reason", "arbray_book_resyncs": "reason"}
        for key, total in totals.items():
            delta = total - self._reported[key]
            if delta > 0:
                name, sym, lab = key
                extra = {label[name]: lab} if name in label else {}
                m.inc(name, delta, symbol=sym, **extra)
                self._reported[key] = total
        for sym, seconds in self.core.drain_snapshot_times():
            m.observe("arbray_snapshot_latency_seconds", seconds, symbol=sym)

    # ---- the ordered sender --------------------------------------------------------------------
    async def _sender(self) -> None:
        backoff = 0.05
        while True:
            await self._wake.wait()
            self._wake.clear()
            while True:
                items = self._ready_items()
                if not items:
                    break
                try:
                    ack = await self.pm.submit(self.name, items)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the PositionManager restarting: keep everything, retry
                    self.stats_.submit_errors += 1
                    for item in items:  # not sent after all
                        self._sent[item.symbol] = min(self._sent.get(item.symbol, 0), item.seq - 1)
                    log.warning("%s: submit failed (%s); retrying in %.2fs", self.name, exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    await self._resync()
                    continue
                backoff = 0.05
                self.stats_.submits += 1
                self.stats_.items_sent += len(items)
                self._acknowledge(ack)

    def _ready_items(self) -> list[StreamItem]:
        """Every symbol's unsent items up to its first boundary still being scored (a finished
        scoring call wakes the sender again)."""
        out: list[StreamItem] = []
        for q in self.outbox.values():
            for p in q:
                if p.item is None:
                    assert p.score is not None and p.snap is not None
                    if not p.score.done():
                        p.score.add_done_callback(lambda _: self._wake.set())
                        break
                    try:
                        results = tuple(p.score.result())
                    except Exception as exc:  # a failed scoring call: the boundary trades nothing
                        self.stats_.score_errors += 1
                        log.warning("%s: scoring %s@%d failed: %s", self.name, p.snap.symbol, p.snap.ts_ms, exc)
                        results = ()
                    p.item = BoundaryItem(p.snap.symbol, p.seq, p.snap, results, p.trigger_ns)
                if p.item.seq > self._sent.get(p.item.symbol, 0):
                    out.append(p.item)
        for item in out:
            self._sent[item.symbol] = max(self._sent.get(item.symbol, 0), item.seq)
        return out

    def _acknowledge(self, ack: Mapping[str, Any]) -> None:
        """Drop what the PositionManager applied and journaled; take its new trigger levels."""
        for sym, seq in (ack.get("applied") or {}).items():
            q = self.outbox.get(sym)
            while q and q[0].item is not None and q[0].item.seq <= seq:
                p = q.popleft()
                if isinstance(p.item, BoundaryItem) and p.trigger_ns:
                    self.stats_.latencies_ms.append((time.time_ns() - p.trigger_ns) / 1e6)
        for sym, (lo, hi) in (ack.get("triggers") or {}).items():
            if sym in self.core.symbols:
                self.core.set_triggers(sym, lo, hi)
        for sym, expected in (ack.get("expected") or {}).items():
            if expected <= self._sent.get(sym, 0):  # a restarted PositionManager lacks items we sent: resend them
                self._sent[sym] = expected - 1
                self.stats_.resends += 1
                self._wake.set()

    async def _resync(self) -> None:
        """After a failed submit: ask what was applied, and resend everything after it."""
        try:
            positions = await self.pm.stream_positions()
        except Exception:
            return
        for sym, pos in positions.items():
            if sym in self.outbox:
                self._acknowledge({"applied": {sym: pos["seq"]}})
                self._sent[sym] = pos["seq"]
                self.stats_.resends += 1
        self._wake.set()

    # ---- read side -----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return {
            **self.core.stats(), "submits": self.stats_.submits, "items_sent": self.stats_.items_sent,
            "resends": self.stats_.resends, "submit_errors": self.stats_.submit_errors,
            "score_errors": self.stats_.score_errors, "outbox": sum(len(q) for q in self.outbox.values()),
            "unsent": sum(self.seq[s] - self._sent.get(s, 0) for s in self.seq),
            "gap_pending": [s for s in self.seq if self.feed is not None and self.feed.gap_pending(s)],
            "trigger_to_scored_ms_p50": _quantile(self.stats_.score_ms, 0.5),
            "trigger_to_scored_ms_p99": _quantile(self.stats_.score_ms, 0.99),
            "boundary_to_ack_ms_p50": _quantile(self.stats_.latencies_ms, 0.5),
            "boundary_to_ack_ms_p99": _quantile(self.stats_.latencies_ms, 0.99),
            "feed": self.feed.stats() if self.feed is not None else None,
        }


# ----------------------------------------------------------------------------------------- strategy
class StrategyService:
    """Scores snapshots with the journal's running configs (``ScorerPort``)."""

    def __init__(self, store: Store, journal: JournalPort | None, symbols: Sequence[str] | None = None,
                 post: Sequence[PostProcessor] = (), reload_every_ms: int = 1_000,
                 clock: Clock | None = None, metrics: Metrics | None = None) -> None:
        self.store, self.journal = store, journal
        self.metrics: Metrics = metrics or NullMetrics()
        self.symbols = list(symbols) if symbols is not None else None
        self.core = ScoringCore(post=post)
        self.reload_every_ms = reload_every_ms
        self.clock = clock or SystemClock()
        self.set: StrategySet | None = None
        self._checked_ms = -1
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.counters: Counter[str] = Counter()

    async def reload(self, force: bool = False) -> str:
        """Re-read the live strategies (at most every ``reload_every_ms`` unless forced), and let
        post-processors that follow the journal (calibration) refresh."""
        now = self.clock.now_ms()
        for fn in self.core.post:
            refresh = getattr(fn, "refresh", None)
            if refresh is not None:
                await refresh(self.store)
        async with self._lock:
            if not force and self.set is not None and now - self._checked_ms < self.reload_every_ms:
                return self.core.version
            self._checked_ms = now
            new = await load_strategies(self.store, self.symbols)
            if self.set is None or new.version != self.set.version:
                self.set = new
                self.core.set_configs(new.running(), new.version)
                self.counters["config_versions"] += 1
            return self.core.version

    async def start(self) -> None:
        """Read the strategies now, then re-read them every ``reload_every_ms`` in the background (never on
        the scoring path: a change made in the journal is scored from the next boundary after that)."""
        await self.reload(force=True)
        _spawn(self._tasks, self._reloader(), "strategy.reload")

    async def _reloader(self) -> None:
        while True:
            await asyncio.sleep(self.reload_every_ms / 1000)
            try:
                await self.reload(force=True)
            except Exception:  # the store briefly unavailable: keep scoring with the configs we have
                self.counters["reload_errors"] += 1

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()

    async def score(self, snap: FeatureSnapshot, extras: dict[str, float | None]) -> list[ScoreResult]:
        if self.set is None:
            await self.reload()
        results, actionable = self.core.score(snap, extras)
        for r in results:
            reason = r.block_reason or ""
            outcome = ("entry" if r.is_entry else "not_ready" if reason.startswith("not_ready")
                       else "blocked" if reason else "below_entry")
            self.metrics.inc("arbray_scores", kind=r.kind, outcome=outcome)
            if outcome == "blocked":
                self.metrics.inc("arbray_score_blocks", kind=r.kind, reason=reason.split(":")[0])
        if self.journal is not None and results:
            _spawn(self._tasks, self.journal.scores(snap, results), "journal.scores")
        return actionable

    def stats(self) -> dict[str, Any]:
        return {**self.core.counters, **self.counters, "version": self.core.version,
                "running": len(self.core.configs),
                "invalid": [list(x) for x in self.set.invalid] if self.set is not None else []}


# ----------------------------------------------------------------------------------------- position manager
class PositionManagerService:
    """Applies, journals, acknowledges (``PositionPort``); see the module docstring."""

    def __init__(self, run_id: str, instance: str, config: PositionManagerConfig, store: Store,
                 journal: JournalPort, symbols: Sequence[str], guard: GuardPort | None = None,
                 venue: Any = None, clock: Clock | None = None, flatten_baseline: int = 0,
                 flush_ms: int = 100, metrics: Metrics | None = None) -> None:
        self.run_id, self.instance, self.config = run_id, instance, config
        self.metrics: Metrics = metrics or NullMetrics()
        self.store, self.journal, self.guard = store, journal, guard
        self.symbols = list(symbols)
        self.venue = venue
        self.clock = clock or SystemClock()
        self.flatten_baseline = flatten_baseline
        self.core: PositionManagerCore | None = None
        self.sequencer: Sequencer | None = None
        self._seq = 0  # the input log's sequence
        self._lock = asyncio.Lock()
        self._permission: Permission | None = None
        self._permission_at = 0
        self._applied_permission: Permission | None = None
        self._strategy_version = ""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._venue_events: asyncio.Queue[Any] = asyncio.Queue()
        self._barrier_since: int | None = None
        self.counters: Counter[str] = Counter()
        self.replayed = 0
        self.reconcile_report: dict[str, Any] | None = None
        self.submit_ms: deque[float] = deque(maxlen=10_000)
        self.flush_ms = flush_ms
        self.epoch = 0
        self.order_latency: deque[tuple[str, int, int, str]] = deque(maxlen=100_000)
        """(client id, local receive ns of the message that triggered it or 0, ns it went to the venue, the
        kind of item that placed it: BoundaryItem for signals, TradesItem for exits, VenueItem for reactions
        to a fill)."""
        self.durable: dict[str, int] = {}  # per symbol: the last sequence number in the journal
        self._rows: list[InputRow] = []
        self._out = Outputs()
        self._pending_seq: dict[str, int] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    async def start(self) -> None:
        """Fence out earlier incarnations, rebuild from this instance's input log, then take live inputs."""
        self.epoch = time.time_ns()
        await self.journal.fence(self.epoch)
        strategies = await load_strategies(self.store, self.symbols)
        core = PositionManagerCore(self.run_id, self.config, strategies.strategies, self._venue_adapter(),
                                   self.instance, self.flatten_baseline)
        self._strategy_version = strategies.version
        after = 0
        core.replaying = True
        while True:
            rows = await self.store.pm_inputs(self.instance, after, 5_000)
            if not rows:
                break
            for row in rows:
                core.apply(decode_item(row))
                self.replayed += 1
            after = rows[-1][0]
        core.replaying = False
        self._seq = after
        self.core = core
        self.durable = dict(core.last_seq)
        if self.replayed:  # the last permission stays valid until its TTL from when the guard issued it
            self._permission = self._applied_permission = core.permission
            self._permission_at = core.permission.issued_ms
        self.sequencer = Sequencer(self.symbols, self.config.ordering, core.last_seq)
        if self.replayed:
            log.info("position manager %s rebuilt from %d logged inputs", self.instance, self.replayed)
        if self.venue is not None:
            await self._start_venue()
        _spawn(self._tasks, self._watch_permission(), "pm.permission_ttl")
        _spawn(self._tasks, self._strategy_watch(), "pm.strategy_watch")
        if self.venue is not None:
            _spawn(self._tasks, self._venue_loop(), "pm.venue_events")

    def _venue_adapter(self) -> Any:
        return self.venue

    async def _start_venue(self) -> None:
        """Connect the external venue's events to the log, start it, and reconcile what the log knows."""
        assert self.core is not None
        self.venue.connect(self._venue_events.put_nowait)
        report = await self.venue.start(self.core.working_orders())
        self.reconcile_report = {"clean": report.clean, "unknown": [o.client_id for o in report.unknown],
                                 "lost": list(report.lost), "finished": dict(report.finished),
                                 "recovered_fills": report.recovered_fills}
        self.counters["reconciled_recovered_fills"] += report.recovered_fills

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.flush()
        stop = getattr(self.venue, "stop", None)
        if stop is not None:
            await stop()

    # ---- applying ------------------------------------------------------------------------------
    async def _apply(self, items: Sequence[Item]) -> Outputs:
        """Apply ``items`` in order and queue them and their outputs for the journal.

        The journal write is a group commit every ``flush_ms``: a sender's items count as
        acknowledged only once written (``durable``), and a sender keeps everything until then, so a
        crash in between loses nothing — the resent items rebuild the same state.
        """
        assert self.core is not None
        merged = Outputs()
        now = self.clock.now_ms()
        for item in items:
            row = encode_item(self._seq + 1, item, now)  # first: an item that cannot be logged changes nothing
            out = self.core.apply(item)
            if out.submitted:
                sent_ns = time.time_ns()
                self.order_latency.extend((cid, trigger_ns, sent_ns, kind) for cid, trigger_ns, kind in out.submitted)
            merged.extend(out)
            self._seq += 1
            self._rows.append(row)
            if isinstance(item, TradesItem | BoundaryItem):
                self._pending_seq[item.symbol] = item.seq
        self._out.extend(merged)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())
        return merged

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_ms / 1000)
        await self.flush()

    async def flush(self) -> None:
        """Write the queued inputs and outputs now; then they are acknowledged."""
        async with self._flush_lock:
            rows, out, seqs = self._rows, self._out, dict(self._pending_seq)
            if not rows:
                return
            self._rows, self._out = [], Outputs()
            try:
                await self.journal.record(rows, out, self.epoch)
            except Exception:
                out.extend(self._out)
                self._rows, self._out = rows + self._rows, out
                self.counters["journal_errors"] += 1
                raise
            self.durable.update(seqs)
            self.counters["journal_flushes"] += 1
            self._record_metrics(out)
            closed = [(t.detail["strategy_id"] if t.detail else t.strategy_id, t.r_multiple or 0.0, t.exit_ms)
                      for t in out.trades]
            if closed and self.guard is not None:
                _spawn(self._tasks, self.guard.trades_closed(closed), "guard.trades_closed")

    def _record_metrics(self, out: Outputs) -> None:
        """Orders, fills, signals and closed trades of a journal write; per-strategy gauges."""
        m = self.metrics
        assert self.core is not None
        kinds = {name: s.config.kind for name, s in self.core.live.items()}
        for o in out.orders:
            if o.state == "NEW" and o.created_ms == o.updated_ms:
                m.inc("arbray_orders", symbol=o.symbol, order_type=f"{o.order_type}:{o.time_in_force or 'market'}")
        for f, _ in out.fills:
            m.inc("arbray_fills", symbol=f.symbol, order_type="limit" if f.is_maker else "market",
                  maker="true" if f.is_maker else "false")
        names = {s.uuid: s.name for s in self.core.live.values()}
        for s in out.signals:
            m.inc("arbray_signals", kind=kinds.get(names.get(s.strategy_id, ""), "unknown"),
                  action=s.action.split(":")[0])
        for t in out.trades:
            d = t.detail or {}
            friction = float(d.get("fees_r", 0.0)) + float(d.get("entry_slippage_r", 0.0))
            m.observe("arbray_friction_r", friction, kind=kinds.get(str(d.get("strategy_id")), "unknown"))
        for sid, a in self.core.accounts().items():
            m.set("arbray_open_positions", a["open_positions"], strategy=sid)
            m.set("arbray_net_r", a["net_r"], strategy=sid)

    async def submit(self, source: str, items: list[StreamItem]) -> dict[str, Any]:
        """Take a SymbolState's items; returns the applied sequence numbers and trigger levels."""
        t0 = time.perf_counter()
        assert self.core is not None and self.sequencer is not None
        async with self._lock:
            for item in items:
                self.sequencer.push(item)
            ready = self.sequencer.ready(force=self._barrier_expired())
            if ready:
                await self._apply(ready)
            core = self.core
            syms = {i.symbol for i in items}
            ack = {"applied": dict(self.durable), "triggers": {s: core.triggers(s) for s in syms},
                   "expected": {s: self.sequencer.next_seq[s] for s in syms}}
        self.submit_ms.append((time.perf_counter() - t0) * 1000)
        self.counters["submits"] += 1
        return ack

    def _barrier_expired(self) -> bool:
        assert self.sequencer is not None
        if self.config.ordering != "boundary":
            return False
        oldest = self.sequencer.oldest_boundary()
        now = self.clock.now_ms()
        if oldest is None:
            self._barrier_since = None
            return False
        if self._barrier_since is None:
            self._barrier_since = now
        if now - self._barrier_since >= self.config.barrier_timeout_ms:
            self._barrier_since = None
            self.counters["barrier_timeouts"] += 1
            return True
        return False

    async def _strategy_watch(self) -> None:
        """Every second, take a changed live strategy set (new strategies, edits) as a logged item."""
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.reload_strategies()
            except Exception:  # the store briefly unavailable: try again next second
                self.counters["strategy_reload_errors"] += 1

    async def reload_strategies(self) -> dict[str, Any]:
        """Apply the journal's strategy set if it changed (``RuntimeControl.reload_strategies``); the read
        happens outside the apply lock, so it never delays market data."""
        s = await load_strategies(self.store, self.symbols)
        if s.version != self._strategy_version:
            async with self._lock:
                self._strategy_version = s.version
                await self._apply([StrategiesItem(s.strategies)])
                self.counters["strategy_reloads"] += 1
        return {"version": s.version, "running": [x.name for x in s.strategies if x.running]}

    async def stream_positions(self) -> dict[str, dict[str, int]]:
        """What is applied *and journaled* per symbol (senders resend everything after it)."""
        assert self.core is not None
        await self.flush()
        return self.core.stream_positions()

    # ---- permissions (fail-closed) -------------------------------------------------------------
    async def permission(self, p: Permission) -> None:
        """The RiskGuard's latest word; applied (and logged) when it changes."""
        self._permission, self._permission_at = p, self.clock.now_ms()
        await self._apply_permission(p)

    async def _apply_permission(self, p: Permission) -> None:
        prev = self._applied_permission
        if prev is not None and (prev.state, prev.reasons, prev.blocked_symbols, prev.killed, prev.flatten_seq) == (
                p.state, p.reasons, p.blocked_symbols, p.killed, p.flatten_seq):
            return
        async with self._lock:
            self._applied_permission = p
            await self._apply([PermissionItem(p)])
            self.counters["permission_changes"] += 1

    async def _watch_permission(self) -> None:
        ttl = self.config.permission_ttl_ms
        while True:
            await asyncio.sleep(min(0.2, ttl / 5000))
            now = self.clock.now_ms()
            if self._permission is None or now - self._permission_at > ttl:
                stale = Permission("HALTED", (f"no fresh permission from the risk guard within {ttl} ms",),
                                   issued_ms=now, flatten_seq=self._permission.flatten_seq if self._permission else 0)
                if self._applied_permission is None or self._applied_permission.state != "HALTED" or (
                        self._applied_permission.reasons != stale.reasons):
                    self.counters["permission_expired"] += 1
                    await self._apply_permission(stale)

    # ---- commands ------------------------------------------------------------------------------
    async def add_balance(self, strategy: str, amount: float, ref: str) -> dict[str, Any]:
        async with self._lock:
            await self._apply([BalanceItem(strategy, amount, ref)])
            assert self.core is not None
            return self.core.accounts()[strategy]

    async def venue_event(self, ev: Any) -> None:
        """An external venue's fill/update/funding, applied as a logged item."""
        await self._venue_events.put(ev)

    async def _venue_loop(self) -> None:
        while True:
            ev = await self._venue_events.get()
            async with self._lock:
                await self._apply([VenueItem(ev)])

    # ---- read side -----------------------------------------------------------------------------
    def positions(self) -> list[dict[str, Any]]:
        assert self.core is not None
        return self.core.positions()

    def accounts(self) -> dict[str, dict[str, Any]]:
        assert self.core is not None
        return self.core.accounts()

    def strategy_risk(self) -> dict[str, dict[str, Any]]:
        """Each strategy's own risk state (its RiskEngine) for ``RuntimeControl.risk``."""
        assert self.core is not None
        out: dict[str, dict[str, Any]] = {}
        for sid, risk in self.core.trader.risks.items():
            d = risk.evaluate()
            out[sid] = {"state": d.state.name, "reasons": list(d.reasons)}
        return out

    def stats(self) -> dict[str, Any]:
        assert self.core is not None and self.sequencer is not None
        return {**self.core.counters, **self.counters, "applied": self.core.applied, "replayed": self.replayed,
                "log_seq": self._seq, "pending": self.sequencer.pending(), "duplicates": self.sequencer.duplicates,
                "barrier_forced": self.sequencer.forced,
                "permission": self._applied_permission.state if self._applied_permission else None,
                "blocked_symbols": len(self._applied_permission.blocked_symbols) if self._applied_permission else None,
                "submit_ms_p50": _quantile(self.submit_ms, 0.5), "submit_ms_p99": _quantile(self.submit_ms, 0.99)}


# ----------------------------------------------------------------------------------------- risk guard
class RiskGuardService:
    """Publishes the guard's permission to the PositionManager (on change and every interval)."""

    def __init__(self, core: RiskGuardCore, pm: PermissionPort | None, journal: JournalPort | None,
                 publish_every_ms: int = 1_000, store: Store | None = None, metrics: Metrics | None = None) -> None:
        """``store`` (read only) lets a kill end when the strategy is resumed through the journal."""
        self.core, self.pm, self.journal, self.store = core, pm, journal, store
        self.metrics: Metrics = metrics or NullMetrics()
        self.publish_every_ms = publish_every_ms
        self._tasks: set[asyncio.Task[Any]] = set()
        self._persisted: dict[str, Any] | None = None
        self._persisting: asyncio.Task[None] | None = None
        self.counters: Counter[str] = Counter()

    async def start(self) -> None:
        _spawn(self._tasks, self._publisher(), "guard.publisher")

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()

    async def _publisher(self) -> None:
        while True:
            await self.publish()
            await asyncio.sleep(self.publish_every_ms / 1000)

    async def publish(self) -> Permission:
        if self.store is not None and self.core.x.killed:
            for s in await self.store.list_strategies("running"):
                self.core.on_resumed(s["slug"], int(s["status_changed_ms"]))
        p = self.core.evaluate()
        for level in ("ACTIVE", "REDUCING", "HALTED"):
            self.metrics.set("arbray_risk_state", 1.0 if p.state == level else 0.0, state=level)
        if self.pm is not None:
            try:
                await self.pm.permission(p)
                self.counters["published"] += 1
            except Exception:  # the PositionManager restarting: it fails closed meanwhile
                self.counters["publish_errors"] += 1
        state = {**self.core.to_state(), "state": p.state, "reasons": list(p.reasons)}
        if self.journal is not None and state != self._persisted:
            self._persisted = state
            # not awaited here: a busy journal must not delay the permission the PositionManager needs
            self._persisting = asyncio.get_running_loop().create_task(self.journal.risk(p.state, state))
            self._tasks.add(self._persisting)
            self._persisting.add_done_callback(self._tasks.discard)
        return p

    async def _publish_persisted(self) -> None:
        """Publish, then wait until the state is in the journal (a command is acknowledged only then)."""
        await self.publish()
        if self._persisting is not None:
            await self._persisting

    async def heartbeat(self, source: str, health: dict[str, dict[str, Any]]) -> None:
        self.core.on_heartbeat(source, health)

    async def trades_closed(self, closed: list[tuple[str, float, int]]) -> None:
        for strategy, r, ts in closed:
            self.core.on_trade_closed(strategy, r, ts)

    async def command(self, command: RiskCommand, reason: str, source: str) -> dict[str, Any]:
        self.core.command(command, reason, source)
        await self._publish_persisted()
        return self.core.view()

    async def kill(self, strategy: str, reason: str, source: str) -> dict[str, Any]:
        self.core.kill(strategy, reason, source)
        await self._publish_persisted()
        return self.core.view()

    def view(self) -> dict[str, Any]:
        return self.core.view()


__all__ = ["GuardPort", "JournalPort", "JournalService", "PositionManagerService", "PositionPort",
           "RiskGuardConfig", "RiskGuardService", "ScorerPort", "StrategyService", "SymbolStateService"]
