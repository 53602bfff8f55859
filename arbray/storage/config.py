"""Store configuration: the DSN (from ``ARBRAY_DB`` or a secret file) and the write-queue policy.

No credentials live in code: a PostgreSQL DSN comes from the environment (``ARBRAY_DB``) or from a
file named by ``ARBRAY_DB_FILE`` (e.g. a mounted secret); without either the embedded SQLite file
under the user's data directory is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

DropPolicy = Literal["block", "drop_newest"]


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/arbray`` or ``~/.local/share/arbray``."""
    base = os.environ.get("XDG_DATA_HOME")
    return (Path(base) if base else Path.home() / ".local" / "share") / "arbray"


def default_dsn() -> str:
    """The DSN from ``ARBRAY_DB``, else from the file named by ``ARBRAY_DB_FILE``, else embedded SQLite."""
    env = os.environ.get("ARBRAY_DB")
    if env:
        return env.strip()
    secret = os.environ.get("ARBRAY_DB_FILE")
    if secret:
        return Path(secret).read_text(encoding="utf-8").strip()
    return f"sqlite:///{default_data_dir() / 'arbray.db'}"


def dialect_of(dsn: str) -> Literal["sqlite", "postgresql"]:
    """``sqlite`` or ``postgresql`` from the DSN's scheme; anything else is rejected."""
    scheme = dsn.split(":", 1)[0].lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise ValueError(f"unsupported database DSN scheme {scheme!r}: use sqlite:///PATH or postgresql://…")


def sqlite_path(dsn: str) -> str:
    """The file of ``sqlite:///PATH`` (SQLAlchemy style: ``sqlite:///rel.db``, ``sqlite:////abs.db``)."""
    prefix = "sqlite:///"
    if not dsn.startswith(prefix) or len(dsn) == len(prefix):
        raise ValueError(f"expected sqlite:///PATH, got {dsn!r}")
    return unquote(dsn[len(prefix):])


def redact(dsn: str) -> str:
    """The DSN with any password replaced by ``***`` (for logs and CLI output)."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class StoreConfig(BaseModel):
    """Where the store lives and how the high-rate aggTrade writer queues and batches."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dsn: str = Field(default_factory=default_dsn, description="sqlite:///PATH or postgresql://…")
    queue_size: int = Field(200_000, gt=0, description="aggTrade rows the writer queue holds")
    drop_policy: DropPolicy = Field("block", description="block the producer when full, or drop and count")
    batch_size: int = Field(5_000, gt=0, description="rows per database write")
    flush_interval_ms: int = Field(200, gt=0, description="longest a queued row waits for a batch")
    pool_max_size: int = Field(4, gt=0, description="PostgreSQL connection pool size")

    @field_validator("dsn")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        dialect_of(v)
        return v
