"""Trading endpoints: positions (live marks from the runtime), trades with filters and keyset
pagination, equity curves, statistics and execution KPIs per strategy and overall."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from arbray.api.auth import ReadAuth
from arbray.api.context import ApiContext
from arbray.api.errors import COMMON_ERRORS, INVALID, NOT_FOUND, RUNTIME, one_field_error
from arbray.api.models import EquityPoint, ExecutionKpis, OverallStats, Page, Positions, StrategyStatsOut, TradeOut
from arbray.api.routers.market import Cursor, Limit, page_limit
from arbray.api.service import DAY_MS, call, cards, ctx_of, find_strategy, try_call
from arbray.backtest.journal import strategy_uuid
from arbray.storage.records import LIVE_RUN

router = APIRouter(prefix="/api/v1", tags=["trading"])
StrategyRef = Annotated[str | None, Query(max_length=140, description="UUID or slug")]


@router.get("/positions", response_model=Positions, responses=COMMON_ERRORS, summary="Open positions")
async def positions(request: Request, _: ReadAuth, strategy: StrategyRef = None) -> dict[str, Any]:
    """Open positions with live mark, floating PnL and floating R from the runtime; when the runtime
    is down, the journal's open positions without marks (``source: "journal"``)."""
    ctx = ctx_of(request)
    row = await find_strategy(ctx, strategy) if strategy else None
    live = await try_call(ctx, lambda rt: rt.positions())
    if live is not None:
        out = [{**p, "strategy": p["strategy_id"], "strategy_id": strategy_uuid(LIVE_RUN, p["strategy_id"])}
               for p in live]
        if row is not None:
            out = [p for p in out if p["strategy_id"] == row["strategy_id"]]
        return {"source": "runtime", "positions": out}
    slugs = {s["strategy_id"]: s["slug"] for s in await ctx.store.list_strategies()}
    rows = await ctx.store.open_positions(row["strategy_id"] if row else None)
    return {"source": "journal", "positions": [{**p, "strategy": slugs.get(p["strategy_id"], p["strategy_id"])}
                                               for p in rows]}


@router.get("/accounts", response_model=dict[str, dict[str, Any]], responses={**COMMON_ERRORS, **RUNTIME},
            summary="Accounts as the PositionManager holds them")
async def accounts(request: Request, _: ReadAuth) -> dict[str, dict[str, Any]]:
    """Per strategy name: balance, initial balance, realised PnL, fees, funding, open positions, trades, net R."""
    return await call(ctx_of(request), lambda rt: rt.accounts())


async def _trades(ctx: ApiContext, strategy_id: str | None, symbol: str | None, run_id: str | None,
                  since_ms: int | None, until_ms: int | None, exit_reason: str | None, limit: int | None,
                  cursor: str | None) -> dict[str, Any]:
    try:
        page = await ctx.store.trades(strategy_id, symbol, run_id, since_ms, until_ms, exit_reason,
                                      page_limit(ctx, limit), cursor)
    except ValueError:
        raise one_field_error(("query", "cursor"), "bad cursor", "value_error") from None
    return {"items": [{**t, "net_pnl": t["pnl"] - t["fees"] + t["funding"]} for t in page.rows],
            "next_cursor": page.next_cursor}


@router.get("/trades", response_model=Page[TradeOut], responses={**COMMON_ERRORS, **INVALID, **NOT_FOUND},
            summary="Closed trades, newest exit first")
async def trades(request: Request, _: ReadAuth, strategy: StrategyRef = None,
                 symbol: Annotated[str | None, Query(max_length=24)] = None,
                 run_id: Annotated[str | None, Query(max_length=64, description="live, or a backtest run")] = None,
                 since_ms: Annotated[int | None, Query(ge=0, description="exit at or after")] = None,
                 until_ms: Annotated[int | None, Query(ge=0, description="exit before")] = None,
                 exit_reason: Annotated[str | None, Query(max_length=32)] = None,
                 limit: Limit = None, cursor: Cursor = None) -> dict[str, Any]:
    """Trades filtered by strategy, symbol, run, exit time and exit reason; keyset-paginated."""
    ctx = ctx_of(request)
    sid = (await find_strategy(ctx, strategy))["strategy_id"] if strategy else None
    return await _trades(ctx, sid, symbol, run_id, since_ms, until_ms, exit_reason, limit, cursor)


@router.get("/strategies/{ref}/trades", response_model=Page[TradeOut],
            responses={**COMMON_ERRORS, **INVALID, **NOT_FOUND}, summary="A strategy's trades")
async def strategy_trades(ref: str, request: Request, _: ReadAuth,
                          symbol: Annotated[str | None, Query(max_length=24)] = None,
                          since_ms: Annotated[int | None, Query(ge=0)] = None,
                          until_ms: Annotated[int | None, Query(ge=0)] = None,
                          exit_reason: Annotated[str | None, Query(max_length=32)] = None,
                          limit: Limit = None, cursor: Cursor = None) -> dict[str, Any]:
    """One strategy's trades, newest exit first, keyset-paginated."""
    ctx = ctx_of(request)
    row = await find_strategy(ctx, ref)
    return await _trades(ctx, row["strategy_id"], symbol, None, since_ms, until_ms, exit_reason, limit, cursor)


@router.get("/strategies/{ref}/equity", response_model=list[EquityPoint], responses={**COMMON_ERRORS, **NOT_FOUND},
            summary="Equity curve")
async def equity(ref: str, request: Request, _: ReadAuth) -> list[dict[str, Any]]:
    """The balance after every ledger entry (initial, PnL, fees, funding, deposits), oldest first."""
    ctx = ctx_of(request)
    row = await find_strategy(ctx, ref)
    return await ctx.store.equity_curve(row["strategy_id"])


@router.get("/strategies/{ref}/stats", response_model=StrategyStatsOut, responses={**COMMON_ERRORS, **NOT_FOUND},
            summary="Statistics and execution KPIs of one strategy")
async def strategy_stats(ref: str, request: Request, _: ReadAuth) -> dict[str, Any]:
    """Trade statistics with drawdown, maker share, fees, orders by type and state, friction in R, 24 h PnL."""
    ctx = ctx_of(request)
    row = await find_strategy(ctx, ref)
    sid = row["strategy_id"]
    kpis = (await ctx.store.execution_kpis()).get(sid, {})
    pnl = (await ctx.store.pnl_since(ctx.clock.now_ms() - DAY_MS)).get(sid) or {}
    return {"strategy_id": sid, "slug": row["slug"], "stats": await ctx.store.strategy_stats(sid),
            "execution": ExecutionKpis(**kpis).model_dump(), "pnl_24h": pnl}


def _sum_kpis(per: list[dict[str, Any]]) -> dict[str, Any]:
    out = ExecutionKpis().model_dump()
    weighted_r, n_r = 0.0, 0
    for k in per:
        for f in ("fills", "maker_fills", "fees", "notional", "orders_total"):
            out[f] += k.get(f, 0)
        for otype, states in k.get("orders", {}).items():
            agg = out["orders"].setdefault(otype, {})
            for state, n in states.items():
                agg[state] = agg.get(state, 0) + n
        if k.get("fees_r_avg") is not None:
            weighted_r += k["fees_r_avg"]
            n_r += 1
    out["maker_ratio"] = out["maker_fills"] / out["fills"] if out["fills"] else None
    out["fees_r_avg"] = weighted_r / n_r if n_r else None
    return out


@router.get("/stats", response_model=OverallStats, responses={**COMMON_ERRORS, **INVALID}, summary="Overall statistics")
async def overall_stats(request: Request, _: ReadAuth,
                        source: Annotated[str, Query(pattern="^(live|backtest|all)$")] = "live") -> dict[str, Any]:
    """Totals over the live strategies (or backtests, or all), execution KPIs and every strategy's card."""
    ctx = ctx_of(request)
    all_cards = [c for c in await cards(ctx) if source == "all" or c["source"] == source]
    kpis = await ctx.store.execution_kpis()
    trades_n = sum(c["stats"]["trades"] for c in all_cards)
    wins = sum(c["stats"]["wins"] for c in all_cards)
    return {
        "strategies": len(all_cards), "trades": trades_n, "wins": wins,
        "win_rate": wins / trades_n if trades_n else None,
        "net_pnl": sum(c["stats"]["net_pnl"] for c in all_cards), "net_r": sum(c["net_r"] for c in all_cards),
        "fees": sum(c["stats"]["fees"] for c in all_cards),
        "open_positions": sum(c["open_positions"] for c in all_cards),
        "pnl_24h": {k: sum(c["pnl_24h"][k] for c in all_cards) for k in ("trades", "net_pnl", "net_r")},
        "execution": _sum_kpis([kpis[c["strategy_id"]] for c in all_cards if c["strategy_id"] in kpis]),
        "by_strategy": all_cards,
    }

