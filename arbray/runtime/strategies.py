"""The live strategy set: configs and statuses read from the journal, the source of truth.

A live strategy's journal id is ``strategy_uuid("live", name)`` and its slug is the config's
``strategy_id`` (its name); backtest rows (``<name>@<run>``) are never live. The set carries a
``version`` (a digest of every name, status, config hash and initial balance), so actors re-read
the journal every evaluation cycle and rebuild only when something changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from arbray.backtest.journal import strategy_uuid
from arbray.scoring.config import StrategyConfig
from arbray.scoring.registry import parse_config
from arbray.storage.base import Store
from arbray.storage.records import StrategyRecord

LIVE_RUN = "live"


@dataclass(frozen=True, slots=True)
class LiveStrategy:
    """One journal strategy as the runtime uses it."""

    name: str
    uuid: str
    status: str
    config: StrategyConfig
    initial_balance: float
    current_balance: float

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True, slots=True)
class StrategySet:
    """Every live strategy (any status) and the rows that could not be parsed, with a version."""

    strategies: tuple[LiveStrategy, ...]
    invalid: tuple[tuple[str, str], ...]  # (name, error)
    version: str

    def running(self, symbol: str | None = None) -> list[StrategyConfig]:
        """Configs of running strategies (that apply to ``symbol``)."""
        return [s.config for s in self.strategies
                if s.running and (symbol is None or symbol in s.config.applies_to)]

    def by_name(self) -> dict[str, LiveStrategy]:
        return {s.name: s for s in self.strategies}


def live_uuid(name: str) -> str:
    """The journal id of the live strategy called ``name``."""
    return strategy_uuid(LIVE_RUN, name)


def _version(rows: Iterable[tuple[Any, ...]]) -> str:
    h = hashlib.sha256()
    for row in sorted(rows):
        h.update(repr(row).encode())
    return h.hexdigest()[:16]


def strategy_set(rows: Sequence[dict[str, Any]], symbols: Iterable[str] | None = None) -> StrategySet:
    """The live set from ``strategies`` rows (others, and those for no traded symbol, are skipped)."""
    wanted = None if symbols is None else set(symbols)
    out: list[LiveStrategy] = []
    invalid: list[tuple[str, str]] = []
    for r in rows:
        name = r["slug"]
        if r["strategy_id"] != live_uuid(name):
            continue  # a backtest's strategy, or a row written by hand under another id
        try:
            cfg = parse_config(r["config"])
        except (ValueError, KeyError, TypeError) as exc:
            invalid.append((name, str(exc).splitlines()[0]))
            continue
        if cfg.strategy_id != name:
            invalid.append((name, f"config strategy_id {cfg.strategy_id!r} differs from the slug"))
            continue
        if wanted is not None and not wanted & set(cfg.applies_to):
            continue
        out.append(LiveStrategy(name, r["strategy_id"], r["status"], cfg, float(r["initial_balance"]),
                                float(r["current_balance"])))
    out.sort(key=lambda s: s.name)
    version = _version((s.name, s.status, s.config.config_hash, s.initial_balance) for s in out)
    return StrategySet(tuple(out), tuple(invalid), version)


async def load_strategies(store: Store, symbols: Iterable[str] | None = None) -> StrategySet:
    """The live strategy set as the journal holds it now."""
    return strategy_set(await store.list_strategies(), symbols)


async def register_strategies(store: Store, configs: Sequence[StrategyConfig], initial_balance: float,
                              now_ms: int) -> list[str]:
    """Add configs that have no live row yet (running, at ``initial_balance``); existing rows —
    their edits, status and balance — are left as the journal has them. Returns the names added."""
    added: list[str] = []
    for cfg in configs:
        uid = live_uuid(cfg.strategy_id)
        if await store.get_strategy(uid) is not None:
            continue
        await store.upsert_strategy(StrategyRecord(
            strategy_id=uid, slug=cfg.strategy_id, display_name=cfg.strategy_id, kind=cfg.kind,
            config=cfg.model_dump(mode="json"), config_hash=cfg.config_hash, initial_balance=initial_balance,
            created_ms=now_ms, tags=("live",),
        ), ts_ms=now_ms)
        added.append(cfg.strategy_id)
    return added
