"""Where things are, for tests in any folder: the repository root and the recorded
provider transcripts (tests/fixtures, PROTOCOLS.md)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
