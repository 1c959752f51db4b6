"""What a Messages body (and its `anthropic-beta` header) may carry to Anthropic as it is.

A same-dialect call forwards the caller's body and betas, so the gateway must
know what every part costs. Passed: what it prices (tokens, 5-minute cache
writes, one-hour cache writes where the catalog prices them) and client tools
(custom tools, and Anthropic-defined tools the caller runs: bash, text editor,
memory). Refused with a 400 naming it: server tools Anthropic runs and bills
per use (web search, web fetch, code execution, computer use, ...), premium
modes (fast, data-residency inference, long-context betas, priority tiers)
the catalog has no price for, input the gateway cannot see (Files API
sources, containers, MCP servers, server-held threads, compaction), and
fields it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from afk.catalog import Model
from afk.dialects.allowlist import check_fields
from afk.errors import InvalidRequest

__all__ = ["check_forwardable"]

PRICED = frozenset({
    "model", "messages", "max_tokens", "system", "stream", "stop_sequences", "metadata",
    "tools", "tool_choice", "thinking", "output_config", "output_format", "temperature",
    "top_p", "top_k", "service_tier", "speed", "inference_geo", "cache_control",
    "context_management", "diagnostics", "fallback_credit_token",
})
_UNPRICED = {
    "container": "code-execution containers are billed per hour at prices this gateway "
                 "does not have",
    "mcp_servers": "remote MCP servers add tool definitions the gateway cannot see to price",
    "thread": "server-held threads add input the gateway cannot see to price",
    "compaction": "server-side compaction is not priced by this gateway",
    "fallbacks": "fallback models bill at their own prices, which the quote cannot know",
}
# Anthropic-defined tools the caller runs: only their (fixed) definitions cost tokens.
CLIENT_TOOL_PREFIXES = ("bash_", "text_editor_", "memory_")
USER_BLOCKS = frozenset({"text", "image", "document", "search_result", "tool_result"})
ASSISTANT_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking",
                              "server_tool_use", "web_search_tool_result"})
RESULT_BLOCKS = frozenset({"text", "image", "document", "search_result"})


def refuse(field: str, why: str, *, code: str = "unpriced_feature") -> InvalidRequest:
    return InvalidRequest(f"{field}: {why}.", param=field, code=code)


def check_forwardable(body: dict[str, Any], *, model: Model,
                      headers: Mapping[str, str]) -> None:
    """Raise a 400 naming the first part of `body` or of its betas the gateway cannot
    price."""
    _betas(headers.get("anthropic-beta") or "", model)
    check_fields(body, priced=PRICED, unpriced=_UNPRICED, refuse=refuse)
    if body.get("service_tier") not in (None, "auto", "standard_only"):
        raise refuse("service_tier", f"{body['service_tier']!r} is not a tier this gateway "
                     "prices")
    if body.get("speed") not in (None, "standard"):
        raise refuse("speed", f"{body['speed']!r} mode bills premium rates this gateway "
                     "does not have")
    if body.get("inference_geo") not in (None, "global"):
        raise refuse("inference_geo", "data-residency inference bills premium rates this "
                     "gateway does not have")
    _context_management(body.get("context_management"))
    for i, tool in enumerate(body.get("tools") or []):
        _tool(tool, f"tools[{i}]", model)
    _cache_ttls(body, "", model)
    for i, message in enumerate(body.get("messages") or []):
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            allowed = ASSISTANT_BLOCKS if message.get("role") == "assistant" else USER_BLOCKS
            for j, block in enumerate(message["content"]):
                _block(block, f"messages[{i}].content[{j}]", allowed)


def _betas(header: str, model: Model) -> None:
    for beta in (b.strip() for b in header.split(",")):
        if beta.startswith("context-1m") and model.prices.long_context is None:
            raise refuse("anthropic-beta", f"{beta} bills long-context rates the catalog has "
                         f"no price for on {model.id}; leave it out")


def _context_management(config: Any) -> None:
    edits = config.get("edits") if isinstance(config, dict) else None
    for i, edit in enumerate(edits or []):
        kind = edit.get("type") if isinstance(edit, dict) else None
        if not (isinstance(kind, str) and kind.startswith("clear_")):
            raise refuse(f"context_management.edits[{i}]", f"the {kind!r} edit is not priced "
                         "by this gateway (clearing edits are)")


def _tool(tool: Any, where: str, model: Model) -> None:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind in (None, "custom") or (isinstance(kind, str)
                                    and kind.startswith(CLIENT_TOOL_PREFIXES)):
        return
    if isinstance(kind, str) and kind.startswith("web_search") and model.web_search:
        return  # priced per search (catalog), bounded by max_uses (patch_request)
    raise refuse(f"{where}.type", f"the server tool {kind!r} is billed by Anthropic per use "
                 "at prices this gateway does not have; leave it out")


def _block(block: Any, where: str, allowed: frozenset[str]) -> None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind not in allowed:
        raise refuse(f"{where}.type", f"content blocks of type {kind!r} are not priced by "
                     "this gateway here")
    if kind == "tool_result" and isinstance(block.get("content"), list):
        for k, inner in enumerate(block["content"]):
            _block(inner, f"{where}.content[{k}]", RESULT_BLOCKS)


def _cache_ttls(value: Any, where: str, model: Model) -> None:
    """Every cache_control in the body: 5-minute writes are priced; one-hour writes
    only where the catalog prices them."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            _cache_ttls(item, f"{where}[{i}]", model)
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        at = f"{where}.{key}" if where else key
        if key == "cache_control" and isinstance(item, dict):
            ttl = item.get("ttl")
            if ttl == "1h" and model.prices.cache_write_1h is None:
                raise refuse(f"{at}.ttl", f"one-hour cache writes are not priced for "
                             f"{model.id}; use the default 5-minute TTL")
            if ttl not in (None, "5m", "1h"):
                raise refuse(f"{at}.ttl", f"{ttl!r} is not a cache TTL this gateway prices")
        elif key not in ("input_schema", "input", "metadata"):  # caller data, not blocks
            _cache_ttls(item, at, model)
