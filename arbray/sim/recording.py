"""Write a generated market as an hftbacktest collector recording (``<recv ns> <combined JSON>``).

Why this format: it is what the real BTC/ETH recordings use, so ``open_input`` detects it and the
replay, features and backtest read a generated file exactly like a real one. Payloads follow
Binance USD-M field for field: ``@trade``, ``@depth@0ms`` (``depthUpdate`` with ``U``/``u``/``pu``),
``@bookTicker``, ``@markPrice@1s`` and ``@forceOrder``, prices and quantities as strings with the
symbol's tick and step decimals. Every file starts with one REST depth snapshot per symbol,
``{"lastUpdateId":…,"E":…,"T":…,"bids":[…],"asks":[…]}``. Binance's REST answer names no symbol;
when the file holds several symbols, or its name does not start with the symbol (the reader takes
a snapshot's symbol from the file name), a ``"symbol"`` field is added, which the parser accepts.

The gzip header carries no name and no time, so the same config gives a byte-identical file.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Protocol

from arbray.replay.readers import symbol_from_name
from arbray.sim.model import MarketModel, MarketModelConfig


class BinaryOut(Protocol):
    """Anything with ``write(bytes)``: a file or a ``GzipFile``."""

    def write(self, data: bytes, /) -> int: ...


def _fmt(decimals: int) -> tuple[int, str]:
    return 10**decimals, f"0{decimals}d"


class RecordingWriter:
    """A ``MarketSink`` that writes Binance combined-stream lines to a binary stream."""

    def __init__(self, out: BinaryOut, config: MarketModelConfig, snapshot_symbol: bool) -> None:
        self.out = out
        self.latency_ns = config.latency_ms * 1_000_000
        self.snapshot_symbol = snapshot_symbol
        self.names: list[str] = list(config.symbols)
        self.lower = [s.lower() for s in config.symbols]
        self.pfmt = [_fmt(config.spec(s).price_decimals) for s in config.symbols]
        self.qfmt = [_fmt(config.spec(s).qty_decimals) for s in config.symbols]
        self.pdec = [config.spec(s).price_decimals for s in config.symbols]
        self.lines = 0
        self._seq = 0

    @staticmethod
    def _num(v: int, fmt: tuple[int, str]) -> str:
        scale, spec = fmt
        if scale == 1:
            return str(v)
        return f"{v // scale}.{format(v % scale, spec)}"

    def _write(self, ms: int, text: str) -> None:
        self._seq = (self._seq + 1) % 1000
        recv = ms * 1_000_000 + self.latency_ns + self._seq * 100
        self.out.write(f"{recv} {text}\n".encode())
        self.lines += 1

    def _levels(self, sym: int, levels: list[tuple[int, int]]) -> str:
        pf, qf, num = self.pfmt[sym], self.qfmt[sym], self._num
        return ",".join(f'["{num(p, pf)}","{num(q, qf)}"]' for p, q in levels)

    def snapshot(self, sym: int, last_update_id: int, ms: int, bids: list[tuple[int, int]],
                 asks: list[tuple[int, int]]) -> None:
        """The REST depth snapshot that starts a session."""
        extra = f',"symbol":"{self.names[sym]}"' if self.snapshot_symbol else ""
        self._write(ms, f'{{"lastUpdateId":{last_update_id},"E":{ms},"T":{ms}{extra},'
                        f'"bids":[{self._levels(sym, bids)}],"asks":[{self._levels(sym, asks)}]}}')

    def trade(self, sym: int, ms: int, trade_id: int, price: int, qty: int, buyer_maker: bool) -> None:
        """``<sym>@trade``."""
        n, s = self._num, self.names[sym]
        self._write(ms, f'{{"stream":"{self.lower[sym]}@trade","data":{{"e":"trade","E":{ms},"T":{ms},'
                        f'"s":"{s}","t":{trade_id},"p":"{n(price, self.pfmt[sym])}",'
                        f'"q":"{n(qty, self.qfmt[sym])}","X":"MARKET","m":{"true" if buyer_maker else "false"}}}}}')

    def book_ticker(self, sym: int, ms: int, update_id: int, bid: int, bid_qty: int, ask: int, ask_qty: int) -> None:
        """``<sym>@bookTicker``."""
        n, pf, qf = self._num, self.pfmt[sym], self.qfmt[sym]
        self._write(ms, f'{{"stream":"{self.lower[sym]}@bookTicker","data":{{"e":"bookTicker","u":{update_id},'
                        f'"s":"{self.names[sym]}","b":"{n(bid, pf)}","B":"{n(bid_qty, qf)}","a":"{n(ask, pf)}",'
                        f'"A":"{n(ask_qty, qf)}","T":{ms},"E":{ms}}}}}')

    def depth(self, sym: int, ms: int, first_id: int, final_id: int, prev_id: int,
              bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        """``<sym>@depth@0ms`` diff depth; quantities are absolute, ``0`` removes a level."""
        self._write(ms, f'{{"stream":"{self.lower[sym]}@depth@0ms","data":{{"e":"depthUpdate","E":{ms},"T":{ms},'
                        f'"s":"{self.names[sym]}","U":{first_id},"u":{final_id},"pu":{prev_id},'
                        f'"b":[{self._levels(sym, bids)}],"a":[{self._levels(sym, asks)}]}}}}')

    def mark_price(self, sym: int, ms: int, mark: float, index: float, rate: float, next_funding_ms: int) -> None:
        """``<sym>@markPrice@1s`` (mark ``p``, index ``i``, estimated settle ``P``, rate ``r``, next ``T``)."""
        d = self.pdec[sym]
        self._write(ms, f'{{"stream":"{self.lower[sym]}@markPrice@1s","data":{{"e":"markPriceUpdate","E":{ms},'
                        f'"s":"{self.names[sym]}","p":"{mark:.{d}f}","P":"{index:.{d}f}","i":"{index:.{d}f}",'
                        f'"r":"{rate:.8f}","T":{next_funding_ms}}}}}')

    def force_order(self, sym: int, ms: int, sell: bool, price: int, avg_price: int, qty: int) -> None:
        """``<sym>@forceOrder``: the latest liquidation of the last second (Binance's snapshot semantics)."""
        n, pf, qf = self._num, self.pfmt[sym], self.qfmt[sym]
        q = n(qty, qf)
        self._write(ms, f'{{"stream":"{self.lower[sym]}@forceOrder","data":{{"e":"forceOrder","E":{ms},"o":{{'
                        f'"s":"{self.names[sym]}","S":"{"SELL" if sell else "BUY"}","o":"LIMIT","f":"IOC",'
                        f'"q":"{q}","p":"{n(price, pf)}","ap":"{n(avg_price, pf)}","X":"FILLED","l":"{q}",'
                        f'"z":"{q}","T":{ms}}}}}}}')


def generate(config: MarketModelConfig, out_path: str | Path) -> tuple[MarketModel, int]:
    """Run the model and write the recording to ``out_path`` (gzip if it ends in ``.gz``).

    Returns the model (for its statistics) and the number of lines written.
    """
    path = Path(out_path)
    snapshot_symbol = len(config.symbols) > 1 or symbol_from_name(path) != config.symbols[0]
    model = MarketModel(config)
    with path.open("wb") as raw:
        if path.name.lower().endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
                writer = RecordingWriter(gz, config, snapshot_symbol)
                model.run(writer)
        else:
            writer = RecordingWriter(raw, config, snapshot_symbol)
            model.run(writer)
    return model, writer.lines
