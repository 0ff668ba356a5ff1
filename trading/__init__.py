"""BTC Laptop Agents: paper trading of BTCUSDT perpetual futures."""

__version__ = "0.8.0"
