"""``ApiSettings``: everything the control API can be told, in one frozen config.

CORS is off unless explicit origins are listed (``*`` and anything that is not
``scheme://host[:port]`` is refused); failed authentications are limited per client; pages have a
default and a maximum size; strategy symbols are restricted to the ones the engine trades.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from arbray.scoring.config import DEFAULT_SYMBOLS, FrozenModel

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$")


class ApiSettings(FrozenModel):
    """Configuration of the control API (``arbray.api.create_app``)."""

    cors_origins: tuple[str, ...] = Field((), description="explicit browser origins allowed; empty = CORS off")
    auth_failure_limit: int = Field(10, ge=1, le=10_000, description="failed authentications per client per window")
    auth_failure_window_s: float = Field(60.0, gt=0, le=86_400, description="window of the failed-auth limit")
    auth_cache_ttl_s: float = Field(
        10.0, ge=0, le=3_600,
        description="how long a verified token is trusted without a new scrypt check (bounds revocation delay)")
    page_size_default: int = Field(100, ge=1, le=10_000, description="rows per page when a request gives no limit")
    page_size_max: int = Field(1_000, ge=1, le=10_000, description="largest page a request may ask for")
    symbols: tuple[str, ...] = Field(DEFAULT_SYMBOLS, min_length=1, description="symbols strategies may be created on")
    runtime_timeout_s: float = Field(5.0, gt=0, le=120, description="longest wait for one runtime call")

    @field_validator("cors_origins")
    @classmethod
    def _explicit_origins(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [o for o in v if not _ORIGIN.match(o)]
        if bad:
            raise ValueError(f"CORS origins must be explicit scheme://host[:port] values, not {bad}")
        return v

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        if self.page_size_default > self.page_size_max:
            return [(("page_size_default", "page_size_max"),
                     f"page_size_default ({self.page_size_default}) must not exceed page_size_max "
                     f"({self.page_size_max})")]
        return []
