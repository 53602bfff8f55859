"""``ApiContext``: what the control API is built over — the store, the runtime, jobs, metrics, settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from arbray.api.jobs import JobRunner
from arbray.api.settings import ApiSettings
from arbray.clock import Clock, SystemClock
from arbray.metrics import Metrics, NullMetrics
from arbray.runtime.control import RuntimeControl
from arbray.storage.base import Store


@dataclass
class ApiContext:
    """Dependencies of ``create_app``. ``runtime`` and ``jobs`` may be None: the endpoints that need
    them then answer 503 (``{"detail": "runtime not running"}`` / ``"jobs not available"``)."""

    store: Store
    runtime: RuntimeControl | None = None
    jobs: JobRunner | None = None
    metrics: Metrics = field(default_factory=NullMetrics)
    settings: ApiSettings = field(default_factory=ApiSettings)
    clock: Clock = field(default_factory=SystemClock)
