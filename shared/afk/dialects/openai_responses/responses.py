"""Response objects: an upstream's body -> IR (`parse_response`), IR -> the
caller's body (`render_response`, `render_output_items`), and the
`GET /v1/responses/{id}/input_items` list.

Output item ids are derived from the response id and the item's output index
(`wire.item_id`), so a streamed answer and the stored or non-stream one agree.
"""

from __future__ import annotations

import time
from typing import Any

from afk import ir
from afk.dialects.jsonwire import dumps
from afk.dialects.openai_responses import search
from afk.dialects.openai_responses.messages import render_call, render_reasoning
from afk.dialects.openai_responses.wire import (
    ERROR_STOP,
    PROVIDER,
    custom_input,
    flat_name,
    item_id,
    parse_usage,
    render_usage,
    status_of,
    stop_reason,
)
from afk.errors import InvalidRequest, UpstreamError
from afk.records import dataclass

__all__ = ["parse_response", "render_input_items_list", "render_output_items", "render_response"]

_PREFIX = {"message": "msg", "function_call": "fc", "custom_tool_call": "ctc",
           "reasoning": "rs", "web_search_call": "ws"}


# ================================================================ upstream -> IR
def parse_response(body: dict[str, Any]) -> ir.Response:
    status = body.get("status") or "completed"
    if status in ("failed", "cancelled"):
        error = body.get("error") or {}
        failure = UpstreamError(str(error.get("message") or f"The upstream response {status}."),
                                code=error.get("code"))
        if body.get("usage"):
            failure.usage = parse_usage(body["usage"])  # billed all the same
        raise failure
    if status not in ("completed", "incomplete"):
        raise UpstreamError(f"The upstream response is {status}, not finished.")
    blocks: list[ir.Block] = []
    for item in body.get("output") or []:
        if isinstance(item, dict):
            blocks += parse_output_item(item)
    has_calls = any(isinstance(b, ir.ToolCall) for b in blocks)
    usage = parse_usage(body.get("usage"))
    usage.web_searches = sum(isinstance(b, ir.WebSearchCall) for b in blocks)
    return ir.Response(
        id=str(body.get("id") or ""), model=str(body.get("model") or ""),
        created=int(body.get("created_at") or time.time()), content=blocks,
        stop_reason=stop_reason(body, has_calls=has_calls), usage=usage,
    )


def parse_output_item(item: dict[str, Any]) -> list[ir.Block]:
    """One output item as IR blocks; built-in tool items have none (a passthrough
    relays them, and their cost is in the usage)."""
    match item.get("type"):
        case "message":
            blocks: list[ir.Block] = []
            for part in item.get("content") or []:
                if part.get("type") == "output_text" and part.get("text"):
                    citations = [search.parse_annotation(a)
                                 for a in part.get("annotations") or []]
                    blocks.append(ir.Text(text=part["text"],
                                          citations=[c for c in citations if c]))
                elif part.get("type") == "refusal" and part.get("refusal"):
                    blocks.append(ir.Refusal(text=part["refusal"]))
            return blocks
        case "reasoning":
            text = "\n\n".join(s.get("text") or "" for s in item.get("summary") or [])
            signature = item.get("encrypted_content") or None
            if not text and not signature:
                return []
            return [ir.Thinking(text=text, signature=signature, provider=PROVIDER)]
        case "function_call":
            return [ir.ToolCall(id=str(item.get("call_id") or ""),
                                name=flat_name(str(item.get("name") or ""),
                                               item.get("namespace")),
                                arguments=str(item.get("arguments") or ""))]
        case "custom_tool_call":
            return [ir.ToolCall(id=str(item.get("call_id") or ""),
                                name=flat_name(str(item.get("name") or ""),
                                               item.get("namespace")),
                                arguments=dumps({"input": str(item.get("input") or "")}))]
        case "web_search_call":
            return [search.parse_call(item)]
    return []


# ================================================================ IR -> caller
@dataclass(frozen=True, slots=True)
class WireName:
    name: str
    namespace: str | None = None
    custom: bool = False  # a freeform tool: its calls are custom_tool_call items


class ToolNames:
    """Undoes the request-side tool mappings (namespace flattening, custom tools
    as functions) for output items, from the caller's own `tools`."""

    def __init__(self, tools: Any) -> None:
        self._names: dict[str, WireName] = {}
        for tool in tools if isinstance(tools, list) else []:
            if not isinstance(tool, dict):
                continue
            if tool.get("type") == "namespace":
                for inner in tool.get("tools") or []:
                    self._add(inner, tool.get("name"))
            else:
                self._add(tool, None)

    def _add(self, tool: Any, namespace: str | None) -> None:
        if isinstance(tool, dict) and isinstance(tool.get("name"), str):
            self._names[flat_name(tool["name"], namespace)] = WireName(
                name=tool["name"], namespace=namespace, custom=tool.get("type") == "custom")

    def __call__(self, name: str) -> WireName:
        return self._names.get(name) or WireName(name=name)


def render_call_item(call: ir.ToolCall, names: ToolNames, *, status: str = "completed",
                     arguments: str | None = None) -> dict[str, Any]:
    """A tool call as the caller's function_call or custom_tool_call (without id)."""
    wire = names(call.name)
    args = call.arguments if arguments is None else arguments
    if wire.custom:
        item: dict[str, Any] = {"type": "custom_tool_call", "call_id": call.id,
                                "name": wire.name,
                                "input": custom_input(args)}
    else:
        item = {"type": "function_call", "status": status, "call_id": call.id,
                "name": wire.name, "arguments": args}
    if wire.namespace:
        item["namespace"] = wire.namespace
    return item


def output_items(content: list[ir.Block], names: ToolNames) -> list[dict[str, Any]]:
    """IR output blocks as output items without ids: consecutive text and refusal
    blocks share one message; thinking is never shown as text."""
    items: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, ir.Text | ir.Refusal):
            if not block.text:
                continue
            part = ({"type": "output_text", "text": block.text, "annotations": [
                search.render_annotation(c, block.text) for c in block.citations]}
                    if isinstance(block, ir.Text) else {"type": "refusal",
                                                         "refusal": block.text})
            if items and items[-1]["type"] == "message":
                items[-1]["content"].append(part)
            else:
                items.append({"type": "message", "status": "completed", "role": "assistant",
                              "content": [part]})
        elif isinstance(block, ir.Thinking):
            reasoning = render_reasoning(block)
            items += [reasoning] if reasoning else []
        elif isinstance(block, ir.ToolCall):
            *carrier, _ = render_call(block)
            items += [*carrier, render_call_item(block, names)]
        elif isinstance(block, ir.WebSearchCall):
            items.append(search.render_call(block))
    return items


def with_ids(items: list[dict[str, Any]], response_id: str) -> list[dict[str, Any]]:
    return [{"id": item_id(_PREFIX[item["type"]], response_id, i), **item}
            for i, item in enumerate(items)]


def render_output_items(response: ir.Response, *, echo: dict[str, Any] | None = None
                        ) -> list[dict[str, Any]]:
    """The output items of `render_response` alone (for storage)."""
    echo = echo or {}
    return with_ids(output_items(response.content, ToolNames(echo.get("tools"))),
                    str(echo.get("id") or response.id))


def response_object(*, response_id: str, model: str, created: int, status: str,
                    echo: dict[str, Any] | None, output: list[dict[str, Any]],
                    usage: ir.Usage | None = None,
                    incomplete_details: dict[str, Any] | None = None,
                    error: dict[str, Any] | None = None) -> dict[str, Any]:
    """A response object with every field the SDK types require, plus the echo."""
    body: dict[str, Any] = {
        "id": response_id, "object": "response", "created_at": created, "status": status,
        "error": error, "incomplete_details": incomplete_details, "model": model,
        "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
    }
    body.update({k: v for k, v in (echo or {}).items() if k != "id"})
    if usage is not None:
        body["usage"] = render_usage(usage)
    return body


def render_response(response: ir.Response, *, echo: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """The caller's response object; `echo` (see `echo_fields`) supplies the
    request fields it repeats and may fix the response `id`."""
    status, incomplete = status_of(response.stop_reason)
    response_id = str((echo or {}).get("id") or response.id)
    return response_object(
        response_id=response_id, model=response.model, created=response.created,
        status=status, echo=echo, output=render_output_items(response, echo=echo),
        usage=response.usage, incomplete_details=incomplete,
        error=dict(ERROR_STOP) if status == "failed" else None)


# ================================================================ input items list
def render_input_items_list(items: list[dict[str, Any]], *, limit: int = 20,
                            order: str = "desc", after: str | None = None) -> dict[str, Any]:
    """A page of stored input items (oldest first in `items`), as
    `GET /v1/responses/{id}/input_items` returns it."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100:
        raise InvalidRequest("Invalid 'limit': must be an integer between 1 and 100.",
                             param="limit")
    if order not in ("asc", "desc"):
        raise InvalidRequest("Invalid 'order': expected 'asc' or 'desc'.", param="order")
    ordered = list(items) if order == "asc" else list(reversed(items))
    start = 0
    if after is not None:
        ids = [item.get("id") for item in ordered]
        if after not in ids:
            raise InvalidRequest(f"Invalid 'after': no input item {after!r}.", param="after")
        start = ids.index(after) + 1
    page = ordered[start:start + limit]
    return {"object": "list", "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": start + limit < len(ordered)}

