"""What every part of the Gemini codec shares: its names."""

DIALECT = "gemini"
PROVIDER = "gemini"
