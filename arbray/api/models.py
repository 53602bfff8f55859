"""Request and response models of the control API (what the OpenAPI document describes).

Requests forbid unknown fields. Responses built from the store list their fields exactly;
responses that relay the runtime's payloads (``arbray.runtime.control``) declare the documented
fields and allow more, so a runtime that adds a field never breaks the API.
"""

from __future__ import annotations

import re
from typing import Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

T = TypeVar("T")
StatusName = Literal["running", "paused", "deprecated"]
_REF = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
NOT_PATCHABLE: dict[str, str] = {
    "symbol": "a strategy's market is fixed; create a new strategy",
    "initial_balance": "use add-balance",
    "status": "use pause, resume, deprecate or restore",
    "kind": "a strategy's kind is fixed; create a new strategy",
    "strategy_id": "the name is the strategy's identity",
}
"""Top-level fields a PATCH may not carry, and what to do instead."""


class Request(BaseModel):
    """Base of request bodies: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Base of store-backed responses."""

    model_config = ConfigDict(extra="ignore")


class Relay(BaseModel):
    """Base of runtime-backed responses: documented fields, extra fields kept."""

    model_config = ConfigDict(extra="allow")


class Page(Out, Generic[T]):
    """One page, newest first, and the cursor of the next (None on the last page)."""

    items: list[T]
    next_cursor: str | None = Field(None, description="pass as ?cursor= to get the next page")


# ---------------------------------------------------------------- strategies


class StrategyCreate(Request):
    """A new live strategy: display data, starting balance and a config of a registered kind."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "display_name": "BTC fast CVD", "initial_balance": 10_000, "description": "30m/4h CVD, default gates",
        "tags": ["btc"], "config": {"kind": "factory", "strategy_id": "btc_fast_cvd", "symbol": "BTCUSDT",
                                    "weight_direction": 55, "weight_env": 25, "weight_aux": 15,
                                    "weight_momentum": 5, "entry_score": 75}}]})

    display_name: str = Field(min_length=1, max_length=50)
    initial_balance: float = Field(10_000.0, ge=1_000, le=1e9, description="USDT; at least 1,000")
    description: str | None = Field(None, max_length=500)
    tags: list[str] = Field(default_factory=list, max_length=10)
    config: dict[str, Any] = Field(description="the kind's config (see GET /api/v1/kinds); `kind` selects it; "
                                               "`strategy_id` is the strategy's unique name (its slug)")

    @field_validator("display_name")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("display_name must not be blank")
        return v.strip()

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if not re.match(r"^[A-Za-z0-9_.\-]{1,32}$", t)]
        if bad:
            raise ValueError(f"tags are 1-32 of A-Z a-z 0-9 _ . -: {bad}")
        return v


class StrategyPatch(Request):
    """A partial update; ``config`` holds only the fields to change and is re-validated with the stored ones."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"config": {"entry_score": 80, "flip_threshold": 85}}, {"display_name": "BTC fast CVD v2"}]})

    display_name: str | None = Field(None, min_length=1, max_length=50)
    description: str | None = Field(None, max_length=500)
    tags: list[str] | None = Field(None, max_length=10)
    config: dict[str, Any] | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _fixed_fields(cls, data: Any, handler: ModelWrapValidatorHandler[StrategyPatch]) -> StrategyPatch:
        """Name the fields that can never be patched instead of calling them unknown."""
        fixed = [k for k in NOT_PATCHABLE if isinstance(data, dict) and k in data]
        if fixed:
            raise ValidationError.from_exception_data(cls.__name__, [InitErrorDetails(
                type=PydanticCustomError("not_patchable", "{field} is not patchable: {hint}",
                                         {"field": k, "hint": NOT_PATCHABLE[k]}), loc=(k,), input=data[k])
                for k in fixed])
        return handler(data)


class Confirm(Request):
    """An irreversible or drastic action must be confirmed explicitly."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"confirm": True,
                                                                                 "reason": "retired"}]})
    confirm: bool = Field(description="must be true")
    reason: str | None = Field(None, max_length=200)


class Reason(Request):
    """Why (kept in the lifecycle or risk history)."""

    reason: str | None = Field(None, max_length=200)


class AddBalance(Request):
    """Credit USDT to a strategy; ``ref`` makes a retried request book once."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"amount": 1_000, "ref": "topup-1"}]})
    amount: float = Field(gt=0, le=10_000_000)
    ref: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$",
                            description="idempotency key (default: a new one)")


class TradeStats(Out):
    """Closed-trade statistics, net of fees and funding."""

    trades: int
    wins: int
    losses: int
    win_rate: float | None
    gross_pnl: float
    fees: float
    funding: float
    net_pnl: float
    profit_factor: float | None
    total_r: float
    avg_r: float | None
    best: float | None
    worst: float | None


class StrategyStats(TradeStats):
    """Trade statistics plus the equity drawdown."""

    max_drawdown: float
    max_drawdown_pct: float | None


class LatestScore(Out):
    """The strategy's most recent score."""

    ts_ms: int
    symbol: str
    total: float
    side: str | None
    tier: str | None
    gate_passed: bool
    block_reason: str | None
    is_entry: bool


class Pnl24h(Out):
    """Trades closed in the last 24 hours."""

    trades: int = 0
    net_pnl: float = 0.0
    net_r: float = 0.0


class StrategyCard(Out):
    """A plaza card (digest §8.4): identity, status, balances, results and the latest score."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "strategy_id": "1b4e28ba-2fa1-5e0b-8f8e-2f6f0c1a9d3e", "slug": "btc_fast_cvd", "display_name": "BTC fast CVD",
        "kind": "factory", "status": "running", "symbols": ["BTCUSDT"], "direction": "both",
        "config_hash": "9f2c…", "initial_balance": 10_000.0, "current_balance": 10_412.5, "net_usdt": 412.5,
        "net_r": 2.1, "win_rate": 0.58, "trades": 12, "open_positions": 1,
        "pnl_24h": {"trades": 3, "net_pnl": 95.0, "net_r": 0.5}, "source": "live", "run_id": "live",
        "status_changed_ms": 1_721_347_200_000, "last_run_ms": 1_721_350_800_000, "tags": [],
        "stats": {"trades": 12, "wins": 7, "losses": 5, "win_rate": 0.58, "gross_pnl": 480.0, "fees": 67.5,
                  "funding": 0.0, "net_pnl": 412.5, "profit_factor": 1.9, "total_r": 2.1, "avg_r": 0.18,
                  "best": 160.0, "worst": -80.0},
        "latest_score": {"ts_ms": 1_721_350_800_000, "symbol": "BTCUSDT", "total": 71.5, "side": "LONG",
                         "tier": None, "gate_passed": True, "block_reason": None, "is_entry": False}}]})

    strategy_id: str = Field(description="journal UUID")
    slug: str = Field(description="the config's strategy_id (the name the runtime uses)")
    display_name: str
    kind: str
    status: StatusName
    symbols: list[str]
    direction: str | None
    config_hash: str
    initial_balance: float
    current_balance: float
    net_usdt: float = Field(description="current − initial balance")
    net_r: float
    win_rate: float | None
    trades: int
    open_positions: int
    pnl_24h: Pnl24h
    source: Literal["live", "backtest"]
    run_id: str
    status_changed_ms: int
    last_run_ms: int | None
    tags: list[str]
    stats: TradeStats
    latest_score: LatestScore | None


class StrategyEvent(Out):
    """One lifecycle record."""

    ts_ms: int
    event: str
    from_status: str | None
    to_status: str | None
    detail: dict[str, Any] | None


class StrategyDetail(StrategyCard):
    """A card plus the full config, timestamps, lifecycle history and drawdown."""

    description: str | None
    config: dict[str, Any]
    created_ms: int
    updated_ms: int
    paused_ms: int | None
    resumed_ms: int | None
    deprecated_ms: int | None
    events: list[StrategyEvent]
    stats: StrategyStats


class RuntimeReload(Out):
    """Whether the running engine re-read the journal after the change (it also does every cycle)."""

    reloaded: bool
    version: int | str | None = Field(None, description="the runtime's strategy-set version after the reload")
    running: list[str] | None = None
    detail: str | None = None


class StrategyChange(Out):
    """The result of a create, patch or lifecycle action."""

    changed: bool
    strategy: StrategyDetail
    runtime: RuntimeReload


class BalanceChange(StrategyChange):
    """An add-balance result: ``changed`` is false when ``ref`` was booked before."""

    ref: str
    account: dict[str, Any] | None = Field(None, description="the runtime's account after the credit")


class KindInfo(Out):
    """A registered strategy kind and the JSON Schema of its config."""

    name: str
    version: str
    config_schema: dict[str, Any]


class SymbolInfo(Out):
    """A symbol strategies may be created on, with its gate defaults (the form's recommended values)."""

    symbol: str
    gate_defaults: dict[str, Any]


# ---------------------------------------------------------------- signals, scores, trades


class ScoreEvent(Out):
    """One journalled ``ScoreResult``; ``features`` only when asked for."""

    id: int
    run_id: str
    strategy: str
    kind: str
    version: str
    config_hash: str
    symbol: str
    ts_ms: int
    side: str | None
    side_allowed: bool
    total: float
    gate_passed: bool
    block_reason: str | None
    tier: str | None
    is_entry: bool
    is_flip_signal: bool
    layers: list[dict[str, Any]]
    gates: list[dict[str, Any]]
    missing: list[str]
    inputs: dict[str, Any]
    features: dict[str, Any] | None = None


class SignalOut(Out):
    """An actionable signal (entry, flip, exit)."""

    id: int
    run_id: str
    strategy_id: str
    symbol: str
    ts_ms: int
    side: str
    action: str
    score: float
    tier: str | None
    price: float | None
    detail: dict[str, Any] | None


class TradeOut(Out):
    """A closed round trip; ``net_pnl = pnl − fees + funding``."""

    id: int
    trade_id: str
    run_id: str
    strategy_id: str
    position_id: str | None
    symbol: str
    side: str
    qty: float
    entry_price: float
    entry_ms: int
    exit_price: float
    exit_ms: int
    exit_reason: str
    pnl: float
    fees: float
    funding: float
    net_pnl: float
    risk_distance: float | None
    r_multiple: float | None
    score: float | None
    tier: str | None
    detail: dict[str, Any] | None


class EquityPoint(Out):
    """The balance after one ledger entry."""

    ts_ms: int
    kind: str
    amount: float
    balance: float
    ref: str | None


class ExecutionKpis(Out):
    """Execution quality of one strategy (or all): maker share, fees, orders by type and state, friction."""

    fills: int = 0
    maker_fills: int = 0
    maker_ratio: float | None = None
    fees: float = 0.0
    notional: float = 0.0
    orders: dict[str, dict[str, int]] = Field(default_factory=dict)
    orders_total: int = 0
    fees_r_avg: float | None = Field(None, description="average fees per trade in R")


class StrategyStatsOut(Out):
    """Statistics and execution KPIs of one strategy."""

    strategy_id: str
    slug: str
    stats: StrategyStats
    execution: ExecutionKpis
    pnl_24h: Pnl24h


class OverallStats(Out):
    """Totals over strategies, and each strategy's card statistics."""

    strategies: int
    trades: int
    wins: int
    win_rate: float | None
    net_pnl: float
    net_r: float
    fees: float
    open_positions: int
    pnl_24h: Pnl24h
    execution: ExecutionKpis
    by_strategy: list[StrategyCard]


class PositionOut(Relay):
    """An open position; marks and floating R come from the runtime (``source`` says which)."""

    strategy: str = Field(description="the strategy's name (slug)")
    strategy_id: str = Field(description="journal UUID")
    position_id: str
    symbol: str
    side: str
    qty: float | None = Field(None, description="None while the entry order is still working")
    entry_price: float | None = Field(None, description="None while the entry order is still working")
    opened_ms: int | None = None
    mark_price: float | None = None
    risk_usd: float | None = None
    risk_distance: float | None = None
    floating_pnl: float | None = None
    floating_r: float | None = None
    phase: str | None = None
    stop_price: float | None = None
    working_orders: list[dict[str, Any]] = Field(default_factory=list)


class Positions(Out):
    """Open positions, live from the runtime when it runs, else as journalled (without marks)."""

    source: Literal["runtime", "journal"]
    positions: list[PositionOut]


# ---------------------------------------------------------------- market, risk, system


class MarketDetail(Relay):
    """One symbol: snapshot, book top levels, recent liquidations and a 24 h price/CVD series."""

    snapshot: dict[str, Any] | None = Field(None, description="None until the symbol's first evaluation boundary")
    book: dict[str, Any] = Field(default_factory=dict)
    liquidations: list[dict[str, Any]] = Field(default_factory=list)
    series: list[dict[str, Any]] = Field(default_factory=list)


class MarketIndicators(Out):
    """Recorded funding, open interest and liquidations of one symbol, and its live snapshot if running."""

    symbol: str
    since_ms: int
    funding: list[dict[str, Any]]
    open_interest: list[dict[str, Any]]
    liquidations: list[dict[str, Any]]
    snapshot: dict[str, Any] | None


class RiskState(Relay):
    """The RiskGuard's state; from the journal (``source``) when the runtime is down."""

    source: Literal["runtime", "journal"]
    state: str
    reasons: list[str] = Field(default_factory=list)
    since_ms: int | None = None
    manual: dict[str, Any] | None = None
    strategies: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list)


class RiskEventOut(Out):
    """A journalled risk event (guard transitions and API commands)."""

    id: int
    ts_ms: int
    scope: str
    level: str
    kind: str
    message: str
    detail: dict[str, Any] | None


class Health(Relay):
    """The runtime's liveness and readiness (``RuntimeControl.health``)."""

    ready: bool
    mode: str | None = None
    started_ms: int | None = None
    actors: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)


class Liveness(Out):
    """The API process answers."""

    status: Literal["ok"] = "ok"


class Readiness(Out):
    """Ready when the runtime runs and reports every actor alive and every symbol's data fresh."""

    ready: bool
    detail: str | None = None


class Versions(Out):
    """Versions of arbray, its schema and main dependencies, and the registered strategy kinds."""

    arbray: str
    python: str
    schema_version: int
    latest_schema_version: int
    packages: dict[str, str | None]
    kinds: dict[str, str]


class Whoami(Out):
    """The caller's credential name and role."""

    name: str
    role: str


class JobInfo(Out):
    """A backtest or sweep job."""

    job_id: str
    type: str
    status: str
    submitted_ms: int | None = None
    started_ms: int | None = None
    ended_ms: int | None = None
    message: str | None = None


class JobLogs(Out):
    """A job's output so far."""

    job_id: str
    log: str


class JobResults(Out):
    """A job's summary line, its output files and (reachable here) the full summary or ranking."""

    job_id: str
    status: str
    summary: dict[str, Any] | None
    files: list[str]
    detail: dict[str, Any] | None


def valid_ref(ref: str) -> bool:
    """Whether ``ref`` can be a strategy UUID or slug (checked before any lookup)."""
    return bool(_REF.match(ref)) or ("@" in ref and all(_REF.match(p) for p in ref.split("@", 1)))


# ---------------------------------------------------------------- screener (arbray.screener.service)

_SCREEN_RESULT_EXAMPLE: dict[str, Any] = {
    "rank": 1, "symbol": "SOLUSDT", "timeframe": "5m", "score": -41.7, "probability_up": 0.11, "mode": "v1",
    "factors": {"natr": 0.42, "ker": 0.61, "hurst": 0.48, "ema_gap_atr": -2.1, "cvd_imbalance": -0.18,
                "spread_bps": None},
    "components": {"T": -78.2, "M": -55.0, "C": -18.0, "V": 57.0, "S": 71.0, "O": -32.0, "E": 61.0, "L": None},
    "missing": ["liquidations", "order_book"],
    "explanation": "hybrid→V1 score -41.7 → P(up) 0.11 (short); T -78, M -55, C -18, V +57, S +71, O -32, E +61",
}
_SCREEN_RUN_EXAMPLE: dict[str, Any] = {
    "id": 42, "model": "ats_v2", "timeframe": "5m", "source": "kline_cache:https://fapi.binance.com",
    "started_ms": 1767225600000, "finished_ms": 1767225600180, "symbols": 512, "ranked": 509, "excluded": 3,
    "config": {"bars": 300, "timeframe": "5m", "ats_v2": {"mode": "hybrid", "temperature": 20.0}},
    "stats": {"scan_ms": 180, "excluded_by_reason": {"min_bars": 3}},
}


class ScreenResultOut(Out):
    """One ranked symbol of a scan: score, the raw factors (null = input missing), the model's components,
    the inputs it lacked and a one-line explanation."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [_SCREEN_RESULT_EXAMPLE]})

    rank: int = Field(ge=1)
    symbol: str
    timeframe: str
    score: float | None = Field(description="ats_v2: ±100 (ranked by |score|); short_grid: GSS 0–100")
    probability_up: float | None = Field(None, description="ats_v2 only: 1/(1+exp(−score/20))")
    mode: str | None = Field(None, description="ats_v2 only: v1 or v2 (hybrid picks by data available)")
    factors: dict[str, float | None]
    components: dict[str, float | None]
    missing: list[str]
    explanation: str


class ScreenRunOut(Out):
    """One periodic scan: model, timeframe, where the bars came from, counts, config and timing."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [_SCREEN_RUN_EXAMPLE]})

    id: int
    model: Literal["ats_v2", "short_grid"]
    timeframe: str
    source: str
    started_ms: int
    finished_ms: int
    symbols: int = Field(description="symbols with bars in the cache")
    ranked: int
    excluded: int = Field(description="filtered out (bars, liquidity) or unscorable")
    config: dict[str, Any]
    stats: dict[str, Any] | None = None


class ScreenLatest(ScreenRunOut):
    """The newest scan of a model with its ranked results (the first ``limit``)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [
        {**_SCREEN_RUN_EXAMPLE, "results": [_SCREEN_RESULT_EXAMPLE]}]})

    results: list[ScreenResultOut]
