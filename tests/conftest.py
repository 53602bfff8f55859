"""Shared fixtures: where the real recordings are, and helpers to read them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def real_data_dir() -> Path:
    """``$ARBRAY_REAL_DATA`` or ``../shared/data/real`` next to the repository."""
    env = os.environ.get("ARBRAY_REAL_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    path = real_data_dir()
    if not (path / "hftbacktest" / "usdm").is_dir():
        pytest.skip(f"real recordings not found at {path} (set ARBRAY_REAL_DATA)")
    return path


@pytest.fixture(scope="session")
def hft_files(real_data: Path) -> list[Path]:
    return sorted((real_data / "hftbacktest" / "usdm").glob("*.gz"))


# Recording sessions: a pair of files continues across midnight; 20240808 files stand alone.
SESSIONS = [
    ("btcusdt_20230404.dat.gz", "btcusdt_20230405.dat.gz"),
    ("btcusdt_20240718.gz", "btcusdt_20240719.gz"),
    ("ethusdt_20240718.gz", "ethusdt_20240719.gz"),
    ("btcusdt_20240808.gz",),
    ("ethusdt_20240808.gz",),
]
