"""System endpoints: liveness and readiness (no token: for probes), runtime health and counters,
versions, the Ray cluster summary, and who the caller is."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from arbray.api.auth import ReadAuth
from arbray.api.errors import COMMON_ERRORS, RUNTIME, RUNTIME_DOWN
from arbray.api.models import Health, Liveness, Readiness, Versions, Whoami
from arbray.api.service import call, ctx_of, try_call
from arbray.scoring.registry import get_kind, kind_names
from arbray.storage.schema import LATEST_VERSION

router = APIRouter(tags=["system"])
PACKAGES = ("fastapi", "pydantic", "ray", "numpy", "uvicorn", "asyncpg")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@router.get("/healthz", response_model=Liveness, summary="Liveness (no token)")
async def healthz() -> dict[str, Any]:
    """The API process answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}}, summary="Readiness (no token)")
async def readyz(request: Request) -> Any:
    """200 when the runtime reports every actor alive and every symbol's data fresh, else 503."""
    health = await try_call(ctx_of(request), lambda rt: rt.health())
    if health is None:
        return JSONResponse(status_code=503, content={"ready": False, "detail": RUNTIME_DOWN})
    if not health.get("ready"):
        return JSONResponse(status_code=503, content={"ready": False, "detail": "actors down or data stale"})
    return {"ready": True, "detail": None}


@router.get("/api/v1/system/health", response_model=Health, responses={**COMMON_ERRORS, **RUNTIME},
            summary="Runtime health in detail")
async def health(request: Request, _: ReadAuth) -> dict[str, Any]:
    """Mode, actors (alive, restarts, heartbeat) and per-symbol data freshness."""
    return await call(ctx_of(request), lambda rt: rt.health())


@router.get("/api/v1/system/stats", response_model=dict[str, Any], responses={**COMMON_ERRORS, **RUNTIME},
            summary="Runtime counters since start")
async def runtime_stats(request: Request, _: ReadAuth) -> dict[str, Any]:
    """Messages, rejects by reason, snapshots, scores, signals, orders, fills, trades, resyncs, restarts."""
    return await call(ctx_of(request), lambda rt: rt.stats())


@router.get("/api/v1/system/cluster", response_model=dict[str, Any], responses={**COMMON_ERRORS, **RUNTIME},
            summary="Ray cluster summary")
async def cluster(request: Request, _: ReadAuth) -> dict[str, Any]:
    """Nodes, total and available resources, and arbray's actors."""
    return await call(ctx_of(request), lambda rt: rt.cluster())


@router.get("/api/v1/system/versions", response_model=Versions, responses=COMMON_ERRORS, summary="Versions")
async def versions(request: Request, _: ReadAuth) -> dict[str, Any]:
    """arbray, Python, the database schema, main packages and every strategy kind's version."""
    ctx = ctx_of(request)
    return {"arbray": _version("arbray") or "unknown", "python": platform.python_version(),
            "schema_version": await ctx.store.schema_version(), "latest_schema_version": LATEST_VERSION,
            "packages": {p: _version(p) for p in PACKAGES},
            "kinds": {k: get_kind(k).version for k in kind_names()}}


@router.get("/api/v1/system/whoami", response_model=Whoami, responses=COMMON_ERRORS, summary="The caller")
async def whoami(principal: ReadAuth) -> dict[str, Any]:
    """The credential's name and role (the dashboard checks a token with it)."""
    return {"name": principal.name, "role": principal.role}
