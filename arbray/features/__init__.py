"""Per-symbol order-flow features computed exactly over exchange-time windows."""
