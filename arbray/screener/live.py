"""The screener's factors for one symbol's own bars: the live ``ats_v2`` Strategy kind's kline inputs.

The runtime and the backtest score strategies on ``FeatureSnapshot`` plus an ``extras`` mapping
(``Mapping[str, float | None]``). ``kline_extras`` fills that mapping with the kline factors the
``ats_v2`` kind reads, computed by the screener's own factor library (``compute_factors``) from the
symbol's closed 5m and 1h bars, so the kind and ``arbray screen`` give the same score on the same bars.

Names are ``ats_<timeframe>_<factor>`` (``ats_5m_ema_gap_atr``, ``ats_1h_cvd_imbalance``, …; see
``extra_name``) plus ``ats_<timeframe>_bars``, the number of bars used. A factor that cannot be computed
(too few bars, no taker-buy volume, no open-interest column, no reference series) is None — the kind
then lists it as missing; nothing is filled with a constant.

``BarArrays`` are one symbol's closed bars of one timeframe as numpy columns; ``bar_arrays`` builds
them from a ``arbray.features.bars.BarSeries`` (the runtime's ``SymbolFeatures.bars_5m``/``bars_1h``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from arbray.features.bars import BarSeries
from arbray.screener.data import SymbolKlines
from arbray.screener.factors import compute_factors
from arbray.screener.scan import MIN_COMPUTE_BARS

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

TIMEFRAMES: tuple[str, ...] = ("5m", "1h")
"""The bar series a ``SymbolFeatures`` keeps, and so the timeframes ``kline_extras`` computes."""
DEFAULT_MAX_BARS = 300
"""Bars the factors use (the screener's default window; the EMA and R/S depend on the span)."""

KLINE_FACTORS: dict[str, str] = {
    "ema_gap_atr": "klines", "momentum_z": "klines", "rel_volume": "klines", "trigger_bar": "klines",
    "r2": "klines", "ker": "klines", "norm_slope": "klines", "cvd_imbalance": "taker_buy",
    "oi_change": "open_interest", "corr_btc": "btc_reference", "corr_eth": "eth_reference",
}
"""The kline factors ``ats_v2`` scores from, and the input each needs beyond OHLCV (``klines``: none)."""


def extra_name(timeframe: str, factor: str) -> str:
    """The ``extras`` key of a kline factor: ``ats_<timeframe>_<factor>``."""
    return f"ats_{timeframe}_{factor}"


def bars_name(timeframe: str) -> str:
    """The ``extras`` key holding how many bars of ``timeframe`` the factors used."""
    return f"ats_{timeframe}_bars"


def extra_names(timeframes: Iterable[str] = TIMEFRAMES) -> list[str]:
    """Every key ``kline_extras`` returns for ``timeframes``, in a stable order."""
    return [n for tf in timeframes for n in (*(extra_name(tf, f) for f in KLINE_FACTORS), bars_name(tf))]


@dataclass(frozen=True)
class BarArrays:
    """One symbol's closed bars of one timeframe, oldest first, as equal-length numpy columns.

    ``open_ms`` bar open times (epoch ms); prices in quote currency; ``volume`` and ``taker_buy`` in the
    base asset; ``open_interest`` (base asset, sampled at each bar's close) when known.
    """

    timeframe: str
    open_ms: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    taker_buy: F64 | None = None
    open_interest: F64 | None = None

    def __post_init__(self) -> None:
        n = self.open_ms.shape[0]
        cols = {"open": self.open, "high": self.high, "low": self.low, "close": self.close, "volume": self.volume,
                "taker_buy": self.taker_buy, "open_interest": self.open_interest}
        bad = [k for k, v in cols.items() if v is not None and v.shape != (n,)]
        if bad:
            raise ValueError(f"BarArrays: columns {bad} do not have the {n} rows of open_ms")

    def __len__(self) -> int:
        return int(self.open_ms.shape[0])

    def tail(self, n: int) -> BarArrays:
        """The last ``n`` bars."""
        def cut(a: F64 | None) -> F64 | None:
            return None if a is None else a[-n:]
        return BarArrays(self.timeframe, self.open_ms[-n:], self.open[-n:], self.high[-n:], self.low[-n:],
                         self.close[-n:], self.volume[-n:], cut(self.taker_buy), cut(self.open_interest))

    def to_klines(self, symbol: str) -> SymbolKlines:
        """The same bars as the screener's ``SymbolKlines`` (no funding, book or liquidation inputs)."""
        return SymbolKlines(symbol, self.timeframe, self.open_ms, self.open, self.high, self.low, self.close,
                            self.volume, taker_buy=self.taker_buy, open_interest=self.open_interest)

    @classmethod
    def from_klines(cls, k: SymbolKlines) -> BarArrays:
        """A screener ``SymbolKlines``'s bars (its other inputs are not bars and are dropped)."""
        return cls(k.timeframe, k.ts_ms, k.open, k.high, k.low, k.close, k.volume, k.taker_buy, k.open_interest)


def bar_arrays(series: BarSeries, timeframe: str) -> BarArrays:
    """A ``BarSeries``'s closed bars as ``BarArrays`` (the open bar is not included: it is not final).

    ``taker_buy`` is present only when every kept bar knows its taker-buy volume.
    """
    bars = list(series.closed)
    tb = [b.taker_buy_volume for b in bars]
    return BarArrays(
        timeframe,
        np.fromiter((b.open_ms for b in bars), np.int64, len(bars)),
        np.fromiter((b.open for b in bars), np.float64, len(bars)),
        np.fromiter((b.high for b in bars), np.float64, len(bars)),
        np.fromiter((b.low for b in bars), np.float64, len(bars)),
        np.fromiter((b.close for b in bars), np.float64, len(bars)),
        np.fromiter((b.volume for b in bars), np.float64, len(bars)),
        np.asarray(tb, np.float64) if bars and all(x is not None for x in tb) else None,
    )


References = Mapping[str, tuple[BarArrays | None, BarArrays | None]]
"""Per timeframe: the BTCUSDT and ETHUSDT bars the I factor correlates against (either may be None)."""


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def kline_extras(bars_5m: BarArrays | None, bars_1h: BarArrays | None, *, max_bars: int = DEFAULT_MAX_BARS,
                 references: References | None = None) -> dict[str, float | None]:
    """The ``ats_v2`` kind's kline inputs from one symbol's closed 5m and 1h bars (see the module doc).

    Each timeframe uses its last ``max_bars`` bars; fewer than ``MIN_COMPUTE_BARS`` (60) give None for
    every factor of that timeframe. ``references`` (per timeframe: BTC, ETH bars) enable ``corr_btc`` and
    ``corr_eth``; a reference counts only when its bar times equal the symbol's (as in the scan).
    """
    out: dict[str, float | None] = dict.fromkeys(extra_names(), None)
    for tf, bars in zip(TIMEFRAMES, (bars_5m, bars_1h), strict=True):
        if bars is None:
            continue
        if bars.timeframe != tf:
            raise ValueError(f"kline_extras: {tf} bars expected, got {bars.timeframe}")
        n = min(len(bars), max_bars)
        out[bars_name(tf)] = float(n)
        if n < MIN_COMPUTE_BARS:
            continue
        btc, eth = (references or {}).get(tf, (None, None))
        factors, _ = compute_factors([bars.tail(n).to_klines("SYMBOL")],
                                     btc.tail(n).to_klines("BTCUSDT") if btc is not None and len(btc) >= n else None,
                                     eth.tail(n).to_klines("ETHUSDT") if eth is not None and len(eth) >= n else None)
        for name in KLINE_FACTORS:
            out[extra_name(tf, name)] = _finite(float(factors[name][0]))
    return out


def features_kline_extras(bars_5m: BarSeries, bars_1h: BarSeries, *, max_bars: int = DEFAULT_MAX_BARS,
                          references: References | None = None) -> dict[str, float | None]:
    """``kline_extras`` of a ``SymbolFeatures``'s two bar series (the runtime's and the backtest's call)."""
    return kline_extras(bar_arrays(bars_5m, "5m"), bar_arrays(bars_1h, "1h"), max_bars=max_bars,
                        references=references)


class KlineExtrasMemo:
    """``features_kline_extras`` recomputed only when a bar closed (bars close every 5 minutes, boundaries
    come every few seconds): one per symbol in the runtime. The key is each series' length and last
    closed bar, so a restart or a new bar always recomputes."""

    def __init__(self, max_bars: int = DEFAULT_MAX_BARS) -> None:
        self.max_bars = max_bars
        self.computed = 0
        self._key: tuple[int, int, int, int] | None = None
        self._value: dict[str, float | None] = {}

    def __call__(self, bars_5m: BarSeries, bars_1h: BarSeries) -> dict[str, float | None]:
        key = (len(bars_5m.closed), bars_5m.closed[-1].open_ms if bars_5m.closed else -1,
               len(bars_1h.closed), bars_1h.closed[-1].open_ms if bars_1h.closed else -1)
        if key != self._key:
            self._value = features_kline_extras(bars_5m, bars_1h, max_bars=self.max_bars)
            self._key = key
            self.computed += 1
        return dict(self._value)


def wants_kline_extras(kinds: Iterable[str]) -> bool:
    """Whether any of these strategy kinds reads ``kline_extras`` (only ``ats_v2`` does)."""
    return "ats_v2" in set(kinds)
