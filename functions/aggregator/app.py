"""Lambda entry point for the usage aggregator (the table's DynamoDB stream)."""

from afk import observability
from afk.aggregator import handler
from afk.settings import get_settings

observability.configure(get_settings())  # JSON logs, keys redacted

__all__ = ["handler"]
