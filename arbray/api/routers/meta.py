"""What a client needs to build forms: strategy kinds with their config JSON Schema, presets, and
the symbols strategies may be created on with their per-symbol gate defaults."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from arbray.api.auth import ReadAuth
from arbray.api.errors import COMMON_ERRORS, NOT_FOUND
from arbray.api.models import KindInfo, SymbolInfo
from arbray.api.service import ctx_of
from arbray.scoring.gates import gate_defaults
from arbray.scoring.presets import load_presets
from arbray.scoring.registry import get_kind, kind_names

router = APIRouter(prefix="/api/v1", tags=["meta"])


def _kind(name: str) -> dict[str, Any]:
    k = get_kind(name)
    return {"name": k.name, "version": k.version, "config_schema": k.config_type.json_schema()}


@router.get("/kinds", response_model=list[KindInfo], responses=COMMON_ERRORS, summary="Strategy kinds")
async def kinds(_: ReadAuth) -> list[dict[str, Any]]:
    """Every registered kind with the JSON Schema of its config."""
    return [_kind(n) for n in kind_names()]


@router.get("/kinds/{name}", response_model=KindInfo, responses={**COMMON_ERRORS, **NOT_FOUND}, summary="One kind")
async def kind(name: str, _: ReadAuth) -> dict[str, Any]:
    """One kind's version and config JSON Schema."""
    if name not in kind_names():
        raise HTTPException(status_code=404, detail=f"unknown strategy kind {name!r}")
    return _kind(name)


@router.get("/presets", response_model=list[dict[str, Any]], responses=COMMON_ERRORS, summary="Shipped presets")
async def presets(_: ReadAuth) -> list[dict[str, Any]]:
    """Every shipped preset config (a starting point for a new strategy)."""
    return [p.model_dump(mode="json") for p in load_presets()]


@router.get("/symbols", response_model=list[SymbolInfo], responses=COMMON_ERRORS, summary="Tradable symbols")
async def symbols(request: Request, _: ReadAuth) -> list[dict[str, Any]]:
    """Symbols strategies may be created on, each with its recommended gate thresholds."""
    return [{"symbol": s, "gate_defaults": gate_defaults(s).model_dump(mode="json")}
            for s in ctx_of(request).settings.symbols]
