"""A seeded, deterministic model of a Binance USD-M market for N symbols.

Why: real recordings last minutes, far too short to warm up 5-minute ATR or to see a funding
settlement, a crash or a liquidation cascade. This model generates hours of market data whose
messages are exactly what Binance publishes, so the replay, features and backtest run on it
unchanged.

How prices form (the V10 plan's order-book-driven price): every symbol keeps a limit order book
of integer tick prices and integer step quantities. A latent fair value follows a regime-switching
random walk (calm / trend / crash); alts follow a market factor with their own beta. Prices move
only through the book: taker flow whose buy/sell imbalance leans towards the fair value consumes
the best levels, informed takers sweep quotes left on the wrong side of fair value, and makers
re-quote around it, add and cancel liquidity. Trade arrivals are self-exciting (a discrete Hawkes
process), trade sizes are log-normal with a Pareto tail. When price moves fast (one-minute return
beyond a threshold) forced liquidations arrive as large market orders that walk the book and push
the fair value further (a cascade). Index and mark price, a premium-based funding rate with 8-hourly
settlement and open interest are tracked per second.

The model reports what happens through a ``MarketSink`` (integer ticks and steps); the recording
writer turns those calls into Binance JSON.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

HOUR_MS = 3_600_000
Regime = Literal["calm", "trend", "crash"]


class SymbolSpec(BaseModel):
    """Static properties of one simulated symbol; tick and step are powers of ten."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: float = Field(gt=0, description="starting price")
    price_decimals: int = Field(ge=0, le=8, description="tick size is 10**-price_decimals")
    qty_decimals: int = Field(ge=0, le=8, description="step size is 10**-qty_decimals")
    beta: float = Field(1.0, description="loading on the market (BTC) factor")
    idio_vol_per_min: float = Field(0.0, ge=0, description="own log-return volatility per sqrt(minute)")
    trade_rate: float = Field(gt=0, description="mean taker orders per second (calm)")
    maker_rate: float = Field(gt=0, description="maker adds/cancels per second")
    median_qty: float = Field(gt=0, description="median taker order quantity")
    level_qty: float = Field(gt=0, description="median quantity a maker posts on one level")
    open_interest: float = Field(gt=0, description="starting open interest (base asset)")


DEFAULT_SPECS: dict[str, SymbolSpec] = {
    "BTCUSDT": SymbolSpec(price=60_000.0, price_decimals=1, qty_decimals=3, beta=1.0, trade_rate=25.0,
                          maker_rate=900.0, median_qty=0.012, level_qty=0.25, open_interest=80_000.0),
    "ETHUSDT": SymbolSpec(price=3_000.0, price_decimals=2, qty_decimals=3, beta=1.2, idio_vol_per_min=0.0004,
                          trade_rate=20.0, maker_rate=800.0, median_qty=0.05, level_qty=4.0,
                          open_interest=1_500_000.0),
    "SOLUSDT": SymbolSpec(price=150.0, price_decimals=2, qty_decimals=0, beta=1.5, idio_vol_per_min=0.0007,
                          trade_rate=20.0, maker_rate=150.0, median_qty=3.0, level_qty=60.0,
                          open_interest=8_000_000.0),
}
GENERIC_SPEC = SymbolSpec(price=10.0, price_decimals=3, qty_decimals=1, beta=1.3, idio_vol_per_min=0.0008,
                          trade_rate=10.0, maker_rate=80.0, median_qty=50.0, level_qty=800.0,
                          open_interest=50_000_000.0)


class MarketModelConfig(BaseModel):
    """Everything that shapes a generated market; the same config and seed give the same market."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbols: tuple[str, ...] = Field(("BTCUSDT",), min_length=1)
    specs: dict[str, SymbolSpec] = Field(default_factory=dict, description="overrides of DEFAULT_SPECS")
    seed: int = 1
    start_ms: int = Field(1_723_075_200_000, ge=0, description="market time of the first event (UTC ms)")
    hours: float = Field(1.0, gt=0, le=24 * 30)
    step_ms: int = Field(50, ge=1, le=10_000, description="one depth update per symbol at most per step")
    rate_scale: float = Field(1.0, gt=0, description="multiplies every trade and maker rate (cheap runs)")
    # regimes (market-wide)
    initial_regime: Regime = "calm"
    vol_per_min: float = Field(0.0006, gt=0, description="calm market-factor volatility per sqrt(minute)")
    trend_vol_mult: float = Field(1.6, gt=0)
    trend_drift_per_min: float = Field(0.0003, ge=0, description="absolute drift in a trend (sign random)")
    crash_vol_mult: float = Field(4.0, gt=0)
    crash_drift_per_min: float = Field(-0.004, le=0)
    calm_to_trend_per_hour: float = Field(0.6, ge=0)
    calm_to_crash_per_hour: float = Field(0.04, ge=0)
    trend_mean_minutes: float = Field(40.0, gt=0)
    crash_mean_minutes: float = Field(6.0, gt=0)
    trend_rate_mult: float = Field(1.5, gt=0, description="taker activity multiplier in a trend")
    crash_rate_mult: float = Field(4.0, gt=0, description="taker activity multiplier in a crash")
    # taker flow
    hawkes_branching: float = Field(0.6, ge=0, lt=1, description="self-excitation: expected children per trade")
    hawkes_decay_per_s: float = Field(1.5, gt=0)
    imbalance_ticks: float = Field(1.5, gt=0, description="fair-minus-mid gap (ticks) giving a 73% buy share")
    size_sigma: float = Field(2.2, gt=0, description="log-normal sigma of taker sizes")
    pareto_share: float = Field(0.05, ge=0, le=1, description="share of sizes drawn from the Pareto tail")
    pareto_alpha: float = Field(1.3, gt=1)
    max_walk_levels: int = Field(8, ge=1, description="a taker order stops after this many levels")
    # makers
    refill_prob: float = Field(0.97, ge=0, le=1, description="chance per step that makers re-quote at fair")
    maker_depth_p: float = Field(0.3, gt=0, le=1, description="geometric parameter of a maker's distance")
    refill_levels: int = Field(40, ge=1, description="most ticks makers fill towards fair value per step")
    informed_share: float = Field(0.15, ge=0, le=1, description="share of stale quotes hit by a taker, not pulled")
    touch_pull_share: float = Field(0.1, ge=0, le=1, description="share of cancels at the touch that pull it all")
    max_levels: int = Field(400, ge=20, description="levels per side kept; the farthest are cancelled")
    snapshot_levels: int = Field(1000, ge=1)
    # liquidations
    liq_threshold_1m: float = Field(0.004, gt=0, description="|1-minute return| that starts liquidations")
    liq_rate_per_s: float = Field(0.5, ge=0, description="liquidations per second at the threshold")
    liq_size_mult: float = Field(25.0, gt=0, description="liquidation size in median taker sizes")
    liq_impact: float = Field(0.0002, ge=0, description="fair-value log move per level_qty liquidated")
    liq_pool_share: float = Field(0.002, ge=0, le=1, description="open interest that a cascade can liquidate")
    liq_pool_refill_min: float = Field(120.0, gt=0, description="minutes for the liquidatable pool to refill")
    price_floor: float = Field(0.05, gt=0, lt=1, description="fair value never falls below this share of the start")
    # funding, index, mark
    funding_interval_h: int = Field(8, ge=1, le=24)
    interest_rate: float = Field(0.0001, description="per interval, Binance's default interest component")
    funding_cap: float = Field(0.0075, gt=0)
    basis_mean: float = Field(0.0001, description="mean premium of the perp over its index")
    basis_vol: float = Field(0.0003, ge=0, description="stationary sd of the premium")
    basis_tau_min: float = Field(120.0, gt=0, description="mean-reversion time of the premium")
    latency_ms: int = Field(5, ge=0, description="local receive time minus event time")

    def spec(self, symbol: str) -> SymbolSpec:
        """The spec for ``symbol``: an override, a built-in default or the generic alt spec."""
        return self.specs.get(symbol) or DEFAULT_SPECS.get(symbol) or GENERIC_SPEC


class MarketSink(Protocol):
    """Receives the generated market in time order; prices in ticks, quantities in steps."""

    def snapshot(self, sym: int, last_update_id: int, ms: int, bids: list[tuple[int, int]],
                 asks: list[tuple[int, int]]) -> None: ...

    def trade(self, sym: int, ms: int, trade_id: int, price: int, qty: int, buyer_maker: bool) -> None: ...

    def book_ticker(self, sym: int, ms: int, update_id: int, bid: int, bid_qty: int, ask: int,
                    ask_qty: int) -> None: ...

    def depth(self, sym: int, ms: int, first_id: int, final_id: int, prev_id: int,
              bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None: ...

    def mark_price(self, sym: int, ms: int, mark: float, index: float, rate: float, next_funding_ms: int) -> None: ...

    def force_order(self, sym: int, ms: int, sell: bool, price: int, avg_price: int, qty: int) -> None: ...


@dataclass
class SymbolStats:
    """What one symbol did during a run (for tests, benchmarks and the calibration doc)."""

    trades: int = 0
    depth_updates: int = 0
    book_tickers: int = 0
    liquidations: int = 0
    force_orders: int = 0
    funding: list[tuple[int, float]] = field(default_factory=list)
    open_interest: list[tuple[int, float]] = field(default_factory=list)


class _Symbol:
    """Mutable per-symbol state: the book, ids, Hawkes excitation, funding accumulators."""

    def __init__(self, idx: int, spec: SymbolSpec, cfg: MarketModelConfig, rng: random.Random) -> None:
        self.idx, self.spec, self.rng = idx, spec, rng
        self.qscale = 10 ** spec.qty_decimals
        self.tick = 10.0 ** -spec.price_decimals
        self.log_fair = math.log(spec.price)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.update_id = 1_000_000_000 + idx * 7_919 + rng.randrange(1_000_000)
        self.next_first = self.update_id
        self.prev_final = self.update_id - 1
        self.trade_id = 100_000_000 + rng.randrange(1_000_000)
        self.excite = 0.0
        self.changed_b: dict[int, int] = {}
        self.changed_a: dict[int, int] = {}
        self.top: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.mids: deque[float] = deque(maxlen=61)
        self.basis = cfg.basis_mean
        self.prem_sum = 0.0
        self.prem_n = 0
        self.rate = cfg.interest_rate
        self.oi = spec.open_interest
        self.pending_force: tuple[int, bool, int, int, int] | None = None
        self.liq_pool = spec.open_interest * cfg.liq_pool_share
        self.log_floor = math.log(spec.price * cfg.price_floor)
        self.stats = SymbolStats()
        fair = spec.price / self.tick
        bid0 = math.floor(fair)
        for k in range(cfg.max_levels // 2):
            if k < 10 or rng.random() < 0.6:
                self.bids[bid0 - k] = self.maker_qty()
                self.asks[bid0 + 1 + k] = self.maker_qty()
        self.bb = max(self.bids)
        self.ba = min(self.asks)

    def maker_qty(self) -> int:
        """Steps a maker posts on one level: log-normal around the spec's ``level_qty``."""
        return max(1, int(self.rng.lognormvariate(math.log(self.spec.level_qty * self.qscale), 1.0)))

    def taker_qty(self, cfg: MarketModelConfig, mult: float = 1.0) -> int:
        """Steps of one taker order: log-normal body, Pareto tail; ``mult`` scales it (liquidations)."""
        rng, median = self.rng, self.spec.median_qty * self.qscale * mult
        if rng.random() < cfg.pareto_share:
            q = median * 3.0 * rng.paretovariate(cfg.pareto_alpha)
        else:
            q = rng.lognormvariate(math.log(median), cfg.size_sigma)
        return max(1, int(q))

    def best_bid(self) -> int:
        return self.bb

    def best_ask(self) -> int:
        return self.ba


class MarketModel:
    """Generates ``config.hours`` of market for ``config.symbols`` into a ``MarketSink``."""

    def __init__(self, config: MarketModelConfig) -> None:
        self.cfg = config
        seq = np.random.SeedSequence(config.seed)
        children = seq.spawn(len(config.symbols) + 1)
        self.np_rng = np.random.Generator(np.random.PCG64(children[0]))
        self.syms = [
            _Symbol(i, config.spec(s), config, random.Random(int(children[i + 1].generate_state(1)[0])))
            for i, s in enumerate(config.symbols)
        ]
        self.regime: Regime = config.initial_regime
        self.trend_sign = 1.0
        self.regime_log: list[tuple[int, Regime]] = [(config.start_ms, self.regime)]
        # stepping state (see start / advance_to)
        self._started = False
        self._n_steps = int(config.hours * HOUR_MS // config.step_ms)
        self._chunk = max(1, min(self._n_steps, 20_000))
        self._dt_min = config.step_ms / 60_000.0
        period = config.funding_interval_h * HOUR_MS
        self._next_funding = (config.start_ms // period + 1) * period
        self._next_second = config.start_ms
        self._done = 0
        self._chunk_pos = self._chunk_len = 0
        self._z_mkt = self._u_regime = np.empty(0)
        self._z_idio = np.empty((len(self.syms), 0))

    @property
    def stats(self) -> dict[str, SymbolStats]:
        """Per-symbol statistics of the run so far."""
        return {s: st.stats for s, st in zip(self.cfg.symbols, self.syms, strict=True)}

    # ------------------------------------------------------------------ run
    def run(self, sink: MarketSink) -> None:
        """Generate the whole run: one REST snapshot per symbol, then the streams in time order."""
        self.start(sink)
        self.advance_to(self.cfg.start_ms + self._n_steps * self.cfg.step_ms - 1, sink)

    def start(self, sink: MarketSink) -> None:
        """Publish the opening REST snapshot of every symbol; ``advance_to`` then runs the market.

        A started model can run past ``config.hours`` (the live server does): ``hours`` only fixes
        the size of the random-draw chunks, so ``run()`` stays byte-identical for a seed.
        """
        if self._started:
            raise RuntimeError("the model was already started")
        cfg = self.cfg
        for s in self.syms:
            s.top = self._top(s)
            sink.snapshot(s.idx, s.update_id, cfg.start_ms, sorted(s.bids.items(), reverse=True)[: cfg.snapshot_levels],
                          sorted(s.asks.items())[: cfg.snapshot_levels])
        self._started = True

    @property
    def next_step_ms(self) -> int:
        """Market time at which the next step starts (its events are stamped in [t, t + step_ms))."""
        return self.cfg.start_ms + self._done * self.cfg.step_ms

    def advance_to(self, t_ms: int, sink: MarketSink) -> int:
        """Run every step whose events are all stamped at or before ``t_ms``; returns steps run."""
        if not self._started:
            raise RuntimeError("start(sink) first")
        cfg = self.cfg
        step_ms = cfg.step_ms
        last = (t_ms - cfg.start_ms + 1) // step_ms  # steps [0, last) end at or before t_ms
        ran = 0
        while self._done < last:
            if self._chunk_pos >= self._chunk_len:
                self._draw_chunk()
            self._step(sink)
            ran += 1
        return ran

    def _draw_chunk(self) -> None:
        """Market-wide shocks for the next chunk of steps, drawn in one vectorised call each."""
        left = self._n_steps - self._done
        n = min(self._chunk, left) if left > 0 else self._chunk
        self._z_mkt = self.np_rng.standard_normal(n)
        self._z_idio = self.np_rng.standard_normal((len(self.syms), n))
        self._u_regime = self.np_rng.random(n)
        self._chunk_pos, self._chunk_len = 0, n

    def _step(self, sink: MarketSink) -> None:
        """One model step for every symbol, then the once-per-second processes."""
        cfg = self.cfg
        k = self._chunk_pos
        t = cfg.start_ms + self._done * cfg.step_ms
        dt_min = self._dt_min
        self._step_regime(t, float(self._u_regime[k]), dt_min)
        vol, drift, rate_mult = self._regime_params()
        mkt = drift * dt_min + vol * math.sqrt(dt_min) * float(self._z_mkt[k])
        second = t >= self._next_second
        z_idio = self._z_idio
        for s in self.syms:
            sp = s.spec
            s.log_fair = max(s.log_floor, s.log_fair + sp.beta * mkt
                             + sp.idio_vol_per_min * math.sqrt(dt_min) * float(z_idio[s.idx, k]))
            self._step_symbol(s, t, rate_mult, second, sink)
        if second:
            self._next_second = (t // 1000 + 1) * 1000
            if t >= self._next_funding:
                for s in self.syms:
                    s.stats.funding.append((self._next_funding, s.rate))
                    s.prem_sum, s.prem_n = 0.0, 0
                self._next_funding += cfg.funding_interval_h * HOUR_MS
            for s in self.syms:
                self._second(s, t, self._next_funding, sink)
        self._chunk_pos += 1
        self._done += 1

    # --------------------------------------------------------------- regime
    def _step_regime(self, t: int, u: float, dt_min: float) -> None:
        cfg = self.cfg
        if self.regime == "calm":
            p_trend = cfg.calm_to_trend_per_hour * dt_min / 60.0
            p_crash = cfg.calm_to_crash_per_hour * dt_min / 60.0
            if u < p_crash:
                self._enter("crash", t)
            elif u < p_crash + p_trend:
                self.trend_sign = 1.0 if self.syms[0].rng.random() < 0.5 else -1.0
                self._enter("trend", t)
        elif self.regime == "trend":
            if u < dt_min / cfg.trend_mean_minutes:
                self._enter("calm", t)
        elif u < dt_min / cfg.crash_mean_minutes:
            self._enter("calm", t)

    def _enter(self, regime: Regime, t: int) -> None:
        self.regime = regime
        self.regime_log.append((t, regime))

    def _regime_params(self) -> tuple[float, float, float]:
        cfg = self.cfg
        if self.regime == "calm":
            return cfg.vol_per_min, 0.0, 1.0
        if self.regime == "trend":
            return cfg.vol_per_min * cfg.trend_vol_mult, self.trend_sign * cfg.trend_drift_per_min, cfg.trend_rate_mult
        return cfg.vol_per_min * cfg.crash_vol_mult, cfg.crash_drift_per_min, cfg.crash_rate_mult

    # ---------------------------------------------------------------- book
    def _top(self, s: _Symbol) -> tuple[int, int, int, int]:
        b, a = s.best_bid(), s.best_ask()
        return b, s.bids[b], a, s.asks[a]

    def _set(self, s: _Symbol, bid_side: bool, price: int, qty: int) -> None:
        if bid_side:
            s.changed_b[price] = qty
            if qty > 0:
                s.bids[price] = qty
                if price > s.bb:
                    s.bb = price
            else:
                s.bids.pop(price, None)
                if price == s.bb:
                    s.bb = max(s.bids)
        else:
            s.changed_a[price] = qty
            if qty > 0:
                s.asks[price] = qty
                if price < s.ba:
                    s.ba = price
            else:
                s.asks.pop(price, None)
                if price == s.ba:
                    s.ba = min(s.asks)
        s.update_id += 1

    def _ticker(self, s: _Symbol, ms: int, sink: MarketSink) -> None:
        if not s.bids or not s.asks:
            return
        top = self._top(s)
        if top != s.top:
            s.top = top
            s.stats.book_tickers += 1
            sink.book_ticker(s.idx, ms, s.update_id, top[0], top[1], top[2], top[3])

    def _take(self, s: _Symbol, ms: int, buy: bool, qty: int, sink: MarketSink, max_levels: int) -> tuple[int, int]:
        """A market order walking the book; returns (filled qty, filled notional in tick·steps)."""
        filled = notional = 0
        for _ in range(max_levels):
            book = s.asks if buy else s.bids
            if len(book) <= 1 or qty <= 0:
                break
            px = s.ba if buy else s.bb
            fill = min(qty, book[px])
            s.trade_id += 1
            s.stats.trades += 1
            sink.trade(s.idx, ms, s.trade_id, px, fill, not buy)
            self._set(s, not buy, px, book[px] - fill)
            self._ticker(s, ms, sink)
            qty -= fill
            filled += fill
            notional += fill * px
            s.oi += fill / s.qscale * (1.0 if s.rng.random() < 0.5 else -1.0)
        return filled, notional

    def _step_symbol(self, s: _Symbol, t: int, rate_mult: float, second: bool, sink: MarketSink) -> None:
        cfg, rng, sp = self.cfg, s.rng, s.spec
        dt_s = cfg.step_ms / 1000.0
        fair = math.exp(s.log_fair) / s.tick
        # self-exciting taker arrivals and Poisson maker activity
        mu = sp.trade_rate * cfg.rate_scale * (1.0 - cfg.hawkes_branching) * rate_mult
        n_take = _poisson(rng, (mu + s.excite) * dt_s)
        s.excite = (s.excite + cfg.hawkes_branching * cfg.hawkes_decay_per_s * n_take) * math.exp(
            -cfg.hawkes_decay_per_s * dt_s)
        n_make = _poisson(rng, sp.maker_rate * cfg.rate_scale * dt_s)
        ops = [True] * n_take + [False] * n_make
        rng.shuffle(ops)
        offsets = sorted(rng.randrange(cfg.step_ms) for _ in ops)
        for is_take, off in zip(ops, offsets, strict=True):
            ms = t + off
            if is_take:
                mid = (s.best_bid() + s.best_ask()) / 2.0
                x = max(-30.0, min(30.0, (fair - mid) / cfg.imbalance_ticks))
                p_buy = 1.0 / (1.0 + math.exp(-x))
                self._take(s, ms, rng.random() < p_buy, s.taker_qty(cfg), sink, cfg.max_walk_levels)
            else:
                self._maker_op(s, ms)
                self._ticker(s, ms, sink)
        end = t + cfg.step_ms - 1
        if second:
            self._liquidations(s, t, sink)
            fair = math.exp(s.log_fair) / s.tick
        # quotes left on the wrong side of fair value: an informed taker hits them or their maker pulls them
        while s.ba < fair - 0.5:
            px = s.ba
            if len(s.asks) == 1:  # never leave a side empty: re-quote at fair value first
                self._set(s, False, max(math.ceil(fair), s.bb + 1), s.maker_qty())
            if rng.random() < cfg.informed_share:
                self._take(s, end, True, s.taker_qty(cfg), sink, 1)
            if s.ba == px and len(s.asks) > 1:
                self._set(s, False, px, 0)
        while s.bb > fair + 0.5:
            px = s.bb
            if len(s.bids) == 1:
                self._set(s, True, min(math.floor(fair), s.ba - 1), s.maker_qty())
            if rng.random() < cfg.informed_share:
                self._take(s, end, False, s.taker_qty(cfg), sink, 1)
            if s.bb == px and len(s.bids) > 1:
                self._set(s, True, px, 0)
        # makers re-quote around fair value, filling the ticks between the old touch and fair value
        target_bid = min(math.floor(fair), s.ba - 1)
        if s.bb < target_bid and rng.random() < cfg.refill_prob:
            for px in range(max(s.bb + 1, target_bid - cfg.refill_levels + 1), target_bid + 1):
                self._set(s, True, px, s.maker_qty())
        target_ask = s.bb + 1
        if s.ba > target_ask and rng.random() < cfg.refill_prob:
            for px in range(target_ask, min(s.ba, target_ask + cfg.refill_levels)):
                self._set(s, False, px, s.maker_qty())
        for bid_side, book in ((True, s.bids), (False, s.asks)):
            if len(book) > cfg.max_levels + 20:
                far = sorted(book)[:20] if bid_side else sorted(book)[-20:]
                for px in far:
                    self._set(s, bid_side, px, 0)
        self._ticker(s, end, sink)
        self._flush_depth(s, end, sink)

    def _flush_depth(self, s: _Symbol, ms: int, sink: MarketSink) -> None:
        """Publish the book changes since the last depth update as one diff event."""
        if s.changed_b or s.changed_a:
            sink.depth(s.idx, ms, s.next_first, s.update_id, s.prev_final,
                       sorted(s.changed_b.items(), reverse=True), sorted(s.changed_a.items()))
            s.stats.depth_updates += 1
            s.prev_final = s.update_id
            s.update_id += 1
            s.next_first = s.update_id
            s.changed_b.clear()
            s.changed_a.clear()

    def user_take(self, sym: int, ms: int, buy: bool, qty: int, limit: int | None,
                  sink: MarketSink) -> list[tuple[int, int]]:
        """A user's taker order between steps: walks the book up to ``limit`` (ticks, inclusive).

        Publishes its trades and bookTickers like model flow, then one depth update at ``ms`` so
        the published diff chain always describes the book. Never empties a side (as ``_take``).
        Returns the fills as (price ticks, steps).
        """
        s = self.syms[sym]
        fills: list[tuple[int, int]] = []
        while qty > 0:
            book = s.asks if buy else s.bids
            if len(book) <= 1:
                break
            px = s.ba if buy else s.bb
            if limit is not None and (px > limit if buy else px < limit):
                break
            fill = min(qty, book[px])
            s.trade_id += 1
            s.stats.trades += 1
            sink.trade(s.idx, ms, s.trade_id, px, fill, not buy)
            self._set(s, not buy, px, book[px] - fill)
            self._ticker(s, ms, sink)
            qty -= fill
            fills.append((px, fill))
            s.oi += fill / s.qscale
        self._flush_depth(s, ms, sink)
        return fills

    def _maker_op(self, s: _Symbol, ms: int) -> None:
        """One maker add or cancel at a geometric distance from the touch (never crossing)."""
        cfg, rng = self.cfg, s.rng
        bid_side = rng.random() < 0.5
        dist = int(math.log(1.0 - rng.random()) / math.log(1.0 - cfg.maker_depth_p))
        bb, ba = s.best_bid(), s.best_ask()
        if bid_side:
            px, book = bb - dist, s.bids
            if dist == 0 and ba - bb > 1 and rng.random() < 0.5:
                px = bb + 1
        else:
            px, book = ba + dist, s.asks
            if dist == 0 and ba - bb > 1 and rng.random() < 0.5:
                px = ba - 1
        if px <= 0:
            return
        have = book.get(px, 0)
        if have and rng.random() < 0.5:
            touch = px == (bb if bid_side else ba)
            keep = 0 if rng.random() < (cfg.touch_pull_share if touch else 0.5) else int(have * rng.random())
            if touch and len(book) <= 1:
                keep = max(keep, 1)
            self._set(s, bid_side, px, keep)
        else:
            self._set(s, bid_side, px, have + s.maker_qty())

    # ------------------------------------------------- per-second processes
    def _liquidations(self, s: _Symbol, t: int, sink: MarketSink) -> None:
        cfg, rng = self.cfg, s.rng
        mid = (s.best_bid() + s.best_ask()) / 2.0
        s.mids.append(mid)
        if len(s.mids) < 2:
            return
        r = mid / s.mids[0] - 1.0
        if abs(r) < cfg.liq_threshold_1m:
            return
        n = _poisson(rng, cfg.liq_rate_per_s * cfg.rate_scale * min(25.0, (abs(r) / cfg.liq_threshold_1m) ** 2))
        sell = r < 0
        for _ in range(n):
            qty = min(s.taker_qty(cfg, cfg.liq_size_mult), int(s.liq_pool * s.qscale))
            if qty <= 0:
                break
            filled, notional = self._take(s, t, not sell, qty, sink, cfg.max_walk_levels * 4)
            if filled <= 0:
                continue
            s.stats.liquidations += 1
            s.liq_pool -= filled / s.qscale
            s.oi = max(0.0, s.oi - filled / s.qscale)
            avg = round(notional / filled)
            bankrupt = s.best_bid() - 1 if sell else s.best_ask() + 1
            s.pending_force = (t, sell, max(1, bankrupt), avg, filled)
            s.log_fair = max(s.log_floor, s.log_fair + (-1.0 if sell else 1.0) * cfg.liq_impact * filled
                             / (s.spec.level_qty * s.qscale))

    def _second(self, s: _Symbol, t: int, next_funding: int, sink: MarketSink) -> None:
        """Once per second: forceOrder snapshot, premium/funding, index and mark, open interest."""
        cfg, rng = self.cfg, s.rng
        if s.pending_force is not None:
            ms, sell, px, avg_px, qty = s.pending_force
            sink.force_order(s.idx, max(ms, t), sell, px, avg_px, qty)
            s.stats.force_orders += 1
            s.pending_force = None
        a = 1.0 / (cfg.basis_tau_min * 60.0)
        s.basis += a * (cfg.basis_mean - s.basis) + cfg.basis_vol * math.sqrt(2.0 * a) * rng.gauss(0.0, 1.0)
        mid = (s.best_bid() + s.best_ask()) / 2.0 * s.tick
        index = mid / (1.0 + s.basis)
        premium = mid / index - 1.0
        s.prem_sum += premium
        s.prem_n += 1
        avg = s.prem_sum / s.prem_n
        s.rate = max(-cfg.funding_cap, min(cfg.funding_cap,
                                           avg + max(-0.0005, min(0.0005, cfg.interest_rate - avg))))
        mark = index * (1.0 + avg)
        sink.mark_price(s.idx, t, mark, index, s.rate, next_funding)
        s.oi += (s.spec.open_interest - s.oi) * 0.001
        pool_max = s.spec.open_interest * cfg.liq_pool_share
        s.liq_pool = min(pool_max, s.liq_pool + pool_max / (cfg.liq_pool_refill_min * 60.0))
        s.stats.open_interest.append((t, s.oi))


def _poisson(rng: random.Random, lam: float) -> int:
    """A Poisson draw from a Python RNG: Knuth for small means, a rounded normal for large ones."""
    if lam <= 0.0:
        return 0
    if lam > 30.0:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
