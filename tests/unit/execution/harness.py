"""A tiny driver for execution tests: one strategy, one paper venue, trades fed one by one."""

from __future__ import annotations

from arbray.clock import ManualClock
from arbray.execution.executor import Signal, StrategyExecutor, StrategyRules
from arbray.execution.machine import ExecutionConfig, PositionMachine
from arbray.execution.paper import PaperVenue, PaperVenueConfig

SYM = "BTCUSDT"  # tick 0.1, step 0.001, min notional 5


class Harness:
    def __init__(self, rules: StrategyRules | None = None, cfg: ExecutionConfig | None = None,
                 venue_cfg: PaperVenueConfig | None = None, start_price: float = 50_000.0) -> None:
        self.clock = ManualClock(0)
        self.venue = PaperVenue(venue_cfg or PaperVenueConfig(slippage_bps=0.0))
        self.ex = StrategyExecutor("s1", rules or StrategyRules(), cfg or ExecutionConfig(), self.venue, self.clock)
        self.venue.connect(self.ex.on_event)
        self.venue.set_last(SYM, start_price)

    def signal(self, ts: int, side: int = 1, price: float = 50_000.0, score: float = 76.0, atr: float = 50.0,
               tier: str = "standard", bid: float | None = None, ask: float | None = None) -> str | None:
        self.clock.set(ts)
        out = self.ex.on_signal(Signal("s1", SYM, ts, side, score, tier, True, score >= 80, atr, price, bid, ask))
        self.venue.advance(SYM, ts)
        return out

    def trade(self, ts: int, price: float, qty: float = 10.0) -> None:
        self.clock.set(ts)
        self.venue.on_trade(SYM, ts, price, qty)
        self.ex.on_price(SYM, price)
        self.venue.advance(SYM, ts)

    def tick(self, ts: int) -> None:
        self.clock.set(ts)
        self.venue.advance(SYM, ts)
        self.ex.on_time()
        self.venue.advance(SYM, ts)

    @property
    def machine(self) -> PositionMachine:
        """The symbol's working machine, else the last finished one."""
        return self.ex.machines.get(SYM) or self.ex.finished[-1]


TAKER = ExecutionConfig(maker_entry=False)
