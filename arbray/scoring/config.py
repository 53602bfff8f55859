"""Strategy configs: the frozen pydantic base class, shared field types and CVD windows.

Every kind's config derives from ``StrategyConfig``: frozen, ``extra="forbid"``, exportable as
JSON Schema, and identified by ``config_hash`` (sha256 of the canonical JSON of the model dump,
sorted keys, so it is the same in every process and for any key order of the input).
Cross-field rules are declared per class in ``_rule_violations``; a ``ValidationError`` lists every
field error and every broken rule (each rule naming all the fields it involves), except rules
that involve a field which is itself invalid.
"""

from __future__ import annotations

import hashlib
import json
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from arbray.features.snapshot import FeatureSnapshot

Direction = Literal["long_only", "short_only", "both"]
Symbol = Annotated[str, Field(pattern=r"^[A-Z0-9]{2,20}(USDT|USDC)$", description="USD-M perpetual symbol")]
StrategyId = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$", description="unique ASCII name")
]
DEFAULT_SYMBOLS: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "XRPUSDT", "SOLUSDT")

# CVD windows. The predecessor capped every slow window at its 4h deque (digest §3.2); here a
# window is either a snapshot field or computed by the caller over the exact span (``Extras``).
WINDOW_MINUTES: dict[str, int] = {
    "5m": 5, "15m": 15, "30m": 30, "1h": 60, "4h": 240, "8h": 480, "12h": 720, "24h": 1440,
}
SNAPSHOT_CVD_FIELDS: dict[str, str] = {
    "5m": "cvd_5m", "15m": "cvd_15m", "30m": "cvd_30m", "1h": "cvd_1h", "4h": "cvd_4h", "24h": "cvd_24h",
}
FastWindow = Literal["5m", "15m", "30m"]
SlowWindow = Literal["30m", "1h", "4h", "8h", "12h", "24h"]
Extras = Mapping[str, float | None]
"""Inputs the snapshot does not carry, supplied by the caller and keyed by input name: the CVD of
a window outside the snapshot's fields (``"cvd_8h"``, see ``cvd_input_name``) or a Coinbase
premium (``"coinbase_premium"``, a fraction)."""


def window_ms(label: str) -> int:
    """Length of a window label in milliseconds."""
    return WINDOW_MINUTES[label] * 60_000


def cvd_input_name(label: str) -> str:
    """The name under which a window's CVD is reported in ``inputs``/``missing``."""
    return f"cvd_{label}"


def cvd_for(snap: FeatureSnapshot, label: str, extras: Extras | None) -> float | None:
    """CVD over ``label``: a snapshot field when there is one, else the caller-computed value."""
    name = SNAPSHOT_CVD_FIELDS.get(label)
    if name is not None:
        value: float | None = getattr(snap, name)
        return value
    return None if extras is None else extras.get(cvd_input_name(label))


def extra_input(extras: Extras | None, name: str) -> float | None:
    """The caller-supplied input ``name``, or None."""
    return None if extras is None else extras.get(name)


def canonical_json(data: Any) -> str:
    """Deterministic JSON text: sorted keys, no whitespace, non-ASCII escaped."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def side_allowed(direction: Direction, side: int) -> bool:
    """Whether a strategy restricted to ``direction`` may trade side ``+1`` (long) / ``-1`` (short)."""
    if side == 0:
        return False
    return direction == "both" or (direction == "long_only") == (side > 0)


class FrozenModel(BaseModel):
    """Frozen, strict-keyed pydantic model with declarative cross-field rules."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        """Cross-field rules broken by this instance: (fields involved, message)."""
        return []

    @model_validator(mode="wrap")
    @classmethod
    def _report_all(cls, data: Any, handler: ModelWrapValidatorHandler[FrozenModel]) -> FrozenModel:
        """Also report broken cross-field rules when some other field failed on its own.

        Rules that involve a failed field are not checked (their input is not a valid value).
        """
        try:
            return handler(data)
        except ValidationError as exc:
            errors = exc.errors()
            failed = {e["loc"][0] for e in errors if e["loc"]}
            own_rules_only = all(e["type"] == "cross_field" and len(e["loc"]) == 1 for e in errors)
            if not isinstance(data, Mapping) or own_rules_only:
                raise
            reduced = {k: v for k, v in data.items() if k not in failed}
            if len(reduced) == len(data):
                raise
            try:
                cls.model_validate(reduced)
            except ValidationError as partial_exc:
                rules = [e for e in partial_exc.errors() if e["type"] == "cross_field" and len(e["loc"]) == 1]
                if len(rules) < len(partial_exc.errors()):
                    raise exc from None
                broken = [e for e in rules if not failed & set(e["ctx"]["fields"])]
                if broken:
                    details = [_error_details(e) for e in errors + broken]
                    raise ValidationError.from_exception_data(cls.__name__, details) from None
            raise

    @model_validator(mode="after")
    def _check_rules(self) -> FrozenModel:
        broken = self._rule_violations()
        if broken:
            raise ValidationError.from_exception_data(type(self).__name__, _rule_errors(self, broken))
        return self


def _rule_errors(model: FrozenModel, broken: list[tuple[tuple[str, ...], str]]) -> list[InitErrorDetails]:
    """One ``cross_field`` error per field named by each broken rule."""
    return [
        InitErrorDetails(
            type=PydanticCustomError("cross_field", "{msg}", {"msg": msg, "fields": names}),
            loc=(name,),
            input=getattr(model, name),
        )
        for names, msg in broken
        for name in names
    ]


def _error_details(e: ErrorDetails) -> InitErrorDetails:
    """An error as reported, ready to be raised again in a combined ``ValidationError``."""
    if e["type"] == "cross_field":
        ctx = e.get("ctx") or {}
        return InitErrorDetails(type=PydanticCustomError("cross_field", "{msg}", dict(ctx)), loc=e["loc"],
                                input=e["input"])
    if "ctx" in e:
        return InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"], ctx=e["ctx"])
    return InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"])


def flip_rule(entry_score: float, flip_threshold: float) -> list[tuple[tuple[str, ...], str]]:
    """Every kind's cross-field rule on its thresholds: a flip needs at least an entry's score."""
    if flip_threshold < entry_score:
        return [(("entry_score", "flip_threshold"),
                 f"flip_threshold ({flip_threshold}) must be >= entry_score ({entry_score})")]
    return []


class AtrTargets(FrozenModel):
    """Legacy JSON exits as multiples of the 5m ATR (digest §4.2–4.4, §5.2 "legacy ATR-based")."""

    sl_multiplier: float = Field(2.0, gt=0, le=10, description="stop distance in ATR")
    tp1_multiplier: float = Field(1.5, gt=0, le=20, description="TP1 distance in ATR")
    tp2_multiplier: float = Field(3.0, gt=0, le=30, description="TP2 distance in ATR, beyond TP1")

    def _rule_violations(self) -> list[tuple[tuple[str, ...], str]]:
        if self.tp2_multiplier <= self.tp1_multiplier:
            return [(("tp1_multiplier", "tp2_multiplier"),
                     f"tp2_multiplier ({self.tp2_multiplier}) must be beyond tp1_multiplier ({self.tp1_multiplier})")]
        return []


class StrategyConfig(FrozenModel):
    """Base of every kind's config: identity, side restriction, symbols and a stable hash."""

    kind: str = Field(description="the strategy kind this config belongs to")
    strategy_id: StrategyId
    direction: Direction = Field("both", description="side restriction for entries and flips")
    _config_hash: str = PrivateAttr(default="")

    def model_post_init(self, context: Any, /) -> None:
        digest = hashlib.sha256(canonical_json(self.model_dump(mode="json")).encode("ascii"))
        self._config_hash = digest.hexdigest()

    @property
    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the full model dump."""
        return self._config_hash

    @property
    @abstractmethod
    def applies_to(self) -> tuple[str, ...]:
        """The symbols this strategy may be evaluated on; any other symbol is refused."""

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of this config (what ``arbray strategies schema KIND`` prints)."""
        return cls.model_json_schema()


class WrongSymbolError(ValueError):
    """A strategy was asked to score a snapshot of a symbol it does not carry."""


def require_symbol(cfg: StrategyConfig, snap: FeatureSnapshot) -> None:
    """Refuse to score ``snap`` with ``cfg`` unless the config carries the snapshot's symbol."""
    if snap.symbol not in cfg.applies_to:
        raise WrongSymbolError(
            f"strategy {cfg.strategy_id!r} is for {', '.join(cfg.applies_to)}, not {snap.symbol}"
        )


def require_symbols(configs: Sequence[StrategyConfig], symbol: str) -> None:
    """Refuse to compile configs for ``symbol`` unless every one of them carries it."""
    wrong = [c.strategy_id for c in configs if symbol not in c.applies_to]
    if wrong:
        raise WrongSymbolError(f"strategies {wrong} are not for {symbol}")
