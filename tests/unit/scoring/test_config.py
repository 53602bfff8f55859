"""Configs: frozen, strict, every failing field named, JSON Schema, hash stable across processes."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
from pydantic import ValidationError

from arbray.scoring.presets import load_presets
from arbray.scoring.registry import get_kind, kind_names, parse_config
from tests.unit.scoring.helpers import config

pytestmark = pytest.mark.unit


def failing_fields(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


def test_configs_are_frozen_and_reject_unknown_keys() -> None:
    c = config()
    with pytest.raises(ValidationError):
        c.entry_score = 80  # type: ignore[misc]
    with pytest.raises(ValidationError) as exc:
        config(threshold=75)
    assert failing_fields(exc.value) == {"threshold"}


def test_every_failing_field_is_named() -> None:
    with pytest.raises(ValidationError) as exc:
        config(weight_direction=50, entry_score=90, flip_threshold=70, tp1_ratio=1.0, tp2_ratio=0.9,
               obi_threshold=2, cvd_fast_window="1h", cvd_slow_window="2h", extra_key=1)
    assert failing_fields(exc.value) == {
        "weight_direction", "weight_env", "weight_aux", "weight_momentum", "entry_score", "flip_threshold",
        "tp1_ratio", "tp2_ratio", "obi_threshold", "cvd_fast_window", "cvd_slow_window", "extra_key"}
    text = str(exc.value)
    assert "weights must sum to 100, got 95" in text and "must be >= entry_score" in text


def test_cross_field_rules_per_kind() -> None:
    with pytest.raises(ValidationError) as exc:
        config("v51_baseline", weights={"direction": 50}, tp_sl={"tp1_multiplier": 2.0, "tp2_multiplier": 1.0},
               standard_score=70, entry_score=75, flip_threshold=60)
    assert failing_fields(exc.value) >= {"weights.direction", "weights.auxiliary", "tp_sl.tp1_multiplier",
                                         "tp_sl.tp2_multiplier", "entry_score", "standard_score", "flip_threshold"}
    with pytest.raises(ValidationError) as exc:
        config("v53_fast", symbols=["BTCUSDT", "BTCUSDT"], flip_threshold=70,
               obi_scoring={"weak_threshold": 0.5, "strong_threshold": 0.3})
    assert failing_fields(exc.value) >= {"symbols", "flip_threshold", "obi_scoring.weak_threshold"}
    with pytest.raises(ValidationError) as exc:
        config("v52_8signals", symbols=["BTCUSDT"], fr_max_abs={"BTCUSDT": 0.0, "ETHUSDT": 1e-4})
    assert failing_fields(exc.value) == {"fr_max_abs"}


def test_windows_come_from_the_allowed_sets() -> None:
    for fast in ("5m", "15m", "30m"):
        for slow in ("30m", "1h", "4h", "8h", "12h", "24h"):
            assert config(cvd_fast_window=fast, cvd_slow_window=slow).cvd_slow_window == slow
    for bad in ({"cvd_fast_window": "1h"}, {"cvd_slow_window": "15m"}, {"cvd_slow_window": "2d"}):
        with pytest.raises(ValidationError):
            config(**bad)
    with pytest.raises(ValidationError):
        config("v53", cvd_fast_window="5m")  # fixed by the variant


def test_factory_gate_defaults_follow_the_symbol() -> None:
    btc, eth = config(), config(symbol="ETHUSDT")
    assert (btc.whale_mode, btc.whale_usd_threshold, btc.obi_threshold) == ("flow", 100_000, 0.30)  # type: ignore[attr-defined]
    assert (eth.whale_mode, eth.vol_atr_pct_min, eth.obi_threshold) == ("large_order", 0.003, 0.35)  # type: ignore[attr-defined]
    assert config(symbol="DOGEUSDT").spot_perp_threshold == 0.005  # type: ignore[attr-defined]
    # explicit values equal to the defaults give the same config and hash
    assert config(obi_threshold=0.30, whale_mode="flow").config_hash == btc.config_hash


def test_api_defaults_and_ranges() -> None:
    c = config()
    assert (c.cvd_fast_window, c.cvd_slow_window, c.entry_score, c.flip_threshold, c.timeout_minutes) == (  # type: ignore[attr-defined]
        "30m", "4h", 75, 80, 240)
    assert (c.sl_atr_multiplier, c.tp1_ratio, c.tp2_ratio, c.gate_spot_perp_enabled) == (1.5, 0.75, 1.5, False)  # type: ignore[attr-defined]
    for bad in ({"weight_direction": 9, "weight_env": 41}, {"entry_score": 96, "flip_threshold": 96},
                {"timeout_minutes": 29}, {"sl_atr_multiplier": 3.1}, {"symbol": "btcusdt"}, {"strategy_id": ""}):
        with pytest.raises(ValidationError):
            config(**bad)


def test_json_schema_export_validates_every_preset() -> None:
    presets = load_presets()
    for name in kind_names():
        schema = get_kind(name).config_type.json_schema()
        assert schema["additionalProperties"] is False
        for c in presets:
            if c.kind == name:
                jsonschema.validate(c.model_dump(mode="json"), schema)


def test_parse_config_needs_a_known_kind() -> None:
    with pytest.raises(ValueError, match="needs a 'kind'"):
        parse_config({"strategy_id": "x"})
    with pytest.raises(KeyError, match="unknown strategy kind"):
        parse_config({"kind": "v99"})


_HASH_SCRIPT = """
import json
from arbray.scoring.presets import load_presets
from arbray.scoring.registry import parse_config
out = {c.strategy_id: c.config_hash for c in load_presets()}
out["custom"] = parse_config({"symbol": "ETHUSDT", "kind": "factory", "strategy_id": "custom",
                              "obi_threshold": 0.0, "cvd_slow_window": "24h"}).config_hash
print(json.dumps(out))
"""


def test_config_hash_is_stable_across_processes() -> None:
    here = {c.strategy_id: c.config_hash for c in load_presets()}
    here["custom"] = parse_config({"kind": "factory", "strategy_id": "custom", "symbol": "ETHUSDT",
                                   "cvd_slow_window": "24h", "obi_threshold": 0.0}).config_hash
    for seed in ("0", "12345"):
        proc = subprocess.run([sys.executable, "-c", _HASH_SCRIPT], capture_output=True, text=True, check=True,
                              env={"PYTHONHASHSEED": seed, "PATH": ""})
        assert json.loads(proc.stdout) == here
    assert len(set(here.values())) == len(here)
