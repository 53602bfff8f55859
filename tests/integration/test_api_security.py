"""Security of the control API: every endpoint needs a token (401), every mutation an admin (403),
verification time does not depend on which part of a token is wrong, failed authentications are
rate-limited per client, tokens never reach logs or responses, revocation works, CORS is explicit."""

from __future__ import annotations

import logging
import re
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from arbray.api import ApiSettings
from arbray.clock import ManualClock
from arbray.storage import open_store
from tests.unit.api.helpers import api, run

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
PUBLIC = {"/healthz", "/readyz", "/api/v1/openapi.json"}


def dsn(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sec.db'}"


def operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item
            if method in ("get", "post", "patch", "put", "delete")]


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def test_every_endpoint_needs_a_token_and_every_mutation_an_admin(tmp_path: Path) -> None:
    async def go() -> None:
        async with api(dsn(tmp_path)) as a:
            spec = (await a.client.get("/api/v1/openapi.json")).json()
            ops = operations(spec)
            assert len(ops) >= 40
            mutations = 0
            for method, path in ops:
                if path in PUBLIC:
                    assert "security" not in spec["paths"][path][method.lower()]
                    continue
                assert spec["paths"][path][method.lower()]["security"] == [{"HTTPBearer": []}], path
                url = concrete(path)
                r = await a.client.request(method, url, json={"bogus": True} if method != "GET" else None)
                assert r.status_code == 401, (method, path, r.status_code)
                assert r.headers["www-authenticate"] == "Bearer" and r.json() == {"detail": "missing bearer token"}
                if method != "GET":
                    mutations += 1
                    r = await a.client.request(method, url, headers=a.read, json={"bogus": True})
                    assert r.status_code == 403, (method, path, r.text)
                    assert r.json() == {"detail": "this needs an admin token"}
            assert mutations == 13
            for bad in ("Basic abc", "Bearer", "Bearer arb_nothex_x", "arb_0123456789abcdef_" + "a" * 43):
                r = await a.client.get("/api/v1/strategies", headers={"Authorization": bad})
                assert r.status_code == 401
            token = a.read["Authorization"].split()[1]
            assert (await a.client.get(f"/api/v1/strategies?token={token}")).status_code == 401  # never via URL

    run(go())


def test_verification_time_does_not_depend_on_which_part_of_the_token_is_wrong(tmp_path: Path) -> None:
    """Loose statistics on a shared machine: medians of wrong-id, wrong-secret and valid checks agree."""

    async def go() -> None:
        store = await open_store(dsn(tmp_path))
        try:
            token = await store.create_credential("timed", "read")  # default scrypt cost
            tid, secret = token[4:20], token[21:]
            wrong_id = f"arb_{'0' * 16}_{secret}"
            wrong_secret = f"arb_{tid}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
            cases = {"valid": token, "wrong_id": wrong_id, "wrong_secret": wrong_secret}
            times: dict[str, list[float]] = {k: [] for k in cases}
            await store.authenticate_token(token)  # stamps last_used once, outside the measurement
            for _ in range(12):
                for name, t in cases.items():
                    t0 = time.perf_counter()
                    ok = await store.authenticate_token(t)
                    times[name].append(time.perf_counter() - t0)
                    assert (ok is not None) == (name == "valid")
            med = {k: statistics.median(v) for k, v in times.items()}
            assert min(med.values()) > 0.005, med  # every path pays for one scrypt
            assert max(med.values()) / min(med.values()) < 1.5, med
        finally:
            await store.close()

    run(go())


def test_failed_authentications_are_rate_limited_per_client_and_revocation_works(tmp_path: Path) -> None:
    clock = ManualClock(1_000_000)
    settings = ApiSettings(auth_failure_limit=3, auth_failure_window_s=60, auth_cache_ttl_s=5)

    async def go() -> None:
        async with api(dsn(tmp_path), settings=settings, clock=clock) as a:
            c = a.client
            for _ in range(5):  # missing tokens cost nothing and are not counted
                assert (await c.get("/api/v1/strategies")).status_code == 401
            bad = {"Authorization": "Bearer arb_0123456789abcdef_" + "b" * 43}
            for _ in range(3):
                assert (await c.get("/api/v1/strategies", headers=bad)).status_code == 401
            r = await c.get("/api/v1/strategies", headers=a.read)
            assert r.status_code == 429 and r.headers["retry-after"] == "60"
            assert r.json() == {"detail": "too many failed authentications; retry later"}
            other = httpx.AsyncClient(transport=httpx.ASGITransport(app=c._transport.app,  # type: ignore[attr-defined]
                                                                    client=("127.0.0.2", 1)),
                                      base_url="http://testserver")
            async with other:
                assert (await other.get("/api/v1/strategies", headers=a.read)).status_code == 200
            clock.set(clock.now_ms() + 60_001)
            assert (await c.get("/api/v1/strategies", headers=a.read)).status_code == 200
            assert a.metrics.total("arbray_api_auth_failures", reason="invalid") == 3
            assert a.metrics.total("arbray_api_auth_failures", reason="rate_limited") == 1
            assert a.metrics.total("arbray_api_auth_failures", reason="missing") == 5

            assert await a.store.revoke_credential("viewer")
            assert (await c.get("/api/v1/strategies", headers=a.read)).status_code == 200  # cached ≤ TTL
            clock.set(clock.now_ms() + 5_001)
            assert (await c.get("/api/v1/strategies", headers=a.read)).status_code == 401

    run(go())


def test_tokens_never_reach_logs_or_responses(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> list[str]:
        seen: list[str] = []
        async with api(dsn(tmp_path)) as a:
            token = a.admin["Authorization"].split()[1]
            wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
            responses = [
                await a.client.get("/api/v1/strategies", headers=a.admin),
                await a.client.get("/api/v1/strategies", headers={"Authorization": f"Bearer {wrong}"}),
                await a.client.post("/api/v1/strategies", headers=a.admin, json={"display_name": token,
                                                                                  "config": {"kind": token}}),
                await a.client.get(f"/api/v1/strategies/{token}", headers=a.admin),
                await a.client.get("/api/v1/nope", headers=a.admin),
            ]
            for r in responses:
                seen.append(r.text + str(dict(r.headers)))
            assert responses[2].status_code == 422 and responses[3].status_code == 404
            return [token, wrong, *seen]

    with caplog.at_level(logging.DEBUG):
        token, wrong, *seen = run(go())
    server_log = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))  # not the client
    assert caplog.records and token[21:] not in server_log and wrong[21:] not in server_log
    assert all(token not in s and wrong not in s for s in seen[:2] + seen[3:])
    assert token not in seen[2]  # the 422 names the fields, it does not echo the body


def test_cors_is_off_by_default_and_explicit_when_configured(tmp_path: Path) -> None:
    preflight = {"Origin": "https://ops.example", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}

    async def go() -> None:
        async with api(dsn(tmp_path)) as a:
            r = await a.client.options("/api/v1/strategies", headers=preflight)
            assert "access-control-allow-origin" not in r.headers
        async with api(dsn(tmp_path).replace("sec.db", "cors.db"),
                       settings=ApiSettings(cors_origins=("https://ops.example",))) as a:
            r = await a.client.options("/api/v1/strategies", headers=preflight)
            assert r.headers["access-control-allow-origin"] == "https://ops.example"
            r = await a.client.options("/api/v1/strategies", headers={**preflight, "Origin": "https://evil.example"})
            assert r.headers.get("access-control-allow-origin") != "https://evil.example"

    run(go())
    for bad in (("*",), ("ops.example",), ("https://ops.example/path",)):
        with pytest.raises(ValueError, match="explicit"):
            ApiSettings(cors_origins=bad)
