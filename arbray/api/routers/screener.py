"""Screener endpoints: the latest ranked scan per model and the scan history, from the journal
(``screen_runs`` / ``screen_results``, written by the periodic ``ScreenerService``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request

from arbray.api.auth import ReadAuth
from arbray.api.errors import COMMON_ERRORS, INVALID, NOT_FOUND, one_field_error
from arbray.api.models import Page, ScreenLatest, ScreenRunOut
from arbray.api.routers.market import Limit, page_limit
from arbray.api.service import ctx_of

router = APIRouter(prefix="/api/v1/screener", tags=["screener"])
Model = Literal["ats_v2", "short_grid"]


@router.get("/latest", response_model=ScreenLatest, responses={**COMMON_ERRORS, **NOT_FOUND, **INVALID},
            summary="The newest scan of a model, ranked")
async def latest(request: Request, _: ReadAuth,
                 model: Annotated[Model, Query(description="ats_v2 (10+1 factors) or short_grid (GSS)")] = "ats_v2",
                 limit: Limit = None) -> dict[str, Any]:
    """The most recent journalled scan of ``model`` with its first ``limit`` ranked symbols (404 before
    the first scan)."""
    ctx = ctx_of(request)
    run = await ctx.store.latest_screen_run(model, page_limit(ctx, limit))
    if run is None:
        raise HTTPException(status_code=404, detail=f"no {model} scan journalled yet")
    return run


@router.get("/runs", response_model=Page[ScreenRunOut], responses={**COMMON_ERRORS, **INVALID},
            summary="Scan history, newest first")
async def runs(request: Request, _: ReadAuth, model: Annotated[Model | None, Query()] = None, limit: Limit = None,
               cursor: Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")]
               = None) -> dict[str, Any]:
    """Journalled scans (optionally of one model) without their results, keyset-paginated."""
    ctx = ctx_of(request)
    try:
        page = await ctx.store.screen_runs(model, page_limit(ctx, limit), cursor)
    except ValueError:
        raise one_field_error(("query", "cursor"), "bad cursor", "value_error") from None
    return {"items": page.rows, "next_cursor": page.next_cursor}
