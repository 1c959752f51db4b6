"""afk gateway: one key, every model, any SDK, billed exactly against prepaid credits."""

__version__ = "0.1.0"
