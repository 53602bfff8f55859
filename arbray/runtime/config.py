"""``RunConfig``: everything ``arbray run`` needs, validated with field-level errors.

Modes: ``paper`` (the paper venue fed by simulated, replayed or Binance data), ``sim`` (orders to
the simulator exchange over its REST/WS API), ``live`` (Binance; credentials and an explicit
confirmation are checked by the CLI). Sources: ``sim`` (the simulator's market model, default),
``replay`` (a recording served by the simulator at a chosen speed), ``binance``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from arbray.calibration.ev_gate import EvGateConfig
from arbray.runtime.position_manager import PositionManagerConfig
from arbray.runtime.risk_guard import RiskGuardConfig
from arbray.runtime.symbol_state import SymbolStateConfig
from arbray.scoring.config import FrozenModel, Symbol
from arbray.screener.service import ScreenerConfig

Mode = Literal["paper", "sim", "live"]
Source = Literal["sim", "replay", "binance"]


class SimSourceConfig(FrozenModel):
    """The built-in exchange simulator the run starts on loopback (sources ``sim`` and ``replay``)."""

    seed: int = 1
    speed: float | Literal["max"] = Field(1.0, description="market seconds per wall second, or 'max' (replay)")
    history_hours: float = Field(48.0, ge=0, le=24 * 30, description="synthetic kline history before the start")
    rate_scale: float = Field(1.0, gt=0, le=100, description="scales the model's trade and maker rates")
    replay: str | None = Field(None, description="recording to replay (source 'replay')")
    faults: str | None = Field(None, description="fault-injection YAML/JSON for the simulator")

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        if self.speed != "max" and not (isinstance(self.speed, float) and self.speed > 0):
            return [(("speed",), "speed must be > 0 or 'max'")]
        return []


class BinanceSourceConfig(FrozenModel):
    """Binance endpoints (source ``binance``, mode ``live``): production or testnet presets, or URLs."""

    testnet: bool = Field(False, description="use Binance's futures testnet endpoints")
    ws_base: str | None = Field(None, description="override the WebSocket base URL")
    rest_base: str | None = Field(None, description="override the REST base URL")
    spot_rest_base: str | None = Field(None, description="override the spot REST base URL")


class VenueRunConfig(FrozenModel):
    """The order venue of modes ``sim`` and ``live`` (mode ``paper`` fills on the paper venue)."""

    credentials_file: str | None = Field(None, description="live: a key/secret file (else BINANCE_API_KEY/SECRET)")
    allow_production: bool = Field(False, description="live on Binance's production exchange (set by --live)")
    reconcile_interval_s: float = Field(60.0, ge=0, le=86_400, description="periodic venue reconciliation; 0: off")


class ApiRunConfig(FrozenModel):
    """The control API and dashboard of the run (Ray Serve)."""

    enabled: bool = True
    host: str = Field("127.0.0.1", description="loopback by default; another host must be explicit")
    port: int = Field(8000, ge=0, le=65_535)


class RunScreenerConfig(FrozenModel):
    """The market-wide periodic scan started with a run on Ray (``actors/screen.py``): a kline cache fed
    by streams over the universe, scanned every ``scan.interval_s`` and journalled for the control API."""

    enabled: bool = Field(True, description="start the screener actor (never for replays: no kline streams)")
    universe: Literal["all", "run"] = Field("all", description="all: every TRADING USDT perpetual of "
                                                             "exchangeInfo; run: the run's symbols")
    workers: int = Field(0, ge=0, le=64, description="Ray tasks per scan (0: inside the screener actor)")
    scan: ScreenerConfig = Field(default_factory=ScreenerConfig)


class RunConfig(FrozenModel):
    """One run of the runtime (see the module docstring)."""

    mode: Mode = "paper"
    source: Source = "sim"
    symbols: tuple[Symbol, ...] = Field(("BTCUSDT",), min_length=1, max_length=500)
    strategies: tuple[str, ...] = Field((), description="presets or YAML files; empty: every preset for the symbols")
    initial_balance: float = Field(10_000.0, ge=1_000, description="balance of strategies registered by this run")
    run_id: str = Field("live", pattern=r"^[A-Za-z0-9_.:\-]{1,64}$", description="journal tag of this run's rows")
    instance: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:\-]{1,64}$",
                                 description="resume this instance (its input log); None: a new one")
    symbols_per_actor: int = Field(1, ge=1, le=500, description="symbols hosted by one SymbolState actor")
    strategy_actors: int = Field(1, ge=1, le=16)
    warmup_klines: bool = Field(True, description="seed ATR from REST klines at start (not for replays)")
    symbol_state: SymbolStateConfig = Field(default_factory=SymbolStateConfig)
    position_manager: PositionManagerConfig = Field(default_factory=PositionManagerConfig)
    guard: RiskGuardConfig = Field(default_factory=RiskGuardConfig)
    sim: SimSourceConfig = Field(default_factory=SimSourceConfig)
    binance: BinanceSourceConfig = Field(default_factory=BinanceSourceConfig)
    venue: VenueRunConfig = Field(default_factory=VenueRunConfig)
    api: ApiRunConfig = Field(default_factory=ApiRunConfig)
    screener: RunScreenerConfig = Field(default_factory=RunScreenerConfig)
    ev_gates: dict[str, EvGateConfig] = Field(default_factory=dict,
                                              description="strategy → expected-value gate on its entries")

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        out: list[tuple[tuple[str, ...], str]] = []
        if self.mode == "live" and self.source != "binance":
            out.append((("mode", "source"), "live trading needs Binance market data (source 'binance')"))
        if self.mode == "sim" and self.source == "binance":
            out.append((("mode", "source"), "mode 'sim' trades on the simulator: source 'sim' or 'replay'"))
        if self.source == "replay" and not self.sim.replay:
            out.append((("source", "sim"), "source 'replay' needs sim.replay (a recording)"))
        if self.source != "replay" and self.sim.replay:
            out.append((("source", "sim"), "sim.replay is only used with source 'replay'"))
        if self.sim.speed == "max" and self.source != "replay":
            out.append((("source", "sim"), "speed 'max' is for replays"))
        if self.source == "replay" and self.screener.enabled:
            out.append((("source", "screener"), "a replay serves no kline streams: disable the screener"))
        if len(set(self.symbols)) != len(self.symbols):
            out.append((("symbols",), "symbols must be unique"))
        return out

    @property
    def every_ms(self) -> int:
        return self.symbol_state.every_ms

    def groups(self) -> list[tuple[str, tuple[str, ...]]]:
        """SymbolState actors: (name, symbols), ``symbols_per_actor`` symbols each."""
        n = self.symbols_per_actor
        syms = list(self.symbols)
        return [(f"symbol_state_{k // n}", tuple(syms[k:k + n])) for k in range(0, len(syms), n)]

    def summary(self) -> dict[str, Any]:
        return {"mode": self.mode, "source": self.source, "symbols": list(self.symbols),
                "every_ms": self.every_ms, "ordering": self.position_manager.ordering}
