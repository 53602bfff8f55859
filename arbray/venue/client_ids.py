"""Engine client order ids ↔ Binance ``newClientOrderId`` (at most 36 characters of ``[.A-Z:/a-z0-9_-]``).

The engine's ids (``<strategy>-<symbol>-<seq>-<role><attempt>``) are a function of the position
and step, so a machine rebuilt after a restart sends the same ones. The wire id must be just as
deterministic: an id that already fits Binance's rule is sent unchanged; any other id is sent as
``prefix + base32(sha256(id))[:32]``. The same engine id therefore always carries the same
``newClientOrderId``, and Binance's duplicate check (-4116 while the order is open) keeps a resend
from creating a second order. The reverse map is rebuilt from the ids the engine knows.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

WIRE_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
DEFAULT_PREFIX = "ab-"
_ENGINE_ID = re.compile(r"^(?P<strategy>.+)-(?P<symbol>[A-Z0-9]{2,30})-(?P<seq>\d+)-(?P<role>[A-Z0-9]+)$")


def wire_id(engine_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The ``newClientOrderId`` for ``engine_id`` (deterministic)."""
    if WIRE_ID.match(engine_id) and not engine_id.startswith(prefix):
        return engine_id
    digest = base64.b32encode(hashlib.sha256(engine_id.encode()).digest()).decode()
    return prefix + digest[: 36 - len(prefix)]


def parse_engine_id(engine_id: str) -> tuple[str, str] | None:
    """``(strategy, symbol)`` of an execution-machine id, or None when it is not one."""
    m = _ENGINE_ID.match(engine_id)
    return (m.group("strategy"), m.group("symbol")) if m else None


class ClientIdMap:
    """Both directions of the id mapping for the ids this process knows."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        if not WIRE_ID.match(prefix + "A") or len(prefix) > 8:
            raise ValueError(f"client id prefix {prefix!r} must be ≤ 8 characters of [.A-Z:/a-z0-9_-]")
        self.prefix = prefix
        self._to_engine: dict[str, str] = {}

    def wire(self, engine_id: str) -> str:
        """Map (and remember) ``engine_id``."""
        w = wire_id(engine_id, self.prefix)
        self._to_engine[w] = engine_id
        return w

    def learn(self, engine_ids: Iterable[str]) -> None:
        """Rebuild the reverse map from ids the engine knows (e.g. after a restart)."""
        for e in engine_ids:
            self.wire(e)

    def engine(self, wire: str) -> str | None:
        """The engine id behind a ``clientOrderId`` seen on the venue, or None for a foreign order."""
        return self._to_engine.get(wire)

    def ours(self, wire: str) -> bool:
        """Whether a wire id looks like one this scheme produced (hashed form)."""
        return wire.startswith(self.prefix)

    def __len__(self) -> int:
        return len(self._to_engine)
