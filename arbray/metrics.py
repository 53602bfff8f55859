"""Every arbray metric in one declarative table, and the ``Metrics`` interface components record through.

Components never create metric objects: they call ``metrics.inc("arbray_fills", symbol=…, …)``
on an injected ``Metrics``. The table fixes each metric's type, description, label keys and
histogram buckets, so labels stay low-cardinality (symbol, kind, reason, order type, maker flag;
strategy names only where the number of strategies bounds them) and a label nobody declared is
an error, not a new time series. ``NullMetrics`` records nothing; ``InMemoryMetrics`` keeps values
for tests; ``arbray.actors.metrics.RayMetrics`` binds the table to ``ray.util.metrics``.

Names carry no ``_total`` suffix and no ``ray_`` prefix: the exporter adds those (on Ray a counter
``arbray_fills`` is scraped as ``ray_arbray_fills_total``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

MetricType = Literal["counter", "gauge", "histogram"]

LATENCY_BUCKETS_S: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                                        2.5, 5.0)
"""Seconds, 0.5 ms … 5 s: API requests, snapshot building, journal writes."""
R_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
"""Friction in R (fees + slippage as a fraction of the trade's 1R)."""


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric: its name, type, what it counts or measures, its label keys and (histograms) buckets."""

    name: str
    type: MetricType
    description: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


def _spec(name: str, type_: MetricType, description: str, *labels: str,
          buckets: tuple[float, ...] = ()) -> MetricSpec:
    return MetricSpec(name, type_, description, labels, buckets)


METRICS: tuple[MetricSpec, ...] = (
    # data quality (SymbolState, feeds)
    _spec("arbray_messages", "counter", "market messages ingested", "symbol", "stream"),
    _spec("arbray_messages_rejected", "counter", "market messages rejected, by reason", "symbol", "reason"),
    _spec("arbray_book_resyncs", "counter", "local order book resynchronisations", "symbol", "reason"),
    _spec("arbray_feed_reconnects", "counter", "market-data connection reconnects", "symbol"),
    _spec("arbray_aggtrade_gaps", "counter", "aggTrade id gaps detected (before REST gap fill)", "symbol"),
    _spec("arbray_data_age_seconds", "gauge", "seconds since the last market message", "symbol"),
    _spec("arbray_snapshot_latency_seconds", "histogram", "time to build one FeatureSnapshot", "symbol",
          buckets=LATENCY_BUCKETS_S),
    # scoring and signals (Strategy actors)
    _spec("arbray_scores", "counter", "score results by outcome (entry, below_entry, blocked, not_ready)",
          "kind", "outcome"),
    _spec("arbray_score_blocks", "counter", "score results blocked, by gate reason", "kind", "reason"),
    _spec("arbray_signals", "counter", "actionable signals emitted, by action (entry, flip, exit)", "kind",
          "action"),
    # execution (PositionManager)
    _spec("arbray_orders", "counter", "orders placed, by order type", "symbol", "order_type"),
    _spec("arbray_fills", "counter", "fills, by order type and maker flag", "symbol", "order_type", "maker"),
    _spec("arbray_friction_r", "histogram", "fees and slippage of a closed trade in R", "kind", buckets=R_BUCKETS),
    _spec("arbray_open_positions", "gauge", "open positions", "strategy"),
    _spec("arbray_net_r", "gauge", "net R since start", "strategy"),
    # risk and supervision
    _spec("arbray_risk_state", "gauge", "1 for the RiskGuard's current state (ACTIVE, REDUCING, HALTED), else 0",
          "state"),
    _spec("arbray_actor_restarts", "counter", "actor restarts", "actor"),
    # journal
    _spec("arbray_journal_queue_depth", "gauge", "records waiting to be written", "table"),
    _spec("arbray_journal_write_seconds", "histogram", "time of one journal write batch", "table",
          buckets=LATENCY_BUCKETS_S),
    # control API
    _spec("arbray_api_requests", "counter", "API requests, by route template, method and status", "route",
          "method", "status"),
    _spec("arbray_api_request_seconds", "histogram", "API request latency", "route", "method",
          buckets=LATENCY_BUCKETS_S),
    _spec("arbray_api_auth_failures", "counter", "rejected API credentials, by reason", "reason"),
)
"""Every arbray metric. Add a metric here, then record it; nothing else declares one."""

METRIC_TABLE: Mapping[str, MetricSpec] = {m.name: m for m in METRICS}


class MetricError(ValueError):
    """A metric that is not in the table, used as another type, or with labels it does not declare."""


def spec_for(name: str, type_: MetricType, labels: Mapping[str, str]) -> MetricSpec:
    """The table row of ``name``, checked against the type and label keys of one recording."""
    spec = METRIC_TABLE.get(name)
    if spec is None:
        raise MetricError(f"unknown metric {name!r}: declare it in arbray.metrics.METRICS")
    if spec.type != type_:
        raise MetricError(f"metric {name!r} is a {spec.type}, not a {type_}")
    if set(labels) != set(spec.labels):
        raise MetricError(f"metric {name!r} takes labels {sorted(spec.labels)}, got {sorted(labels)}")
    return spec


class Metrics(Protocol):
    """Where components record: counters go up, gauges are set, histograms observe."""

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        """Add ``value`` (≥ 0) to a counter."""
        ...

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set a gauge."""
        ...

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Record one observation of a histogram."""
        ...


class NullMetrics:
    """Records nothing (the default where no metrics backend is wired)."""

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        """Discard."""

    def set(self, name: str, value: float, **labels: str) -> None:
        """Discard."""

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Discard."""


LabelKey = tuple[tuple[str, str], ...]


def label_key(labels: Mapping[str, str]) -> LabelKey:
    """Labels as a sorted tuple (a hashable series key)."""
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


class InMemoryMetrics:
    """Validating in-process metrics for tests: every recording is checked against the table."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, LabelKey], float] = defaultdict(float)
        self.gauges: dict[tuple[str, LabelKey], float] = {}
        self.observations: dict[tuple[str, LabelKey], list[float]] = defaultdict(list)

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        spec_for(name, "counter", labels)
        if value < 0 or not math.isfinite(value):
            raise MetricError(f"counter {name!r} can only go up by a finite amount, got {value}")
        self.counters[name, label_key(labels)] += value

    def set(self, name: str, value: float, **labels: str) -> None:
        spec_for(name, "gauge", labels)
        self.gauges[name, label_key(labels)] = value

    def observe(self, name: str, value: float, **labels: str) -> None:
        spec_for(name, "histogram", labels)
        self.observations[name, label_key(labels)].append(value)

    def total(self, name: str, **labels: str) -> float:
        """Sum of a counter over every series whose labels include ``labels``."""
        want = set(label_key(labels))
        return sum(v for (n, key), v in self.counters.items() if n == name and want <= set(key))

    def count(self, name: str, **labels: str) -> int:
        """Observations of a histogram over every series whose labels include ``labels``."""
        want = set(label_key(labels))
        return sum(len(v) for (n, key), v in self.observations.items() if n == name and want <= set(key))
