"""Strategy factory endpoints (digest §8): create, list, get, patch and the lifecycle actions.

The journal is the source of truth: every change is written to the store (and recorded in the
strategy's lifecycle history) first, then the runtime is asked to re-read it now; a runtime that
is down picks the change up when it next reads the journal. Lifecycle (§8.1): ``running ⇄
paused``, ``running|paused → deprecated`` (confirmed), ``deprecated → running`` only by
``restore``; nothing is deleted. Deprecated strategies cannot be patched, paused, resumed or
credited (403).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import ValidationError

from arbray.api.auth import AdminAuth, Principal, ReadAuth
from arbray.api.context import ApiContext
from arbray.api.errors import (
    ADMIN_ERRORS,
    COMMON_ERRORS,
    INVALID,
    NOT_FOUND,
    FieldErrors,
    field_errors,
    one_field_error,
)
from arbray.api.models import (
    AddBalance,
    BalanceChange,
    Confirm,
    Reason,
    StatusName,
    StrategyCard,
    StrategyChange,
    StrategyCreate,
    StrategyDetail,
    StrategyEvent,
    StrategyPatch,
)
from arbray.api.service import cards, ctx_of, detail, find_strategy, reload_runtime, run_of, try_call
from arbray.backtest.journal import strategy_uuid
from arbray.scoring.config import StrategyConfig
from arbray.scoring.registry import get_kind, kind_names
from arbray.storage.records import LIVE_RUN, StrategyRecord

router = APIRouter(prefix="/api/v1/strategies", tags=["strategies"])
IDENTITY_FIELDS = ("kind", "strategy_id", "symbol", "symbols")
"""Config fields a patch may not change: they define which strategy (and market) this is."""
_CHANGE = {**ADMIN_ERRORS, **NOT_FOUND, **INVALID}


def validate_config(ctx: ApiContext, data: dict[str, Any]) -> StrategyConfig:
    """``data`` validated by its kind's model, on a symbol the engine trades; 422 errors under ``config``."""
    kind_name = data.get("kind")
    if not isinstance(kind_name, str):
        raise one_field_error(("body", "config", "kind"), f"a config needs a kind: one of {', '.join(kind_names())}",
                              "missing" if kind_name is None else "string_type")
    try:
        kind = get_kind(kind_name)
    except KeyError:
        raise one_field_error(("body", "config", "kind"),
                              f"unknown strategy kind {kind_name!r}; known: {', '.join(kind_names())}",
                              "literal_error") from None
    try:
        cfg: StrategyConfig = kind.config_type.model_validate(data)
    except ValidationError as exc:
        raise field_errors(exc.errors(), ("body", "config")) from None
    wrong = [s for s in cfg.applies_to if s not in ctx.settings.symbols]
    if wrong:
        field = "symbol" if "symbol" in data else "symbols"
        raise one_field_error(("body", "config", field),
                              f"{', '.join(wrong)} not traded here; one of {', '.join(ctx.settings.symbols)}",
                              "literal_error")
    return cfg


def _record(row: dict[str, Any], cfg: StrategyConfig, display_name: str, description: str | None,
            tags: list[str]) -> StrategyRecord:
    return StrategyRecord(strategy_id=row["strategy_id"], slug=row["slug"], display_name=display_name,
                          kind=cfg.kind, config=cfg.model_dump(mode="json"), config_hash=cfg.config_hash,
                          initial_balance=row["initial_balance"], created_ms=row["created_ms"], status=row["status"],
                          description=description, tags=tuple(tags))


async def _change(ctx: ApiContext, sid: str, changed: bool) -> dict[str, Any]:
    row = await ctx.store.get_strategy(sid)
    assert row is not None
    runtime = await reload_runtime(ctx) if changed else {"reloaded": False, "detail": "nothing changed"}
    return {"changed": changed, "strategy": await detail(ctx, row), "runtime": runtime}


def _by(principal: Principal, reason: str | None) -> str:
    return f"{principal.source}: {reason}" if reason else principal.source


@router.post("", status_code=201, response_model=StrategyChange, responses={**_CHANGE, 409: {
    "model": dict, "description": "a strategy with this name exists"}}, summary="Create a live strategy")
async def create_strategy(body: StrategyCreate, request: Request, principal: AdminAuth) -> dict[str, Any]:
    """Validate the config by its kind (field-level 422s, cross-field rules such as weights summing to
    100), store it as a running strategy with its initial balance, and reload the runtime."""
    ctx = ctx_of(request)
    cfg = validate_config(ctx, body.config)
    sid = strategy_uuid(LIVE_RUN, cfg.strategy_id)
    if await ctx.store.get_strategy(sid) is not None:
        raise HTTPException(status_code=409, detail=f"a strategy named {cfg.strategy_id!r} exists")
    now = ctx.clock.now_ms()
    await ctx.store.upsert_strategy(StrategyRecord(
        strategy_id=sid, slug=cfg.strategy_id, display_name=body.display_name, kind=cfg.kind,
        config=cfg.model_dump(mode="json"), config_hash=cfg.config_hash, initial_balance=body.initial_balance,
        created_ms=now, description=body.description, tags=tuple(body.tags)), ts_ms=now)
    await ctx.store.add_strategy_event(sid, "api:create", {"by": principal.source}, now)
    return await _change(ctx, sid, True)


@router.get("", response_model=list[StrategyCard], responses=COMMON_ERRORS, summary="List strategies (plaza cards)")
async def list_strategies(
    request: Request, _: ReadAuth,
    status: Annotated[StatusName | None, Query(description="only this status")] = None,
    symbol: Annotated[str | None, Query(max_length=24, description="only strategies trading this symbol")] = None,
    kind: Annotated[str | None, Query(max_length=64, description="only this kind")] = None,
    source: Annotated[Literal["live", "backtest"] | None, Query(description="live strategies or backtests")] = None,
) -> list[dict[str, Any]]:
    """Plaza cards with live statistics: balance vs initial, net R and USDT, win rate, trades, open
    positions, 24 h PnL and the latest score."""
    out = await cards(ctx_of(request), status)
    return [c for c in out if (symbol is None or symbol in c["symbols"]) and (kind is None or c["kind"] == kind)
            and (source is None or c["source"] == source)]


@router.get("/{ref}", response_model=StrategyDetail, responses={**COMMON_ERRORS, **NOT_FOUND},
            summary="One strategy in full")
async def get_strategy(ref: str, request: Request, _: ReadAuth) -> dict[str, Any]:
    """The card plus config, timestamps, drawdown and lifecycle history; ``ref`` is the UUID or the slug."""
    ctx = ctx_of(request)
    return await detail(ctx, await find_strategy(ctx, ref))


@router.get("/{ref}/events", response_model=list[StrategyEvent], responses={**COMMON_ERRORS, **NOT_FOUND},
            summary="Lifecycle history")
async def strategy_events(ref: str, request: Request, _: ReadAuth) -> list[dict[str, Any]]:
    """Every recorded change of the strategy, oldest first."""
    ctx = ctx_of(request)
    row = await find_strategy(ctx, ref)
    return await ctx.store.strategy_events(row["strategy_id"])


def _not_deprecated(row: dict[str, Any], action: str) -> None:
    if row["status"] == "deprecated":
        raise HTTPException(status_code=403, detail=f"strategy is deprecated; restore it before you {action} it")


@router.patch("/{ref}", response_model=StrategyChange, responses={**_CHANGE, 400: {
    "description": "empty patch"}}, summary="Change parameters")
async def patch_strategy(ref: str, body: StrategyPatch, request: Request, principal: AdminAuth) -> dict[str, Any]:
    """Partial update. ``config`` fields are merged with the stored config and re-validated as a whole
    (cross-field rules included); kind, name and symbol are not patchable, and neither are the
    initial balance (use add-balance) or the status (use the lifecycle actions)."""
    ctx = ctx_of(request)
    row = await find_strategy(ctx, ref)
    _not_deprecated(row, "patch")
    given = body.model_dump(exclude_unset=True)
    if not given or given == {"config": {}}:
        raise HTTPException(status_code=400, detail="empty patch: give display_name, description, tags or config")
    patch_cfg = given.get("config") or {}
    fixed = [k for k in IDENTITY_FIELDS if k in patch_cfg]
    if fixed:
        raise FieldErrors([{"loc": ["body", "config", k], "msg": f"{k} is not patchable", "type": "not_patchable"}
                           for k in fixed])
    cfg = validate_config(ctx, {**row["config"], **patch_cfg})
    new_name = given.get("display_name", row["display_name"])
    new_desc = given.get("description", row.get("description"))
    new_tags = given.get("tags", row.get("tags") or [])
    if new_tags is None:
        new_tags = []
    changed = (cfg.config_hash != row["config_hash"] or new_name != row["display_name"]
               or new_desc != row.get("description") or list(new_tags) != list(row.get("tags") or []))
    if changed:
        now = ctx.clock.now_ms()
        await ctx.store.upsert_strategy(_record(row, cfg, new_name, new_desc, list(new_tags)), ts_ms=now)
        await ctx.store.add_strategy_event(row["strategy_id"], "api:patch", {
            "by": principal.source, "fields": sorted(k for k in given if k != "config"),
            "config_fields": sorted(patch_cfg)}, now)
    return await _change(ctx, row["strategy_id"], changed)


@router.post("/{ref}/pause", response_model=StrategyChange, responses={**ADMIN_ERRORS, **NOT_FOUND, **INVALID},
             summary="Stop new entries")
async def pause(ref: str, request: Request, principal: AdminAuth, body: Reason | None = None) -> dict[str, Any]:
    """``running → paused``: no longer scored, no new entries; open positions are still managed to exit."""
    ctx = ctx_of(request)
    row = await find_strategy(ctx, ref)
    _not_deprecated(row, "pause")
    changed = await ctx.store.set_strategy_status(row["strategy_id"], "paused", ctx.clock.now_ms(),
                                                  _by(principal, body.reason if body else None))
    return await _change(ctx, row["strategy_id"], changed)


@router.post("/{ref}/resume", response_model=StrategyChange, responses={**ADMIN_ERRORS, **NOT_FOUND, **INVALID},
             summary="Resume scoring and entries")
async def resume(ref: str, request: Request, principal: AdminAuth, body: Reason | None = None) -> dict[str, Any]:
    """``paused → running`` (a deprecated strategy is brought back with restore)."""
    ctx = ctx_of(request)
    row = await find_strategy(ctx, ref)
    _not_deprecated(row, "resume")
    changed = await ctx.store.set_strategy_status(row["strategy_id"], "running", ctx.clock.now_ms(),
                                                  _by(principal, body.reason if body else None))
    return await _change(ctx, row["strategy_id"], changed)


@router.post("/{ref}/deprecate", response_model=StrategyChange, responses={**ADMIN_ERRORS, **NOT_FOUND, **INVALID},
             summary="Retire a strategy (keeps its data)")
async def deprecate(ref: str, body: Confirm, request: Request, principal: AdminAuth) -> dict[str, Any]:
    """``running|paused → deprecated`` with ``{"confirm": true}``; history and balance are kept for restore."""
    if not body.confirm:
        raise one_field_error(("body", "confirm"), "must be true to deprecate a strategy", "confirmation_required")
    ctx = ctx_of(request)
    row = await find_strategy(ctx, ref)
    changed = False
    if row["status"] != "deprecated":
        changed = await ctx.store.set_strategy_status(row["strategy_id"], "deprecated", ctx.clock.now_ms(),
                                                      _by(principal, body.reason))
    return await _change(ctx, row["strategy_id"], changed)


@router.post("/{ref}/restore", response_model=StrategyChange, responses={
    **ADMIN_ERRORS, **NOT_FOUND, **INVALID, 409: {"description": "the strategy is not deprecated"}},
    summary="Bring a deprecated strategy back")
async def restore(ref: str, request: Request, principal: AdminAuth, body: Reason | None = None) -> dict[str, Any]:
    """``deprecated → running`` with its old balance and history (clears ``deprecated_ms``)."""
    ctx = ctx_of(request)
    row = await find_strategy(ctx, ref)
    if row["status"] != "deprecated":
        raise HTTPException(status_code=409, detail=f"strategy is {row['status']}, not deprecated")
    changed = await ctx.store.restore_strategy(row["strategy_id"], ctx.clock.now_ms(),
                                               _by(principal, body.reason if body else None))
    return await _change(ctx, row["strategy_id"], changed)


@router.post("/{ref}/add-balance", response_model=BalanceChange, responses={**ADMIN_ERRORS, **NOT_FOUND, **INVALID},
             summary="Credit USDT")
async def add_balance(ref: str, body: AddBalance, request: Request, principal: AdminAuth) -> dict[str, Any]:
    """Raise both the initial and the current balance by ``amount`` (digest §8.1), once per ``ref``,
    and credit the running account."""
    ctx = ctx_of(request)
    row = await find_strategy(ctx, ref)
    _not_deprecated(row, "credit")
    booking = body.ref or f"api-{uuid.uuid4().hex}"
    booked = await ctx.store.add_strategy_balance(row["strategy_id"], body.amount, booking, ctx.clock.now_ms(),
                                                  principal.source)
    name, run_id = run_of(row["slug"])
    account = None
    if run_id == LIVE_RUN:
        account = await try_call(ctx, lambda rt: rt.add_balance(name, body.amount, booking))
    return {**await _change(ctx, row["strategy_id"], booked), "ref": booking, "account": account}
