"""No secret is committed: every tracked text file is scanned for credential-shaped strings — private
keys, cloud and chat tokens, arbray API tokens, DSNs with a password, and password/secret/key
assignments with a literal value. Placeholders (``***``, ``<password>``, ``$VAR``) are allowed."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[3]
_Q = "['\"]"
PATTERNS: dict[str, re.Pattern[str]] = {
    "private key": re.compile("-----BEGIN [A-Z ]*PRIVATE" + " KEY-----"),
    "aws access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "github token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "discord bot token": re.compile(r"\b[MN][A-Za-z\d]{23,25}\.[\w-]{6}\.[\w-]{27,}\b"),
    "arbray api token": re.compile(r"\barb_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\b"),
    "dsn with password": re.compile(r"\b(?:postgres(?:ql)?|mysql|redis|amqp)://[^:/\s@]+:([^@\s/]+)@"),
    "assigned secret": re.compile(
        rf"(?i)\b(?:password|passwd|secret|api_?key|secret_?key|token)\b\s*[:=]\s*{_Q}([^{_Q[1:-1]}\s]{{8,}}){_Q}"),
}
PLACEHOLDER = re.compile(r"^(?:\*+|<[^>]+>|\$\{?[A-Z_]+\}?|x+|\.\.\.|changeme|example|secret|password)$", re.I)
ALLOWED: dict[tuple[str, str], str] = {
    ("tests/unit/binance/test_protocol_tables.py", "c2cdb5350be92a49d4d191ad931ad58083eb11cf4b96efc0a8256341faf79cce"):
        "Binance's published HMAC example key from its API documentation",
    ("tests/unit/storage/test_storage_logic.py", "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"):
        "a made-up password the DSN redaction test hides",
}
"""Known non-secrets: (file, sha256 of the matched value) → why it is not a secret."""
BINARY = {".gz", ".png", ".jpg", ".npz", ".npy", ".feather", ".parquet", ".zst", ".db", ".sqlite", ".pdf", ".whl"}


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / p for p in out.decode().split("\0") if p]


def test_patterns_catch_what_they_should() -> None:
    fake_dsn = "postgresql://app:" + "hunter2hunter2" + "@db:5432/x"
    assert PATTERNS["dsn with password"].search(fake_dsn)
    assert PATTERNS["assigned secret"].search('password = "' + "s3cr3t-value" + '"')
    assert PATTERNS["arbray api token"].search("arb_" + "0" * 16 + "_" + "A" * 43)
    assert not PATTERNS["dsn with password"].search("postgresql://postgres@127.0.0.1:5432/postgres")


def test_no_secret_in_tracked_files() -> None:
    hits: list[str] = []
    files = tracked_files()
    assert len(files) > 50
    for path in files:
        if path.suffix in BINARY or not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for name, pattern in PATTERNS.items():
            for m in pattern.finditer(text):
                value = m.group(1) if m.groups() else m.group(0)
                if m.groups() and PLACEHOLDER.match(value):
                    continue
                if (str(path.relative_to(REPO)), hashlib.sha256(value.encode()).hexdigest()) in ALLOWED:
                    continue
                line = text.count("\n", 0, m.start()) + 1
                hits.append(f"{path.relative_to(REPO)}:{line}: {name}")
    assert hits == [], "\n".join(hits)
