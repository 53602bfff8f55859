"""Binance USD-M protocol knowledge shared by the simulator, the feed client and the venue client."""
