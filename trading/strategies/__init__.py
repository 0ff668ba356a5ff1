"""The built-in strategies, each a file implementing the protocol of `trading.strategy`.

They are loaded like a trader's own files (`trading.runtime.strategies.load_strategy`), by
name: `--strategy ema_momentum` or `--strategy sma_cross`.
"""
