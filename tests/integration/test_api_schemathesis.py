"""Property-based tests of the whole API from its OpenAPI document (schemathesis, bounded examples):
no operation answers with a server error, and every response matches its documented schema.

The API runs on uvicorn on loopback (free port) over a SQLite store with strategies already in it
and a local job runner; requests carry an admin token. Operations that need the running engine are
left out here (without one they answer 503 by design); they are covered against a runtime elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.unit.api.helpers import factory_config, serve_in_thread

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
NEEDS_RUNTIME = (r"^/readyz$|^/api/v1/market/snapshots$|^/api/v1/market/\{symbol\}$|^/api/v1/accounts$|"
                 r"^/api/v1/system/(health|stats|cluster)$|^/api/v1/risk/(block-new|resume|emergency-close)$|"
                 r"^/api/v1/strategies/\{ref\}/kill$")
MAX_EXAMPLES = 12


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("fuzz")
    with serve_in_thread(f"sqlite:///{root / 'fuzz.db'}", jobs_dir=root / "jobs") as info:
        headers = {"Authorization": f"Bearer {info['admin']}"}
        for name, symbol in (("fuzz_btc", "BTCUSDT"), ("fuzz_eth", "ETHUSDT")):
            r = httpx.post(f"{info['base']}/api/v1/strategies", headers=headers, timeout=10,
                           json={"display_name": name, "config": factory_config(name, symbol=symbol)})
            assert r.status_code == 201, r.text
        yield info


def test_no_operation_fails_or_breaks_its_schema(server: dict[str, Any]) -> None:
    """Each operation gets its own bounded hypothesis run (schemathesis drives the data, not its pytest plugin)."""
    schema = schemathesis.openapi.from_url(f"{server['base']}/api/v1/openapi.json").exclude(path_regex=NEEDS_RUNTIME)
    headers = {"Authorization": f"Bearer {server['admin']}"}
    failures: list[str] = []
    ran = 0
    calls = [0]
    for result in schema.get_all_operations():
        op = result.ok()

        @given(case=op.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            calls[0] += 1
            case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance],
                                   timeout=30)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{op.label}: {type(exc).__name__}: {str(exc)[:600]}")
        ran += 1
    assert ran >= 35 and calls[0] >= 5 * ran, (ran, calls)
    assert failures == [], "\n\n".join(failures)


def test_the_document_lists_every_route(server: dict[str, Any], tmp_path: Path) -> None:
    spec = httpx.get(f"{server['base']}/api/v1/openapi.json", timeout=10).json()
    paths = set(spec["paths"])
    assert {"/api/v1/strategies", "/api/v1/strategies/{ref}", "/api/v1/trades", "/api/v1/risk", "/healthz",
            "/api/v1/backtests", "/api/v1/market/{symbol}/indicators"} <= paths
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op.get("summary") and op.get("description"), (method, path)
            assert "200" in op["responses"] or "201" in op["responses"] or "202" in op["responses"], (method, path)
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
