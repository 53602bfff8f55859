"""The replay engine: merge recorded inputs in exchange-time order and emit feature snapshots.

Snapshots are taken at every multiple ``B`` of ``every_ms`` (exchange time) for every symbol seen
so far (in symbol-name order), when the first record with time >= ``B`` arrives and before it is applied — so a snapshot
at ``B`` covers exactly the events before ``B``. Stretches with no input longer than
``max_idle_ms`` (e.g. between two recording sessions) are skipped instead of producing thousands
of identical snapshots; the skip is counted.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from arbray.features.config import FeatureConfig
from arbray.features.snapshot import FeatureSnapshot
from arbray.features.symbol import SymbolFeatures
from arbray.marketdata.events import Event, RejectCounter, TradeBatch
from arbray.marketdata.parser import BinanceParser
from arbray.replay.readers import RawJson, Record


@dataclass
class ReplaySummary:
    """What a replay read, rejected and produced (printed as JSON by the CLI)."""

    events: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    book_resyncs: dict[str, int] = field(default_factory=dict)
    trade_id_gaps: dict[str, int] = field(default_factory=dict)
    snapshots_written: int = 0
    boundaries_skipped_idle: int = 0
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": dict(sorted(self.events.items())),
            "rejected": dict(sorted(self.rejected.items())),
            "rejected_total": sum(self.rejected.values()),
            "book_resyncs": self.book_resyncs,
            "trade_id_gaps": self.trade_id_gaps,
            "snapshots_written": self.snapshots_written,
            "boundaries_skipped_idle": self.boundaries_skipped_idle,
            "first_ts_ms": self.first_ts_ms,
            "last_ts_ms": self.last_ts_ms,
        }


class MarketState:
    """Per-symbol feature states behind one parser: the sink the parser and readers feed."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self.rejects = RejectCounter()
        self.symbols: dict[str, SymbolFeatures] = {}
        self.parser = BinanceParser(self, self.rejects)
        self.other_events: Counter[str] = Counter()

    def get(self, symbol: str) -> SymbolFeatures:
        s = self.symbols.get(symbol)
        if s is None:
            s = self.symbols[symbol] = SymbolFeatures(symbol, self.config, rejects=self.rejects)
        return s

    def route(self, symbol: str) -> SymbolFeatures:
        """The parser's router: each symbol's data goes straight to its ``SymbolFeatures``."""
        return self.get(symbol)

    def on_event(self, event: Event) -> None:
        self.get(event.symbol).on_event(event)

    def apply(self, payload: RawJson | TradeBatch | Event) -> None:
        """Apply one reader payload."""
        if isinstance(payload, tuple):
            obj, recv_ns, hint = payload
            if obj is None:
                self.rejects["malformed_json"] += 1
            else:
                self.parser.feed_obj(obj, recv_ns, hint)
        elif isinstance(payload, TradeBatch):
            self.other_events["trade_batch_rows"] += len(payload)
            self.get(payload.symbol).add_trades(payload)
        else:
            self.other_events[type(payload).__name__] += 1
            self.on_event(payload)


def merge_records(sources: Iterable[Iterator[Record]]) -> Iterator[Record]:
    """Merge per-file record streams by their exchange-time sort key (stable per file).

    A single source is returned as it is: no merge layer on the per-line hot path.
    """
    srcs = list(sources)
    if len(srcs) == 1:
        return srcs[0]
    tagged = (((k, i, s, p) for k, s, p in src) for i, src in enumerate(srcs))
    return ((k, s, p) for k, _, s, p in heapq.merge(*tagged, key=lambda r: (r[0], r[1], r[2])))


class ReplayEngine:
    """Drive ``MarketState`` over merged records and call ``on_snapshot`` at each boundary."""

    def __init__(
        self,
        every_ms: int,
        on_snapshot: Callable[[FeatureSnapshot], None],
        config: FeatureConfig | None = None,
        max_idle_ms: int = 10 * 60_000,
    ) -> None:
        if every_ms <= 0:
            raise ValueError("every_ms must be positive")
        self.every_ms = every_ms
        self.on_snapshot = on_snapshot
        self.max_idle_ms = max_idle_ms
        self.state = MarketState(config)
        self.summary = ReplaySummary()

    def run(self, sources: Iterable[Iterator[Record]]) -> ReplaySummary:
        every = self.every_ms
        nxt: int | None = None
        last_key: int | None = None
        state = self.state
        parser, rejects = state.parser, state.rejects
        for key, _, payload in merge_records(sources):
            if key > 0:
                if nxt is None:
                    nxt = key - key % every + every
                    self.summary.first_ts_ms = key
                elif key >= nxt:
                    if last_key is not None and key - last_key > self.max_idle_ms:
                        self.summary.boundaries_skipped_idle += (key - nxt) // every
                        self._emit(nxt)  # one snapshot closes the session before the gap
                        nxt = key - key % every + every
                    else:
                        while nxt <= key:
                            self._emit(nxt)
                            nxt += every
                last_key = key
            if type(payload) is tuple:  # a recorded JSON line: the hot path, inlined
                obj, recv_ns, hint = payload
                if obj is None:
                    rejects["malformed_json"] += 1
                else:
                    parser.feed_obj(obj, recv_ns, hint)
            else:
                state.apply(payload)
        if nxt is not None and last_key is not None:
            self._emit(nxt)  # the interval that contains the last event
        return self._finish(last_key)

    def _emit(self, t: int) -> None:
        """Snapshots of every symbol at ``t``, in symbol-name order (the live runtime steps in the same order)."""
        symbols = self.state.symbols
        for name in sorted(symbols):
            self.on_snapshot(symbols[name].snapshot(t))
            self.summary.snapshots_written += 1

    def _finish(self, last_key: int | None) -> ReplaySummary:
        st, sm = self.state, self.summary
        for s in st.symbols.values():
            s.flush()
        sm.events.update(st.parser.events)
        sm.events.update(st.other_events)
        sm.rejected.update(st.rejects)
        sm.book_resyncs = {k: v.book.resyncs for k, v in st.symbols.items()}
        sm.trade_id_gaps = {k: v.stats["trade_id_gaps"] for k, v in st.symbols.items()}
        sm.last_ts_ms = last_key
        return sm
