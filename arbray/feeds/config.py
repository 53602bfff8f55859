"""Frozen configs of the Binance market-data clients, and the production / testnet endpoint presets.

One config per component: ``RestConfig`` (the REST client), ``FeedConfig`` (everything the
``MarketFeed`` does: streams, sharding, reconnects, rotation, book sync, gap fill, pollers). Base
URLs are plain configuration, so the same client runs against Binance or the local simulator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from arbray.scoring.config import FrozenModel, Symbol

DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
"""The ``limit`` values ``GET /fapi/v1/depth`` accepts."""

POLLERS = ("open_interest", "open_interest_hist", "long_short_ratio", "top_trader_ratio", "funding_rate",
           "premium_index")
"""The 5-minute REST indicator pollers (``arbray.feeds.pollers``); the spot price has its own interval."""

# <kind> as in "<symbol>@<kind>": the stream kinds a symbol can be subscribed to.
_STREAM_KIND = re.compile(
    r"^(aggTrade|trade|bookTicker|forceOrder|depth(@(0|100|250|500)ms)?"
    r"|markPrice(@1s)?|kline_(1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M))$"
)
_GLOBAL_STREAM = re.compile(r"^!(forceOrder@arr|markPrice@arr(@1s)?|bookTicker)$")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where a deployment lives: USD-M WebSocket and REST base URLs, and spot REST for the spot price."""

    ws_base: str
    rest_base: str
    spot_rest_base: str | None


BINANCE_PRODUCTION = Endpoints("wss://fstream.binance.com", "https://fapi.binance.com", "https://api.binance.com")
BINANCE_TESTNET = Endpoints("wss://stream.binancefuture.com", "https://testnet.binancefuture.com",
                            "https://testnet.binance.vision")


_HTTP = r"^https?://[^\s/]+(:\d+)?(/[^\s]*)?$"
_WS = r"^wss?://[^\s/]+(:\d+)?(/[^\s]*)?$"


class RestConfig(FrozenModel):
    """The REST client: base URLs, timeouts, retry/backoff policy and rate-limit headroom."""

    base_url: str = Field(pattern=_HTTP, description="USD-M REST base, e.g. https://fapi.binance.com")
    spot_base_url: str | None = Field(None, pattern=_HTTP, description="spot REST base (spot price only)")
    timeout_s: float = Field(10.0, gt=0, le=120, description="total time for one HTTP attempt")
    max_attempts: int = Field(5, ge=1, le=50, description="attempts per request (retries + 1)")
    deadline_s: float = Field(120.0, gt=0, le=3600, description="give up on a request after this long in total")
    backoff_initial_s: float = Field(0.25, gt=0, le=60, description="first retry delay after a 5xx/timeout")
    backoff_max_s: float = Field(30.0, gt=0, le=600, description="cap of the exponential retry delay")
    rate_limit_backoff_s: float = Field(60.0, gt=0, le=3600,
                                        description="wait after a 429/418 that carries no Retry-After")
    headroom: float = Field(0.9, gt=0, le=1, description="fraction of each published limit this client may use")
    user_agent: str = Field("arbray-feed/0.1", min_length=1, max_length=200)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        if self.backoff_max_s < self.backoff_initial_s:
            return [(("backoff_initial_s", "backoff_max_s"), "backoff_max_s must be >= backoff_initial_s")]
        return []


class FeedConfig(FrozenModel):
    """Everything a ``MarketFeed`` does for its symbols (defaults follow Binance's published limits)."""

    ws_base: str = Field(pattern=_WS, description="USD-M WebSocket base, e.g. wss://fstream.binance.com")
    rest_base: str = Field(pattern=_HTTP, description="USD-M REST base")
    spot_rest_base: str | None = Field(None, pattern=_HTTP, description="spot REST base; None: no spot price")
    symbols: tuple[Symbol, ...] = Field(min_length=1, description="USD-M symbols, upper case")
    streams: tuple[str, ...] = Field(
        ("aggTrade", "depth@100ms", "bookTicker", "markPrice@1s", "forceOrder"), min_length=1,
        description="stream kinds subscribed per symbol (<symbol>@<kind>)")
    global_streams: tuple[str, ...] = Field((), description="all-market streams, e.g. !forceOrder@arr")
    routed: bool = Field(False, description="use Binance's routed WS paths: /public for depth and bookTicker, "
                                            "/market for the rest")
    shard_size: int = Field(200, ge=1, le=1024, description="streams per WebSocket connection")
    subscribe_via: Literal["url", "subscribe"] = Field(
        "url", description="name the streams in the connect URL, or send SUBSCRIBE messages after connecting")
    subscribe_batch: int = Field(50, ge=1, le=1024, description="streams per SUBSCRIBE message")
    control_msgs_per_s: float = Field(4.0, gt=0, le=10, description="client->server messages per second "
                                                                    "(Binance disconnects above 10)")
    transport: Literal["aiohttp", "websockets"] = Field(
        "aiohttp", description="WebSocket client library (aiohttp's C frame reader costs a third of websockets' "
                               "per frame; see docs/feeds.md)")
    compression: bool = Field(False, description="negotiate permessage-deflate")
    open_timeout_s: float = Field(10.0, gt=0, le=120, description="WebSocket handshake timeout")
    close_timeout_s: float = Field(1.0, gt=0, le=60, description="wait for a close handshake before aborting")
    max_queue: int = Field(4096, ge=16, le=1_000_000,
                           description="frames the websockets transport buffers before pausing reads")
    backoff_initial_s: float = Field(0.25, gt=0, le=60, description="first reconnect delay after a failure")
    backoff_max_s: float = Field(30.0, gt=0, le=600, description="cap of the exponential reconnect delay")
    backoff_jitter: float = Field(0.5, ge=0, le=1, description="delay is scaled by uniform(1 - jitter, 1)")
    watchdog_s: float = Field(30.0, gt=0, le=3600, description="reconnect when a connection is silent this long")
    rotation_s: float = Field(23.5 * 3600, gt=0, le=24 * 3600,
                              description="replace each connection after this long (Binance closes at 24 h)")
    rotation_overlap_s: float = Field(1.0, ge=0, le=60,
                                      description="keep the old connection this long after the new one delivers")
    rotation_switch_timeout_s: float = Field(30.0, gt=0, le=600,
                                             description="give up a replacement that delivers nothing this long")
    snapshot_limit: int = Field(1000, description="depth snapshot levels (weight 20 at 1000)")
    snapshots_per_min: int = Field(100, ge=1, le=1000, description="snapshot requests per minute, all symbols")
    snapshot_max_attempts: int = Field(5, ge=1, le=100, description="failed syncs in a row before 'degraded'")
    snapshot_bridge_timeout_s: float = Field(10.0, gt=0, le=600,
                                             description="a snapshot no diff bridges within this is a failure")
    degraded_retry_s: float = Field(60.0, gt=0, le=3600, description="retry period of a degraded book")
    depth_reorder_ms: float = Field(60.0, ge=0, le=5000,
                                    description="hold an out-of-sequence depth event this long for the missing one")
    gap_grace_ms: float = Field(30.0, ge=0, le=10_000,
                                description="wait this long for a late aggTrade before filling the gap by REST")
    gap_fill_deadline_s: float = Field(60.0, gt=0, le=3600,
                                       description="report a gap unfillable when REST cannot fill it within this")
    gap_fill_page: int = Field(1000, ge=1, le=1000, description="aggTrades per REST page")
    max_held_trades: int = Field(200_000, ge=100, le=10_000_000,
                                 description="trades held behind a gap before it is declared unfillable")
    dedupe_window: int = Field(4096, ge=16, le=1_000_000,
                               description="recent id-less payloads remembered for duplicate detection")
    pollers: tuple[str, ...] = Field(POLLERS, description="which REST indicator pollers run")
    poll_interval_s: float = Field(300.0, gt=0, le=86_400, description="period of the indicator pollers")
    poll_period: Literal["5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"] = Field(
        "5m", description="period parameter of the /futures/data statistics")
    oi_history_limit: int = Field(30, ge=1, le=500, description="openInterestHist rows on the first poll")
    spot_poll_interval_s: float = Field(5.0, gt=0, le=3600, description="period of the spot price poll")
    spot_symbols: dict[str, str] = Field(default_factory=dict,
                                         description="spot symbol per perp symbol where they differ")
    rest_timeout_s: float = Field(10.0, gt=0, le=120, description="REST attempt timeout")
    rest_max_attempts: int = Field(5, ge=1, le=50, description="REST attempts per request")
    rest_deadline_s: float = Field(120.0, gt=0, le=3600, description="REST total time per request")
    rest_headroom: float = Field(0.9, gt=0, le=1, description="fraction of Binance's limits this client uses")

    @classmethod
    def for_endpoints(cls, endpoints: Endpoints, symbols: tuple[str, ...], **overrides: object) -> FeedConfig:
        """A config for a preset (``BINANCE_PRODUCTION``, ``BINANCE_TESTNET``) or a simulator's URLs."""
        return cls.model_validate({"ws_base": endpoints.ws_base, "rest_base": endpoints.rest_base,
                                   "spot_rest_base": endpoints.spot_rest_base, "symbols": symbols, **overrides})

    def rest_config(self) -> RestConfig:
        """The REST client's config for this feed."""
        return RestConfig(base_url=self.rest_base, spot_base_url=self.spot_rest_base, timeout_s=self.rest_timeout_s,
                          max_attempts=self.rest_max_attempts, deadline_s=self.rest_deadline_s,
                          headroom=self.rest_headroom)

    def stream_names(self) -> list[str]:
        """Every stream name this feed subscribes, in a stable order."""
        names = [f"{s.lower()}@{k}" for s in self.symbols for k in self.streams]
        return names + list(self.global_streams)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        broken: list[tuple[tuple[str, ...], str]] = []
        bad = [k for k in self.streams if not _STREAM_KIND.match(k)]
        if bad:
            broken.append((("streams",), f"unknown stream kinds {bad}"))
        bad_global = [g for g in self.global_streams if not _GLOBAL_STREAM.match(g)]
        if bad_global:
            broken.append((("global_streams",), f"unknown all-market streams {bad_global}"))
        if "aggTrade" in self.streams and "trade" in self.streams:
            broken.append((("streams",), "subscribe aggTrade or trade, not both (one trade id sequence per symbol)"))
        if len([k for k in self.streams if k.startswith("depth")]) > 1:
            broken.append((("streams",), "one diff-depth stream per symbol (each speed has its own pu chain)"))
        if len(set(self.symbols)) != len(self.symbols):
            broken.append((("symbols",), "symbols must be unique"))
        if self.snapshot_limit not in DEPTH_LIMITS:
            broken.append((("snapshot_limit",), f"snapshot_limit must be one of {DEPTH_LIMITS}"))
        unknown = [p for p in self.pollers if p not in POLLERS]
        if unknown:
            broken.append((("pollers",), f"unknown pollers {unknown}; known: {POLLERS}"))
        if self.backoff_max_s < self.backoff_initial_s:
            broken.append((("backoff_initial_s", "backoff_max_s"), "backoff_max_s must be >= backoff_initial_s"))
        if self.watchdog_s >= self.rotation_s:
            broken.append((("watchdog_s", "rotation_s"), "watchdog_s must be shorter than rotation_s"))
        return broken
