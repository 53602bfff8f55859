"""arbray — a Ray-native engine for Binance USD-M perpetual futures.

This package is the Ray-free core: market-data parsing, the local order book, per-symbol
features, replay, and (in later modules) scoring, execution, storage and the control API.
Nothing under ``arbray/`` (except ``arbray.actors``, installed from ``actors/``) imports Ray.
"""

__version__ = "0.1.0"
