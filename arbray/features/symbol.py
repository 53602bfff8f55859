"""``SymbolFeatures``: everything one symbol's market data says, as exact windowed features.

Inputs arrive in exchange-time order per stream: trades one by one (``on_trade``, buffered and
flushed to numpy) or as numpy batches (``add_trades``), and low-rate events via ``on_event``.
``snapshot(t)`` returns an immutable ``FeatureSnapshot`` for the half-open windows ``[t − w, t)``.
Snapshot times must not go backwards (the 24h quantile window slides forward only).

Predecessor bugs fixed here (digest §3, §10.3), each named where it is handled:
- float drift of running window sums (P1-2): integer cumulative sums in ``TradeTape``;
- entry price from the 30-min VWAP (P0-3): ``price`` is the last trade;
- P95/P99 from a per-call sort with coin floors shared by all symbols: exact sliding quantile,
  floors in USD per symbol (``arbray.symbols``), None below ``quantile_min_trades`` instead of 5/10;
- large trades de-duplicated by millisecond (hotfix 9528d69): counted per trade;
- slope/acceleration per evaluation call, exploding on the first frame: per fixed time step
  from the tape, so repeated or irregular calls cannot corrupt them;
- ATR percentile sampled on every read and lost on restart (P2-5): sampled per closed bar;
- OBI of exactly 0.0 treated as missing: None means missing, 0.0 is a value;
- OI change only on 5-minute refresh boundaries: change over a stated horizon from history.
"""

from __future__ import annotations

import bisect
from collections import Counter, deque

import numpy as np

from arbray.features.bars import Bar, BarSeries
from arbray.features.config import HOUR_MS, MINUTE_MS, FeatureConfig
from arbray.features.quantile import SlidingQuantile
from arbray.features.snapshot import CVD_WINDOWS, FeatureSnapshot
from arbray.features.trades import TradeTape
from arbray.marketdata.events import (
    BookTicker,
    DepthSnapshot,
    DepthUpdate,
    Event,
    ForceOrder,
    Kline,
    MarketIndicator,
    MarkPrice,
    RejectCounter,
    TradeBatch,
)
from arbray.marketdata.orderbook import LocalOrderBook
from arbray.symbols import SymbolSpec, spec_for

DAY_MS = 24 * HOUR_MS


class TopOfBook:
    """The latest bookTicker, updated in place (the highest-rate stream: no object per message)."""

    __slots__ = ("ask", "ask_qty", "bid", "bid_qty", "recv_ns", "transact_ms", "update_id")

    def __init__(
        self, update_id: int, transact_ms: int, bid: float, bid_qty: float, ask: float, ask_qty: float, recv_ns: int
    ) -> None:
        self.update_id, self.transact_ms, self.recv_ns = update_id, transact_ms, recv_ns
        self.bid, self.bid_qty, self.ask, self.ask_qty = bid, bid_qty, ask, ask_qty
_KLINE_PERIODS = {"5m": 5 * MINUTE_MS, "1h": HOUR_MS}


class SymbolFeatures:
    """Feature state of one symbol: trade tape, bars, quantiles, book and indicators."""

    def __init__(
        self,
        symbol: str,
        config: FeatureConfig | None = None,
        spec: SymbolSpec | None = None,
        rejects: RejectCounter | None = None,
    ) -> None:
        self.symbol = symbol
        self.cfg = config or FeatureConfig()
        self.spec = spec or spec_for(symbol)
        self.rejects = rejects if rejects is not None else RejectCounter()
        self.stats: Counter[str] = Counter()
        self.tape = TradeTape(self.spec.price_decimals, self.spec.qty_decimals, whale_usd=self.spec.whale_usd)
        self.bars_5m = BarSeries(5 * MINUTE_MS, self.cfg.atr_length, self.cfg.atr_percentile_history,
                                 self.cfg.max_gap_bars, keep=self.cfg.bars_kept)
        self.bars_1h = BarSeries(HOUR_MS, self.cfg.atr_length, self.cfg.atr_percentile_history,
                                 max(1, self.cfg.max_gap_bars // 12), keep=self.cfg.bars_kept)
        self.book = LocalOrderBook(symbol, rejects=self.rejects)
        self._quant = SlidingQuantile()
        self._q_lo = 0  # global tape index (base + array index) of the quantile window's oldest trade
        self._id_kind: str | None = None
        self._last_id = -1
        self.id_gaps: deque[tuple[int, int]] = deque(maxlen=1000)  # missing (first, last) trade ids
        self._pending: tuple[list[int], list[float], list[float], list[bool], list[int], list[int]] = (
            [], [], [], [], [], []
        )
        self._last_snapshot_ms: int | None = None
        self._top: TopOfBook | None = None
        self.mark: MarkPrice | None = None
        self._liqs: deque[tuple[int, bool, float]] = deque()  # (ts, long liquidated?, usd)
        self._oi: deque[tuple[int, float]] = deque()
        self._ls_ratio: float | None = None
        self._top_ratio: float | None = None
        self._spot: tuple[int, float] | None = None

    # ================================================================ trades
    def on_trade(
        self,
        ts_ms: int,
        price: float,
        qty: float,
        is_buyer_maker: bool,
        trade_id: int,
        id_kind: str,
        recv_ns: int,
    ) -> None:
        """Buffer one validated trade (the raw-stream hot path)."""
        if id_kind != self._id_kind and not self._accept_kind(id_kind):
            return
        p = self._pending
        p[0].append(ts_ms)
        p[1].append(price)
        p[2].append(qty)
        p[3].append(is_buyer_maker)
        p[4].append(trade_id)
        p[5].append(recv_ns)
        if len(p[0]) >= self.cfg.flush_trades:
            self.flush()

    def _accept_kind(self, id_kind: str) -> bool:
        """One trade id sequence per symbol: aggTrade and trade streams would double count."""
        if self._id_kind is None:
            self._id_kind = id_kind
            return True
        self.rejects[f"trade:second_trade_stream:{id_kind}"] += 1
        return False

    def flush(self) -> None:
        """Move buffered raw trades into the tape."""
        p = self._pending
        if not p[0]:
            return
        ts = np.array(p[0], np.int64)
        price = np.array(p[1], np.float64)
        qty = np.array(p[2], np.float64)
        sell = np.array(p[3], np.bool_)
        tid = np.array(p[4], np.int64)
        recv = np.array(p[5], np.int64)
        for lst in p:
            lst.clear()
        self._ingest(ts, price, qty, sell, tid, recv)

    def add_trades(self, batch: TradeBatch) -> None:
        """Ingest a numpy trade batch (the vectorised path), validating as the parser does."""
        if batch.id_kind != self._id_kind and not self._accept_kind(batch.id_kind):
            self.rejects[f"trade:second_trade_stream:{batch.id_kind}"] += len(batch) - 1
            return
        self.flush()
        r = batch.rows
        price, qty = r["price"], r["qty"]
        ok = (price > 0) & (qty > 0) & np.isfinite(price) & np.isfinite(qty)
        if not ok.all():
            bad = int(np.count_nonzero(~ok))
            self.rejects["trade:nonpositive_or_nan"] += bad
            r = r[ok]
        self._ingest(r["ts_ms"], r["price"], r["qty"], r["is_buyer_maker"], r["trade_id"], r["recv_ns"])

    def _ingest(
        self,
        ts: np.ndarray,
        price: np.ndarray,
        qty: np.ndarray,
        sell: np.ndarray,
        tid: np.ndarray,
        recv: np.ndarray,
    ) -> None:
        if ts.shape[0] == 0:
            return
        m = int(tid.shape[0])
        last = self._last_id
        if tid[0] >= 0 and (last < 0 or tid[0] == last + 1) and tid[-1] - tid[0] == m - 1 and (
            m == 1 or bool(np.all(tid[1:] > tid[:-1]))
        ):
            self._last_id = int(tid[-1])  # contiguous and increasing: the normal case
        elif tid[0] >= 0:
            # Reject duplicate / out-of-order ids; record gaps for REST gap fill.
            prev = np.maximum.accumulate(np.concatenate(([self._last_id], tid[:-1])))
            keep = tid > prev
            if not keep.all():
                self.rejects["trade:duplicate_or_out_of_order_id"] += int(np.count_nonzero(~keep))
                ts, price, qty, sell, tid, recv = ts[keep], price[keep], qty[keep], sell[keep], tid[keep], recv[keep]
                if ts.shape[0] == 0:
                    return
            prev_ids = np.concatenate(([self._last_id if self._last_id >= 0 else tid[0] - 1], tid[:-1]))
            for k in np.flatnonzero(tid - prev_ids > 1):
                self.id_gaps.append((int(prev_ids[k]) + 1, int(tid[k]) - 1))
                self.stats["trade_id_gaps"] += 1
                self.stats["trade_ids_missing"] += int(tid[k] - prev_ids[k]) - 1
            self._last_id = int(tid[-1])
        qd_before = self.tape.qty_decimals
        self.tape.append(ts, price, qty, sell, tid, recv)
        if qd_before is not None and self.tape.qty_decimals != qd_before:
            self._quant.scale(10 ** ((self.tape.qty_decimals or 0) - qd_before))
        n1 = self.tape.n
        n0 = n1 - int(ts.shape[0])  # append may have compacted the tape
        mono_ts = self.tape.ts[n0:n1]
        self.bars_5m.add_trades(mono_ts, price, qty, sell)
        self.bars_1h.add_trades(mono_ts, price, qty, sell)
        self._quant.add(self.tape.lots[n0:n1])
        self.stats["trades"] += int(ts.shape[0])

    # ========================================================== other events
    def on_book_ticker(
        self, update_id: int, transact_ms: int, bid: float, bid_qty: float, ask: float, ask_qty: float, recv_ns: int
    ) -> None:
        """Best bid/ask from ``bookTicker`` (validated by the parser); older update ids are rejected."""
        top = self._top
        if top is None:
            self._top = TopOfBook(update_id, transact_ms, bid, bid_qty, ask, ask_qty, recv_ns)
        elif update_id < top.update_id:
            self.rejects["bookTicker:out_of_order"] += 1
        else:
            top.update_id, top.transact_ms, top.recv_ns = update_id, transact_ms, recv_ns
            top.bid, top.bid_qty, top.ask, top.ask_qty = bid, bid_qty, ask, ask_qty

    @property
    def book_ticker(self) -> BookTicker | None:
        """The latest bookTicker as an event record."""
        t = self._top
        if t is None:
            return None
        return BookTicker(self.symbol, t.update_id, t.transact_ms, t.bid, t.bid_qty, t.ask, t.ask_qty, t.recv_ns)

    def on_event(self, ev: Event) -> None:
        """Apply one low-rate event."""
        if isinstance(ev, DepthUpdate):
            self.book.apply_diff(ev)
        elif isinstance(ev, BookTicker):
            self.on_book_ticker(ev.update_id, ev.transact_ms, ev.bid, ev.bid_qty, ev.ask, ev.ask_qty, ev.recv_ns)
        elif isinstance(ev, DepthSnapshot):
            self.book.apply_snapshot(ev)
        elif isinstance(ev, MarkPrice):
            if self.mark is not None and ev.event_ms < self.mark.event_ms:
                self.rejects["markPriceUpdate:out_of_order"] += 1
                return
            self.mark = ev
        elif isinstance(ev, ForceOrder):
            self._liqs.append((ev.trade_ms, ev.side == "SELL", ev.usd))
        elif isinstance(ev, Kline):
            period = _KLINE_PERIODS.get(ev.interval)
            if period is not None and ev.closed:
                bars = self.bars_5m if period == 5 * MINUTE_MS else self.bars_1h
                bar = Bar(ev.open_ms, ev.open, ev.high, ev.low, ev.close, ev.volume, ev.taker_buy_volume)
                self.stats["klines_used" if bars.add_closed_bar(bar) else "klines_ignored"] += 1
        elif isinstance(ev, MarketIndicator):
            self._on_indicator(ev)

    def _on_indicator(self, ev: MarketIndicator) -> None:
        if ev.kind == "open_interest":
            if self._oi and ev.ts_ms <= self._oi[-1][0]:
                self.rejects["open_interest:out_of_order"] += 1
                return
            self._oi.append((ev.ts_ms, ev.value))
        elif ev.kind == "long_short_ratio":
            self._ls_ratio = ev.value
        elif ev.kind == "top_trader_long_ratio":
            self._top_ratio = ev.value
        elif ev.kind == "spot_price":
            self._spot = (ev.ts_ms, ev.value)
        else:
            self.rejects[f"indicator:unknown_kind:{ev.kind}"] += 1

    def warm_up_klines(self, klines: list[Kline]) -> int:
        """Seed bar history (ATR, percentile) from closed klines older than the first trade."""
        used = 0
        for k in sorted(klines, key=lambda k: k.open_ms):
            before = self.stats["klines_used"]
            self.on_event(k)
            used += self.stats["klines_used"] - before
        return used

    # ============================================================== snapshot
    def cvd(self, window_ms: int, t: int) -> float | None:
        """CVD (coin) over any window ``[t − window_ms, t)``: the factory's dynamic windows."""
        self.flush()
        return self.tape.cvd(t - window_ms, t) if len(self.tape) else None

    def snapshot(self, t: int) -> FeatureSnapshot:
        """The immutable feature record at exchange time ``t`` (ms)."""
        self.flush()
        if self._last_snapshot_ms is not None and t < self._last_snapshot_ms:
            raise ValueError(f"{self.symbol}: snapshot time went backwards ({t} < {self._last_snapshot_ms})")
        self._last_snapshot_ms = t
        cfg, tape = self.cfg, self.tape
        self.bars_5m.close_until(t)
        self.bars_1h.close_until(t)
        quality: list[str] = []
        has_trades = len(tape) > 0 and tape.first_ts is not None and tape.first_ts < t
        lot_scale = tape.lot_scale()
        not_scale = tape.notional_scale()

        cvd: dict[str, float | None] = {}
        cvd_usd: dict[str, float | None] = {}
        vwap = buy1 = sell1 = vol24 = price = None
        count1 = 0
        last_ts = None
        p95 = p99 = large_qty = None
        large_n: int | None = None
        large_buy = large_sell = whale = slope = accel = mtf = None
        whale_n = 0
        if has_trades:
            j = tape.index(t)
            last_ts = int(tape.ts[j - 1])
            price = float(tape.price[j - 1])
            # Every window in one vectorised query: the six CVD windows (24h doubles as volume),
            # 1m volumes, and the 30m CVD one and two slope steps back.
            step, w30 = cfg.slope_step_ms, 30 * MINUTE_MS
            ends = np.array([t] * 7 + [t - step, t - 2 * step], np.int64)
            starts = ends - np.array([m * MINUTE_MS for _, m in CVD_WINDOWS] + [MINUTE_MS, w30, w30], np.int64)
            lots, signed, notional, signed_not, counts = tape.range_sums(starts, ends)
            cvd_coin = (signed / lot_scale).tolist()
            cvd_quote = (signed_not / not_scale).tolist()
            for k, (name, _) in enumerate(CVD_WINDOWS):
                cvd[name], cvd_usd[name] = cvd_coin[k], cvd_quote[k]
            vol30, not30 = int(lots[2]), int(notional[2])
            vwap = not30 / vol30 * lot_scale / not_scale if vol30 else None
            buy1 = (int(lots[6]) + int(signed[6])) // 2 / lot_scale
            sell1 = (int(lots[6]) - int(signed[6])) // 2 / lot_scale
            count1 = int(counts[6])
            vol24 = int(notional[5]) / not_scale
            # slope/accel per minute from the tape at fixed steps (predecessor: per call)
            if tape.first_ts is not None and tape.first_ts <= t - 2 * step:
                c0, c1, c2 = cvd_coin[2], cvd_coin[7], cvd_coin[8]
                per = MINUTE_MS / step
                slope = (c0 - c1) * per
                accel = (c0 - 2 * c1 + c2) * per * per
            signs = [np.sign(cvd[k] or 0.0) for k in ("5m", "15m", "30m", "1h", "4h")]
            mtf = float(sum(signs) / len(signs))
            p95, p99 = self._quantiles(t, j)
            floor99 = self.spec.p99_floor_usd / price
            large_qty = max(p99, floor99) if p99 is not None else None
            if large_qty is not None:
                # the threshold moves with P99 and price, so this stays a scan (two passes)
                i, jj = tape.span(t - cfg.large_trade_window_ms, t)
                big = i + np.flatnonzero(tape.qty[i:jj] >= large_qty)
                q, sl = tape.qty[big], tape.sell[big]
                large_n = int(big.shape[0])
                large_sell = float(q[sl].sum())
                large_buy = float(q.sum()) - large_sell
            whale_not, whale_signed, whale_n = tape.whale_sums(t - cfg.whale_window_ms, t)
            if whale_n:
                whale = whale_signed / whale_not  # (buy − sell) / (buy + sell) in USD, exact
            if last_ts < t - cfg.stale_trade_ms:
                quality.append("stale_trades")
            if tape.first_ts is not None and tape.first_ts > t - DAY_MS:
                quality.append("warming_up_24h")
            self._retire(t)
        else:
            quality.append("no_trades")

        atr5, atr1h = self.bars_5m.atr, self.bars_1h.atr
        if atr5 is None:
            quality.append("warming_up_atr")
        pct = self.bars_5m.atr_percentile()

        bid, bid_q, ask, ask_q, obi, dbq, daq, book_ts = self._book_features()
        book = self.book
        if book.state.value == "awaiting_snapshot":
            quality.append("book_awaiting_snapshot")
        elif book.state.value == "resyncing":
            quality.append("book_resyncing")
        if book_ts is None or book_ts < t - cfg.stale_book_ms:
            quality.append("stale_book")
        spread = micro = None
        if bid is not None and ask is not None and bid_q is not None and ask_q is not None:
            mid = (bid + ask) / 2
            spread = (ask - bid) / mid * 1e4
            micro = (bid * ask_q + ask * bid_q) / (bid_q + ask_q) if bid_q + ask_q > 0 else mid

        mark = self.mark
        mark_px = index_px = fr = div = None
        nft = None
        if mark is None:
            quality.append("no_mark_price")
        else:
            mark_px, index_px, fr, nft = mark.mark_price, mark.index_price, mark.funding_rate, mark.next_funding_ms
            if mark.event_ms < t - cfg.stale_mark_ms:
                quality.append("stale_mark_price")
            spot = self._spot[1] if self._spot is not None else index_px
            div = (spot - mark_px) / mark_px if spot is not None else None

        oi, oi_chg = self._oi_change(t)
        liq_long, liq_short = self._liquidations(t)
        return FeatureSnapshot(
            symbol=self.symbol, ts_ms=t, price=price, last_trade_ts_ms=last_ts,
            cvd_5m=cvd.get("5m"), cvd_15m=cvd.get("15m"), cvd_30m=cvd.get("30m"), cvd_1h=cvd.get("1h"),
            cvd_4h=cvd.get("4h"), cvd_24h=cvd.get("24h"),
            cvd_usd_5m=cvd_usd.get("5m"), cvd_usd_15m=cvd_usd.get("15m"), cvd_usd_30m=cvd_usd.get("30m"),
            cvd_usd_1h=cvd_usd.get("1h"), cvd_usd_4h=cvd_usd.get("4h"), cvd_usd_24h=cvd_usd.get("24h"),
            vwap_30m=vwap, buy_vol_1m=buy1, sell_vol_1m=sell1, trade_count_1m=count1, volume_usd_24h=vol24,
            atr_5m=atr5, atr_1h=atr1h,
            atr_pct_5m=atr5 / price if atr5 is not None and price else None,
            atr_percentile_5m=pct,
            p95_qty_24h=p95, p99_qty_24h=p99, large_trade_qty=large_qty, large_trades_15m=large_n,
            large_buy_qty_15m=large_buy, large_sell_qty_15m=large_sell,
            whale_flow_15m=whale, whale_trades_15m=whale_n,
            cvd_slope_30m_per_min=slope, cvd_accel_30m_per_min2=accel, cvd_mtf_agreement=mtf,
            best_bid=bid, best_ask=ask, best_bid_qty=bid_q, best_ask_qty=ask_q, spread_bps=spread,
            microprice=micro, obi_10=obi, depth_bid_qty_10=dbq, depth_ask_qty_10=daq,
            mark_price=mark_px, index_price=index_px, spot_perp_div=div, funding_rate=fr,
            next_funding_time_ms=nft, open_interest=oi, oi_change_pct=oi_chg,
            oi_change_horizon_min=cfg.oi_change_horizon_ms / MINUTE_MS,
            long_short_ratio=self._ls_ratio, top_trader_long_ratio=self._top_ratio,
            liq_long_usd_5m=liq_long, liq_short_usd_5m=liq_short,
            book_state=book.state.value, quality=tuple(quality),
        )

    def _quantiles(self, t: int, j: int) -> tuple[float | None, float | None]:
        """Exact P95/P99 of trade size over ``[t − 24h, t)``."""
        tape = self.tape
        lo = tape.index(t - DAY_MS)
        q_lo = self._q_lo - tape.base
        if lo > q_lo:
            self._quant.remove(tape.lots[q_lo:lo])
            self._q_lo = tape.base + lo
        tail = tape.lots[j : tape.n]  # trades at or after t (late arrivals) are not in [t-24h, t)
        if tail.shape[0]:
            self._quant.remove(tail)
        n = self._quant.total
        res = self._quant.quantiles((0.95, 0.99)) if n >= self.cfg.quantile_min_trades else [None, None]
        if tail.shape[0]:
            self._quant.add(tail)
        scale = tape.lot_scale()
        p95, p99 = (None if v is None else v / scale for v in res)
        return p95, p99

    def _retire(self, t: int) -> None:
        """Release trades no window can reach any more, keeping the quantile window's trades."""
        horizon = t - DAY_MS - self.cfg.retention_margin_ms
        self.tape.release_before(min(self.tape.index(horizon), self._q_lo - self.tape.base))

    def _book_features(
        self,
    ) -> tuple[float | None, float | None, float | None, float | None, float | None, float | None,
               float | None, int | None]:
        book, bt = self.book, self._top
        obi = dbq = daq = None
        bid = bid_q = ask = ask_q = None
        book_ts = None
        if book.synced:
            bb, ba = book.best_bid(), book.best_ask()
            if bb is not None and ba is not None:
                bid, bid_q = bb
                ask, ask_q = ba
            bids, asks = book.top(self.cfg.obi_levels)
            dbq = sum(q for _, q in bids)
            daq = sum(q for _, q in asks)
            obi = (dbq - daq) / (dbq + daq) if dbq + daq > 0 else None
            book_ts = book.last_transact_ms
        if bt is not None and (bid is None or bt.update_id > book.last_update_id):
            bid, bid_q, ask, ask_q = bt.bid, bt.bid_qty, bt.ask, bt.ask_qty
            book_ts = max(book_ts or 0, bt.transact_ms)
        return bid, bid_q, ask, ask_q, obi, dbq, daq, book_ts

    def _oi_change(self, t: int) -> tuple[float | None, float | None]:
        """Latest OI before ``t`` and its change versus the latest sample at or before t − horizon."""
        oi, horizon = self._oi, self.cfg.oi_change_horizon_ms
        while len(oi) > 1 and oi[1][0] <= t - 2 * horizon:
            oi.popleft()  # keep one sample old enough to serve as a base for later snapshots
        times = [x[0] for x in oi]
        k = bisect.bisect_left(times, t) - 1
        if k < 0:
            return None, None
        cur = oi[k][1]
        kb = bisect.bisect_right(times, t - horizon) - 1
        if kb < 0 or oi[kb][1] <= 0:
            return cur, None
        return cur, (cur - oi[kb][1]) / oi[kb][1]

    def _liquidations(self, t: int) -> tuple[float, float]:
        lo = t - self.cfg.liquidation_window_ms
        liqs = self._liqs
        while liqs and liqs[0][0] < lo - self.cfg.liquidation_window_ms:
            liqs.popleft()
        long_usd = short_usd = 0.0
        for ts, is_long, usd in liqs:
            if lo <= ts < t:
                if is_long:
                    long_usd += usd
                else:
                    short_usd += usd
        return long_usd, short_usd
