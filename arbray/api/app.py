"""``create_app(ctx)``: the control API (versioned under ``/api/v1``) and the dashboard at ``/``.

The app is plain FastAPI over an ``ApiContext``, so it runs under uvicorn, in tests through
``TestClient``, and on Ray Serve (``arbray.actors.serve``) unchanged. Every response carries
security headers (a strict Content-Security-Policy: the dashboard loads only its own files);
CORS is added only for explicitly configured origins; every request is counted and timed by
route template (``arbray_api_requests``, ``arbray_api_request_seconds``).
"""

from __future__ import annotations

import time
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arbray.api.auth import Authenticator
from arbray.api.context import ApiContext
from arbray.api.errors import install_error_handlers
from arbray.api.routers import backtests, market, meta, risk, screener, strategies, system, trading
from arbray.metrics import Metrics

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                 b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
)
DESCRIPTION = """The control plane of arbray: strategy factory and lifecycle, market data and signals,
positions, trades and statistics, risk controls, system status, backtest jobs and the market-wide screener.

Authenticate with `Authorization: Bearer <token>` (create one with `arbray token create --role read|admin`).
`read` tokens may call every GET; every change needs an `admin` token. Errors are `{"detail": "…"}`;
invalid requests are 422 with one `{"loc", "msg", "type"}` per field. Endpoints that need the running
engine answer 503 `{"detail": "runtime not running"}` when it is not running."""


def static_dir() -> Path:
    """The dashboard's files (shipped inside the package)."""
    return Path(str(resources.files("arbray.api") / "static"))


class RequestMetrics:
    """Counts and times every HTTP request by its route template (bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, capture)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            self.metrics.inc("arbray_api_requests", route=route, method=method, status=str(status))
            self.metrics.observe("arbray_api_request_seconds", time.perf_counter() - t0, route=route, method=method)


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, add)


def _version() -> str:
    try:
        return metadata.version("arbray")
    except metadata.PackageNotFoundError:
        return "0"


def create_app(ctx: ApiContext) -> FastAPI:
    """The control API and dashboard over ``ctx``."""
    app = FastAPI(title="arbray control API", version=_version(), description=DESCRIPTION,
                  openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs", redoc_url=None)
    app.state.ctx = ctx
    app.state.auth = Authenticator(ctx.store, ctx.settings, ctx.clock, ctx.metrics)
    install_error_handlers(app)
    for module in (strategies, market, trading, risk, system, meta, backtests, screener):
        app.include_router(module.router)
    root = static_dir()
    app.mount("/static", StaticFiles(directory=root), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> Any:
        return FileResponse(root / "index.html", media_type="text/html")

    if ctx.settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(ctx.settings.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST", "PATCH"], allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics, metrics=ctx.metrics)
    return app
