"""A fake Anthropic Messages upstream that speaks the wire format of PROTOCOLS.md §3.

Usage::

    fake = FakeAnthropic()
    fake.push(Reply(text="Hello world!"), Reply(status=529))
    with serve(fake.app) as url:
        client = anthropic.Anthropic(base_url=url, api_key="sk-ant-test", max_retries=0)
        ...
    assert fake.requests[0].headers["authorization"] == "Bearer sk-ant-test"

Streams reproduce the §3.4 transcripts byte for byte (only the message id varies):
`message_start` (input usage, output_tokens 1), per block `content_block_start` /
deltas / `content_block_stop` (a `ping` right after the first text block starts),
`message_delta` (stop reason, cumulative output usage), `message_stop`. Every event
has its `event:` line, as the SDK requires.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .search import results
from .upstream import (
    ClientGone,
    FakeUpstream,
    Recorded,
    SSEResponse,
    hang_until_disconnect,
    split_words,
    sse_event,
)

__all__ = ["FakeAnthropic", "Recorded", "Reply", "count_words", "sse_event"]

DEFAULT_TEXT = "Hello!"
DEFAULT_MODEL = "claude-sonnet-4-5"
DEFAULT_SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"  # the §3.4 transcript's
TOOL_USE_OUTPUT_TOKENS = 42  # matches the §3.4 tool transcript
JSON_FRAGMENT = 12  # characters per input_json_delta: '{"city": "Pa' + 'ris"}' as in §3.4

ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}


@dataclass
class Reply:
    """One scripted answer. Fields marked *stream* only affect ``stream: true`` requests."""

    # Assistant text, streamed one word-ish piece per delta. None means "Hello!" for plain
    # replies and no text block for tool-use replies; pass text to get both.
    text: str | None = None
    # [{"id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]; "id" defaults
    # to toolu_<n>. Streamed as input_json_delta "" then 12-character fragments (§3.4).
    tool_calls: list[dict[str, Any]] | None = None
    thinking: str | None = None  # a thinking block first, one thinking_delta + signature
    signature: str = DEFAULT_SIGNATURE
    input_tokens: int = 12
    output_tokens: int | None = None  # default: #text pieces + 1, or 42 with tool calls
    cache_creation_input_tokens: int = 0
    cache_creation_1h_input_tokens: int | None = None  # set: usage.cache_creation by TTL
    cache_read_input_tokens: int = 0
    thinking_tokens: int | None = None  # sent as usage.output_tokens_details when set
    stop_reason: str | None = None  # default "end_turn", or "tool_use" with tool calls
    # Non-200: {"type":"error","error":{type,message},"request_id"} + x-should-retry: false.
    status: int = 200
    error_type: str | None = None  # default: the type Anthropic uses for the status
    error_message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the response headers are sent
    chunk_delay: float = 0.0  # stream: seconds between events
    stall_after: int | None = None  # stream: hang after N events; non-stream: never answer
    eof_after: int | None = None  # stream: end the body after N events (no message_stop)
    # stream: right after the first content block, `event: error` with this message (type
    # error_type, default overloaded_error, as in §3.4), then the body ends.
    mid_stream_error: str | None = None
    # Hosted web search: when the request offers `web_search_*`, the model searches for
    # this query first (server_tool_use + web_search_tool_result), and its text cites
    # the first result, as Anthropic answers (web-search-tool docs).
    search: str | None = None
    searching: bool = False  # set by the fake: the request offered the tool

    @property
    def content_text(self) -> str | None:
        if self.text is not None:
            return self.text
        return None if self.tool_calls else DEFAULT_TEXT

    @property
    def pieces(self) -> list[str]:
        return split_words(self.content_text or "")

    @property
    def calls(self) -> list[dict[str, Any]]:
        return [{"id": c.get("id") or f"toolu_{i + 1}", "name": c["name"],
                 "input": c.get("input") or {}} for i, c in enumerate(self.tool_calls or [])]

    @property
    def stop(self) -> str:
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if self.tool_calls else "end_turn"

    def usage(self, *, start: bool = False) -> dict[str, Any]:
        """The message's usage; at message_start the output so far is 1 token."""
        output = self.output_tokens
        if output is None:
            output = TOOL_USE_OUTPUT_TOKENS if self.tool_calls else len(self.pieces) + 1
        usage: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "output_tokens": 1 if start else output,
        }
        if self.cache_creation_1h_input_tokens is not None:
            hour = self.cache_creation_1h_input_tokens
            usage["cache_creation"] = {
                "ephemeral_5m_input_tokens": self.cache_creation_input_tokens - hour,
                "ephemeral_1h_input_tokens": hour}
        if self.thinking_tokens is not None and not start:
            usage["output_tokens_details"] = {"thinking_tokens": self.thinking_tokens}
        if self.searched:
            usage["server_tool_use"] = {"web_search_requests": 1 if not start else 0,
                                        "web_fetch_requests": 0}
        return usage

    @property
    def searched(self) -> bool:
        return self.search is not None and self.searching

    def error_body(self) -> dict[str, Any]:
        kind = self.error_type or ERROR_TYPES.get(self.status, "api_error")
        message = self.error_message or f"Fake upstream error (status {self.status})."
        return {"type": "error", "error": {"type": kind, "message": message},
                "request_id": f"req_{uuid.uuid4().hex[:24]}"}


def count_words(body: dict[str, Any]) -> int:
    """The fake's token count: one per word of every string in system, messages and
    tools, except block `type` and message `role` tags. Deterministic, not a tokenizer."""

    def words(value: Any, key: str | None = None) -> int:
        if isinstance(value, str):
            return 0 if key in ("type", "role") else len(re.findall(r"\w+", value))
        if isinstance(value, dict):
            return sum(words(v, k) for k, v in value.items())
        if isinstance(value, list):
            return sum(words(v) for v in value)
        return 0

    return sum(words(body.get(name)) for name in ("system", "messages", "tools"))


class FakeAnthropic(FakeUpstream[Reply]):
    """Fake Anthropic API: ``POST /v1/messages``, ``POST /v1/messages/count_tokens``,
    ``GET /v1/models[/{id}]``. Keys are recorded, not checked."""

    def __init__(self, models: list[str] | None = None) -> None:
        super().__init__()
        self.models: list[str] = models or [DEFAULT_MODEL, "claude-haiku-4-5"]
        self.app = Starlette(routes=[
            Route("/v1/messages", self._messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
            Route("/v1/models", self._list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", self._get_model, methods=["GET"]),
            Route("/{path:path}", self._not_found,
                  methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ])

    def default_reply(self) -> Reply:
        return Reply()

    # ----- routes ----------------------------------------------------------------------------
    async def _messages(self, request: Request) -> Response:
        body = (await self.record(request)).body
        if not isinstance(body, dict):
            return self._error(400, "invalid_request_error", "Request body is not valid JSON.")
        reply = self.next_reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            return JSONResponse(reply.error_body(), reply.status,
                                headers=self._headers(reply, error=True))
        reply.searching = any(isinstance(t, dict) and str(t.get("type", "")).startswith(
            "web_search_") for t in body.get("tools") or [])
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        model = str(body.get("model") or DEFAULT_MODEL)
        if body.get("stream") is True:
            events = self._stream(request, reply, message_id, model)
            return SSEResponse(self.tracked(events), headers=self._headers(reply))
        if reply.stall_after is not None:
            await hang_until_disconnect(request)
            return Response(status_code=499)  # never reaches the client
        return JSONResponse(self._message(reply, message_id, model),
                            headers=self._headers(reply))

    async def _count_tokens(self, request: Request) -> Response:
        body = (await self.record(request)).body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._error(400, "invalid_request_error", "messages: Field required")
        return JSONResponse({"input_tokens": count_words(body)})

    async def _list_models(self, request: Request) -> Response:
        await self.record(request)
        data = [self._model(m) for m in self.models]
        return JSONResponse({"data": data, "has_more": False, "first_id": self.models[0],
                             "last_id": self.models[-1]})

    async def _get_model(self, request: Request) -> Response:
        await self.record(request)
        model = request.path_params["model"]
        if model not in self.models:
            return self._error(404, "not_found_error", f"model: {model}")
        return JSONResponse(self._model(model))

    async def _not_found(self, request: Request) -> Response:
        await self.record(request)
        return self._error(404, "not_found_error", f"Not found: {request.url.path}")

    # ----- bodies ----------------------------------------------------------------------------
    @staticmethod
    def _model(model_id: str) -> dict[str, Any]:
        return {"type": "model", "id": model_id, "display_name": model_id,
                "created_at": "2025-09-29T00:00:00Z", "lifecycle": "active"}

    @staticmethod
    def _headers(reply: Reply, error: bool = False) -> dict[str, str]:
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
        if error:
            headers["x-should-retry"] = "false"
        headers.update(reply.headers)
        return headers

    @staticmethod
    def _error(status: int, kind: str, message: str) -> Response:
        body = {"type": "error", "error": {"type": kind, "message": message},
                "request_id": f"req_{uuid.uuid4().hex[:24]}"}
        return JSONResponse(body, status, headers={"x-should-retry": "false"})

    @staticmethod
    def _blocks(reply: Reply) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if reply.thinking is not None:
            blocks.append({"type": "thinking", "thinking": reply.thinking,
                           "signature": reply.signature})
        citations = []
        if reply.searched:
            assert reply.search is not None
            use = "srvtoolu_01" + uuid.uuid4().hex[:20]
            found = results(reply.search)
            blocks += [{"type": "server_tool_use", "id": use, "name": "web_search",
                        "input": {"query": reply.search}},
                       {"type": "web_search_tool_result", "tool_use_id": use, "content": [
                           {"type": "web_search_result", "url": url, "title": title,
                            "encrypted_content": "EqgfCioIARgBIiQ3YTAwMjY1Mi1mZjM5",
                            "page_age": "April 30, 2025"} for url, title in found]}]
            citations = [{"type": "web_search_result_location", "url": found[0][0],
                          "title": found[0][1], "cited_text": reply.content_text or "",
                          "encrypted_index": "Eo8BCioIAhgBIiQyYjQ0OWJmZi1lNm"}]
        if reply.content_text is not None:
            text: dict[str, Any] = {"type": "text", "text": reply.content_text}
            if citations:
                text["citations"] = citations
            blocks.append(text)
        blocks += [{"type": "tool_use", **call} for call in reply.calls]
        return blocks

    def _message(self, reply: Reply, message_id: str, model: str) -> dict[str, Any]:
        """Non-stream body (§3.2) with every field the SDK types as non-optional."""
        return {"id": message_id, "type": "message", "role": "assistant", "model": model,
                "content": self._blocks(reply), "stop_reason": reply.stop,
                "stop_sequence": None, "usage": reply.usage()}

    @staticmethod
    def _block_events(index: int, block: dict[str, Any], reply: Reply, *,
                      ping: bool) -> list[bytes]:
        def event(data: dict[str, Any]) -> bytes:
            return sse_event(data, event=data["type"])

        def delta(payload: dict[str, Any]) -> bytes:
            return event({"type": "content_block_delta", "index": index, "delta": payload})

        kind = block["type"]
        start = {"text": {"type": "text", "text": ""},
                 "thinking": {"type": "thinking", "thinking": "", "signature": ""},
                 "tool_use": {**block, "input": {}},
                 "server_tool_use": {**block, "input": {}},
                 "web_search_tool_result": block}[kind]
        out = [event({"type": "content_block_start", "index": index, "content_block": start})]
        if kind == "text":
            if ping:
                out.append(event({"type": "ping"}))
            out += [delta({"type": "citations_delta", "citation": c})
                    for c in block.get("citations") or []]
            out += [delta({"type": "text_delta", "text": p}) for p in reply.pieces]
        elif kind == "web_search_tool_result":
            pass  # sent whole in its start event
        elif kind == "thinking":
            out.append(delta({"type": "thinking_delta", "thinking": block["thinking"]}))
            out.append(delta({"type": "signature_delta", "signature": block["signature"]}))
        else:
            arguments = json.dumps(block["input"], ensure_ascii=False)
            fragments = [""] + [arguments[i:i + JSON_FRAGMENT]
                                for i in range(0, len(arguments), JSON_FRAGMENT)]
            out += [delta({"type": "input_json_delta", "partial_json": f}) for f in fragments]
        out.append(event({"type": "content_block_stop", "index": index}))
        return out

    def events(self, reply: Reply, message_id: str, model: str) -> list[bytes]:
        """The whole §3.4 event sequence for ``reply``, as bytes."""
        message = {**self._message(reply, message_id, model), "content": [],
                   "stop_reason": None, "usage": reply.usage(start=True)}
        out = [sse_event({"type": "message_start", "message": message}, event="message_start")]
        blocks = self._blocks(reply)
        first_text = next((i for i, b in enumerate(blocks) if b["type"] == "text"), None)
        for index, block in enumerate(blocks):
            # As in §3.4: one ping, right after the first text block starts.
            out += self._block_events(index, block, reply, ping=index == first_text)
            if reply.mid_stream_error is not None:
                error = {"type": "error", "error": {
                    "type": reply.error_type or "overloaded_error",
                    "message": reply.mid_stream_error}}
                return [*out, sse_event(error, event="error")]
        final = reply.usage()
        usage = {"output_tokens": final["output_tokens"]}
        for name in ("output_tokens_details", "server_tool_use"):
            if name in final:
                usage[name] = final[name]
        out.append(sse_event({"type": "message_delta",
                              "delta": {"stop_reason": reply.stop, "stop_sequence": None},
                              "usage": usage}, event="message_delta"))
        out.append(sse_event({"type": "message_stop"}, event="message_stop"))
        return out

    async def _stream(self, request: Request, reply: Reply, message_id: str,
                      model: str) -> AsyncGenerator[bytes, None]:
        events = self.events(reply, message_id, model)
        for sent, event in enumerate(events):
            if reply.stall_after is not None and sent >= reply.stall_after:
                await hang_until_disconnect(request)
                raise ClientGone
            if reply.eof_after is not None and sent >= reply.eof_after:
                return
            if sent and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            yield event
        if reply.stall_after is not None and reply.stall_after >= len(events):
            await hang_until_disconnect(request)
            raise ClientGone
