"""A brute-force labeller: the label definition written out as a plain loop (shared by the label tests)."""

from __future__ import annotations

from arbray.calibration.labels import LabelSpec


def brute_label(ts: list[int], px: list[float], t0: int, side: int, atr: float, spec: LabelSpec,
                entry: float | None = None) -> dict[str, object]:
    """The label definition written out as a plain loop over every observation (``entry``: the snapshot price)."""
    p0 = entry if entry is not None else [p for t, p in zip(ts, px, strict=True) if t < t0][-1]
    out: dict[str, object] = {}
    for name, h in zip(("y_return_15m", "y_return_30m", "y_return_60m"), spec.return_ms, strict=True):
        out[name] = side * ([p for t, p in zip(ts, px, strict=True) if t < t0 + h][-1] / p0 - 1)
    first = None
    for t, p in zip(ts, px, strict=True):
        if t0 <= t < t0 + max(spec.binary_ms):
            if (p >= p0 + spec.target_atr * atr) if side > 0 else (p <= p0 - spec.target_atr * atr):
                first = ("target", t)
                break
            if (p <= p0 - spec.stop_atr * atr) if side > 0 else (p >= p0 + spec.stop_atr * atr):
                first = ("stop", t)
                break
    for name, h in zip(("y_binary_30m", "y_binary_60m"), spec.binary_ms, strict=True):
        out[name] = int(first is not None and first[0] == "target" and first[1] < t0 + h)
    window = [p for t, p in zip(ts, px, strict=True) if t0 <= t < t0 + spec.excursion_ms]
    r = spec.stop_atr * atr
    out["mfe_r_60m"] = max([0.0, *(side * (p - p0) for p in window)]) / r
    out["mae_r_60m"] = max([0.0, *(-side * (p - p0) for p in window)]) / r
    out["first_hit"] = None if first is None else first[0]
    return out


def brute_label_bars(open_ms: list[int], close_ms: list[int], hi: list[float], lo: list[float], close: list[float],
                     t0: int, side: int, atr: float, spec: LabelSpec, entry: float | None = None) -> dict[str, object]:
    """The same on OHLC bars: a bar touches at its open time; a bar touching both barriers is the stop."""
    bars = list(zip(open_ms, close_ms, hi, lo, close, strict=True))
    p0 = entry if entry is not None else [c for _, ce, _, _, c in bars if ce < t0][-1]
    out: dict[str, object] = {}
    for name, h in zip(("y_return_15m", "y_return_30m", "y_return_60m"), spec.return_ms, strict=True):
        out[name] = side * ([c for _, ce, _, _, c in bars if ce < t0 + h][-1] / p0 - 1)
    first = None
    for o, _, h_, l_, _ in bars:
        if t0 <= o < t0 + max(spec.binary_ms):
            fav, adv = (h_ - p0, p0 - l_) if side > 0 else (p0 - l_, h_ - p0)
            if adv >= spec.stop_atr * atr:
                first = ("stop", o)
                break
            if fav >= spec.target_atr * atr:
                first = ("target", o)
                break
    for name, h in zip(("y_binary_30m", "y_binary_60m"), spec.binary_ms, strict=True):
        out[name] = int(first is not None and first[0] == "target" and first[1] < t0 + h)
    win = [(h_, l_) for o, _, h_, l_, _ in bars if t0 <= o < t0 + spec.excursion_ms]
    r = spec.stop_atr * atr
    up, down = max(h_ for h_, _ in win) - p0, p0 - min(l_ for _, l_ in win)
    fav, adv = (up, down) if side > 0 else (down, up)
    out["mfe_r_60m"], out["mae_r_60m"] = max(0.0, fav) / r, max(0.0, adv) / r
    out["first_hit"] = None if first is None else first[0]
    return out
