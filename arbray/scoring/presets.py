"""Strategy presets: YAML configs shipped in ``arbray.strategies/presets`` and loading by name or file.

A preset file holds one config mapping with a ``kind``; its file name is its ``strategy_id``.
A user file may hold one mapping or a list of them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from arbray.scoring.config import StrategyConfig
from arbray.scoring.registry import parse_config

_PRESET_PACKAGE = "arbray.strategies"
_PRESET_DIR = "presets"


def _preset_files() -> dict[str, Any]:
    root = resources.files(_PRESET_PACKAGE) / _PRESET_DIR
    return {p.name[: -len(".yaml")]: p for p in root.iterdir() if p.name.endswith(".yaml")}


def preset_names() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(_preset_files())


def _parse_yaml(text: str, origin: str) -> list[StrategyConfig]:
    data = yaml.safe_load(text)
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(x, dict) for x in items):
        raise ValueError(f"{origin}: expected a strategy config mapping or a list of them")
    return [parse_config(x) for x in items]


def load_preset(name: str) -> StrategyConfig:
    """The shipped preset ``name``."""
    files = _preset_files()
    if name not in files:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(sorted(files))}")
    (config,) = _parse_yaml(files[name].read_text(encoding="utf-8"), f"preset {name}")
    return config


def load_presets() -> list[StrategyConfig]:
    """Every shipped preset, in name order."""
    return [load_preset(n) for n in preset_names()]


def load_strategies(ref: str) -> list[StrategyConfig]:
    """Configs from ``ref``: a YAML file path, else a preset name."""
    path = Path(ref)
    if path.suffix.lower() in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"strategy file not found: {ref}")
        return _parse_yaml(path.read_text(encoding="utf-8"), str(path))
    try:
        return [load_preset(ref)]
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
