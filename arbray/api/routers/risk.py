"""Risk endpoints: the RiskGuard's state, reasons and history, and the manual controls.

Controls go to the running RiskGuard (503 when it is not running: a command nobody executes
must not look accepted). Each accepted command is also journalled as a ``risk_events`` row of
kind ``api_command`` naming the credential that issued it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from arbray.api.auth import AdminAuth, Principal, ReadAuth
from arbray.api.context import ApiContext
from arbray.api.errors import ADMIN_ERRORS, COMMON_ERRORS, INVALID, NOT_FOUND, RUNTIME, one_field_error
from arbray.api.models import Confirm, Page, Reason, RiskEventOut, RiskState
from arbray.api.routers.market import Cursor, Limit, page_limit
from arbray.api.service import call, ctx_of, find_strategy, reload_runtime, run_of, try_call
from arbray.runtime.control import RiskCommand
from arbray.storage.records import LIVE_RUN, RiskEvent

router = APIRouter(prefix="/api/v1", tags=["risk"])
_CONTROL = {**ADMIN_ERRORS, **RUNTIME, **INVALID}


@router.get("/risk", response_model=RiskState, responses=COMMON_ERRORS, summary="Risk state, reasons and history")
async def risk(request: Request, _: ReadAuth) -> dict[str, Any]:
    """The RiskGuard's live state; when the runtime is down, the last persisted state (the engine
    is not trading then, whatever that state says)."""
    ctx = ctx_of(request)
    live = await try_call(ctx, lambda rt: rt.risk())
    if live is not None:
        return {**live, "source": "runtime"}
    persisted = await ctx.store.risk_state()
    glob = persisted.get("global") or {}
    detail = glob.get("detail") or {}
    return {"source": "journal", "state": glob.get("state", "UNKNOWN"), "reasons": detail.get("reasons", []),
            "since_ms": glob.get("updated_ms"),
            "strategies": {k: {"state": v["state"], "reasons": (v.get("detail") or {}).get("reasons", [])}
                           for k, v in persisted.items() if k != "global"}}


@router.get("/risk/events", response_model=Page[RiskEventOut], responses={**COMMON_ERRORS, **INVALID},
            summary="Journalled risk events, newest first")
async def risk_events(request: Request, _: ReadAuth, limit: Limit = None, cursor: Cursor = None) -> dict[str, Any]:
    """Guard transitions, breaches and API commands, keyset-paginated."""
    ctx = ctx_of(request)
    try:
        page = await ctx.store.risk_events(page_limit(ctx, limit), cursor)
    except ValueError:
        raise one_field_error(("query", "cursor"), "bad cursor", "value_error") from None
    return {"items": page.rows, "next_cursor": page.next_cursor}


async def _audit(ctx: ApiContext, scope: str, level: str, message: str, principal: Principal,
                 reason: str | None) -> None:
    await ctx.store.add_risk_event(RiskEvent(ts_ms=ctx.clock.now_ms(), scope=scope, level=level,  # type: ignore[arg-type]
                                             kind="api_command", message=message,
                                             detail={"by": principal.source, "reason": reason}))


async def _command(request: Request, principal: Principal, command: RiskCommand, reason: str | None,
                   level: str) -> dict[str, Any]:
    ctx = ctx_of(request)
    why = reason or command
    state = await call(ctx, lambda rt: rt.risk_command(command, why, principal.source))
    await _audit(ctx, "global", level, command, principal, reason)
    return {**state, "source": "runtime"}


@router.post("/risk/block-new", response_model=RiskState, responses=_CONTROL, summary="Stop new exposure")
async def block_new(request: Request, principal: AdminAuth, body: Reason | None = None) -> dict[str, Any]:
    """No strategy opens a new position until resume; open positions are still managed."""
    return await _command(request, principal, "block_new", body.reason if body else None, "warning")


@router.post("/risk/resume", response_model=RiskState, responses=_CONTROL, summary="Clear manual blocks")
async def resume(request: Request, principal: AdminAuth, body: Reason | None = None) -> dict[str, Any]:
    """Clear block-new and per-strategy kills; automatic rules still apply."""
    return await _command(request, principal, "resume", body.reason if body else None, "info")


@router.post("/risk/emergency-close", response_model=RiskState, responses=_CONTROL,
             summary="Flatten every position now")
async def emergency_close(body: Confirm, request: Request, principal: AdminAuth) -> dict[str, Any]:
    """Close every position by taker, then HALTED; needs ``{"confirm": true}``."""
    if not body.confirm:
        raise one_field_error(("body", "confirm"), "must be true to close every position", "confirmation_required")
    return await _command(request, principal, "emergency_close", body.reason, "critical")


@router.post("/strategies/{ref}/kill", response_model=RiskState, responses={**_CONTROL, **NOT_FOUND},
             tags=["strategies"], summary="Stop one strategy now")
async def kill(ref: str, request: Request, principal: AdminAuth, body: Reason | None = None) -> dict[str, Any]:
    """Close the strategy's positions by taker, refuse its new entries, and pause it in the journal,
    so it trades again only after an explicit resume."""
    ctx = ctx_of(request)
    row = await find_strategy(ctx, ref)
    name, run_id = run_of(row["slug"])
    if run_id != LIVE_RUN:
        raise one_field_error(("path", "ref"), "a backtest strategy is not running", "value_error")
    reason = body.reason if body else None
    state = await call(ctx, lambda rt: rt.kill_strategy(name, reason or "kill", principal.source))
    if row["status"] == "running":
        await ctx.store.set_strategy_status(row["strategy_id"], "paused", ctx.clock.now_ms(),
                                            f"killed by {principal.source}" + (f": {reason}" if reason else ""))
    await ctx.store.add_strategy_event(row["strategy_id"], "killed", {"by": principal.source, "reason": reason},
                                       ctx.clock.now_ms())
    await _audit(ctx, row["strategy_id"], "critical", f"kill {name}", principal, reason)
    await reload_runtime(ctx)
    return {**state, "source": "runtime"}
