"""What the routers share: strategy lookup by UUID or slug, plaza cards, bounded runtime calls.

Identity (``arbray.runtime.control``): a live strategy's journal id is
``strategy_uuid("live", name)`` and its slug is the config's ``strategy_id`` name; a journalled
backtest's slug is ``name@run_id`` and its id ``strategy_uuid(run_id, name)``. So a slug maps
to its UUID without a lookup, and a URL may carry either.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from fastapi import HTTPException, Request

from arbray.api.context import ApiContext
from arbray.api.errors import RUNTIME_DOWN
from arbray.api.models import valid_ref
from arbray.backtest.journal import strategy_uuid
from arbray.runtime.control import RuntimeControl, RuntimeUnavailable
from arbray.storage.records import LIVE_RUN

T = TypeVar("T")
DAY_MS = 86_400_000


def ctx_of(request: Request) -> ApiContext:
    """The app's ``ApiContext``."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


def run_of(slug: str) -> tuple[str, str]:
    """``(name, run_id)`` of a slug: ``name@run`` for a journalled backtest, else a live name."""
    name, sep, run = slug.partition("@")
    return (name, run) if sep else (slug, LIVE_RUN)


def uuid_of_slug(slug: str) -> str:
    """The journal UUID a slug maps to."""
    name, run = run_of(slug)
    return strategy_uuid(run, name)


def _is_uuid(ref: str) -> bool:
    try:
        return str(uuid.UUID(ref)) == ref.lower()
    except ValueError:
        return False


async def find_strategy(ctx: ApiContext, ref: str) -> dict[str, Any]:
    """The strategy row for a UUID or slug, or 404."""
    if not valid_ref(ref):
        raise HTTPException(status_code=404, detail="strategy not found")
    row = await ctx.store.get_strategy(ref.lower() if _is_uuid(ref) else uuid_of_slug(ref))
    if row is None and not _is_uuid(ref):  # a strategy journalled under another id scheme
        row = next((s for s in await ctx.store.list_strategies() if s["slug"] == ref), None)
    if row is None:
        raise HTTPException(status_code=404, detail="strategy not found")
    return row


def symbols_of(config: Mapping[str, Any]) -> list[str]:
    """The symbols a config trades (``symbol`` or ``symbols``)."""
    if isinstance(config.get("symbol"), str):
        return [config["symbol"]]
    syms = config.get("symbols")
    return [str(s) for s in syms] if isinstance(syms, list | tuple) else []


def build_card(row: Mapping[str, Any], card: Mapping[str, Any], pnl_24h: Mapping[str, Any] | None) -> dict[str, Any]:
    """A plaza card from a strategy row, the store's card and the 24 h PnL."""
    config = row.get("config") or {}
    stats = card["stats"]
    _, run_id = run_of(row["slug"])
    return {
        **{k: card[k] for k in ("strategy_id", "slug", "display_name", "kind", "status", "config_hash",
                                "initial_balance", "current_balance", "status_changed_ms", "last_run_ms",
                                "open_positions", "stats", "latest_score")},
        "tags": card.get("tags") or [],
        "symbols": symbols_of(config), "direction": config.get("direction"),
        "net_usdt": float(card["current_balance"]) - float(card["initial_balance"]),
        "net_r": stats["total_r"], "win_rate": stats["win_rate"], "trades": stats["trades"],
        "pnl_24h": dict(pnl_24h) if pnl_24h else {"trades": 0, "net_pnl": 0.0, "net_r": 0.0},
        "source": "live" if run_id == LIVE_RUN else "backtest", "run_id": run_id,
    }


async def cards(ctx: ApiContext, status: str | None = None) -> list[dict[str, Any]]:
    """Every strategy's plaza card (optionally of one status)."""
    rows = {r["strategy_id"]: r for r in await ctx.store.list_strategies(status)}  # type: ignore[arg-type]
    store_cards = await ctx.store.strategy_cards(status)  # type: ignore[arg-type]
    pnl = await ctx.store.pnl_since(ctx.clock.now_ms() - DAY_MS)
    return [build_card(rows.get(c["strategy_id"], c), c, pnl.get(c["strategy_id"])) for c in store_cards
            if c["strategy_id"] in rows]


async def detail(ctx: ApiContext, row: Mapping[str, Any]) -> dict[str, Any]:
    """The full detail of one strategy row."""
    sid = row["strategy_id"]
    name, run_id = run_of(row["slug"])
    stats = await ctx.store.strategy_stats(sid)
    opens = await ctx.store.open_positions(sid)
    latest = await ctx.store.latest_scores([name], run_id=run_id)
    pnl = (await ctx.store.pnl_since(ctx.clock.now_ms() - DAY_MS)).get(sid)
    score = latest[0] if latest else None
    card = {**row, "open_positions": len(opens), "stats": stats, "tags": row.get("tags") or [],
            "latest_score": None if score is None else {k: score[k] for k in (
                "ts_ms", "symbol", "total", "side", "tier", "gate_passed", "block_reason", "is_entry")}}
    events = await ctx.store.strategy_events(sid)
    return {**build_card(row, card, pnl), "description": row.get("description"), "config": row["config"],
            "created_ms": row["created_ms"], "updated_ms": row["updated_ms"], "paused_ms": row.get("paused_ms"),
            "resumed_ms": row.get("resumed_ms"), "deprecated_ms": row.get("deprecated_ms"), "events": events}


def runtime_of(ctx: ApiContext) -> RuntimeControl:
    """The runtime, or 503 when none is attached."""
    if ctx.runtime is None:
        raise HTTPException(status_code=503, detail=RUNTIME_DOWN)
    return ctx.runtime


async def call(ctx: ApiContext, fn: Callable[[RuntimeControl], Awaitable[T]]) -> T:
    """``fn(runtime)`` within the configured timeout; 503 when the runtime is absent, down or too slow."""
    runtime = runtime_of(ctx)
    try:
        return await asyncio.wait_for(fn(runtime), timeout=ctx.settings.runtime_timeout_s)
    except TimeoutError:
        raise HTTPException(status_code=503,
                            detail=f"runtime did not answer within {ctx.settings.runtime_timeout_s:g}s") from None
    except RuntimeUnavailable:
        raise HTTPException(status_code=503, detail=RUNTIME_DOWN) from None


async def try_call(ctx: ApiContext, fn: Callable[[RuntimeControl], Awaitable[T]]) -> T | None:
    """``fn(runtime)``, or None when the runtime is absent, down or too slow (for journal fallbacks)."""
    if ctx.runtime is None:
        return None
    try:
        return await asyncio.wait_for(fn(ctx.runtime), timeout=ctx.settings.runtime_timeout_s)
    except (TimeoutError, RuntimeUnavailable):
        return None


async def reload_runtime(ctx: ApiContext) -> dict[str, Any]:
    """Tell the runtime to re-read strategies now; a runtime that is down re-reads when it starts."""
    if ctx.runtime is None:
        return {"reloaded": False, "detail": RUNTIME_DOWN}
    try:
        res = await asyncio.wait_for(ctx.runtime.reload_strategies(), timeout=ctx.settings.runtime_timeout_s)
    except (TimeoutError, RuntimeUnavailable):
        return {"reloaded": False, "detail": "runtime did not answer; it re-reads the journal every cycle"}
    return {"reloaded": True, "version": res.get("version"), "running": res.get("running")}
