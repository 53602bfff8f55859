"""The control API on Ray Serve: one ingress deployment that builds its ``ApiContext`` in the replica.

The replica opens the store from the DSN, reaches the engine through
``arbray.actors.control.ActorRuntimeControl`` (named actor handles in the explicit namespace),
submits backtests as Ray jobs (``RayJobRunner``) and records metrics through ``RayMetrics``.
Sized for small machines (``ray-costs.md``): ``num_cpus`` 0, access log off, HTTP on loopback
unless told otherwise.

``serve deploy deploy/serve.yaml`` uses ``app_builder``; a driver that already called
``ray.init`` uses ``start``.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from pydantic import Field
from ray import serve
from ray.serve import Application

from arbray.api import ApiContext, ApiSettings, create_app
from arbray.api.jobs import JobsConfig, bundled_data_dir
from arbray.runtime.control import RuntimeControl
from arbray.scoring.config import FrozenModel
from arbray.storage import open_store
from arbray.storage.base import SqlStore
from arbray.storage.config import default_data_dir

from .jobs import DEFAULT_ADDRESS, RayJobRunner
from .metrics import RayMetrics

NAMESPACE = "arbray"
APP_NAME = "arbray"
DEPLOYMENT = "arbray_api"
log = logging.getLogger(__name__)


class ServeApiConfig(FrozenModel):
    """What the Serve deployment needs to build its context (the ``args`` of ``deploy/serve.yaml``)."""

    dsn: str | None = Field(None, description="store DSN; default: ARBRAY_DB / ARBRAY_DB_FILE / embedded SQLite")
    namespace: str = Field(NAMESPACE, min_length=1, description="Ray namespace of the engine's named actors")
    settings: ApiSettings = Field(default_factory=ApiSettings)
    jobs: bool = Field(True, description="submit backtests and sweeps as Ray jobs")
    jobs_address: str = Field(DEFAULT_ADDRESS, description="the Ray dashboard's address (job API)")
    jobs_dir: str | None = Field(None, description="job folders (shared across nodes); default: data dir/jobs")
    input_dirs: tuple[str, ...] = Field((), description="more folders jobs may read recordings from")
    num_replicas: int = Field(1, ge=1, le=16)


def runtime_control(namespace: str) -> RuntimeControl | None:
    """``ActorRuntimeControl(namespace)`` when the runtime's actor shell is installed, else None."""
    try:
        module = importlib.import_module("arbray.actors.control")
    except ModuleNotFoundError:
        return None
    runtime: RuntimeControl = module.ActorRuntimeControl(namespace)
    return runtime


class ApiReplica:
    """One replica of the control API (wrapped as the ``ArbrayApi`` deployment below)."""

    async def __init__(self, config: dict[str, Any]) -> None:  # type: ignore[misc]  # Serve awaits it
        cfg = ServeApiConfig.model_validate(config)
        self.store: SqlStore = await open_store(cfg.dsn)
        jobs = None
        if cfg.jobs:
            jobs_dir = Path(cfg.jobs_dir) if cfg.jobs_dir else default_data_dir() / "jobs"
            jobs = RayJobRunner(JobsConfig(work_dir=jobs_dir, journal_dsn=self.store.config.dsn,
                                           input_dirs=(bundled_data_dir(), *(Path(d) for d in cfg.input_dirs))),
                                cfg.jobs_address)
        self.ctx = ApiContext(store=self.store, runtime=runtime_control(cfg.namespace), jobs=jobs,
                              metrics=RayMetrics(), settings=cfg.settings)

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self.ctx)

    async def __del__(self) -> None:
        if self.ctx.jobs is not None:
            await self.ctx.jobs.close()
        await self.store.close()


ArbrayApi: Any = serve.deployment(
    name=DEPLOYMENT, ray_actor_options={"num_cpus": 0}, logging_config={"enable_access_log": False},
    health_check_period_s=10, graceful_shutdown_timeout_s=5,
)(serve.ingress()(ApiReplica))


def app_builder(args: dict[str, Any]) -> Application:
    """The Serve application for ``args`` (a ``ServeApiConfig`` mapping): ``serve deploy`` entry point."""
    cfg = ServeApiConfig.model_validate(args)
    app: Application = ArbrayApi.options(num_replicas=cfg.num_replicas).bind(cfg.model_dump(mode="json"))
    return app


def start(config: ServeApiConfig | None = None, host: str = "127.0.0.1", port: int = 8000) -> Any:
    """Start Serve's HTTP proxy on ``host:port`` and deploy the API at ``/`` (Ray must be initialised)."""
    cfg = config or ServeApiConfig()
    serve.start(http_options={"host": host, "port": port}, logging_config={"enable_access_log": False})
    return serve.run(app_builder(cfg.model_dump(mode="json")), name=APP_NAME, route_prefix="/")
