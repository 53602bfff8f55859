"""Pure pieces of the control plane: the metric table and its validating recorders, API settings,
the failed-auth limiter (a property test against a brute-force model), the verified-token cache,
and backtest job planning (inputs confined to the allowed folders, strategies validated)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbray.api.auth import FailedAuthLimiter, Principal, TokenCache
from arbray.api.jobs import (
    BacktestJob,
    JobError,
    JobsConfig,
    SweepJob,
    bundled_data_dir,
    last_json_line,
    plan_job,
    read_results,
)
from arbray.api.settings import ApiSettings
from arbray.clock import ManualClock
from arbray.metrics import METRIC_TABLE, METRICS, InMemoryMetrics, MetricError, NullMetrics

pytestmark = pytest.mark.unit
ALLOWED_LABELS = {"symbol", "stream", "reason", "kind", "outcome", "action", "order_type", "maker", "strategy",
                  "state", "actor", "table", "route", "method", "status"}


def test_metric_table_is_consistent_and_low_cardinality() -> None:
    assert len(METRIC_TABLE) == len(METRICS)
    for m in METRICS:
        assert re.fullmatch(r"arbray_[a-z0-9_]+", m.name) and not m.name.endswith("_total"), m.name
        assert set(m.labels) <= ALLOWED_LABELS, m.name
        assert (m.type == "histogram") == bool(m.buckets), m.name
        assert list(m.buckets) == sorted(set(m.buckets)), m.name
        assert m.description
    issue_list = {"arbray_messages", "arbray_messages_rejected", "arbray_book_resyncs",
                  "arbray_snapshot_latency_seconds", "arbray_scores", "arbray_score_blocks", "arbray_signals",
                  "arbray_orders", "arbray_fills",
                  "arbray_friction_r", "arbray_open_positions", "arbray_net_r", "arbray_risk_state",
                  "arbray_actor_restarts", "arbray_journal_queue_depth", "arbray_journal_write_seconds",
                  "arbray_api_request_seconds"}
    assert issue_list <= set(METRIC_TABLE)


def test_in_memory_metrics_validate_every_recording() -> None:
    m = InMemoryMetrics()
    m.inc("arbray_fills", symbol="BTCUSDT", order_type="LIMIT", maker="true")
    m.inc("arbray_fills", 2, symbol="BTCUSDT", order_type="MARKET", maker="false")
    m.set("arbray_open_positions", 3, strategy="a")
    m.observe("arbray_snapshot_latency_seconds", 0.002, symbol="BTCUSDT")
    assert m.total("arbray_fills") == 3 and m.total("arbray_fills", maker="true") == 1
    assert m.count("arbray_snapshot_latency_seconds", symbol="BTCUSDT") == 1
    with pytest.raises(MetricError, match="unknown metric"):
        m.inc("arbray_nope")
    with pytest.raises(MetricError, match="is a counter"):
        m.set("arbray_fills", 1, symbol="X", order_type="L", maker="t")
    with pytest.raises(MetricError, match="takes labels"):
        m.inc("arbray_fills", symbol="BTCUSDT")
    with pytest.raises(MetricError, match="takes labels"):
        m.inc("arbray_fills", symbol="B", order_type="L", maker="t", position_id="p1")
    with pytest.raises(MetricError, match="only go up"):
        m.inc("arbray_actor_restarts", -1, actor="risk")
    NullMetrics().inc("anything", x="y")  # the null recorder costs nothing and checks nothing


def test_api_settings_rules() -> None:
    assert ApiSettings().cors_origins == ()
    assert ApiSettings(cors_origins=("http://127.0.0.1:8080",)).cors_origins == ("http://127.0.0.1:8080",)
    with pytest.raises(ValueError, match="page_size_default"):
        ApiSettings(page_size_default=500, page_size_max=100)
    with pytest.raises(ValueError):
        ApiSettings(auth_failure_limit=0)
    with pytest.raises(ValueError):
        ApiSettings(surprise=1)  # type: ignore[call-arg]


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1, 5), window=st.integers(1, 50),
       steps=st.lists(st.tuples(st.integers(0, 30), st.sampled_from(["a", "b"]), st.booleans()), max_size=40))
def test_failed_auth_limiter_matches_a_sliding_window_model(limit: int, window: int,
                                                            steps: list[tuple[int, str, bool]]) -> None:
    clock = ManualClock(0)
    limiter = FailedAuthLimiter(limit, window, clock)
    fails: dict[str, list[int]] = {"a": [], "b": []}
    for dt, client, fail in steps:
        clock.set(clock.now_ms() + dt)
        now = clock.now_ms()
        recent = [t for t in fails[client] if t > now - window]
        blocked = len(recent) >= limit
        retry = limiter.retry_after_s(client)
        assert (retry is not None) == blocked
        if blocked:
            assert retry == pytest.approx((recent[-limit] + window - now) / 1000)
        elif fail:
            limiter.fail(client)
            fails[client].append(now)


def test_limiter_bounds_the_clients_it_tracks() -> None:
    clock = ManualClock(0)
    limiter = FailedAuthLimiter(1, 1_000, clock, max_clients=3)
    for i in range(10):
        limiter.fail(f"c{i}")
    assert [limiter.retry_after_s(f"c{i}") is not None for i in range(10)] == [False] * 7 + [True] * 3


def test_token_cache_expires_and_is_bounded() -> None:
    clock = ManualClock(0)
    cache = TokenCache(1_000, clock, max_entries=2)
    p = Principal("a", "read", "0" * 16)
    cache.put("t1", p)
    assert cache.get("t1") == p and cache.get("t2") is None
    clock.set(1_000)
    assert cache.get("t1") is None
    for t in ("t1", "t2", "t3"):
        cache.put(t, p)
    assert cache.get("t1") is None and cache.get("t3") == p
    off = TokenCache(0, clock)
    off.put("t", p)
    assert off.get("t") is None


def test_plan_job_confines_inputs_and_validates_strategies(tmp_path: Path) -> None:
    cfg = JobsConfig(work_dir=tmp_path / "jobs")
    job = plan_job(BacktestJob(inputs=("btcusdt_20240718.gz",), strategies=(
        "v51_baseline", {"kind": "factory", "strategy_id": "inline_a", "symbol": "BTCUSDT"})), cfg)
    assert job.job_id.startswith("backtest-") and (job.dir / "strategies.yaml").is_file()
    assert str(bundled_data_dir() / "btcusdt_20240718.gz") in job.entrypoint and "--db" not in job.entrypoint
    assert job.metadata["arbray_type"] == "backtest"
    with pytest.raises(ValueError, match="plain file names"):
        BacktestJob(inputs=("../../etc/passwd",), strategies=("v51_baseline",))
    for bad, loc in ((BacktestJob(inputs=("nope.gz",), strategies=("v51_baseline",)), ("inputs", 0)),
                     (BacktestJob(inputs=("btcusdt_20240718.gz",), strategies=("nope",)), ("strategies", 0)),
                     (BacktestJob(inputs=("btcusdt_20240718.gz",), strategies=(
                         {"kind": "factory", "strategy_id": "x", "symbol": "BTCUSDT", "entry_score": 1},)),
                      ("strategies", 0, "entry_score")),
                     (BacktestJob(inputs=("btcusdt_20240718.gz",), strategies=({"kind": "nope"},)),
                      ("strategies", 0, "kind")),
                     (BacktestJob(inputs=("btcusdt_20240718.gz",), strategies=("v51_baseline",), journal=True),
                      ("journal",))):
        with pytest.raises(JobError) as exc:
            plan_job(bad, cfg)
        assert exc.value.loc == loc
    journalled = plan_job(BacktestJob(inputs=("btcusdt_20240718.gz",), strategies=("v51_baseline",), journal=True),
                          JobsConfig(work_dir=tmp_path / "jobs", journal_dsn="postgresql://u:secret@h/db"))
    assert "secret" not in journalled.entrypoint and '"$ARBRAY_DB"' in journalled.entrypoint
    assert journalled.env == {"ARBRAY_DB": "postgresql://u:secret@h/db"}
    sweep = plan_job(SweepJob(inputs=("btcusdt_20240718.gz",), strategies=("v51_baseline",),
                              params={"entry_score": [70, 75]}), cfg)
    assert " sweep " in sweep.entrypoint and (sweep.dir / "grid.yaml").is_file()


def test_results_come_from_the_summary_line_and_the_output_folder(tmp_path: Path) -> None:
    assert last_json_line('noise\n{"a": 1}\n{broken\nlast words\n') == {"a": 1}
    assert last_json_line("nothing here") is None
    res = read_results(tmp_path, '{"trades": 3}')
    assert res == {"summary": {"trades": 3}, "files": [], "detail": None}
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "summary.json").write_text('{"trades": 3, "net_r": 1.5}')
    assert read_results(tmp_path, "")["detail"] == {"trades": 3, "net_r": 1.5}
