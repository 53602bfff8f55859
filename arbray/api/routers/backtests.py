"""Backtest and sweep jobs: submit (admin), list, status, logs, results, stop.

Requests are planned by ``arbray.api.jobs.plan_job`` (inputs only from the allowed folders,
strategies validated by their kind) and run by the context's ``JobRunner`` — a Ray job on Ray,
a local process under a plain ``arbray api serve``; 503 when no runner is attached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request

from arbray.api.auth import AdminAuth, ReadAuth
from arbray.api.context import ApiContext
from arbray.api.errors import ADMIN_ERRORS, COMMON_ERRORS, INVALID, JOBS_DOWN, NOT_FOUND, ErrorResponse, one_field_error
from arbray.api.jobs import BacktestJob, JobError, JobRunner, SweepJob, available_inputs, plan_job, read_results
from arbray.api.models import JobInfo, JobLogs, JobResults
from arbray.api.service import ctx_of

router = APIRouter(prefix="/api/v1/backtests", tags=["backtests"])
_JOBS: dict[int | str, dict[str, Any]] = {503: {"model": ErrorResponse, "description": JOBS_DOWN}}
JobBody = Annotated[BacktestJob | SweepJob, Body(discriminator="type", openapi_examples={
    "backtest": {"summary": "two presets on the bundled BTC recording", "value": {
        "type": "backtest", "inputs": ["btcusdt_20240718.gz", "btcusdt_20240719.gz"],
        "strategies": ["BTC_CVD30mx4h_TPbalanced"], "every": "15s"}},
    "sweep": {"summary": "an entry-score grid", "value": {
        "type": "sweep", "inputs": ["btcusdt_20240718.gz"], "strategies": ["BTC_CVD30mx4h_TPbalanced"],
        "params": {"entry_score": [70, 75, 80]}}}})]


def _runner(ctx: ApiContext) -> JobRunner:
    if ctx.jobs is None:
        raise HTTPException(status_code=503, detail=JOBS_DOWN)
    return ctx.jobs


async def _info(runner: JobRunner, job_id: str) -> dict[str, Any]:
    info = await runner.info(job_id)
    if info is None:
        raise HTTPException(status_code=404, detail="job not found")
    return info


@router.get("/inputs", response_model=list[str], responses={**COMMON_ERRORS, **_JOBS}, summary="Usable recordings")
async def inputs(request: Request, _: ReadAuth) -> list[str]:
    """Recording file names a job may name in ``inputs``."""
    return available_inputs(_runner(ctx_of(request)).config.input_dirs)


@router.post("", status_code=202, response_model=JobInfo, responses={**ADMIN_ERRORS, **INVALID, **_JOBS},
             summary="Submit a backtest or sweep")
async def submit(body: JobBody, request: Request, _: AdminAuth) -> dict[str, Any]:
    """Plan the job (422 for an unknown input or preset, or an invalid inline config) and start it."""
    runner = _runner(ctx_of(request))
    try:
        job = plan_job(body, runner.config)
    except JobError as exc:
        raise one_field_error(("body", *exc.loc), exc.msg) from None
    return await runner.submit(job)


@router.get("", response_model=list[JobInfo], responses={**COMMON_ERRORS, **_JOBS}, summary="Jobs, newest first")
async def list_jobs(request: Request, _: ReadAuth) -> list[dict[str, Any]]:
    """Every job the runner knows."""
    return await _runner(ctx_of(request)).list()


@router.get("/{job_id}", response_model=JobInfo, responses={**COMMON_ERRORS, **NOT_FOUND, **_JOBS},
            summary="Job status")
async def job(job_id: str, request: Request, _: ReadAuth) -> dict[str, Any]:
    """PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED, with times and a message."""
    return await _info(_runner(ctx_of(request)), job_id)


@router.get("/{job_id}/logs", response_model=JobLogs, responses={**COMMON_ERRORS, **NOT_FOUND, **_JOBS},
            summary="Job output")
async def logs(job_id: str, request: Request, _: ReadAuth) -> dict[str, Any]:
    """The job's output so far (the last MiB)."""
    runner = _runner(ctx_of(request))
    await _info(runner, job_id)
    return {"job_id": job_id, "log": await runner.logs(job_id)}


@router.get("/{job_id}/results", response_model=JobResults, responses={
    **COMMON_ERRORS, **NOT_FOUND, **_JOBS, 409: {"description": "the job has not succeeded"}}, summary="Job results")
async def results(job_id: str, request: Request, _: ReadAuth) -> dict[str, Any]:
    """The summary line, the output files and the full summary (backtest) or top of the ranking (sweep)."""
    runner = _runner(ctx_of(request))
    info = await _info(runner, job_id)
    if info["status"] != "SUCCEEDED":
        raise HTTPException(status_code=409, detail=f"job is {info['status']}")
    res = read_results(Path(runner.config.work_dir) / job_id, await runner.logs(job_id))
    return {"job_id": job_id, "status": info["status"], **res}


@router.post("/{job_id}/stop", response_model=JobInfo, responses={**ADMIN_ERRORS, **NOT_FOUND, **_JOBS},
             summary="Stop a job")
async def stop(job_id: str, request: Request, _: AdminAuth) -> dict[str, Any]:
    """Stop a pending or running job (a finished one is left as it is)."""
    runner = _runner(ctx_of(request))
    await _info(runner, job_id)
    await runner.stop(job_id)
    return await _info(runner, job_id)
