"""The gate table, the shipped presets and the kind registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from arbray.strategies.factory import FactoryConfig

from arbray.scoring import gates
from arbray.scoring.presets import load_preset, load_strategies, preset_names
from arbray.scoring.registry import StrategyKind, get_kind, kind_names, register

pytestmark = pytest.mark.unit


def test_gate_table_matches_the_predecessor() -> None:
    """V5.4b per-symbol defaults (vol / whale USD / flow / OBI / spot–perp), digest §8.2."""
    rows = {s: (g.vol_atr_pct_min, g.whale_usd_threshold, g.whale_flow_pct, g.obi_threshold, g.spot_perp_threshold)
            for s, g in gates.SYMBOL_GATE_DEFAULTS.items()}
    assert rows == {
        "BTCUSDT": (0.002, 100_000, 0.5, 0.30, 0.003), "ETHUSDT": (0.003, 50_000, 0.5, 0.35, 0.005),
        "SOLUSDT": (0.004, 20_000, 0.5, 0.45, 0.008), "XRPUSDT": (0.0025, 30_000, 0.5, 0.40, 0.006),
    }
    d = gates.gate_defaults("DOGEUSDT")
    assert (d.vol_atr_pct_min, d.whale_usd_threshold, d.whale_flow_pct, d.obi_threshold, d.spot_perp_threshold) == (
        0.002, 50_000, 0.5, 0.35, 0.005)
    assert gates.gate_defaults("BTCUSDT").whale_mode == "flow" and d.whale_mode == "large_order"
    assert gates.GATE_ENABLED_DEFAULTS == {"volatility": True, "cvd_resonance": True, "whale": True, "obi": True,
                                           "spot_perp": False}


def test_presets_are_the_predecessor_set() -> None:
    names = preset_names()
    assert {"v51_baseline", "v52_8signals", "v53", "v53_middle", "v53_fast"} <= set(names)
    btc = [n for n in names if n.startswith("BTC_")]
    assert len(btc) == 18 and len(names) == 25  # + ats_v2_btc and sim_demo_btc
    assert all(n.isascii() for n in names)
    combos = {("5m", "30m"), ("5m", "1h"), ("15m", "1h"), ("15m", "4h"), ("30m", "1h"), ("30m", "4h")}
    profiles = {"conservative": (0.75, 1.5), "balanced": (1.0, 2.0), "aggressive": (1.5, 2.5)}
    seen = set()
    for n in btc:
        c = load_preset(n)
        assert isinstance(c, FactoryConfig) and c.strategy_id == n and c.symbol == "BTCUSDT"
        assert (c.weight_direction, c.weight_env, c.weight_aux, c.weight_momentum, c.entry_score) == (38, 32, 28, 2, 71)
        assert c.engine_params().layer_max == (27.5, 12.5, 32.0, 28.0)
        assert n == f"BTC_CVD{c.cvd_fast_window}x{c.cvd_slow_window}_TP{n.rsplit('_TP', 1)[1]}"
        prof = n.rsplit("_TP", 1)[1]
        assert (c.sl_atr_multiplier, c.tp1_ratio, c.tp2_ratio) == (2.0, *profiles[prof])
        seen.add((c.cvd_fast_window, c.cvd_slow_window, prof))
    assert seen == {(f, s, p) for f, s in combos for p in profiles}
    for n in names:
        assert load_preset(n).strategy_id == n


def test_load_strategies_from_yaml(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text("- {kind: factory, strategy_id: a, symbol: ETHUSDT}\n- {kind: v53_fast, symbols: [SOLUSDT]}\n")
    a, b = load_strategies(str(f))
    assert a.applies_to == ("ETHUSDT",) and b.kind == "v53_fast"
    assert load_strategies("v53")[0].kind == "v53"
    with pytest.raises(ValueError, match="unknown preset"):
        load_strategies("nope")
    with pytest.raises(FileNotFoundError):
        load_strategies(str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.yaml").write_text("just a string\n")
    with pytest.raises(ValueError, match="expected a strategy config"):
        load_strategies(str(tmp_path / "bad.yaml"))


def test_registry() -> None:
    assert kind_names() == ["ats_v2", "factory", "v51_baseline", "v52_8signals", "v53", "v53_fast", "v53_middle"]
    k = get_kind("factory")
    assert register(k) is k  # idempotent for the same kind
    with pytest.raises(ValueError, match="already registered"):
        register(StrategyKind(name="factory", version="x", config_type=k.config_type, capped=True, score=k.score,
                              compile=k.compile, score_batch=k.score_batch, windows=k.windows))
    assert {n: get_kind(n).capped for n in kind_names()} == {
        "ats_v2": True, "factory": True, "v51_baseline": False, "v52_8signals": False, "v53": True, "v53_fast": True,
        "v53_middle": True}
