"""What every part of the Gemini codec shares: its names."""

__all__ = ["DIALECT", "PROVIDER"]

DIALECT = "gemini"
PROVIDER = "gemini"
