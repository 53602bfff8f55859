"""ScoreResult is a JSON record that round-trips; ScoreBatch materialises the same records."""

from __future__ import annotations

import json

import orjson
import pytest

from arbray.scoring.presets import load_presets
from arbray.scoring.registry import kind_of
from arbray.scoring.result import ScoreResult
from tests.unit.scoring.helpers import BASE_SNAPSHOT, snap

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("s", [BASE_SNAPSHOT, snap(atr_5m=None), snap(cvd_4h=-1.0), snap(obi_10=-0.9)])
def test_every_preset_result_round_trips_through_json(s: object) -> None:
    for c in load_presets():
        if BASE_SNAPSHOT.symbol not in c.applies_to:
            continue
        r = kind_of(c).score(s, c, None)  # type: ignore[arg-type]
        d = r.to_dict()
        assert ScoreResult.from_dict(json.loads(json.dumps(d))) == r
        assert ScoreResult.from_dict(orjson.loads(orjson.dumps(d))) == r
        assert d["gate_passed"] == (r.block_reason is None)
        assert set(d) >= {"strategy_id", "kind", "version", "config_hash", "side", "total", "tier", "is_entry",
                          "is_flip_signal", "layers", "gates", "block_reason", "missing"}


def test_layer_and_gate_lookup() -> None:
    c = next(c for c in load_presets() if c.strategy_id == "v53")
    r = kind_of(c).score(BASE_SNAPSHOT, c, None)
    assert r.layer("crowding").max == 25.0 and r.gate("obi").status == "passed"
    with pytest.raises(KeyError):
        r.layer("nope")
    with pytest.raises(KeyError):
        r.gate("nope")
