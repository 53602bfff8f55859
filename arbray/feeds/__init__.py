"""Binance USD-M market-data clients: REST with rate-limit accounting, sharded WebSocket streams,
and ``MarketFeed``, which keeps every symbol's trades, book and indicators complete."""
