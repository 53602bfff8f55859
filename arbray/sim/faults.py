"""Fault injection for the simulator server: what can go wrong between Binance and a client.

``FaultConfig`` (frozen, all off by default) says what to inject; ``FaultInjector`` decides, from a
seeded RNG, what happens to each message and request, and counts every injected fault by kind so
a test can compare what was injected with what its client recovered. Per WebSocket connection
(``ConnectionFaults``, its own RNG derived from the seed and the connection's number, so one
connection's decisions do not depend on another's traffic):

- ``drop`` / ``duplicate`` / ``reorder`` (the message is held and sent after the next one) /
  ``malformed`` per stream kind (``streams`` maps a kind, or ``"*"`` for all, to rates). Malformed
  messages are one of: truncated JSON, a wrong type (the symbol ``"s"`` becomes a number) or a NaN
  price; each is one the Binance parser must reject;
- ``depth_gap_rate``: a diff-depth message is withheld, so the client sees an update-id range
  skipped (``pu`` ≠ its last ``u``) and must resync its book.

Server-wide: ``disconnect_every_s`` (every market WebSocket is closed), silent stalls (every
``stall_every_s`` the connections stay open but send nothing for ``stall_s``; what would have
been sent is discarded and counted), REST 5xx and timeouts (the response is held for
``rest_timeout_s``, past the client's timeout), and order rejects for the trading routes
(``order_fault``: a code from ``order_reject_codes``).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import Field

from arbray.scoring.config import FrozenModel
from arbray.sim.streams import StreamKind

Rate = float
RestFault = Literal["5xx", "timeout"]


class StreamFaults(FrozenModel):
    """Per-message fault probabilities for one stream kind."""

    drop: Rate = Field(0.0, ge=0, le=1)
    duplicate: Rate = Field(0.0, ge=0, le=1)
    reorder: Rate = Field(0.0, ge=0, le=1)
    malformed: Rate = Field(0.0, ge=0, le=1)

    @property
    def active(self) -> bool:
        return bool(self.drop or self.duplicate or self.reorder or self.malformed)


_NONE = StreamFaults()


class FaultConfig(FrozenModel):
    """What the server injects (everything off by default)."""

    seed: int = 0
    disconnect_every_s: float | None = Field(None, gt=0, description="close every market WebSocket this often")
    stall_every_s: float | None = Field(None, gt=0, description="start a silent stall this often")
    stall_s: float = Field(0.0, ge=0, description="length of a silent stall")
    streams: dict[StreamKind | Literal["*"], StreamFaults] = Field(
        default_factory=dict, description="per stream kind ('*' = every kind not listed)")
    depth_gap_rate: Rate = Field(0.0, ge=0, le=1, description="diff-depth messages withheld (id gaps)")
    rest_5xx_rate: Rate = Field(0.0, ge=0, le=1)
    rest_timeout_rate: Rate = Field(0.0, ge=0, le=1)
    rest_timeout_s: float = Field(30.0, gt=0, description="how long a timed-out REST response is held")
    order_reject_rate: Rate = Field(0.0, ge=0, le=1, description="orders rejected by the trading routes")
    order_reject_codes: tuple[int, ...] = Field((-2010, -1008, -1007), min_length=1)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        out: list[tuple[tuple[str, ...], str]] = []
        if self.stall_every_s is not None and not 0 < self.stall_s < self.stall_every_s:
            out.append((("stall_every_s", "stall_s"), "a stall needs 0 < stall_s < stall_every_s"))
        return out

    def for_kind(self, kind: str) -> StreamFaults:
        """The rates that apply to ``kind``."""
        return self.streams.get(kind) or self.streams.get("*") or _NONE  # type: ignore[call-overload]

    @property
    def streams_active(self) -> bool:
        return self.depth_gap_rate > 0 or any(f.active for f in self.streams.values())

    @classmethod
    def from_file(cls, path: str | Path) -> FaultConfig:
        """Load from YAML or JSON."""
        text = Path(path).read_text(encoding="utf-8")
        data = orjson.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        return cls.model_validate(data or {})


_PRICE = re.compile(rb'"(p|b|a|c|o|markPrice)":"[0-9.]+"')
_LEVEL = re.compile(rb'\[\["[0-9.]+"')
_SYMBOL = re.compile(rb'"s":"[A-Z0-9]+"')


def corrupt(data: bytes, variant: int) -> tuple[bytes, str]:
    """A malformed copy of ``data`` the Binance parser rejects: 0 truncated, 1 wrong type, 2 NaN."""
    if variant == 1:
        out, n = _SYMBOL.subn(b'"s":12345', data)
        if n:
            return out, "wrong_type"
    elif variant == 2:
        out, n = _PRICE.subn(rb'"\1":"NaN"', data, count=1)
        if not n:
            out, n = _LEVEL.subn(b'[["NaN"', data, count=1)
        if n:
            return out, "nan_price"
    return data[: max(1, len(data) // 2)], "truncated"


class ConnectionFaults:
    """One WebSocket connection's fault decisions (its own seeded RNG)."""

    def __init__(self, injector: FaultInjector, number: int) -> None:
        self.injector = injector
        self.rng = random.Random(injector.config.seed * 1_000_003 + number)
        self.held: bytes | None = None

    def apply(self, kind: str, data: bytes) -> list[bytes]:
        """The frames to send, in order, for one published message (0, 1, 2 or 3 frames)."""
        cfg = self.injector.config
        counts = self.injector.counts
        rng = self.rng
        frames: list[bytes]
        f = cfg.for_kind(kind)
        if kind == "depth" and cfg.depth_gap_rate and rng.random() < cfg.depth_gap_rate:
            counts["depth_gap"] += 1
            frames = []
        elif f.drop and rng.random() < f.drop:
            counts[f"drop:{kind}"] += 1
            frames = []
        else:
            if f.malformed and rng.random() < f.malformed:
                data, variant = corrupt(data, rng.randrange(3))
                counts[f"malformed:{kind}"] += 1
                counts[f"malformed_variant:{variant}"] += 1
            frames = [data]
            if f.duplicate and rng.random() < f.duplicate:
                counts[f"duplicate:{kind}"] += 1
                frames.append(data)
            if self.held is None and f.reorder and rng.random() < f.reorder:
                counts[f"reorder:{kind}"] += 1
                self.held = frames.pop(0)
                return frames
        if self.held is not None and frames:
            frames.append(self.held)
            self.held = None
        return frames


class FaultInjector:
    """The server's live fault state: config (replaceable at run time), RNGs and counts."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.config = config or FaultConfig()
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(self.config.seed)
        self._connections = 0
        self.streams_active = self.config.streams_active  # read once per message by the server

    def replace(self, config: FaultConfig) -> None:
        """Switch to ``config`` now (counts are kept; the server-wide RNG is reseeded)."""
        self.config = config
        self._rng = random.Random(config.seed)
        self.streams_active = config.streams_active

    def connection(self) -> ConnectionFaults:
        """Fault state for a new WebSocket connection."""
        self._connections += 1
        return ConnectionFaults(self, self._connections)

    def rest_fault(self) -> RestFault | None:
        """Whether this REST request fails: ``"5xx"``, ``"timeout"`` or None."""
        cfg = self.config
        if cfg.rest_5xx_rate and self._rng.random() < cfg.rest_5xx_rate:
            self.counts["rest_5xx"] += 1
            return "5xx"
        if cfg.rest_timeout_rate and self._rng.random() < cfg.rest_timeout_rate:
            self.counts["rest_timeout"] += 1
            return "timeout"
        return None

    def order_fault(self) -> int | None:
        """For a trading route: the Binance code to reject this order with, or None."""
        cfg = self.config
        if cfg.order_reject_rate and self._rng.random() < cfg.order_reject_rate:
            code = cfg.order_reject_codes[self._rng.randrange(len(cfg.order_reject_codes))]
            self.counts[f"order_reject:{code}"] += 1
            return code
        return None

    def count(self, kind: str, n: int = 1) -> None:
        self.counts[kind] += n

    def state(self) -> dict[str, Any]:
        return {"config": self.config.model_dump(mode="json"), "injected": dict(self.counts)}
