"""The strategy-kind registry: kinds register by name; configs are parsed through their kind.

A kind is a pure scalar function ``score(snapshot, config, extras)`` plus its vectorised form:
``compile(configs, symbol)`` turns N configs into parameter arrays once, and
``score_batch(snapshot, compiled, extras)`` scores them all in one call. The built-in kinds
live in ``arbray.strategies`` and are imported on first lookup.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from arbray.features.snapshot import FeatureSnapshot
from arbray.scoring.config import Extras, StrategyConfig
from arbray.scoring.result import ScoreBatch, ScoreResult

C = TypeVar("C", bound=StrategyConfig)
P = TypeVar("P")

_BUILTIN_PACKAGE = "arbray.strategies"


@dataclass(frozen=True)
class StrategyKind(Generic[C, P]):
    """A registered strategy kind.

    ``capped``: totals never exceed 100. ``windows(config)`` names the CVD windows a config
    reads, so a caller can compute those the snapshot lacks.
    """

    name: str
    version: str
    config_type: type[C]
    capped: bool
    score: Callable[[FeatureSnapshot, C, Extras | None], ScoreResult]
    compile: Callable[[Sequence[C], str], P]
    score_batch: Callable[[FeatureSnapshot, P, Extras | None], ScoreBatch]
    windows: Callable[[C], tuple[str, ...]]


_KINDS: dict[str, StrategyKind[Any, Any]] = {}


def register(kind: StrategyKind[Any, Any]) -> StrategyKind[Any, Any]:
    """Register ``kind`` under its name (a second kind with the same name is an error)."""
    existing = _KINDS.get(kind.name)
    if existing is not None and existing is not kind:
        raise ValueError(f"strategy kind {kind.name!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def _load_builtin() -> None:
    importlib.import_module(_BUILTIN_PACKAGE)


def get_kind(name: str) -> StrategyKind[Any, Any]:
    """The kind registered as ``name``."""
    if name not in _KINDS:
        _load_builtin()
    try:
        return _KINDS[name]
    except KeyError:
        raise KeyError(f"unknown strategy kind {name!r}; known: {', '.join(kind_names())}") from None


def kind_names() -> list[str]:
    """Names of all registered kinds, sorted."""
    _load_builtin()
    return sorted(_KINDS)


def kind_of(config: StrategyConfig) -> StrategyKind[Any, Any]:
    """The kind a config belongs to."""
    return get_kind(config.kind)


def parse_config(data: Mapping[str, Any]) -> StrategyConfig:
    """Validate a config mapping through the kind named by its ``kind`` key."""
    kind_name = data.get("kind")
    if not isinstance(kind_name, str):
        raise ValueError("a strategy config needs a 'kind' (one of: " + ", ".join(kind_names()) + ")")
    config: StrategyConfig = get_kind(kind_name).config_type.model_validate(dict(data))
    return config
