"""Lambda entry point for the sweeper (scheduled): settles holds whose function died."""

from afk.sweeper import handler

__all__ = ["handler"]
