"""Market and signal endpoints: live snapshots and book per symbol (runtime), recorded indicators,
latest scores, score and signal history (journal), with pagination."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request

from arbray.api.auth import ReadAuth
from arbray.api.context import ApiContext
from arbray.api.errors import COMMON_ERRORS, INVALID, NOT_FOUND, RUNTIME, one_field_error
from arbray.api.models import MarketDetail, MarketIndicators, Page, ScoreEvent, SignalOut
from arbray.api.service import call, ctx_of, find_strategy, run_of, try_call
from arbray.storage.records import LIVE_RUN

router = APIRouter(prefix="/api/v1", tags=["market & signals"])
Symbol = Annotated[str, Path(pattern=r"^[A-Z0-9]{2,24}$", description="e.g. BTCUSDT")]
Cursor = Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")]


def page_limit(ctx: ApiContext, limit: int | None) -> int:
    """``limit`` within the configured page sizes (422 beyond the maximum)."""
    if limit is None:
        return ctx.settings.page_size_default
    if limit > ctx.settings.page_size_max:
        raise one_field_error(("query", "limit"), f"at most {ctx.settings.page_size_max}", "less_than_equal")
    return limit


Limit = Annotated[int | None, Query(ge=1, description="rows per page (default and maximum: API settings)")]


@router.get("/market/snapshots", response_model=dict[str, dict[str, Any]], responses={**COMMON_ERRORS, **RUNTIME},
            summary="Latest FeatureSnapshot per symbol")
async def snapshots(request: Request, _: ReadAuth) -> dict[str, dict[str, Any]]:
    """Every traded symbol's latest ``FeatureSnapshot`` (plus ``extras``: CVD windows it lacks)."""
    return await call(ctx_of(request), lambda rt: rt.snapshots())


@router.get("/market/{symbol}", response_model=MarketDetail, responses={**COMMON_ERRORS, **RUNTIME, **NOT_FOUND},
            summary="One symbol: snapshot, book, liquidations, price/CVD series")
async def market(symbol: Symbol, request: Request, _: ReadAuth) -> dict[str, Any]:
    """The symbol's snapshot, top of book, recent liquidations and the last 24 h price/CVD series."""
    ctx = ctx_of(request)
    try:
        return await call(ctx, lambda rt: rt.market(symbol))
    except KeyError:
        raise HTTPException(status_code=404, detail=f"{symbol} is not traded by the runtime") from None


@router.get("/market/{symbol}/indicators", response_model=MarketIndicators, responses={**COMMON_ERRORS, **INVALID},
            summary="Recorded funding, open interest and liquidations")
async def indicators(symbol: Symbol, request: Request, _: ReadAuth,
                     hours: Annotated[float, Query(gt=0, le=24 * 30)] = 24.0,
                     limit: Annotated[int, Query(ge=1, le=5_000)] = 500) -> dict[str, Any]:
    """Funding rates, open-interest samples and liquidations the recorder stored, newest first, and
    the live snapshot when the runtime runs."""
    ctx = ctx_of(request)
    since = ctx.clock.now_ms() - int(hours * 3_600_000)
    hist = await ctx.store.market_history(symbol, since, limit)
    snaps = await try_call(ctx, lambda rt: rt.snapshots())
    return {"symbol": symbol, "since_ms": since, **hist, "snapshot": (snaps or {}).get(symbol)}


@router.get("/scores/latest", response_model=list[ScoreEvent], responses=COMMON_ERRORS,
            summary="Latest ScoreResult per strategy")
async def latest_scores(request: Request, _: ReadAuth,
                        strategy: Annotated[list[str] | None, Query(max_length=200,
                                                                    description="names (slugs); default: all")] = None,
                        features: bool = False) -> list[dict[str, Any]]:
    """The most recent live score of each strategy (or of the named ones)."""
    rows = await ctx_of(request).store.latest_scores(strategy, run_id=LIVE_RUN)
    return rows if features else [{**r, "features": None} for r in rows]


@router.get("/strategies/{ref}/scores", response_model=Page[ScoreEvent],
            responses={**COMMON_ERRORS, **NOT_FOUND, **INVALID}, summary="Score history, oldest first")
async def score_history(ref: str, request: Request, _: ReadAuth,
                        since_ms: Annotated[int, Query(ge=0)] = 0, limit: Limit = None,
                        cursor: Cursor = None, features: bool = False) -> dict[str, Any]:
    """Scores of one strategy from ``since_ms`` (or the cursor), oldest first; ``next_cursor`` continues
    after the last timestamp of this page (rows sharing a timestamp never straddle two pages)."""
    ctx = ctx_of(request)
    row = await find_strategy(ctx, ref)
    n = page_limit(ctx, limit)
    start = since_ms
    if cursor is not None:
        if not cursor.isdigit():
            raise one_field_error(("query", "cursor"), "bad cursor", "value_error")
        start = int(cursor)
    name, run_id = run_of(row["slug"])
    rows = await ctx.store.score_history(name, start, n + 1, run_id=run_id)
    nxt = None
    if len(rows) > n:
        boundary = rows[n]["ts_ms"]
        page = [r for r in rows[:n] if r["ts_ms"] < boundary]
        if not page:  # one timestamp holds more rows than a page: fetch that timestamp whole
            page = [r for r in await ctx.store.score_history(name, boundary, 10_000, run_id=run_id)
                    if r["ts_ms"] == boundary]
            boundary += 1
        rows, nxt = page, str(boundary)
    if not features:
        rows = [{**r, "features": None} for r in rows]
    return {"items": rows, "next_cursor": nxt}


async def _signals(ctx: ApiContext, strategy_id: str | None, symbol: str | None, limit: int | None,
                   cursor: str | None) -> dict[str, Any]:
    try:
        page = await ctx.store.signal_history(strategy_id, symbol, page_limit(ctx, limit), cursor)
    except ValueError:
        raise one_field_error(("query", "cursor"), "bad cursor", "value_error") from None
    return {"items": page.rows, "next_cursor": page.next_cursor}


@router.get("/signals", response_model=Page[SignalOut], responses={**COMMON_ERRORS, **INVALID, **NOT_FOUND},
            summary="Signal history, newest first")
async def signals(request: Request, _: ReadAuth,
                  strategy: Annotated[str | None, Query(max_length=140, description="UUID or slug")] = None,
                  symbol: Annotated[str | None, Query(max_length=24)] = None, limit: Limit = None,
                  cursor: Cursor = None) -> dict[str, Any]:
    """Actionable signals, keyset-paginated (new signals never shift a page)."""
    ctx = ctx_of(request)
    sid = (await find_strategy(ctx, strategy))["strategy_id"] if strategy else None
    return await _signals(ctx, sid, symbol, limit, cursor)


@router.get("/strategies/{ref}/signals", response_model=Page[SignalOut],
            responses={**COMMON_ERRORS, **INVALID, **NOT_FOUND}, summary="A strategy's signals, newest first")
async def strategy_signals(ref: str, request: Request, _: ReadAuth, limit: Limit = None,
                           cursor: Cursor = None) -> dict[str, Any]:
    """One strategy's signals, keyset-paginated."""
    ctx = ctx_of(request)
    row = await find_strategy(ctx, ref)
    return await _signals(ctx, row["strategy_id"], None, limit, cursor)
