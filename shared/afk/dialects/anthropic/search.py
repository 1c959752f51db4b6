"""Anthropic's hosted web search (the server tool `web_search_*`), both directions.

Wire format (https://platform.claude.com/docs/en/agents-and-tools/tool-use/web-search-tool,
and the anthropic SDK's types): the tool `{"type": "web_search_20250305", "name":
"web_search", "max_uses", "allowed_domains", "blocked_domains", "user_location"}`
(newer versions, such as `web_search_20260209`, take the same fields); each search
answers as a `server_tool_use` block (`input: {"query"}`) followed by a
`web_search_tool_result` block (`content: [{"type": "web_search_result", "url",
"title", "encrypted_content", "page_age"}]`); text resting on a result carries
`citations: [{"type": "web_search_result_location", "url", "title", "cited_text",
"encrypted_index"}]` (in a stream, one `citations_delta` each); usage counts the
searches in `server_tool_use.web_search_requests`.
"""

from __future__ import annotations

from typing import Any

from afk import ir
from afk.errors import InvalidRequest

TOOL_TYPE = "web_search_20250305"
TOOL_NAME = "web_search"
CALL_BLOCKS = ("server_tool_use", "web_search_tool_result")


def is_search_tool(tool: Any) -> bool:
    kind = tool.get("type") if isinstance(tool, dict) else None
    return isinstance(kind, str) and kind.startswith("web_search_")


def parse_tool(tool: dict[str, Any], where: str) -> ir.WebSearch:
    max_uses = tool.get("max_uses")
    if max_uses is not None and (not isinstance(max_uses, int) or isinstance(max_uses, bool)
                                 or max_uses < 1):
        raise InvalidRequest(f"{where}.max_uses: must be a positive integer",
                             param=f"{where}.max_uses")
    return ir.WebSearch(max_uses=max_uses,
                        allowed_domains=_strings(tool.get("allowed_domains")),
                        blocked_domains=_strings(tool.get("blocked_domains")))


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def render_tool(search: ir.WebSearch) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": TOOL_TYPE, "name": TOOL_NAME}
    if search.max_uses is not None:
        tool["max_uses"] = search.max_uses
    if search.allowed_domains:
        tool["allowed_domains"] = search.allowed_domains
    elif search.blocked_domains:  # Anthropic takes one or the other
        tool["blocked_domains"] = search.blocked_domains
    return tool


def limit_uses(tools: Any, max_uses: int) -> Any:
    """A caller's tools with `max_uses` set on web search where the caller set none
    (the hold must bound the searches a call can bill)."""
    if not isinstance(tools, list):
        return tools
    return [{**t, "max_uses": max_uses} if is_search_tool(t) and t.get("max_uses") is None
            else t for t in tools]


# ---------------------------------------------------------------- answers
def parse_citations(block: dict[str, Any]) -> list[ir.Citation]:
    return [ir.Citation(url=c.get("url") or "", title=c.get("title"),
                        cited_text=c.get("cited_text"))
            for c in block.get("citations") or []
            if isinstance(c, dict) and c.get("type") == "web_search_result_location"]


def render_citation(citation: ir.Citation) -> dict[str, Any]:
    return {"type": "web_search_result_location", "url": citation.url,
            "title": citation.title, "cited_text": citation.cited_text or "",
            "encrypted_index": ""}


def queries(blocks: list[Any]) -> dict[str, str]:
    """server_tool_use id -> its query, for pairing with the results that follow."""
    return {b.get("id") or "": str((b.get("input") or {}).get("query") or "")
            for b in blocks if isinstance(b, dict) and b.get("type") == "server_tool_use"}


def parse_result(block: dict[str, Any], asked: dict[str, str]) -> ir.WebSearchCall:
    call_id = block.get("tool_use_id") or ""
    content = block.get("content")
    sources = [ir.Source(url=r.get("url") or "", title=r.get("title"))
               for r in content if isinstance(r, dict)
               and r.get("type") == "web_search_result"] if isinstance(content, list) else []
    return ir.WebSearchCall(id=call_id, query=asked.get(call_id, ""), sources=sources)


def call_id(call: ir.WebSearchCall) -> str:
    return call.id if call.id.startswith("srvtoolu_") else f"srvtoolu_{call.id}"


def render_use(call: ir.WebSearchCall) -> dict[str, Any]:
    return {"type": "server_tool_use", "id": call_id(call), "name": TOOL_NAME,
            "input": {"query": call.query}}


def render_result(call: ir.WebSearchCall) -> dict[str, Any]:
    return {"type": "web_search_tool_result", "tool_use_id": call_id(call),
            "content": [{"type": "web_search_result", "url": s.url, "title": s.title or s.url,
                         "encrypted_content": "", "page_age": None} for s in call.sources]}


def parse_searches(usage: dict[str, Any]) -> int:
    server = usage.get("server_tool_use")
    return int(server.get("web_search_requests") or 0) if isinstance(server, dict) else 0


def render_searches(searches: int) -> dict[str, Any]:
    return {"web_search_requests": searches, "web_fetch_requests": 0}
