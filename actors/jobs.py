"""``RayJobRunner``: backtest and sweep jobs as Ray jobs, through ``ray.job_submission.JobSubmissionClient``.

The API plans a job (``arbray.api.jobs.plan_job``: folder, inline YAML, entrypoint) and this runner
submits the entrypoint under the job's id, so the Ray dashboard lists it beside everything else.
Job files live under ``JobsConfig.work_dir``: on more than one node that must be a shared folder
(the summary line in the logs is available everywhere). A journal DSN that carries a password is
never put into the job's ``runtime_env`` (the dashboard shows it): such a cluster sets
``ARBRAY_DB`` on its nodes instead. The client's calls are blocking HTTP; they run in a thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray.job_submission import JobSubmissionClient

from arbray.api.jobs import MAX_LOG_BYTES, JobsConfig, PlannedJob
from arbray.storage.config import redact

DEFAULT_ADDRESS = "http://127.0.0.1:8265"


def _info(details: Any) -> dict[str, Any]:
    meta = details.metadata or {}
    return {"job_id": details.submission_id or details.job_id, "type": meta.get("arbray_type", "unknown"),
            "status": str(getattr(details.status, "value", details.status)),
            "submitted_ms": details.start_time, "started_ms": details.start_time, "ended_ms": details.end_time,
            "message": details.message}


class RayJobRunner:
    """``JobRunner`` over a Ray cluster's job API (the dashboard's address)."""

    def __init__(self, config: JobsConfig, address: str = DEFAULT_ADDRESS) -> None:
        self.config = config
        self.address = address
        self._client: JobSubmissionClient | None = None
        config.work_dir.mkdir(parents=True, exist_ok=True)

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        def run() -> Any:
            if self._client is None:
                self._client = JobSubmissionClient(self.address)
            return getattr(self._client, method)(*args, **kwargs)

        return await asyncio.to_thread(run)

    async def submit(self, job: PlannedJob) -> dict[str, Any]:
        env = {k: v for k, v in job.env.items() if not (k == "ARBRAY_DB" and redact(v) != v)}
        await self._call("submit_job", entrypoint=job.entrypoint, submission_id=job.job_id, metadata=job.metadata,
                         runtime_env={"env_vars": env} if env else None)
        info = await self.info(job.job_id)
        assert info is not None
        return info

    async def info(self, job_id: str) -> dict[str, Any] | None:
        try:
            details = await self._call("get_job_info", job_id)
        except RuntimeError:  # the client raises RuntimeError for an unknown job
            return None
        return _info(details)

    async def list(self) -> list[dict[str, Any]]:
        jobs = [_info(d) for d in await self._call("list_jobs") if (d.metadata or {}).get("arbray_type")]
        return sorted(jobs, key=lambda i: (-(i["submitted_ms"] or 0), i["job_id"]))

    async def logs(self, job_id: str) -> str:
        text: str = await self._call("get_job_logs", job_id)
        return text[-MAX_LOG_BYTES:]

    async def stop(self, job_id: str) -> bool:
        stopped: bool = await self._call("stop_job", job_id)
        return stopped

    async def close(self) -> None:
        """Jobs belong to the cluster and keep running; only the client is dropped."""
        self._client = None
