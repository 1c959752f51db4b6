"""OpenAI's hosted web search on the Responses API, both directions.

Wire format (https://platform.openai.com/docs/guides/tools-web-search, and the
openai SDK's `ResponseFunctionWebSearch` / `AnnotationURLCitation` types): the
tool `{"type": "web_search" | "web_search_preview" | dated versions, "filters":
{"allowed_domains"}, "search_context_size", "user_location"}`, bounded by the
request's `max_tool_calls`; each search is an output item `{"type":
"web_search_call", "id": "ws_…", "status": "completed", "action": {"type":
"search", "query", "sources": [{"type": "url", "url"}]}}`; text resting on a
source carries `annotations: [{"type": "url_citation", "start_index",
"end_index", "url", "title"}]` (in a stream, `response.output_text.annotation.added`).
OpenAI bills per call, so the searches are counted from the call items.
"""

from __future__ import annotations

from typing import Any

from afk import ir

TOOL_TYPES = ("web_search", "web_search_preview", "web_search_2025_08_26",
              "web_search_preview_2025_03_11")


def is_search_tool(tool: Any) -> bool:
    return isinstance(tool, dict) and tool.get("type") in TOOL_TYPES


def parse_tool(tool: dict[str, Any], max_tool_calls: Any) -> ir.WebSearch:
    filters = tool["filters"] if isinstance(tool.get("filters"), dict) else {}
    domains = filters.get("allowed_domains")
    return ir.WebSearch(
        max_uses=max_tool_calls if isinstance(max_tool_calls, int)
        and not isinstance(max_tool_calls, bool) and max_tool_calls > 0 else None,
        allowed_domains=[d for d in domains if isinstance(d, str)]
        if isinstance(domains, list) else [])


def render_tool(search: ir.WebSearch) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "web_search"}
    if search.allowed_domains:
        tool["filters"] = {"allowed_domains": search.allowed_domains}
    return tool


def limit_calls(body: dict[str, Any], max_uses: int) -> dict[str, Any]:
    """A caller's body with `max_tool_calls` set where it offers web search without
    one (the hold must bound the searches a call can bill)."""
    tools = body.get("tools")
    if body.get("max_tool_calls") is None and isinstance(tools, list) and any(
            is_search_tool(t) for t in tools):
        return {**body, "max_tool_calls": max_uses}
    return body


def parse_call(item: dict[str, Any]) -> ir.WebSearchCall:
    action = item["action"] if isinstance(item.get("action"), dict) else {}
    sources = [ir.Source(url=str(s.get("url") or ""), title=s.get("title"))
               for s in action.get("sources") or [] if isinstance(s, dict)]
    return ir.WebSearchCall(id=str(item.get("id") or ""), query=str(action.get("query") or ""),
                            sources=sources)


def render_call(call: ir.WebSearchCall, *, status: str = "completed") -> dict[str, Any]:
    """The item without its id (the response gives it one)."""
    return {"type": "web_search_call", "status": status,
            "action": {"type": "search", "query": call.query,
                       "sources": [{"type": "url", "url": s.url} for s in call.sources]}}


def parse_annotation(annotation: Any) -> ir.Citation | None:
    if not isinstance(annotation, dict) or annotation.get("type") != "url_citation":
        return None
    return ir.Citation(url=str(annotation.get("url") or ""), title=annotation.get("title"),
                       start=annotation.get("start_index"), end=annotation.get("end_index"))


def render_annotation(citation: ir.Citation, text: str) -> dict[str, Any]:
    """A url_citation; a citation without offsets covers the whole text."""
    start = citation.start if citation.start is not None else 0
    end = citation.end if citation.end is not None else len(text)
    return {"type": "url_citation", "start_index": start, "end_index": end,
            "url": citation.url, "title": citation.title or citation.url}
