"""What ``arbray record`` writes: the feed's delivered messages as hftbacktest collector files, and
optionally its aggTrades into the journal.

``RawFileRecorder`` is an ``on_raw`` target: one gzip file per symbol of ``<recv_ns> <json>`` lines
(the format ``arbray.replay.readers`` reads, so ``arbray replay`` takes a recording as it is).
REST depth snapshots arrive with a ``"symbol"`` field (see ``MarketFeed``), so a file may hold
several sessions' snapshots and still be read right. ``AggTradeTap`` collects the delivered
aggTrades (live and REST-filled, in id order) as ``AggTrade`` rows for ``AggTradeRecorder``.
"""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path
from typing import IO, Any, cast

import orjson

from arbray.storage.records import AggTrade

_STREAM_PREFIX = b'{"stream":"'
_FLUSH_BYTES = 1 << 16


def message_symbol(raw: bytes) -> str | None:
    """The symbol a delivered message belongs to: from the stream name, else from the payload."""
    if raw.startswith(_STREAM_PREFIX):
        at = raw.find(b"@", len(_STREAM_PREFIX))
        if at > len(_STREAM_PREFIX) and raw[len(_STREAM_PREFIX)] != ord("!"):
            return raw[len(_STREAM_PREFIX):at].decode("ascii", "replace").upper()
    try:
        obj: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("data"), dict):
        obj = obj["data"]
    if not isinstance(obj, dict):
        return None
    inner = obj.get("o")
    sym = obj.get("s") or obj.get("symbol") or (inner.get("s") if isinstance(inner, dict) else None)
    return sym.upper() if isinstance(sym, str) and sym else None


class RawFileRecorder:
    """Writes each delivered message to ``<out>/<symbol>_<stamp>.gz`` as ``<recv_ns> <json>``."""

    def __init__(self, out_dir: Path, stamp: str, compresslevel: int = 6) -> None:
        self.out_dir = out_dir
        self.stamp = stamp
        self.compresslevel = compresslevel
        out_dir.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, IO[bytes]] = {}
        self._buffers: dict[str, list[bytes]] = {}
        self._buffered: Counter[str] = Counter()
        self.lines: Counter[str] = Counter()
        self.unattributed = 0
        self.paths: dict[str, Path] = {}

    def __call__(self, recv_ns: int, raw: bytes) -> None:
        symbol = message_symbol(raw)
        if symbol is None:
            self.unattributed += 1
            return
        if b"\n" in raw:  # one message per line: re-encode compactly
            raw = orjson.dumps(orjson.loads(raw))
        line = b"%d %s\n" % (recv_ns, raw)
        buf = self._buffers.get(symbol)
        if buf is None:
            buf = self._buffers[symbol] = []
        buf.append(line)
        self.lines[symbol] += 1
        self._buffered[symbol] += len(line)
        if self._buffered[symbol] >= _FLUSH_BYTES:
            self._flush(symbol)

    def _file(self, symbol: str) -> IO[bytes]:
        fh = self._files.get(symbol)
        if fh is None:
            path = self.out_dir / f"{symbol.lower()}_{self.stamp}.gz"
            n = 1
            while path.exists():
                path = self.out_dir / f"{symbol.lower()}_{self.stamp}_{n}.gz"
                n += 1
            fh = self._files[symbol] = cast(IO[bytes], gzip.GzipFile(path, "wb", self.compresslevel, mtime=0))
            self.paths[symbol] = path
        return fh

    def _flush(self, symbol: str) -> None:
        buf = self._buffers.get(symbol)
        if buf:
            self._file(symbol).write(b"".join(buf))
            buf.clear()
        self._buffered[symbol] = 0

    def close(self) -> None:
        for symbol in list(self._buffers):
            self._flush(symbol)
        for fh in self._files.values():
            fh.close()
        self._files.clear()

    def summary(self) -> dict[str, dict[str, Any]]:
        return {s: {"path": str(p), "lines": self.lines[s], "bytes": p.stat().st_size if p.exists() else None}
                for s, p in sorted(self.paths.items())}


class AggTradeTap:
    """Collects delivered aggTrade messages as journal rows; ``take`` hands over what was collected."""

    def __init__(self) -> None:
        self._rows: list[AggTrade] = []
        self.rows_seen = 0
        self.bad = 0

    def __call__(self, recv_ns: int, raw: bytes) -> None:
        if b'@aggTrade"' not in raw[:48]:
            return
        try:
            d = orjson.loads(raw)["data"]
            row = AggTrade(d["s"], int(d["a"]), float(d["p"]), float(d["q"]), int(d["f"]), int(d["l"]),
                           int(d["T"]), bool(d["m"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.bad += 1  # cannot happen for a delivered message (the parser accepted it); counted anyway
            return
        self._rows.append(row)
        self.rows_seen += 1

    def take(self) -> list[AggTrade]:
        rows, self._rows = self._rows, []
        return rows
