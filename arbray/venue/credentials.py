"""Binance API credentials from the environment or a secret file; the secret never leaves this object.

The secret is only used to sign (``sign``); ``repr``/``str`` show a masked key and no secret, and
errors about malformed files name the file, never its content.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from arbray.binance.signing import sign

KEY_ENV = "BINANCE_API_KEY"
SECRET_ENV = "BINANCE_API_SECRET"


class CredentialsError(ValueError):
    """Credentials are missing or malformed (the message never contains a secret)."""


class BinanceCredentials:
    """An API key and its secret (HMAC-SHA256)."""

    __slots__ = ("_secret", "api_key")

    def __init__(self, api_key: str, api_secret: str) -> None:
        if not api_key or not api_key.strip():
            raise CredentialsError("empty API key")
        if not api_secret or not api_secret.strip():
            raise CredentialsError("empty API secret")
        self.api_key = api_key.strip()
        self._secret = api_secret.strip()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, key_var: str = KEY_ENV,
                 secret_var: str = SECRET_ENV) -> BinanceCredentials:
        """Read ``BINANCE_API_KEY`` / ``BINANCE_API_SECRET`` (or the given variable names)."""
        env = os.environ if env is None else env
        missing = [v for v in (key_var, secret_var) if not env.get(v)]
        if missing:
            raise CredentialsError(f"environment variable(s) not set: {', '.join(missing)}")
        return cls(env[key_var], env[secret_var])

    @classmethod
    def from_file(cls, path: str | Path) -> BinanceCredentials:
        """A JSON object ``{"api_key": …, "api_secret": …}`` or ``KEY=VALUE`` lines with the env names.

        The file must not be readable by group or others (like an ssh key).
        """
        p = Path(path)
        try:
            mode = p.stat().st_mode
        except OSError as e:
            raise CredentialsError(f"cannot read credentials file {p}: {e.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CredentialsError(f"credentials file {p} is accessible by group/others; chmod 600 it")
        text = p.read_text()
        values: dict[str, str] = {}
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            values = {str(k): str(v) for k, v in data.items()}
            key, secret = values.get("api_key", ""), values.get("api_secret", "")
        else:
            for line in text.splitlines():
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    k, _, v = line.partition("=")
                    values[k.strip()] = v.strip().strip("'\"")
            key, secret = values.get(KEY_ENV, ""), values.get(SECRET_ENV, "")
        if not key or not secret:
            raise CredentialsError(f"credentials file {p} lacks an API key or secret")
        return cls(key, secret)

    def sign(self, payload: str) -> str:
        """Hex HMAC-SHA256 signature of ``payload``."""
        return sign(self._secret, payload)

    def secret_equals(self, other: str) -> bool:
        """Whether ``other`` is this secret (tests and the simulator's account setup)."""
        return other == self._secret

    def __repr__(self) -> str:
        k = self.api_key
        masked = f"{k[:4]}…{k[-4:]}" if len(k) > 12 else "…"
        return f"BinanceCredentials(api_key={masked!r}, api_secret=<hidden>)"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("BinanceCredentials cannot be pickled (the secret stays in this process)")
