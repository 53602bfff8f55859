"""``arbray score`` and ``arbray strategies``: score recordings with strategy configs, inspect kinds.

``arbray score --input FILE… --strategy NAME_OR_YAML… --every 15s --out scores.jsonl`` replays the
recordings, scores every snapshot with every strategy that carries its symbol, writes one
``ScoreResult`` JSON line each and prints a JSON summary line. Without ``--strategy`` every
shipped preset is used. ``arbray strategies schema KIND`` prints a kind's config JSON Schema;
``arbray strategies presets`` lists the presets.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import IO, Any

import orjson

from arbray.features.snapshot import FeatureSnapshot
from arbray.replay.engine import ReplayEngine
from arbray.replay.readers import open_input
from arbray.scoring.config import StrategyConfig, cvd_input_name, window_ms
from arbray.scoring.evaluator import Evaluator
from arbray.scoring.presets import load_presets, load_strategies, preset_names
from arbray.scoring.registry import get_kind, kind_names


def load_configs(refs: list[str] | None) -> list[StrategyConfig]:
    """Configs named by ``refs`` (preset names or YAML files), or every preset."""
    if not refs:
        return load_presets()
    return [c for ref in refs for c in load_strategies(ref)]


def score_files(inputs: list[str], configs: list[StrategyConfig], every_ms: int, out: IO[bytes]) -> dict[str, Any]:
    """Replay ``inputs``, write every ``ScoreResult`` as a JSON line to ``out``; return the summary."""
    evaluator = Evaluator(configs)
    per: dict[str, Counter[str]] = {c.strategy_id: Counter() for c in configs}
    blocks: Counter[str] = Counter()
    written = 0
    write = out.write

    def on_snapshot(snap: FeatureSnapshot) -> None:
        nonlocal written
        windows = evaluator.extra_windows(snap.symbol)
        extras = None
        if windows:
            sym = engine.state.symbols[snap.symbol]
            extras = {cvd_input_name(w): sym.cvd(window_ms(w), snap.ts_ms) for w in windows}
        for r in evaluator.results(snap, extras):
            write(orjson.dumps(r.to_dict()) + b"\n")
            c = per[r.strategy_id]
            c["results"] += 1
            c["entries"] += r.is_entry
            c["flip_signals"] += r.is_flip_signal
            if r.block_reason is not None:
                c["not_ready" if r.block_reason.startswith("not_ready:") else "blocked"] += 1
                blocks[r.block_reason.split("(")[0]] += 1
            written += 1

    engine = ReplayEngine(every_ms, on_snapshot)
    summary = engine.run([open_input(p, every_ms) for p in inputs])
    return {
        "replay": summary.to_dict(),
        "strategies": len(configs),
        "results_written": written,
        "block_reasons": dict(sorted(blocks.items())),
        "by_strategy": {k: dict(sorted(v.items())) for k, v in per.items()},
    }


def _cmd_score(args: argparse.Namespace) -> int:
    configs = load_configs(args.strategy)
    if args.out == "-":
        summary = score_files(args.input, configs, args.every, sys.stdout.buffer)
    else:
        with open(args.out, "wb") as fh:
            summary = score_files(args.input, configs, args.every, fh)
    sys.stdout.buffer.write(orjson.dumps(summary) + b"\n")
    sys.stdout.flush()
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    try:
        kind = get_kind(args.kind)
    except KeyError as exc:
        raise ValueError(str(exc.args[0])) from None
    sys.stdout.write(orjson.dumps(kind.config_type.json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    rows = load_presets()
    if args.json:
        for c in rows:
            line = {"name": c.strategy_id, "kind": c.kind, "symbols": list(c.applies_to), "config_hash": c.config_hash}
            sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
    else:
        width = max(len(n) for n in preset_names())
        for c in rows:
            print(f"{c.strategy_id:{width}}  {c.kind:13}  {c.config_hash[:12]}  {','.join(c.applies_to)}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``score`` and ``strategies`` subcommands to the ``arbray`` parser's subparsers."""
    from arbray.cli import parse_interval

    s = subparsers.add_parser("score", help="replay recordings and write every strategy's ScoreResult as JSON lines")
    s.add_argument("--input", action="extend", nargs="+", required=True, metavar="FILE", help="recorded file(s)")
    s.add_argument("--strategy", action="extend", nargs="+", metavar="NAME_OR_YAML",
                   help="preset name or YAML file (repeatable); default: every preset")
    s.add_argument("--every", type=parse_interval, default=15_000, help="snapshot interval (default 15s)")
    s.add_argument("--out", default="scores.jsonl", help="output JSON-lines file, or - for stdout")
    s.set_defaults(func=_cmd_score)

    st = subparsers.add_parser("strategies", help="strategy kinds and presets")
    sub = st.add_subparsers(dest="strategies_command", required=True)
    sc = sub.add_parser("schema", help="print the JSON Schema of a kind's config")
    sc.add_argument("kind", help="one of: " + ", ".join(kind_names()))
    sc.set_defaults(func=_cmd_schema)
    pr = sub.add_parser("presets", help="list the shipped presets")
    pr.add_argument("--json", action="store_true", help="one JSON object per line")
    pr.set_defaults(func=_cmd_presets)
