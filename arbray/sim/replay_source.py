"""Replay a recorded file through ``SimExchange`` (the server's replay mode).

Any format ``arbray.replay.readers.open_input`` reads. Recordings of Binance streams (hftbacktest
collector files, cryptofeed captures, the simulator's own recordings) are replayed message by
message: every recorded stream message is published again under its recorded stream name with
its original payload (re-encoded by ``orjson``, which keeps Binance's key order and compact form),
in file order. The same messages also drive the exchange's state — the book (REST depth is the
replayed book at its current update id), the aggTrade history (REST aggTrades serves the trades
replayed so far), klines, mark price and funding — and the streams the file does *not* carry are
derived from that state (e.g. ``@aggTrade`` from a ``@trade`` recording, one aggTrade per trade with
``a = f = l = t``; ``@depth@100ms`` conflated from ``@depth@0ms``). CSV sources (Binance public-data
aggTrades/klines, tardis trades/quotes) carry no payloads; they are converted to the payloads they
correspond to. Open interest and the long/short ratios are not in any recording: they are the
exchange's documented synthetic series, driven by the replayed taker flow.

Collector files (the main replay format) take a faster path than ``open_input``'s generic records:
the payload bytes of each ``{"stream":…,"data":…}`` line are sliced out and published as they are
(byte-identical, nothing re-encoded), diff levels go into the book as their strings and are only
converted when the book is read, and bookTickers are kept undecoded until REST asks for one. Time
keys are the readers' (the running maximum of ``T``/``E``), so pacing is the same on both paths.
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from arbray.marketdata.events import BookTicker, Kline, TradeBatch
from arbray.replay.readers import open_input, symbol_from_name
from arbray.sim.exchange import ExchangeSymbol, MarketSource, SimExchange, _Sink
from arbray.sim.streams import UnknownStream, parse_stream
from arbray.symbols import spec_for

PRESCAN_RECORDS = 5_000
_EVENT_TIME_ONLY = frozenset(("markPriceUpdate", "kline", "forceOrder"))  # as arbray.replay.readers
_COLLECTOR_LINE = re.compile(rb"^\d{15,20} \{")
Item = tuple[int, Any, bytes | None, bytes | None]  # (sort ms, decoded line or reader payload, data, stream)


def is_collector_file(path: Path) -> bool:
    """Whether ``open_input`` reads ``path`` as an hftbacktest collector file (``<ts> <json>`` lines)."""
    if path.name.lower().endswith((".zst", ".zip")):
        return False
    with _open_binary(path) as fh:
        return bool(_COLLECTOR_LINE.match(fh.readline()))


def _open_binary(path: Path) -> Any:
    import gzip

    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def _collector_items(path: Path) -> Iterator[Item]:
    """A collector file's lines: (running-max exchange ms, decoded JSON, the data bytes of a combined-stream
    line, its stream name). bookTicker lines — most of a recording — are not decoded here: their time is
    read from the bytes, and the exchange decodes the latest one only when asked for it."""
    loads = orjson.loads
    event_time_only = _EVENT_TIME_ONLY
    clock = 0
    for line in _lines(path):
        _, _, js = line.partition(b" ")
        if not js:
            continue
        raw = name = None
        if js[:11] == b'{"stream":"':
            cut = js.find(b'","data":', 11)
            if cut > 0 and js[-1:] == b"}":
                raw, name = js[cut + 9:-1], js[11:cut]
                if name[-11:] == b"@bookTicker":
                    at = js.rfind(b'"T":')
                    end = js.find(b",", at)
                    if at > 0 and end > 0 and js[at + 4:end].isdigit():
                        t = int(js[at + 4:end])
                        if t > clock:
                            clock = t
                        yield clock, None, raw, name
                        continue
        try:
            obj = loads(js)
        except orjson.JSONDecodeError:
            yield clock, None, None, None
            continue
        d = obj.get("data") if type(obj) is dict and "stream" in obj else obj
        if type(d) is list:
            d = d[0] if d else None
        if type(d) is dict:
            et = d.get("E") if d.get("e") in event_time_only else (d.get("T") or d.get("E"))
            if type(et) is int and et > clock:
                clock = et
        yield clock, obj, raw, name


def _lines(path: Path) -> Iterator[bytes]:
    """The file's lines (gzip members decompressed in 1 MiB chunks), without line ends."""
    gz = path.name.lower().endswith(".gz")
    with path.open("rb") as fh:
        d = zlib.decompressobj(wbits=31) if gz else None
        rest = b""
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                break
            if d is not None:
                out = d.decompress(chunk)
                while d.eof and d.unused_data:  # a further gzip member
                    tail = d.unused_data
                    d = zlib.decompressobj(wbits=31)
                    out += d.decompress(tail)
                chunk = out
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            yield from parts
        if rest:
            yield rest


def _decimals(text: Any) -> int:
    """Decimals of a Binance number string (``"28145.10"`` → 2)."""
    if type(text) is not str:
        return 0
    _, dot, frac = text.partition(".")
    return len(frac) if dot else 0


def _float_decimals(v: float) -> int:
    text = repr(float(v))
    if "e" in text:
        return 8
    return min(8, len(text.partition(".")[2].rstrip("0")))


class _Scan:
    """Symbols and the largest price/qty decimals seen for each."""

    def __init__(self) -> None:
        self.price: Counter[str] = Counter()
        self.qty: Counter[str] = Counter()
        self.order: dict[str, None] = {}

    def see(self, sym: str, price: Any, qty: Any) -> None:
        self.order.setdefault(sym, None)
        self.price[sym] = max(self.price[sym], _decimals(price))
        self.qty[sym] = max(self.qty[sym], _decimals(qty))

    def see_float(self, sym: str, price: float, qty: float) -> None:
        self.order.setdefault(sym, None)
        self.price[sym] = max(self.price[sym], _float_decimals(price))
        self.qty[sym] = max(self.qty[sym], _float_decimals(qty))

    def payload(self, d: Any, hint: str | None) -> None:
        if type(d) is list:
            for item in d:
                self.payload(item, hint)
            return
        if type(d) is not dict:
            return
        if "stream" in d:
            self.payload(d.get("data"), hint)
            return
        if "lastUpdateId" in d and "bids" in d:
            sym = d.get("s") or d.get("symbol") or hint
            for levels in (d.get("bids") or [])[:50], (d.get("asks") or [])[:50]:
                for lv in levels:
                    if sym and isinstance(lv, list) and len(lv) == 2:
                        self.see(str(sym).upper(), lv[0], lv[1])
            return
        e = d.get("e")
        if e in ("trade", "aggTrade"):
            self.see(d["s"], d.get("p"), d.get("q"))
        elif e == "bookTicker":
            self.see(d["s"], d.get("b"), d.get("B"))
        elif e == "depthUpdate":
            for lv in (d.get("b") or [])[:5]:
                self.see(d["s"], lv[0], lv[1])
        elif e == "markPriceUpdate" and d.get("s"):
            self.order.setdefault(d["s"], None)


class ReplaySource(MarketSource):
    """A recorded file as the exchange's market source (see the module docstring)."""

    mode = "replay"

    def __init__(self, path: str | Path, symbols: Sequence[str] = ()) -> None:
        self.path = Path(path)
        scan = _Scan()
        for s in symbols:
            scan.order.setdefault(s, None)
        for _, _, payload in itertools.islice(open_input(self.path), PRESCAN_RECORDS):
            self._scan(scan, payload)
        self.symbols = tuple(self._spec(scan, s) for s in scan.order)
        self.counts: Counter[str] = Counter()
        self.records = 0
        self._names: dict[bytes, tuple[str, int]] = {}  # stream name bytes → (name, symbol index)
        self.collector = is_collector_file(self.path)
        self._hint = symbol_from_name(self.path)
        self._ex: SimExchange | None = None
        self._it: Iterator[Item] | None = None
        self._peek: Item | None = None
        self._index: dict[str, int] = {}
        self._scale: list[tuple[int, int]] = []
        self._stream_kind: dict[str, str | None] = {}
        self.finished = False

    @staticmethod
    def _scan(scan: _Scan, payload: Any) -> None:
        if type(payload) is tuple:
            scan.payload(payload[0], payload[2])
        elif isinstance(payload, TradeBatch) and len(payload):
            scan.see_float(payload.symbol, float(payload.rows["price"][0]), float(payload.rows["qty"][0]))
        elif isinstance(payload, BookTicker):
            scan.see_float(payload.symbol, payload.bid, payload.bid_qty)
        elif isinstance(payload, Kline):
            scan.see_float(payload.symbol, payload.open, 1.0)

    @staticmethod
    def _spec(scan: _Scan, sym: str) -> ExchangeSymbol:
        known = spec_for(sym)
        pd = scan.price.get(sym) or known.price_decimals or 2
        qd = scan.qty.get(sym) or known.qty_decimals or 3
        return ExchangeSymbol(sym, pd, qd, known.min_notional_usd)

    # ---------------------------------------------------------- MarketSource
    def start(self, ex: SimExchange, sink: _Sink) -> int:
        """Open the file and apply its leading REST snapshots (so REST depth has a book at once)."""
        self._ex = ex
        if self.collector:
            self._it = _collector_items(self.path)
        else:
            self._it = ((t, payload, None, None) for t, _, payload in open_input(self.path))
        self._register(ex)
        peek = next(self._it, None)
        start = peek[0] if peek is not None else 0
        while peek is not None and self._is_snapshot(peek):
            self._handle(peek)
            peek = next(self._it, None)
        self._peek = peek
        return start

    def _is_snapshot(self, item: Item) -> bool:
        d = item[1]
        if not self.collector:
            if type(d) is not tuple:
                return False
            d = d[0]
        return type(d) is dict and "stream" not in d and "lastUpdateId" in d and "bids" in d

    def _register(self, ex: SimExchange) -> None:
        for s in ex.symbols:
            if s not in self._index:
                i = self._index[s] = len(self._scale)
                spec = ex.spec(s)
                self._scale.append((10**spec.price_decimals, 10**spec.qty_decimals))
                assert i == ex._by_name[s].idx

    def advance_to(self, t_ms: int) -> None:
        ex, it = self._ex, self._it
        assert ex is not None and it is not None
        if len(self._index) != len(ex.symbols):
            self._register(ex)
        peek = self._peek
        clock_to = ex._clock_to
        line = self._dispatch_line
        while peek is not None and peek[0] <= t_ms:
            t = peek[0]
            if t >= ex._next_boundary or ex._mark_arr:
                clock_to(t)
            if self.collector:
                line(peek[1], peek[2], peek[3])
            else:
                self._dispatch(peek[1])
            peek = next(it, None)
        self._peek = peek
        ex._clock_to(t_ms + 1)
        if peek is None and not self.finished:
            self.finished = True
            ex.flush_conflated()  # the file's last changes reach the conflated depth streams too

    def stats(self) -> dict[str, Any]:
        return {"file": str(self.path), "finished": self.finished, "records": self.records, **dict(self.counts)}

    # ---------------------------------------------------------- dispatch
    def _sym(self, name: str, price: Any = None, qty: Any = None) -> int:
        i = self._index.get(name)
        if i is None:
            ex = self._ex
            assert ex is not None
            spec = spec_for(name)
            pd = _decimals(price) if type(price) is str else (spec.price_decimals or 2)
            qd = _decimals(qty) if type(qty) is str else (spec.qty_decimals or 3)
            ex.add_symbol(ExchangeSymbol(name, pd, qd, spec.min_notional_usd))
            self._register(ex)
            i = self._index[name]
        return i

    def _kind(self, name: str) -> str | None:
        kind = self._stream_kind.get(name, "")
        if kind == "":
            ex = self._ex
            assert ex is not None
            sym = name.partition("@")[0].upper()
            if not name.startswith("!") and sym not in self._index:
                self._sym(sym)
            try:
                kind = parse_stream(name, self._index).kind
            except UnknownStream:
                kind = None
            self._stream_kind[name] = kind
        return kind

    def _handle(self, item: Item) -> None:
        if self.collector:
            self._dispatch_line(item[1], item[2], item[3])
        else:
            self._dispatch(item[1])

    def _dispatch_line(self, obj: Any, raw: bytes | None, stream: bytes | None) -> None:
        """One collector line: a combined-stream message is published as its original bytes."""
        ex = self._ex
        assert ex is not None
        self.records += 1
        if raw is None or stream is None:
            self._dispatch((obj, 0, self._hint))
            return
        if obj is None:  # an undecoded bookTicker line
            known = self._names.get(stream)
            if known is None:
                name = stream.decode()
                known = self._names[stream] = (name, self._sym(name.partition("@")[0].upper()))
            ex.publish_recorded(known[0], "bookTicker", raw)
            ex._on_book_ticker_raw(known[1], raw)
            return
        name = obj["stream"]
        d = obj["data"]
        kind = self._stream_kind.get(name, "")
        if kind == "":
            kind = self._kind(name)
        if kind is not None:
            ex.publish_recorded(name, kind, raw)
        try:
            if kind == "bookTicker" and type(d) is dict:
                ex._on_book_ticker_raw(self._sym(d["s"], d["b"], d["B"]), raw)
            else:
                self._apply(d, self._hint, kind == "depth")
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            self.counts[f"bad:{type(exc).__name__}"] += 1

    def _dispatch(self, payload: Any) -> None:
        ex = self._ex
        assert ex is not None
        if not self.collector:
            self.records += 1
        try:
            if type(payload) is tuple:
                obj, _, hint = payload
                if obj is None:
                    self.counts["undecodable"] += 1
                    return
                if type(obj) is dict and "stream" in obj:
                    name = obj["stream"]
                    data = obj.get("data")
                    kind = self._kind(name) if type(name) is str else None
                    if kind is not None:
                        ex.publish_recorded(name, kind, orjson.dumps(data))
                    diff = kind == "depth"
                    self._apply(data, hint, diff)
                else:
                    self._apply(obj, hint, True)
            elif isinstance(payload, TradeBatch):
                self._trades(payload)
            elif isinstance(payload, BookTicker):
                i = self._sym(payload.symbol)
                ps, qs = self._scale[i]
                ex._on_book_ticker(i, payload.transact_ms, max(payload.update_id, 0), round(payload.bid * ps),
                                   round(payload.bid_qty * qs), round(payload.ask * ps), round(payload.ask_qty * qs))
            elif isinstance(payload, Kline):
                i = self._sym(payload.symbol)
                ps, qs = self._scale[i]
                row = [payload.open_ms, round(payload.open * ps), round(payload.high * ps), round(payload.low * ps),
                       round(payload.close * ps), round(payload.volume * qs), round(payload.quote_volume * ps * qs),
                       payload.trades, round(payload.taker_buy_volume * qs), 0, -1, -1]
                ex._on_kline(i, payload.interval, row, payload.closed, payload.close_ms)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            self.counts[f"bad:{type(exc).__name__}"] += 1

    def _trades(self, batch: TradeBatch) -> None:
        ex = self._ex
        assert ex is not None
        i = self._sym(batch.symbol)
        ps, qs = self._scale[i]
        for ts, tid, px, qty, ibm in zip(batch.rows["ts_ms"].tolist(), batch.rows["trade_id"].tolist(),
                                         batch.rows["price"].tolist(), batch.rows["qty"].tolist(),
                                         batch.rows["is_buyer_maker"].tolist(), strict=True):
            agg = tid if tid >= 0 else None
            ident = tid if tid >= 0 else ex._by_name[batch.symbol].next_agg
            ex._on_trade(i, ts, agg, ident, ident, round(px * ps), round(qty * qs), bool(ibm))

    def _levels(self, i: int, raw: Any) -> list[tuple[int, int]]:
        ps, qs = self._scale[i]
        return [(round(float(p) * ps), round(float(q) * qs)) for p, q in raw]

    def _apply(self, d: Any, hint: str | None, diff: bool) -> None:
        """Update the exchange from one recorded payload (a dict, an array or a REST snapshot)."""
        ex = self._ex
        assert ex is not None
        if type(d) is list:
            for item in d:
                self._apply(item, hint, diff)
            return
        if type(d) is not dict:
            self.counts["not_an_object"] += 1
            return
        e = d.get("e")
        if e is None and "lastUpdateId" in d and "bids" in d:
            sym = d.get("s") or d.get("symbol") or hint
            if not sym:
                self.counts["snapshot_without_symbol"] += 1
                return
            bids, asks = d["bids"], d["asks"]
            i = self._sym(str(sym).upper(), bids[0][0] if bids else None, bids[0][1] if bids else None)
            ex._on_snapshot(i, int(d["lastUpdateId"]), int(d.get("T") or d.get("E") or 0),
                            self._levels(i, bids), self._levels(i, asks))
            self.counts["snapshots"] += 1
            return
        if e == "trade" or e == "aggTrade":
            p, q = d["p"], d["q"]
            i = self._sym(d["s"], p, q)
            ps, qs = self._scale[i]
            if e == "trade":
                ex._on_trade(i, int(d["T"]), int(d["t"]), int(d["t"]), int(d["t"]), round(float(p) * ps),
                             round(float(q) * qs), d["m"] is True)
            else:
                ex._on_trade(i, int(d["T"]), int(d["a"]), int(d["f"]), int(d["l"]), round(float(p) * ps),
                             round(float(q) * qs), d["m"] is True)
        elif e == "depthUpdate":
            if not diff:
                return  # a partial book (@depth5/10/20) is a top-N picture, not a diff
            b, a = d["b"], d["a"]
            if type(b) is not list or type(a) is not list:
                raise TypeError("depth levels")
            ex._on_depth_raw(self._sym(d["s"]), int(d.get("T") or d["E"]), int(d["U"]), int(d["u"]), int(d["pu"]),
                             b, a)
        elif e == "bookTicker":
            i = self._sym(d["s"], d["b"], d["B"])
            ps, qs = self._scale[i]
            ex._on_book_ticker(i, int(d.get("T") or d["E"]), int(d["u"]), round(float(d["b"]) * ps),
                               round(float(d["B"]) * qs), round(float(d["a"]) * ps), round(float(d["A"]) * qs))
        elif e == "markPriceUpdate":
            i = self._sym(d["s"])
            ex._on_mark(i, int(d["E"]), float(d["p"]), float(d.get("i") or d["p"]), float(d.get("r") or 0.0),
                        int(d.get("T") or 0))
        elif e == "forceOrder":
            o = d["o"]
            i = self._sym(o["s"], o["p"], o["q"])
            ps, qs = self._scale[i]
            ex._on_force(i, int(o["T"]), o["S"] == "SELL", round(float(o["p"]) * ps), round(float(o["ap"]) * ps),
                         round(float(o["z"] or o["q"]) * qs))
        elif e == "kline":
            k = d["k"]
            i = self._sym(d["s"])
            ps, qs = self._scale[i]
            row = [int(k["t"]), round(float(k["o"]) * ps), round(float(k["h"]) * ps), round(float(k["l"]) * ps),
                   round(float(k["c"]) * ps), round(float(k["v"]) * qs), round(float(k["q"]) * ps * qs),
                   int(k["n"]), round(float(k["V"]) * qs), round(float(k["Q"]) * ps * qs), int(k.get("f", -1)),
                   int(k.get("L", -1))]
            ex._on_kline(i, k["i"], row, bool(k["x"]), int(d["E"]))
        else:
            self.counts[f"unknown_event:{e}"] += 1
