"""``RayMetrics``: the ``arbray.metrics`` table bound to ``ray.util.metrics``.

Each process (actor, Serve replica) creates its metric objects lazily from the table on first use,
checks every recording against the table (unknown metric, wrong type or labels: ``MetricError``)
and lets Ray's metrics agent export them; Prometheus scrapes them as ``ray_<name>`` (counters
``ray_<name>_total``) with a ``WorkerId`` label per process — aggregate with ``sum without (WorkerId)``.
"""

from __future__ import annotations

from typing import Any

from ray.util import metrics as ray_metrics

from arbray.metrics import MetricSpec, MetricType, spec_for


class RayMetrics:
    """Records through ``ray.util.metrics`` Counter / Gauge / Histogram objects built from the table."""

    def __init__(self) -> None:
        self._objects: dict[str, Any] = {}

    def _metric(self, name: str, type_: MetricType, labels: dict[str, str]) -> Any:
        obj = self._objects.get(name)
        spec = spec_for(name, type_, labels)
        if obj is None:
            obj = self._objects[name] = _build(spec)
        return obj

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        """Add ``value`` to a counter (Ray refuses 0, so a 0 increment records nothing)."""
        counter = self._metric(name, "counter", labels)
        if value:
            counter.inc(value, tags=labels)

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set a gauge."""
        self._metric(name, "gauge", labels).set(value, tags=labels)

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Record one histogram observation."""
        self._metric(name, "histogram", labels).observe(value, tags=labels)


def _build(spec: MetricSpec) -> Any:
    if spec.type == "counter":
        return ray_metrics.Counter(spec.name, spec.description, tag_keys=spec.labels)
    if spec.type == "gauge":
        return ray_metrics.Gauge(spec.name, spec.description, tag_keys=spec.labels)
    return ray_metrics.Histogram(spec.name, spec.description, boundaries=list(spec.buckets), tag_keys=spec.labels)
