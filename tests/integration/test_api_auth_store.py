"""API credentials in the store on both backends: migration 0005 keeps 0003 rows as revoked history,
tokens are scrypt-verified by id, names are unique among active credentials, nothing secret is listed."""

from __future__ import annotations

import hashlib

import pytest

from arbray.storage import open_store
from tests.integration.storage_backends import dsn, make_dsn, pg_database, run
from tests.unit.api.helpers import FAST_SCRYPT

pytestmark = pytest.mark.integration
__all__ = ["dsn", "make_dsn", "pg_database"]


def test_migration_0005_keeps_legacy_credentials_as_revoked_history(dsn: str) -> None:
    async def go() -> None:
        store = await open_store(dsn, migrate=False)
        try:
            await store.migrate(target=4)
            legacy = "legacy-token-value"
            async with store.connection() as c:
                await c.execute("INSERT INTO api_credentials (name, token_hash, role, created_ms, last_used_ms) "
                                "VALUES (?, ?, ?, ?, ?)", ("old", hashlib.sha256(legacy.encode()).hexdigest(),
                                                           "viewer", 1_000, 2_000))
            assert (await store.migrate())[0] == 5
            (row,) = await store.list_credentials()
            assert row == {"token_id": "legacy1", "name": "old", "role": "read", "kdf": "sha256",
                           "created_ms": 1_000, "last_used_ms": 2_000, "revoked_ms": 1_000}
            assert await store.verify_token(legacy) is None
            token = await store.create_credential("old", "admin", params=FAST_SCRYPT)  # the name is free again
            assert await store.verify_token(token) == "admin"
        finally:
            await store.close()

    run(go())


def test_create_verify_list_revoke_and_reissue(dsn: str) -> None:
    async def go() -> None:
        store = await open_store(dsn)
        try:
            token = await store.create_credential("ops", "admin", 1_000, params=FAST_SCRYPT)
            assert token.startswith("arb_") and len(token) == 4 + 16 + 1 + 43
            with pytest.raises(ValueError, match="exists"):
                await store.create_credential("ops", "read", params=FAST_SCRYPT)
            for bad_name in ("", "has space", "x" * 65, "-lead"):
                with pytest.raises(ValueError, match="credential name"):
                    await store.create_credential(bad_name, "read", params=FAST_SCRYPT)
            with pytest.raises(ValueError, match="role"):
                await store.create_credential("x", "viewer", params=FAST_SCRYPT)  # type: ignore[arg-type]
            cred = await store.authenticate_token(token, 10_000)
            assert cred == {"token_id": token[4:20], "name": "ops", "role": "admin"}
            await store.authenticate_token(token, 30_000)  # within a minute: last use not re-stamped
            assert (await store.list_credentials())[0]["last_used_ms"] == 10_000
            await store.authenticate_token(token, 70_000)
            (row,) = await store.list_credentials()
            assert row["last_used_ms"] == 70_000 and set(row) == {
                "token_id", "name", "role", "kdf", "created_ms", "last_used_ms", "revoked_ms"}
            async with store.connection() as c:
                raw = await c.fetch("SELECT * FROM api_credentials")
            assert token[21:] not in str(raw) and raw[0]["kdf_n"] == FAST_SCRYPT.n and len(raw[0]["salt"]) == 32
            for broken in (token + "x", token[:-1], "arb_" + token[4:20], token.replace("arb_", "abc_")):
                assert await store.authenticate_token(broken) is None
            assert await store.revoke_credential(token[4:20]) is True  # by token id
            assert await store.revoke_credential("ops") is False
            assert await store.verify_token(token) is None
            again = await store.create_credential("ops", "read", params=FAST_SCRYPT)
            assert await store.verify_token(again) == "read" and len(await store.list_credentials()) == 2
        finally:
            await store.close()

    run(go())
