"""Readers for recorded market data, all yielding the same ``Record`` stream.

Supported inputs (format detected from the name and the first line):
- hftbacktest collector files: ``<local_ts> <combined-stream JSON>`` lines, gzip (local ts in µs
  or ns); the REST snapshot line carries no symbol, so the symbol comes from the file name;
- cryptofeed raw captures (zstd): the v2 JSONL format and the older ``<ts>: <json>`` /
  ``<url> -> <ts>: <body>`` format;
- tardis.dev CSV: ``trades``, ``quotes`` and ``book_snapshot_N`` (top of book);
- Binance public-data CSV (optionally zipped or gzipped): ``aggTrades`` and ``klines``.

A ``Record`` is ``(sort_ms, seq, payload)`` where ``sort_ms`` is the running maximum of the
exchange time within the file (so in-file order is kept while files merge in exchange-time
order) and the payload is a ``RawJson`` tuple ``(decoded JSON, receive ns, symbol hint)`` — a
plain tuple because it is created once per recorded line — a typed event, or a ``TradeBatch``
that never crosses a multiple of ``align_ms``.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import orjson

from arbray.marketdata.events import BookTicker, Event, Kline, TradeBatch

_SYMBOL_RE = re.compile(r"([A-Za-z0-9]+?USDT|[A-Za-z0-9]+?USDC|[A-Za-z0-9]+?BUSD)", re.I)


RawJson = tuple[Any, int, str | None]  # (decoded JSON or None if undecodable, recv ns, symbol hint)
Payload = RawJson | TradeBatch | Event
Record = tuple[int, int, Payload]


class UnsupportedInput(ValueError):
    """The file's format could not be recognised."""


def symbol_from_name(path: str | Path) -> str | None:
    """``btcusdt_20240808.gz`` → ``BTCUSDT``; ``BTCUSDT-aggTrades-2024-01-01.zip`` → ``BTCUSDT``."""
    m = _SYMBOL_RE.match(Path(path).name)
    return m.group(1).upper() if m else None


def _open_text(path: Path) -> IO[str]:
    name = path.name.lower()
    if name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    if name.endswith(".zst"):
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(path.open("rb"))
        return io.TextIOWrapper(reader, encoding="utf-8", errors="replace")
    if name.endswith(".zip"):
        zf = zipfile.ZipFile(path)
        inner = next(n for n in zf.namelist() if n.lower().endswith(".csv"))
        return io.TextIOWrapper(zf.open(inner), encoding="utf-8")
    return path.open("r", encoding="utf-8", errors="replace")


def _open_bytes(path: Path) -> IO[bytes]:
    if path.name.lower().endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


_EVENT_TIME_ONLY = frozenset(("markPriceUpdate", "kline", "forceOrder"))  # their "T" is not the event's time


def _exchange_ms(obj: Any) -> int | None:
    """Transaction time ``T`` where it is one (trades, depth, bookTicker, REST), else event time ``E``."""
    d = obj.get("data", obj) if type(obj) is dict else obj
    if type(d) is list:
        d = d[0] if d else None
    if type(d) is not dict:
        return None
    v = d.get("E") if d.get("e") in _EVENT_TIME_ONLY else (d.get("T") or d.get("E"))
    return int(v) if isinstance(v, int) else None


class _Clock:
    """Running maximum of exchange time within one file."""

    def __init__(self) -> None:
        self.ms = 0

    def see(self, ms: int | None) -> int:
        if ms is not None and ms > self.ms:
            self.ms = ms
        return self.ms


def read_hftbacktest(path: Path, symbol: str | None = None) -> Iterator[Record]:
    """hftbacktest collector file (gzip or plain); see ``iter_hftbacktest_lines``."""
    with _open_bytes(path) as fh:
        yield from iter_hftbacktest_lines(fh, symbol or symbol_from_name(path))


def iter_hftbacktest_lines(lines: Iterable[bytes], symbol: str | None) -> Iterator[Record]:
    """``<local_ts> <json>`` lines; an undecodable line is yielded with ``None`` as its JSON.

    The hot loop of every replay: the exchange-time key is extracted inline (see ``_exchange_ms``).
    """
    loads, event_time_only = orjson.loads, _EVENT_TIME_ONLY
    clock = 0
    for seq, line in enumerate(lines):
        ts_raw, _, js = line.partition(b" ")
        try:
            recv = int(ts_raw)
            obj = loads(js)
        except (ValueError, orjson.JSONDecodeError):
            yield clock, seq, (None, 0, symbol)
            continue
        if recv < 10**17:
            recv *= 1000  # µs (2023 files) → ns
        d = obj.get("data", obj) if type(obj) is dict else None
        if type(d) is dict:
            t = d.get("E") if d.get("e") in event_time_only else (d.get("T") or d.get("E"))
            if type(t) is int and t > clock:
                clock = t
        elif d is not None:
            t = _exchange_ms(obj)
            if t is not None and t > clock:
                clock = t
        yield clock, seq, (obj, recv, symbol)


_CF_WS = re.compile(r"^(\d+\.\d+): (.*)$", re.S)
_CF_HTTP = re.compile(r"^(\S+) -> (\d+\.\d+): (.*)$", re.S)
_URL_SYM = re.compile(r"[?&]symbol=([A-Za-z0-9]+)")


def read_cryptofeed(path: Path) -> Iterator[Record]:
    """cryptofeed raw captures (v2 JSONL or the older text format); REST depth → snapshots."""
    clock = _Clock()
    with _open_text(path) as fh:
        for seq, line in enumerate(fh):
            line = line.rstrip("\n")
            if not line:
                continue
            url: str | None = None
            body: str | None = None
            ts_s = 0.0
            if line.startswith("{"):
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    yield clock.ms, seq, (None, 0, None)
                    continue
                if rec.get("t") not in ("recv", "ws", "http") or not isinstance(rec.get("data"), str):
                    continue  # header, connect and other control records
                url, body, ts_s = rec.get("url"), rec["data"], float(rec.get("ts", 0.0))
            elif m := _CF_HTTP.match(line):
                url, ts_s, body = m.group(1), float(m.group(2)), m.group(3)
            elif m := _CF_WS.match(line):
                ts_s, body = float(m.group(1)), m.group(2)
            else:
                continue  # "configuration:" and "wss://" connect lines
            if url is not None and "/depth" not in url:
                continue  # exchangeInfo and other reference REST responses
            hint = None
            if url is not None and (sm := _URL_SYM.search(url)):
                hint = sm.group(1).upper()
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError:
                yield clock.ms, seq, (None, 0, hint)
                continue
            yield clock.see(_exchange_ms(obj)), seq, (obj, int(ts_s * 1e9), hint)


def _trade_chunks(
    symbol: str,
    ts: list[int],
    px: list[float],
    qty: list[float],
    ibm: list[bool],
    ids: list[int],
    recv: list[int],
    align_ms: int,
    clock: _Clock,
    seq: int,
) -> Iterator[Record]:
    """Split accumulated trade columns into batches that never cross an ``align_ms`` multiple."""
    t = np.asarray(ts, np.int64)
    cut_keys = t // align_ms
    cuts = np.flatnonzero(cut_keys[1:] != cut_keys[:-1]) + 1
    bounds = [0, *cuts.tolist(), len(ts)]
    for a, b in itertools.pairwise(bounds):
        if a == b:
            continue
        batch = TradeBatch.from_columns(symbol, t[a:b], px[a:b], qty[a:b], ibm[a:b], ids[a:b], recv[a:b])
        yield clock.see(int(t[a])), seq + a, batch


def read_binance_aggtrades_csv(path: Path, align_ms: int, chunk: int = 20_000) -> Iterator[Record]:
    """Binance public-data aggTrades CSV: id, price, qty, first id, last id, time, is_buyer_maker."""
    sym = symbol_from_name(path)
    if sym is None:
        raise UnsupportedInput(f"{path}: cannot infer the symbol from the file name")
    clock = _Clock()
    with _open_text(path) as fh:
        cols: tuple[list[int], list[float], list[float], list[bool], list[int], list[int]] = ([], [], [], [], [], [])
        seq = 0
        for row in csv.reader(fh):
            if not row or not row[0].lstrip("-").isdigit():
                continue  # header
            t = int(row[5])
            if t > 10**14:
                t //= 1000  # µs timestamps in newer files
            cols[0].append(t)
            cols[1].append(float(row[1]))
            cols[2].append(float(row[2]))
            cols[3].append(row[6].strip().lower() == "true")
            cols[4].append(int(row[0]))
            cols[5].append(0)
            if len(cols[0]) >= chunk:
                yield from _trade_chunks(sym, *cols, align_ms, clock, seq)
                seq += len(cols[0])
                for c in cols:
                    c.clear()
        if cols[0]:
            yield from _trade_chunks(sym, *cols, align_ms, clock, seq)


_INTERVAL_RE = re.compile(r"-(\d+[smhdwM])-")


def read_binance_klines_csv(path: Path) -> Iterator[Record]:
    """Binance public-data klines CSV (12 columns); the interval comes from the file name."""
    sym = symbol_from_name(path)
    m = _INTERVAL_RE.search(path.name)
    if sym is None or m is None:
        raise UnsupportedInput(f"{path}: expected SYMBOL-<interval>-YYYY-MM(-DD).csv")
    clock = _Clock()
    with _open_text(path) as fh:
        for seq, row in enumerate(csv.reader(fh)):
            if not row or not row[0].isdigit():
                continue
            o_ms, c_ms = int(row[0]), int(row[6])
            if o_ms > 10**14:
                o_ms, c_ms = o_ms // 1000, c_ms // 1000
            k = Kline(sym, m.group(1), o_ms, c_ms, float(row[1]), float(row[2]), float(row[3]), float(row[4]),
                      float(row[5]), float(row[7]), int(row[8]), float(row[9]), True)
            yield clock.see(c_ms), seq, k


def read_tardis_csv(path: Path, align_ms: int, chunk: int = 20_000) -> Iterator[Record]:
    """tardis.dev CSV: ``trades`` → trade batches; ``quotes``/``book_snapshot_N`` → top of book."""
    clock = _Clock()
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader)
        col = {name: i for i, name in enumerate(header)}
        if "side" in col and "amount" in col:
            cols: tuple[list[int], list[float], list[float], list[bool], list[int], list[int]] = (
                [], [], [], [], [], []
            )
            sym = ""
            seq = 0
            for row in reader:
                sym = row[col["symbol"]].upper()
                cols[0].append(int(row[col["timestamp"]]) // 1000)
                cols[1].append(float(row[col["price"]]))
                cols[2].append(float(row[col["amount"]]))
                cols[3].append(row[col["side"]] == "sell")
                tid = row[col["id"]]
                cols[4].append(int(tid) if tid.isdigit() else -1)
                cols[5].append(int(row[col["local_timestamp"]]) * 1000)
                if len(cols[0]) >= chunk:
                    yield from _trade_chunks(sym, *cols, align_ms, clock, seq)
                    seq += len(cols[0])
                    for c in cols:
                        c.clear()
            if cols[0]:
                yield from _trade_chunks(sym, *cols, align_ms, clock, seq)
            return
        if "bid_price" in col:
            keys = ("bid_price", "bid_amount", "ask_price", "ask_amount")
        elif "bids[0].price" in col:
            keys = ("bids[0].price", "bids[0].amount", "asks[0].price", "asks[0].amount")
        else:
            raise UnsupportedInput(f"{path}: unknown tardis CSV columns {header[:6]}")
        for seq, row in enumerate(reader):
            try:
                bid, bq, ask, aq = (float(row[col[k]]) for k in keys)
            except ValueError:
                continue  # an empty side in the source row
            t = int(row[col["timestamp"]]) // 1000
            recv_ns = int(row[col["local_timestamp"]]) * 1000
            ev = BookTicker(row[col["symbol"]].upper(), -1, t, bid, bq, ask, aq, recv_ns)
            yield clock.see(t), seq, ev


def open_input(path: str | Path, align_ms: int = 1000) -> Iterator[Record]:
    """Detect the format of ``path`` and return its record stream."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such input file: {p}")
    name = p.name.lower()
    if name.endswith(".zst"):
        return read_cryptofeed(p)
    with _open_text(p) as fh:
        first = fh.readline()
    if re.match(r"^\d{15,20} \{", first):
        return read_hftbacktest(p)
    if first.startswith("exchange,symbol,timestamp"):
        return read_tardis_csv(p, align_ms)
    if "aggtrades" in name or first.startswith("agg_trade_id"):
        return read_binance_aggtrades_csv(p, align_ms)
    if _INTERVAL_RE.search(p.name) and (first.startswith("open_time") or first[:1].isdigit()):
        return read_binance_klines_csv(p)
    if first.startswith("{") or re.match(r"^\d+\.\d+: ", first):
        return read_cryptofeed(p)
    raise UnsupportedInput(f"{p}: unrecognised format (first line {first[:60]!r})")
