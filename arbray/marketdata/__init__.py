"""Binance USD-M market data: the event model, the stream parser and the local order book."""
