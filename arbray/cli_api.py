"""``arbray token …`` and ``arbray api serve``: API credentials, and the control API on plain uvicorn.

``arbray token create --role read|admin --name N [--db DSN]`` issues a token and prints it once
(only its scrypt hash is stored); ``arbray token list`` shows credentials without secrets;
``arbray token revoke NAME_OR_ID``. ``arbray api serve [--db DSN] [--port P]`` runs the API and the
dashboard on loopback only (no TLS here: put a TLS proxy in front for anything else), with local
backtest jobs and no runtime attached — the runtime-backed endpoints answer 503 until one is.
On Ray the API runs on Serve instead (``arbray.actors.serve``).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from pathlib import Path
from typing import Any

import orjson

from arbray.storage import open_store
from arbray.storage.config import StoreConfig, default_data_dir


def _config(args: argparse.Namespace) -> StoreConfig:
    return StoreConfig(dsn=args.db) if args.db else StoreConfig()


def _emit(obj: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.flush()


async def _create(cfg: StoreConfig, name: str, role: str) -> str:
    store = await open_store(cfg)
    try:
        return await store.create_credential(name, role)  # type: ignore[arg-type]
    finally:
        await store.close()


async def _list(cfg: StoreConfig) -> list[dict[str, Any]]:
    store = await open_store(cfg)
    try:
        return await store.list_credentials()
    finally:
        await store.close()


async def _revoke(cfg: StoreConfig, name: str) -> bool:
    store = await open_store(cfg)
    try:
        return await store.revoke_credential(name)
    finally:
        await store.close()


def _cmd_token_create(args: argparse.Namespace) -> int:
    token = asyncio.run(_create(_config(args), args.name, args.role))
    _emit({"name": args.name, "role": args.role, "token": token})
    print("Store this token now: it is shown only once and cannot be recovered.", file=sys.stderr)
    return 0


def _cmd_token_list(args: argparse.Namespace) -> int:
    for row in asyncio.run(_list(_config(args))):
        _emit(row)
    return 0


def _cmd_token_revoke(args: argparse.Namespace) -> int:
    if not asyncio.run(_revoke(_config(args), args.name)):
        print(f"arbray: no active credential {args.name!r}", file=sys.stderr)
        return 1
    _emit({"revoked": args.name})
    return 0


def loopback_host(text: str) -> str:
    """``text`` if it is a loopback address or ``localhost`` (argparse type)."""
    if text == "localhost":
        return text
    try:
        if ipaddress.ip_address(text).is_loopback:
            return text
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a loopback address: the plain API serves loopback only")


def _cmd_api_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from arbray.api import ApiContext, ApiSettings, create_app
    from arbray.api.jobs import JobsConfig, SubprocessJobRunner, bundled_data_dir

    async def serve() -> None:
        cfg = _config(args)
        store = await open_store(cfg)
        jobs = None
        if not args.no_jobs:
            jobs = SubprocessJobRunner(JobsConfig(
                work_dir=Path(args.jobs_dir) if args.jobs_dir else default_data_dir() / "jobs",
                input_dirs=(bundled_data_dir(), *(Path(d) for d in args.input_dir or ())),
                journal_dsn=cfg.dsn))
        settings = ApiSettings(cors_origins=tuple(args.cors_origin or ()))
        app = create_app(ApiContext(store=store, jobs=jobs, settings=settings))
        server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, access_log=False,
                                               log_level="warning", proxy_headers=False))
        try:
            await server.serve()
        finally:
            if jobs is not None:
                await jobs.close()
            await store.close()

    print(f"arbray API and dashboard on http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    asyncio.run(serve())
    return 0


def register(subparsers: Any) -> None:
    """Add ``token`` and ``api`` to the ``arbray`` parser's subparsers."""
    t = subparsers.add_parser("token", help="API credentials: create (shown once), list, revoke")
    tsub = t.add_subparsers(dest="token_command", required=True)
    c = tsub.add_parser("create", help="issue a bearer token and print it once")
    c.add_argument("--role", choices=("read", "admin"), required=True, help="read: every GET; admin: everything")
    c.add_argument("--name", required=True, help="who or what holds the token (unique among active tokens)")
    c.add_argument("--db", default=None, metavar="DSN")
    c.set_defaults(func=_cmd_token_create)
    ls = tsub.add_parser("list", help="credentials as JSON lines, without secrets")
    ls.add_argument("--db", default=None, metavar="DSN")
    ls.set_defaults(func=_cmd_token_list)
    r = tsub.add_parser("revoke", help="revoke a credential by name or token id")
    r.add_argument("name")
    r.add_argument("--db", default=None, metavar="DSN")
    r.set_defaults(func=_cmd_token_revoke)

    a = subparsers.add_parser("api", help="the control API and dashboard")
    asub = a.add_subparsers(dest="api_command", required=True)
    s = asub.add_parser("serve", help="run the API and dashboard with uvicorn on loopback")
    s.add_argument("--db", default=None, metavar="DSN")
    s.add_argument("--host", type=loopback_host, default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--cors-origin", action="append", metavar="ORIGIN", help="allow this browser origin (repeatable)")
    s.add_argument("--jobs-dir", default=None, help="backtest job folders (default: the data directory's jobs/)")
    s.add_argument("--input-dir", action="append", help="another folder jobs may read recordings from")
    s.add_argument("--no-jobs", action="store_true", help="do not run backtest jobs")
    s.set_defaults(func=_cmd_api_serve)
