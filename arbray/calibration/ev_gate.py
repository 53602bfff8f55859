"""The expected-value gate: block entries whose expected net R does not clear a threshold.

``EV_net = p × avg_win_R − (1 − p) × avg_loss_R − cost_R`` with ``p`` the result's calibrated win
probability (``p_calibrated``; else the strategy's calibrator or the bootstrap map applied to its
score), the payoffs of the label geometry (+2R / −1R by default), and ``cost_R`` the symbol's
expected round-trip cost in R: the realised cost table (median or p95 of spread + slippage + fees,
``arbray.calibration.costs``) once the symbol has ``min_cost_samples`` trades, else the configured
fee model (round-trip fees, the snapshot's spread when taking, a slippage allowance), converted
with 1R = ``r_atr × ATR`` at the snapshot price. An entry with ``EV_net ≤ threshold_r`` becomes a
non-entry with ``block_reason = "ev_gate:<EV_net>"`` and an ``ev_gate`` gate entry; an entry whose
cost cannot be stated in R (no ATR or price) is blocked as ``ev_gate:no_atr`` (fail closed).

The gate is configured per strategy outside the kinds' configs (``strategy_id → EvGateConfig``), so
no strategy's ``config_hash`` changes; ``EvGate`` is the backtest's and the runtime's
``score_filter(snapshot, actionable_results) -> results`` hook.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from typing import Literal, NamedTuple

from pydantic import Field

from arbray.backtest.journal import ScoreCollector
from arbray.calibration.calibrators import bootstrap_probability
from arbray.calibration.costs import CostConfig, CostTable, expected_cost_bps, load_trade_costs
from arbray.calibration.live import LiveCalibration
from arbray.execution.fees import DEFAULT_FEE_TIER, FEE_SCHEDULE, fee_rates
from arbray.features.snapshot import FeatureSnapshot
from arbray.scoring.config import FrozenModel
from arbray.scoring.result import GateResult, ScoreResult
from arbray.storage.base import Store

CostSource = Literal["realised_median", "realised_p95", "fee_model"]


class EvGateConfig(FrozenModel):
    """One strategy's EV gate: threshold, payoffs, where the cost estimate comes from, fee fallback."""

    threshold_r: float = Field(0.0, ge=-5, le=5, description="block entries with EV_net at or below this (R)")
    avg_win_r: float = Field(2.0, gt=0, le=20, description="R won when the target is hit")
    avg_loss_r: float = Field(1.0, gt=0, le=20, description="R lost when the stop is hit")
    r_atr: float = Field(1.0, gt=0, le=20, description="1R in ATR (the label's stop distance)")
    cost_source: CostSource = Field("realised_p95", description="realised cost statistic, or the fee model only")
    min_cost_samples: int = Field(10, ge=1, description="trades a symbol needs before its realised cost is used")
    fallback_fee_tier: str = Field(DEFAULT_FEE_TIER, description="fee schedule row of the fallback fee model")
    fallback_liquidity: Literal["maker", "taker"] = "taker"
    fallback_slippage_bps: float = Field(1.0, ge=0, le=100, description="round-trip slippage allowance")

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        if self.fallback_fee_tier not in FEE_SCHEDULE:
            return [(("fallback_fee_tier",), f"unknown fee tier; known: {', '.join(sorted(FEE_SCHEDULE))}")]
        return []


class EvEstimate(NamedTuple):
    """The gate's arithmetic for one result."""

    p: float
    cost_bps: float
    cost_source: str
    cost_r: float
    ev_net: float


class EvGate:
    """``score_filter`` hook applying each configured strategy's ``EvGateConfig`` to its entries."""

    def __init__(self, configs: Mapping[str, EvGateConfig], costs: CostTable | None = None,
                 calibration: LiveCalibration | None = None, keep_blocked: bool = False) -> None:
        self.configs = dict(configs)
        self.costs = costs if costs is not None else CostTable()
        self.calibration = calibration
        self.counts: Counter[tuple[str, str]] = Counter()
        """(strategy_id, "passed" | "blocked") → entries seen."""
        self.blocked: list[ScoreResult] | None = [] if keep_blocked else None
        """With ``keep_blocked``: every result the gate blocked, for a caller that journals them later."""

    @classmethod
    async def from_store(cls, store: Store, configs: Mapping[str, EvGateConfig], run_id: str | None = None,
                         calibration: LiveCalibration | None = None) -> EvGate:
        """A gate charging the realised costs of the journalled trades (of ``run_id``, default all)."""
        costs, _ = await load_trade_costs(store, CostConfig(), run_id=run_id)
        return cls(configs, CostTable.from_costs(costs), calibration)

    def probability(self, r: ScoreResult) -> float:
        """``p_calibrated``, else the strategy's calibrator, else the bootstrap map."""
        if r.p_calibrated is not None:
            return r.p_calibrated
        if self.calibration is not None:
            return float(self.calibration.calibrator_for(r.strategy_id).predict(r.total))
        return float(bootstrap_probability(r.total))

    def cost_bps(self, snap: FeatureSnapshot, cfg: EvGateConfig) -> tuple[float, str]:
        """The expected round-trip cost in bps and where it came from."""
        known = self.costs.get(snap.symbol)
        if cfg.cost_source != "fee_model" and known is not None and known.n >= cfg.min_cost_samples:
            return (known.median_bps if cfg.cost_source == "realised_median" else known.p95_bps), cfg.cost_source
        return expected_cost_bps(snap.spread_bps, fee_rates(cfg.fallback_fee_tier), cfg.fallback_liquidity,
                                 cfg.fallback_slippage_bps), "fee_model"

    def estimate(self, snap: FeatureSnapshot, r: ScoreResult) -> EvEstimate | None:
        """EV_net of an entry of ``r`` at ``snap`` (None when its cost cannot be stated in R)."""
        cfg = self.configs[r.strategy_id]
        price, atr = snap.price, snap.atr_5m
        if price is None or atr is None or atr <= 0:
            return None
        p = self.probability(r)
        bps, source = self.cost_bps(snap, cfg)
        cost_r = bps / 1e4 * price / (cfg.r_atr * atr)
        return EvEstimate(p, bps, source, cost_r, p * cfg.avg_win_r - (1 - p) * cfg.avg_loss_r - cost_r)

    def __call__(self, snap: FeatureSnapshot, results: list[ScoreResult]) -> list[ScoreResult]:
        """``results`` with every gated entry at or below its threshold turned into a blocked non-entry."""
        out = []
        for r in results:
            cfg = self.configs.get(r.strategy_id)
            if cfg is None or not r.is_entry or r.side is None:
                out.append(r)
                continue
            est = self.estimate(snap, r)
            if est is not None and est.ev_net > cfg.threshold_r:
                self.counts[(r.strategy_id, "passed")] += 1
                out.append(r)
                continue
            self.counts[(r.strategy_id, "blocked")] += 1
            reason = "ev_gate:no_atr" if est is None else f"ev_gate:{est.ev_net:.4f}"
            gated = dataclasses.replace(r, is_entry=False, block_reason=reason,
                                        gates=(*r.gates, GateResult("ev_gate", "blocked", reason)))
            if self.blocked is not None:
                self.blocked.append(gated)
            out.append(gated)
        return out



class RecordedGate:
    """A backtest ``score_filter`` that also writes the gate's decisions into the ``ScoreCollector``.

    The backtest hands every result to its ``score_sink`` before the actionable ones reach the
    ``score_filter``; this wrapper swaps each result the gate changed into the collector's batch of the
    same snapshot, so the journalled score events carry ``block_reason = "ev_gate:…"``.
    """

    def __init__(self, gate: EvGate, collector: ScoreCollector) -> None:
        self.gate, self.collector = gate, collector

    def __call__(self, snap: FeatureSnapshot, results: list[ScoreResult]) -> list[ScoreResult]:
        out = self.gate(snap, results)
        changed = {id(a): b for a, b in zip(results, out, strict=True) if a is not b}
        batches = self.collector.batches
        if changed and batches and batches[-1][1] and (batches[-1][1][0].ts_ms, batches[-1][1][0].symbol) == (
                snap.ts_ms, snap.symbol):
            feats, batch = batches[-1]
            batches[-1] = (feats, [changed.get(id(r), r) for r in batch])
        return out
