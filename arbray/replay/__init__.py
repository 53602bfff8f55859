"""Replay recorded market data through the same core objects the live runtime uses."""
