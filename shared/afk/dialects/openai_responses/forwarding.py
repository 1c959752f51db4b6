"""What a Responses body may carry to OpenAI as it is.

A same-dialect call forwards the caller's body (history inlined, the
gateway's own state fields removed), so the gateway must know what every part
of it costs. Function, custom and namespaced tools and client-run built-ins
(shell, local_shell, apply_patch) pass: the model only emits calls for them.
Hosted tools run by OpenAI (web search, file search, code interpreter, image
generation, computer use, remote MCP) bill per call or per session at prices
the catalog does not have: refused, naming the tool, as are service tiers
other than the standard one, background runs (billed after the hold is
settled), stored prompts and server-side compaction (input the gateway cannot
see), and fields it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from afk.catalog import Model
from afk.dialects.allowlist import check_fields
from afk.errors import InvalidRequest

__all__ = ["check_forwardable"]

PRICED = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text",
    "max_output_tokens", "store", "stream", "stream_options", "reasoning", "include",
    "temperature", "top_p", "top_logprobs", "truncation", "metadata", "user",
    "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "service_tier",
    "max_tool_calls", "client_metadata", "moderation", "background",
})
STANDARD_TIERS = (None, "auto", "default")
_UNPRICED = {
    "prompt": "stored prompts add input the gateway cannot see to price; send the "
              "instructions and input themselves",
    "context_management": "server-side compaction is not priced by this gateway",
    "background_options": "background runs are not supported by this gateway",
    "conversation": "stored conversations add input the gateway cannot see to price; "
                    "use previous_response_id",
    "prompt_cache_options": "explicit prompt-cache writes are not priced for this model",
}
# Tools the model only names in its output; the caller runs them.
CLIENT_TOOLS = frozenset({"function", "custom", "namespace", "local_shell", "shell",
                          "apply_patch"})
WEB_SEARCH = ("web_search", "web_search_preview", "web_search_2025_08_26",
              "web_search_preview_2025_03_11")
ITEMS = frozenset({
    "message", "function_call", "function_call_output", "reasoning", "custom_tool_call",
    "custom_tool_call_output", "local_shell_call", "local_shell_call_output", "shell_call",
    "shell_call_output", "apply_patch_call", "apply_patch_call_output", "web_search_call",
})
PARTS = frozenset({"input_text", "output_text", "text", "refusal", "input_image",
                   "input_file", "summary_text", "reasoning_text"})


def refuse(field: str, why: str, *, code: str = "unpriced_feature") -> InvalidRequest:
    return InvalidRequest(f"'{field}': {why}.", param=field, code=code)


def check_forwardable(body: dict[str, Any], *, model: Model,
                      headers: Mapping[str, str]) -> None:
    """Raise a 400 naming the first part of `body` the gateway cannot price."""
    del headers
    check_fields(body, priced=PRICED, unpriced=_UNPRICED, refuse=refuse,
                 allowed=lambda field, value: (
                     field == "prompt_cache_options" and model.prices.cache_write is not None))
    if body.get("background"):
        raise refuse("background", "background runs are billed after the call returns; "
                     "this gateway bills each call as it completes")
    if body.get("service_tier") not in STANDARD_TIERS:
        raise refuse("service_tier", f"the {body['service_tier']!r} tier is not priced by "
                     "this gateway; send 'auto' or 'default' (or omit it)")
    for i, tool in enumerate(body.get("tools") or []):
        _tool(tool, f"tools[{i}]", model)
    _tool_choice(body.get("tool_choice"), model)
    items = body.get("input")
    for i, item in enumerate(items if isinstance(items, list) else []):
        _item(item, f"input[{i}]")


def _tool(tool: Any, where: str, model: Model) -> None:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind in CLIENT_TOOLS:
        for j, inner in enumerate(tool.get("tools") or [] if kind == "namespace" else []):
            _tool(inner, f"{where}.tools[{j}]", model)
        return
    if kind in WEB_SEARCH and model.web_search:
        return  # priced per call (catalog), bounded by max_tool_calls (patch_request)
    raise refuse(f"{where}.type", f"the hosted tool {kind!r} is billed by OpenAI per use at "
                 "prices this gateway does not have; leave it out")


def _tool_choice(choice: Any, model: Model) -> None:
    if not isinstance(choice, dict):
        return
    kind = choice.get("type")
    if kind == "allowed_tools":
        for j, tool in enumerate(choice.get("tools") or []):
            if isinstance(tool, dict) and tool.get("type") not in CLIENT_TOOLS:
                _tool(tool, f"tool_choice.tools[{j}]", model)
    elif kind not in ("function", "custom"):
        _tool(choice, "tool_choice", model)


def _item(item: Any, where: str) -> None:
    if not isinstance(item, dict):
        return
    kind = item.get("type", "message")
    if kind not in ITEMS:
        raise refuse(f"{where}.type", f"input items of type {kind!r} are not priced by this "
                     "gateway (item references and hosted-tool items carry input it cannot "
                     "see)")
    parts = item.get("content") if kind == "message" else item.get("output")
    for j, part in enumerate(parts if isinstance(parts, list) else []):
        part_kind = part.get("type") if isinstance(part, dict) else None
        if part_kind not in PARTS:
            field = "content" if kind == "message" else "output"
            raise refuse(f"{where}.{field}[{j}].type", f"content of type {part_kind!r} is not "
                         "priced by this gateway")
