"""Self-contained HTML reports with inline SVG plots, their JSON, and PNG screenshots.

``write_report(kind, report, out)`` writes ``<kind>.json`` and ``<kind>.html`` (no external assets:
inline CSS and SVG). ``render_png`` screenshots an HTML file with headless Chromium
(``/usr/bin/chromium`` or ``$CHROMIUM``); it returns False when no browser is installed.
"""

from __future__ import annotations

import html
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

W, H = 460, 330
PAD_L, PAD_R, PAD_T, PAD_B = 52, 16, 26, 44
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:12px 0 4px}.plots{display:flex;flex-wrap:wrap;gap:16px}
table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.note{color:#666;font-size:12px;max-width:980px}
svg{background:#fcfcfc;border:1px solid #e4e4e4}
"""


def _f(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.4g}" if 0 < abs(v) < 0.1 else f"{v:.{digits}f}"
    return html.escape(str(v))


def _frame(title: str, xlabel: str, ylabel: str, x0: float, x1: float, y0: float, y1: float,
           xticks: Sequence[float], yticks: Sequence[float]) -> tuple[list[str], Callable[[float], float],
                                                                      Callable[[float], float]]:
    iw, ih = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def sx(x: float) -> float:
        return PAD_L + (x - x0) / ((x1 - x0) or 1) * iw

    def sy(y: float) -> float:
        return PAD_T + ih - (y - y0) / ((y1 - y0) or 1) * ih

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}">',
             f'<text x="{W / 2}" y="16" text-anchor="middle" font-size="13" font-weight="600">'
             f'{html.escape(title)}</text>',
             f'<rect x="{PAD_L}" y="{PAD_T}" width="{iw}" height="{ih}" fill="none" stroke="#999"/>']
    for t in xticks:
        parts.append(f'<line x1="{sx(t):.1f}" y1="{PAD_T + ih}" x2="{sx(t):.1f}" y2="{PAD_T + ih + 4}" stroke="#999"/>'
                     f'<text x="{sx(t):.1f}" y="{PAD_T + ih + 16}" text-anchor="middle" font-size="10">{t:g}</text>')
    for t in yticks:
        parts.append(f'<line x1="{PAD_L}" y1="{sy(t):.1f}" x2="{PAD_L + iw}" y2="{sy(t):.1f}" stroke="#eee"/>'
                     f'<text x="{PAD_L - 5}" y="{sy(t) + 3:.1f}" text-anchor="end" font-size="10">{t:g}</text>')
    parts.append(f'<text x="{PAD_L + iw / 2}" y="{H - 8}" text-anchor="middle" font-size="11">'
                 f'{html.escape(xlabel)}</text>'
                 f'<text transform="translate(13,{PAD_T + ih / 2}) rotate(-90)" text-anchor="middle" '
                 f'font-size="11">{html.escape(ylabel)}</text>')
    return parts, sx, sy


def _legend(parts: list[str], names: Sequence[str]) -> None:
    for i, name in enumerate(names):
        y = PAD_T + 10 + 14 * i
        parts.append(f'<rect x="{PAD_L + 8}" y="{y - 8}" width="10" height="10" fill="{COLORS[i % len(COLORS)]}"/>'
                     f'<text x="{PAD_L + 22}" y="{y + 1}" font-size="10">{html.escape(name)}</text>')


def reliability_svg(title: str, series: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]) -> str:
    """Reliability diagram: realised rate vs mean forecast per bin, Wilson 95 % whiskers, dot area ∝ count."""
    ticks = [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    parts, sx, sy = _frame(title, "forecast probability", "realised win rate", 0, 1, 0, 1, ticks, ticks)
    parts.append(f'<line x1="{sx(0)}" y1="{sy(0)}" x2="{sx(1)}" y2="{sy(1)}" stroke="#888" stroke-dasharray="4 3"/>')
    top = max([b["n"] for _, curve in series for b in curve] + [1])
    for i, (_, curve) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        pts = [(b["mean_p"], b["rate"]) for b in curve if b["n"]]
        if len(pts) > 1:
            parts.append('<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>'.format(
                c, " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)))
        for b in curve:
            if not b["n"]:
                continue
            x = sx(b["mean_p"])
            parts.append(f'<line x1="{x:.1f}" y1="{sy(b["ci_lo"]):.1f}" x2="{x:.1f}" y2="{sy(b["ci_hi"]):.1f}" '
                         f'stroke="{c}" stroke-opacity="0.6"/>'
                         f'<circle cx="{x:.1f}" cy="{sy(b["rate"]):.1f}" r="{2 + 6 * math.sqrt(b["n"] / top):.1f}" '
                         f'fill="{c}" fill-opacity="0.7"><title>{b["n"]} events, p̄={b["mean_p"]:.3f}, '
                         f'rate={b["rate"]:.3f}</title></circle>')
    _legend(parts, [n for n, _ in series])
    return "".join(parts) + "</svg>"


def bars_svg(title: str, xlabel: str, ylabel: str, groups: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
             value: str = "rate", y_max: float | None = None) -> str:
    """Grouped bars per band (``band`` label, ``value``, optional ``ci_lo``/``ci_hi`` whiskers, ``n`` on hover)."""
    labels = [b["band"] for b in groups[0][1]] if groups else []
    vals = [b[value] for _, g in groups for b in g if b.get(value) is not None]
    top = y_max if y_max is not None else max([*vals, 1e-9]) * 1.15
    yt = [top * k / 5 for k in range(6)]
    parts, sx, sy = _frame(title, xlabel, ylabel, 0, max(1, len(labels)), 0, top, [], [round(t, 3) for t in yt])
    slot = (W - PAD_L - PAD_R) / max(1, len(labels))
    bw = slot * 0.8 / max(1, len(groups))
    for j, lab in enumerate(labels):
        parts.append(f'<text x="{sx(j + 0.5):.1f}" y="{H - PAD_B + 14}" text-anchor="middle" font-size="9">'
                     f'{html.escape(lab)}</text>')
    for i, (_, g) in enumerate(groups):
        c = COLORS[i % len(COLORS)]
        for j, b in enumerate(g):
            v = b.get(value)
            if v is None:
                continue
            x = sx(j) + slot * 0.1 + i * bw
            parts.append(f'<rect x="{x:.1f}" y="{sy(v):.1f}" width="{bw:.1f}" height="{sy(0) - sy(v):.1f}" fill="{c}" '
                         f'fill-opacity="0.75"><title>{b.get("n", "")} samples, {value}={v:.3f}</title></rect>')
            if b.get("ci_lo") is not None:
                xm = x + bw / 2
                parts.append(f'<line x1="{xm:.1f}" y1="{sy(b["ci_lo"]):.1f}" x2="{xm:.1f}" y2="{sy(b["ci_hi"]):.1f}" '
                             f'stroke="#333"/>')
    _legend(parts, [n for n, _ in groups])
    return "".join(parts) + "</svg>"


def line_svg(title: str, xlabel: str, ylabel: str, series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
             x_is_index: bool = False) -> str:
    """Lines of (x, y) points (NaN/None points skipped)."""
    pts = [(x, y) for _, s in series for x, y in s if y is not None and not math.isnan(y)]
    if not pts:
        return ""
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(0.0, min(p[1] for p in pts)), max(p[1] for p in pts) * 1.1 or 1.0
    yt = [round(y0 + (y1 - y0) * k / 5, 3) for k in range(6)]
    xt = [round(x0 + (x1 - x0) * k / 4, 2) for k in range(5)] if x1 > x0 else [x0]
    parts, sx, sy = _frame(title, xlabel, ylabel, x0, x1 if x1 > x0 else x0 + 1, y0, y1, xt, yt)
    for i, (_, s) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        ok = [(x, y) for x, y in s if y is not None and not math.isnan(y)]
        parts.append('<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>'.format(
            c, " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ok)))
        parts += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{c}"/>' for x, y in ok]
    _legend(parts, [n for n, _ in series])
    return "".join(parts) + "</svg>"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    h = "".join(f"<th>{html.escape(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{_f(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def calibration_html(rep: Mapping[str, Any]) -> str:
    """The calibration report page: per strategy, reliability diagram, score bands, metrics, breakdowns."""
    out = [f"<p class='note'>{rep['events']} labelled events ({html.escape(rep['config']['population'])} population, "
           f"outcome {html.escape(rep['config']['label'])}); label statuses: "
           f"{html.escape(', '.join(f'{k} {v}' for k, v in rep['label_counts'].items()))}. "
           "Dots: realised win rate per forecast bin against the bin's mean forecast (area ∝ events, whiskers: "
           "Wilson 95 % interval); dashed: perfect calibration. Brier = reliability − resolution + uncertainty "
           "(+ within-bin terms); lower reliability and higher resolution are better.</p>"]
    for sid, s in rep["strategies"].items():
        f = s["forecasts"]
        names = [k for k in ("bootstrap", "calibrated_out_of_sample", "calibrated", "recorded") if k in f and f[k]["n"]]
        cal = s["calibrator"]
        out.append(f"<h2>{html.escape(sid)} <small>({html.escape(', '.join(s['kinds']))})</small></h2>")
        hold = (cal or {}).get("holdout") or {}
        out.append(f"<p class='note'>{s['n']} events, base rate {_f(s['base_rate'])}, score AUC {_f(s['auc_score'])}; "
                   + ("no stored calibrator (bootstrap map only)" if cal is None else
                      f"newest calibrator {html.escape(cal['version'])} ({html.escape(cal['method'])}, "
                      f"{cal['n_samples']} samples"
                      f"{'; ' + html.escape(cal['activation']) if cal.get('activation') else ''}"
                      f"{'' if cal.get('live') else '; live: an older fit or the bootstrap map'})")
                   + (f"; chronological holdout (fit on the first {hold['n_train']}, scored on the last "
                      f"{hold['n_test']}): Brier {_f(hold['brier'])} vs bootstrap {_f(hold['brier_bootstrap'])}"
                      if hold.get("brier") is not None else "") + "</p>")
        legend = {"calibrated": "calibrated (in sample)" if "calibrated_out_of_sample" not in f
                  or not f["calibrated_out_of_sample"]["n"] else "calibrated (all)",
                  "calibrated_out_of_sample": "calibrated (after training)", "bootstrap": "bootstrap",
                  "recorded": "recorded live"}
        series = [(legend[n], f[n]["curve"]) for n in names if f[n]["n"]]
        band_groups = [("labels (60 min)", s["bands"])]
        if "trades" in s:
            band_groups.append(("closed trades", s["trades"]["bands"]))
        out.append("<div class='plots'>" + reliability_svg(f"{sid}: reliability", series)
                   + bars_svg(f"{sid}: win rate by score band", "score band", "win rate", band_groups, y_max=1.0))
        per = s["by_period"]
        if len(per) > 1:
            t0 = per[0]["start_ms"]
            out.append(line_svg(f"{sid}: Brier by period", "hours since first period", "Brier score",
                                [(lab, [((p["start_ms"] - t0) / 3_600_000, p[key]) for p in per])
                                 for lab, key in (("bootstrap", "brier_bootstrap"), ("calibrated", "brier_calibrated"))
                                 if any(p[key] is not None for p in per)]))
        out.append("</div>")
        rows = []
        for n in names:
            m = f[n]
            d = m["decomposition"] or {}
            rows.append([n, m["n"], m["base_rate"], m["mean_p"], m["brier"], m["brier_skill"], d.get("reliability"),
                         d.get("resolution"), d.get("uncertainty"), m["log_loss"], m["auc"]])
        out.append(_table(["forecast", "n", "base rate", "mean p", "Brier", "skill", "reliability", "resolution",
                           "uncertainty", "log loss", "AUC"], rows))
        out.append("<h3>By symbol</h3>" + _table(
            ["symbol", "n", "base rate", "Brier bootstrap", "Brier calibrated", "score AUC"],
            [[k, v["n"], v["base_rate"], v["brier_bootstrap"], v["brier_calibrated"], v["auc_score"]]
             for k, v in s["by_symbol"].items()]))
        out.append("<h3>By score band</h3>" + _table(
            ["band", "n", "wins", "win rate", "95% lo", "95% hi"],
            [[b["band"], b["n"], b["wins"], b["rate"], b["ci_lo"], b["ci_hi"]] for b in s["bands"] if b["n"]]))
    return _page("Calibration report", "".join(out))


def costs_html(rep: Mapping[str, Any]) -> str:
    """The cost report page: expected vs realised, components by symbol / hour / exit type, trends."""
    comps = ("spread_bps", "slippage_bps", "fee_bps", "funding_bps", "realised_bps", "expected_bps")

    def table(title: str, groups: Mapping[str, Any]) -> str:
        rows = [[k, v["trades"], *(None if v[c] is None else v[c]["mean"] for c in comps),
                 v["mean_abs_error_bps"], v["maker_ratio_entry"], v["maker_ratio_tp"], v["friction_r"]]
                for k, v in groups.items()]
        return f"<h3>{html.escape(title)}</h3>" + _table(
            ["group", "trades", "spread", "slippage", "fee", "funding", "realised", "expected", "|error|",
             "maker entry", "maker TP", "friction R"], rows)

    s = rep["summary"]
    skipped = ", ".join(f"{k} {v}" for k, v in rep["skipped"].items()) or "none"
    out = [f"<p class='note'>{rep['trades']} trades analysed; skipped: {html.escape(skipped)}. "
           "Costs in bps of entry notional (means); realised = spread + slippage + fee; expected = the fee model "
           "at the signal.</p>"]
    if rep["trades"]:
        trend = rep["trends"]
        t0 = trend[0]["start_ms"] if trend else 0
        hours = rep["trend_period_ms"] / 3_600_000
        out.append("<div class='plots'>" + bars_svg(
            "mean cost components (bps)", "component", "bps",
            [("all trades", [{"band": c.replace("_bps", ""), "rate": s[c]["mean"], "n": rep["trades"]}
                             for c in comps])])
            + line_svg("maker ratio and friction by period", f"periods of {hours:g} h", "ratio / R",
                       [("maker entry", [((p["start_ms"] - t0) / rep["trend_period_ms"], p["maker_ratio_entry"])
                                         for p in trend]),
                        ("friction R", [((p["start_ms"] - t0) / rep["trend_period_ms"], p["friction_r"])
                                        for p in trend])]) + "</div>")
        out.append(table("By symbol", rep["by_symbol"]) + table("By entry hour (UTC)", rep["by_hour"])
                   + table("By exit type", rep["by_exit_type"]) + table("By strategy", rep["by_strategy"]))
        out.append("<h3>Cost table (EV gate)</h3>" + _table(
            ["symbol", "n", "median bps", "p95 bps"],
            [[k, v["n"], v["median_bps"], v["p95_bps"]] for k, v in rep["cost_table"].items()]))
    return _page("Execution cost report", "".join(out))


def gates_html(rep: Mapping[str, Any]) -> str:
    """The gate optimiser page: per strategy and scan, in-sample vs out-of-sample by threshold, folds,
    recommendation."""
    out = [f"<p class='note'>{html.escape(rep['mode'])} mode. In-sample rows use every sample and are shown for "
           "orientation only; a recommendation rests on the walk-forward out-of-sample result alone.</p>"]
    for sid, st in rep["strategies"].items():
        out.append(f"<h2>{html.escape(sid)}</h2>")
        for sc in st["scans"]:
            out.append(f"<h3>{html.escape(sc['field'])} (keep {html.escape(sc['keep'])}, "
                       f"{html.escape(sc['population'])}; {sc['samples']} samples)</h3>")
            rec = sc.get("recommendation")
            out.append(f"<p><b>Recommendation:</b> {_f(rec)} — {html.escape(sc.get('reason', ''))}</p>")
            ins, oos = sc["in_sample"], sc.get("oos_by_threshold", [])
            if ins:
                out.append("<div class='plots'>" + line_svg(
                    f"{sid}: net R by {sc['field']} threshold", "threshold", "net R",
                    [("in sample", [(r["threshold"], r["net_r"]) for r in ins]),
                     ("out of sample", [(r["threshold"], r["net_r"]) for r in oos])]) + "</div>")
                by = {r["threshold"]: r for r in oos}
                out.append(_table(["threshold", "n", "win rate", "net R", "Sharpe proxy", "OOS n", "OOS win rate",
                                   "OOS net R"],
                                  [[r["threshold"], r["n"], r["win_rate"], r["net_r"], r["sharpe_proxy"],
                                    by.get(r["threshold"], {}).get("n"), by.get(r["threshold"], {}).get("win_rate"),
                                    by.get(r["threshold"], {}).get("net_r")] for r in ins]))
            if sc["folds"]:
                out.append(_table(
                    ["fold", "n train", "n test", "chosen", "test n", "test net R", "no-gate net R"],
                    [[i, f["n_train"], f["n_test"], f["chosen"], (f.get("test_stats") or {}).get("n"),
                      (f.get("test_stats") or {}).get("net_r"), f["baseline_test"]["net_r"]]
                     for i, f in enumerate(sc["folds"])]))
    return _page("Gate and threshold optimiser", "".join(out))


_PAGES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "calibration": calibration_html, "costs": costs_html, "gates": gates_html}


def write_report(kind: str, report: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``<kind>.json`` and ``<kind>.html`` under ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    js, page = out / f"{kind}.json", out / f"{kind}.html"
    js.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
                                | orjson.OPT_NON_STR_KEYS))
    page.write_text(_PAGES[kind](report), encoding="utf-8")
    return js, page


def chromium_path() -> str | None:
    """The headless browser used for PNGs: ``$CHROMIUM``, else chromium on PATH."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def render_png(page: Path, png: Path, width: int = 1400, height: int | None = None, timeout_s: float = 60.0) -> bool:
    """Screenshot ``page`` into ``png`` with headless Chromium; False if no browser is available.

    Without ``height`` the window is sized from the page's sections (about 1,050 px each)."""
    exe = chromium_path()
    if exe is None:
        return False
    if height is None:
        text = page.read_text(encoding="utf-8")
        height = min(16_000, 320 + 1_050 * max(1, text.count("<h2>")) + 40 * text.count("<h3>"))
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},{height}", f"--screenshot={png.resolve()}", page.resolve().as_uri()],
                   check=True, capture_output=True, timeout=timeout_s)
    return png.exists()
