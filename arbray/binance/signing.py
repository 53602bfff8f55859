"""HMAC-SHA256 request signing for Binance's SIGNED endpoints (client and simulator side).

Binance signs the exact query string (``totalParams`` = query + body) with the API secret and
expects ``signature=<hex>`` as the last parameter, ``timestamp`` in ms and an optional
``recvWindow`` (default 5,000 ms, at most 60,000). The API key travels in ``X-MBX-APIKEY``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

API_KEY_HEADER = "X-MBX-APIKEY"
DEFAULT_RECV_WINDOW_MS = 5_000
MAX_RECV_WINDOW_MS = 60_000


def sign(secret: str, payload: str) -> str:
    """Hex HMAC-SHA256 of ``payload`` under ``secret``."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_query(secret: str, params: Mapping[str, Any], timestamp_ms: int,
                 recv_window_ms: int | None = None) -> str:
    """``params`` + ``timestamp`` (+ ``recvWindow``) url-encoded in order, then ``&signature=…``."""
    items = [(k, _text(v)) for k, v in params.items() if v is not None]
    if recv_window_ms is not None:
        items.append(("recvWindow", str(recv_window_ms)))
    items.append(("timestamp", str(timestamp_ms)))
    query = urlencode(items)
    return f"{query}&signature={sign(secret, query)}"


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def verify(secret: str, total_params: str) -> bool:
    """Whether ``total_params`` (query + body, as sent) ends with a valid ``signature`` (constant time)."""
    head, sep, sig = total_params.rpartition("&signature=")
    if not sep:
        head, sep, sig = total_params.rpartition("signature=")
        if not sep or head:
            return False
    return hmac.compare_digest(sign(secret, head), sig)
