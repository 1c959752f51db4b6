"""Lambda entry point for the sweeper (scheduled): settles holds whose function died."""

from afk import observability
from afk.settings import get_settings
from afk.sweeper import handler

observability.configure(get_settings())  # JSON logs, keys redacted

__all__ = ["handler"]
