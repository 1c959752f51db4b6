"""What the fake providers' hosted web search finds: the same two pages for a query,
whatever the provider, so a test can check the caller's citations end to end."""

from __future__ import annotations

import re
from typing import Any


def results(query: str) -> list[tuple[str, str]]:
    """(url, title) of the pages a search for `query` finds."""
    slug = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-") or "search"
    return [(f"https://example.com/{slug}", f"{query} - Example"),
            (f"https://news.example.org/{slug}", f"About {query}")]


def offered(provider: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The provider's own hosted search tool in an upstream body, if it was offered."""
    for tool in body.get("tools") or []:
        if provider == "openai" and tool.get("type") == "web_search":
            return tool
        if provider == "anthropic" and str(tool.get("type")).startswith("web_search_"):
            return tool
        if provider == "gemini" and "googleSearch" in tool:
            return tool
    return None
