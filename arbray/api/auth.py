"""Bearer-token authentication: roles ``read`` and ``admin``, failed-auth limiting, a short verify cache.

A request carries ``Authorization: Bearer arb_<id>_<secret>``. The store verifies it with scrypt
(constant-time, see ``SqlStore.authenticate_token``); a verified token is trusted for
``auth_cache_ttl_s`` without another scrypt, keyed by its sha256, so steady dashboard polling
costs no KDF work and a revocation takes effect within that TTL. A client whose credentials failed
``auth_failure_limit`` times within the window gets 429 before any verification work is done.
Tokens are never logged, echoed or put in a URL; errors say only what was wrong.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from arbray.api.settings import ApiSettings
from arbray.clock import Clock
from arbray.metrics import Metrics
from arbray.storage.base import Store

Role = Literal["read", "admin"]
_bearer = HTTPBearer(auto_error=False, description="an arbray API token: `arbray token create --role read|admin`")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the credential's name (for audit records), its role and token id."""

    name: str
    role: Role
    token_id: str

    @property
    def source(self) -> str:
        """How lifecycle and risk records name this caller."""
        return f"api:{self.name}"


class FailedAuthLimiter:
    """Failed authentications per client in a sliding window; at most ``max_clients`` are tracked."""

    def __init__(self, limit: int, window_ms: int, clock: Clock, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self.clock = clock
        self.max_clients = max_clients
        self._fails: OrderedDict[str, deque[int]] = OrderedDict()

    def _recent(self, client: str, now: int) -> deque[int] | None:
        q = self._fails.get(client)
        if q is None:
            return None
        while q and q[0] <= now - self.window_ms:
            q.popleft()
        if not q:
            del self._fails[client]
            return None
        return q

    def retry_after_s(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None if it is not blocked."""
        now = self.clock.now_ms()
        q = self._recent(client, now)
        if q is None or len(q) < self.limit:
            return None
        return max(0.0, (q[-self.limit] + self.window_ms - now) / 1000)

    def fail(self, client: str) -> None:
        """Record one failed authentication of ``client``."""
        now = self.clock.now_ms()
        q = self._recent(client, now)
        if q is None:
            q = self._fails[client] = deque(maxlen=self.limit)
            while len(self._fails) > self.max_clients:
                self._fails.popitem(last=False)
        self._fails.move_to_end(client)
        q.append(now)


class TokenCache:
    """Recently verified tokens by sha256 of the token, each trusted until its expiry."""

    def __init__(self, ttl_ms: int, clock: Clock, max_entries: int = 1_024) -> None:
        self.ttl_ms = ttl_ms
        self.clock = clock
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[Principal, int]] = OrderedDict()

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str) -> Principal | None:
        """The cached principal of ``token`` if it was verified within the TTL."""
        if self.ttl_ms <= 0:
            return None
        key = self._key(token)
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit[1] <= self.clock.now_ms():
            del self._entries[key]
            return None
        return hit[0]

    def put(self, token: str, principal: Principal) -> None:
        """Trust ``token`` as ``principal`` for the TTL."""
        if self.ttl_ms <= 0:
            return
        self._entries[self._key(token)] = (principal, self.clock.now_ms() + self.ttl_ms)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every verified token (e.g. after a revocation in this process)."""
        self._entries.clear()


class Authenticator:
    """Turns a request's bearer token into a ``Principal`` or a 401/429."""

    def __init__(self, store: Store, settings: ApiSettings, clock: Clock, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self.limiter = FailedAuthLimiter(settings.auth_failure_limit, int(settings.auth_failure_window_s * 1000),
                                         clock)
        self.cache = TokenCache(int(settings.auth_cache_ttl_s * 1000), clock)

    def _reject(self, client: str, reason: str, detail: str, count: bool = True) -> HTTPException:
        self.metrics.inc("arbray_api_auth_failures", reason=reason)
        if count:
            self.limiter.fail(client)
        return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})

    async def authenticate(self, request: Request, creds: HTTPAuthorizationCredentials | None) -> Principal:
        """The principal of the request, or raise 401 (no/invalid token) or 429 (too many failures)."""
        client = request.client.host if request.client else "unknown"
        retry = self.limiter.retry_after_s(client)
        if retry is not None:
            self.metrics.inc("arbray_api_auth_failures", reason="rate_limited")
            raise HTTPException(status_code=429, detail="too many failed authentications; retry later",
                                headers={"Retry-After": str(max(1, math.ceil(retry)))})
        if creds is None:
            if request.headers.get("authorization"):
                raise self._reject(client, "malformed", "malformed Authorization header: use Bearer <token>")
            raise self._reject(client, "missing", "missing bearer token", count=False)
        token = creds.credentials.strip()
        cached = self.cache.get(token)
        if cached is not None:
            return cached
        cred = await self.store.authenticate_token(token)
        if cred is None:
            raise self._reject(client, "invalid", "invalid or revoked token")
        principal = Principal(cred["name"], cred["role"], cred["token_id"])
        self.cache.put(token, principal)
        return principal


async def require_read(request: Request,
                       creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    """Any valid token (``read`` or ``admin``)."""
    auth: Authenticator = request.app.state.auth
    return await auth.authenticate(request, creds)


async def require_admin(principal: Annotated[Principal, Depends(require_read)]) -> Principal:
    """A valid ``admin`` token: every mutation needs one."""
    if principal.role != "admin":
        raise HTTPException(status_code=403, detail="this needs an admin token")
    return principal


ReadAuth = Annotated[Principal, Depends(require_read)]
AdminAuth = Annotated[Principal, Depends(require_admin)]
