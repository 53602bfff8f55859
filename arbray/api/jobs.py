"""Backtest and sweep jobs: what the API submits, and the ``JobRunner`` interface that runs them.

A job is an ``arbray backtest`` or ``arbray sweep`` command line run in its own folder
(``<work_dir>/<job_id>/``: inline strategy/grid YAML, ``out/`` with the results). The API plans the
job here (validating strategies through their kind and resolving inputs only inside the allowed
input folders, so a request can never name an arbitrary file), then hands the entrypoint to a
runner: ``SubprocessJobRunner`` (a local process, for a plain ``arbray api serve``) or
``arbray.actors.jobs.RayJobRunner`` (a Ray job through ``JobSubmissionClient``). Both commands
print one JSON summary line last; results are that line plus the files in ``out/``.

The journal DSN never appears in an entrypoint: a job that journals reads ``$ARBRAY_DB`` from its
environment, so neither the Ray dashboard nor job metadata shows a database password.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shlex
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson
import yaml
from pydantic import Field, ValidationError, field_validator

from arbray.scoring.config import FrozenModel
from arbray.scoring.presets import preset_names
from arbray.scoring.registry import parse_config

JobStatus = Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "STOPPED"]
TERMINAL: frozenset[str] = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
_INTERVAL = re.compile(r"^\d+(ms|s|m|h)$")
_JOB_ID = re.compile(r"^[a-z]+-[0-9a-f]{12}$")
MAX_LOG_BYTES = 1 << 20


def bundled_data_dir() -> Path:
    """The folder of the real recordings shipped with the package."""
    return Path(str(resources.files("arbray") / "data"))


class JobsConfig(FrozenModel):
    """Where jobs run and which recordings they may read."""

    work_dir: Path = Field(description="one sub-folder per job: inline YAML, log, out/")
    input_dirs: tuple[Path, ...] = Field(default_factory=lambda: (bundled_data_dir(),),
                                         description="folders a job's inputs are resolved in (nothing else)")
    max_running: int = Field(1, ge=1, le=64, description="jobs run at once; more wait as PENDING")
    python: str = Field(sys.executable, description="interpreter running `-m arbray`")
    journal_dsn: str | None = Field(None, description="DSN a journalling job writes to, passed as $ARBRAY_DB")


class _BacktestOptions(FrozenModel):
    inputs: tuple[str, ...] = Field(min_length=1, max_length=64,
                                    description="recording file names inside the allowed input folders")
    every: str = Field("15s", description="scoring interval (250ms, 15s, 1m …)")
    balance: float = Field(10_000.0, ge=100, le=1e9)
    risk_fraction: float = Field(0.02, gt=0, le=0.2)
    fill_model: Literal["through", "queue"] = "through"
    latency_ms: int = Field(0, ge=0, le=60_000)

    @field_validator("every")
    @classmethod
    def _interval(cls, v: str) -> str:
        if not _INTERVAL.match(v):
            raise ValueError("an interval like 250ms, 15s, 1m or 1h")
        return v

    @field_validator("inputs")
    @classmethod
    def _plain_names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [n for n in v if not n or "/" in n or "\\" in n or n.startswith(".")]
        if bad:
            raise ValueError(f"inputs are plain file names inside the allowed input folders, not {bad}")
        return v


class BacktestJob(_BacktestOptions):
    """``arbray backtest`` over ``inputs`` with preset names and/or inline configs."""

    type: Literal["backtest"] = "backtest"
    strategies: tuple[str | dict[str, Any], ...] = Field(
        min_length=1, max_length=500, description="preset names or inline strategy configs (with a kind)")
    journal: bool = Field(False, description="also journal the run into the API's store")


class SweepJob(_BacktestOptions):
    """``arbray sweep`` of a grid: base presets × parameter lists, on Ray tasks."""

    type: Literal["sweep"] = "sweep"
    strategies: tuple[str, ...] = Field(min_length=1, max_length=50, description="base preset names")
    params: dict[str, list[Any]] = Field(default_factory=dict, description="strategy field → values (all combinations)")
    num_cpus: int = Field(1, ge=1, le=64)


JobRequest = BacktestJob | SweepJob


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """A job ready to hand to a runner."""

    job_id: str
    type: str
    dir: Path
    entrypoint: str
    metadata: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)


class JobError(ValueError):
    """A job request that cannot run: ``loc`` names the offending field."""

    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


def resolve_inputs(names: Sequence[str], dirs: Sequence[Path]) -> list[Path]:
    """Each name as a file in the first allowed folder holding it (``JobError`` if none does)."""
    out: list[Path] = []
    for i, name in enumerate(names):
        for d in dirs:
            p = (d / name).resolve()
            if p.parent == d.resolve() and p.is_file():
                out.append(p)
                break
        else:
            raise JobError(("inputs", i), f"no recording named {name!r} in the allowed input folders")
    return out


def available_inputs(dirs: Sequence[Path]) -> list[str]:
    """File names a job may use as inputs, sorted."""
    names = {p.name for d in dirs if d.is_dir() for p in d.iterdir() if p.is_file() and not p.name.startswith(".")
             and not p.name.endswith(".md")}
    return sorted(names)


def _check_strategies(items: Sequence[str | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Inline configs validated by their kind; preset names checked to exist."""
    known = set(preset_names())
    inline: list[dict[str, Any]] = []
    for i, s in enumerate(items):
        if isinstance(s, str):
            if s not in known:
                raise JobError(("strategies", i), f"unknown preset {s!r}")
            continue
        try:
            inline.append(parse_config(s).model_dump(mode="json"))
        except ValidationError as exc:
            e = exc.errors()[0]
            raise JobError(("strategies", i, *e["loc"]), e["msg"]) from None
        except (KeyError, ValueError) as exc:
            raise JobError(("strategies", i, "kind"), str(exc.args[0] if exc.args else exc)) from None
    return inline


def plan_job(req: JobRequest, config: JobsConfig) -> PlannedJob:
    """Validate ``req`` against the allowed inputs and presets, write its folder and build its entrypoint."""
    inputs = resolve_inputs(req.inputs, config.input_dirs)
    job_id = f"{req.type}-{secrets.token_hex(6)}"
    job_dir = config.work_dir / job_id
    q = shlex.quote
    common = ["--input", *(q(str(p)) for p in inputs), "--every", q(req.every), "--balance", repr(req.balance),
              "--risk-fraction", repr(req.risk_fraction), "--fill-model", req.fill_model,
              "--latency-ms", str(req.latency_ms), "--out", q(str(job_dir / "out"))]
    env: dict[str, str] = {}
    files: dict[str, Any] = {}
    if isinstance(req, BacktestJob):
        inline = _check_strategies(req.strategies)
        refs = [q(s) for s in req.strategies if isinstance(s, str)]
        if inline:
            files["strategies.yaml"] = inline
            refs.append(q(str(job_dir / "strategies.yaml")))
        args = ["backtest", *common, "--strategy", *refs]
        if req.journal:
            if config.journal_dsn is None:
                raise JobError(("journal",), "this API has no journal store configured for jobs")
            args += ["--db", '"$ARBRAY_DB"']
            env["ARBRAY_DB"] = config.journal_dsn
    else:
        _check_strategies(req.strategies)
        files["grid.yaml"] = {"strategies": list(req.strategies), "params": req.params}
        args = ["sweep", *common, "--grid", q(str(job_dir / "grid.yaml")), "--num-cpus", str(req.num_cpus)]
    job_dir.mkdir(parents=True, exist_ok=False)
    for name, content in files.items():
        (job_dir / name).write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")
    (job_dir / "request.json").write_bytes(orjson.dumps(req.model_dump(mode="json")))
    entrypoint = " ".join([q(config.python), "-m", "arbray", *args])
    return PlannedJob(job_id, req.type, job_dir, entrypoint, {"arbray_type": req.type, "arbray_dir": str(job_dir)},
                      env)


def last_json_line(log: str) -> dict[str, Any] | None:
    """The last line of ``log`` that is a JSON object (both commands print their summary last)."""
    for line in reversed(log.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


def read_results(job_dir: Path, log: str, top: int = 50) -> dict[str, Any]:
    """What a finished job produced: its summary line, and the output files when they are reachable here."""
    out = job_dir / "out"
    result: dict[str, Any] = {"summary": last_json_line(log), "files": [], "detail": None}
    if not out.is_dir():
        return result
    result["files"] = sorted(p.name for p in out.iterdir() if p.is_file())
    summary = out / "summary.json"
    ranking = out / "ranking.jsonl"
    if summary.is_file():
        result["detail"] = orjson.loads(summary.read_bytes())
    elif ranking.is_file():
        with ranking.open("rb") as fh:
            result["detail"] = {"ranking": [orjson.loads(line) for _, line in zip(range(top), fh, strict=False)]}
    return result


class JobRunner(Protocol):
    """Runs planned jobs and reports on them; ``config`` says where they live."""

    config: JobsConfig

    async def submit(self, job: PlannedJob) -> dict[str, Any]:
        """Start (or queue) ``job``; returns its info."""
        ...

    async def info(self, job_id: str) -> dict[str, Any] | None:
        """``{"job_id", "type", "status", "submitted_ms", "started_ms", "ended_ms", "message"}`` or None."""
        ...

    async def list(self) -> list[dict[str, Any]]:
        """Info of every job this runner knows, newest first."""
        ...

    async def logs(self, job_id: str) -> str:
        """The job's output so far (at most the last ``MAX_LOG_BYTES``)."""
        ...

    async def stop(self, job_id: str) -> bool:
        """Stop a pending or running job; False if it already ended."""
        ...

    async def close(self) -> None:
        """Stop tracking; a local runner also stops the jobs it started."""
        ...


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SubprocessJobRunner:
    """Runs jobs as local processes (``max_running`` at once), with state kept in each job's ``job.json``.

    Jobs found in ``work_dir`` at start are listed again; one that was still pending or running
    when its runner went away is marked FAILED ("runner restarted"), never silently dropped.
    """

    def __init__(self, config: JobsConfig) -> None:
        self.config = config
        self._jobs: dict[str, dict[str, Any]] = {}
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(config.max_running)
        config.work_dir.mkdir(parents=True, exist_ok=True)
        for meta in sorted(config.work_dir.glob("*/job.json")):
            info = orjson.loads(meta.read_bytes())
            if info.get("status") not in TERMINAL:
                info |= {"status": "FAILED", "message": "runner restarted before the job ended",
                         "ended_ms": info.get("ended_ms") or _now_ms()}
                meta.write_bytes(orjson.dumps(info))
            self._jobs[info["job_id"]] = info

    def _save(self, job_id: str, **changes: Any) -> dict[str, Any]:
        info = self._jobs[job_id] | changes
        self._jobs[job_id] = info
        (self.config.work_dir / job_id / "job.json").write_bytes(orjson.dumps(info))
        return info

    async def submit(self, job: PlannedJob) -> dict[str, Any]:
        self._jobs[job.job_id] = {"job_id": job.job_id, "type": job.type, "status": "PENDING",
                                  "submitted_ms": _now_ms(), "started_ms": None, "ended_ms": None, "message": None}
        info = self._save(job.job_id)
        self._tasks[job.job_id] = asyncio.create_task(self._run(job))
        return dict(info)

    async def _run(self, job: PlannedJob) -> None:
        async with self._slots:
            if self._jobs[job.job_id]["status"] != "PENDING":
                return
            env = os.environ | job.env
            with (job.dir / "job.log").open("wb") as log:
                try:
                    proc = await asyncio.create_subprocess_shell(job.entrypoint, stdout=log, stderr=log, env=env,
                                                                 cwd=job.dir, start_new_session=True)
                except OSError as exc:
                    self._save(job.job_id, status="FAILED", ended_ms=_now_ms(), message=f"could not start: {exc}")
                    return
                self._procs[job.job_id] = proc
                self._save(job.job_id, status="RUNNING", started_ms=_now_ms())
                code = await proc.wait()
            self._procs.pop(job.job_id, None)
            if self._jobs[job.job_id]["status"] == "STOPPED":
                return
            if code == 0:
                self._save(job.job_id, status="SUCCEEDED", ended_ms=_now_ms(), message=None)
            else:
                self._save(job.job_id, status="FAILED", ended_ms=_now_ms(), message=f"exit code {code}")

    async def info(self, job_id: str) -> dict[str, Any] | None:
        info = self._jobs.get(job_id)
        return None if info is None else dict(info)

    async def list(self) -> list[dict[str, Any]]:
        return sorted((dict(i) for i in self._jobs.values()), key=lambda i: (-i["submitted_ms"], i["job_id"]))

    async def logs(self, job_id: str) -> str:
        if not _JOB_ID.match(job_id) or job_id not in self._jobs:
            raise KeyError(job_id)
        path = self.config.work_dir / job_id / "job.log"
        if not path.is_file():
            return ""
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - MAX_LOG_BYTES))
            return fh.read().decode("utf-8", errors="replace")

    async def stop(self, job_id: str) -> bool:
        info = self._jobs.get(job_id)
        if info is None:
            raise KeyError(job_id)
        if info["status"] in TERMINAL:
            return False
        self._save(job_id, status="STOPPED", ended_ms=_now_ms(), message="stopped on request")
        proc = self._procs.get(job_id)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        return True

    async def close(self) -> None:
        for job_id in [j for j, i in self._jobs.items() if i["status"] not in TERMINAL]:
            await self.stop(job_id)
        for proc in list(self._procs.values()):
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
