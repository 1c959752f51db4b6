"""A fake OpenAI Chat Completions upstream that speaks the wire format of PROTOCOLS.md §1.

Usage::

    fake = FakeOpenAI()
    fake.push(Reply(text="Hello world!"), Reply(status=429, error_type="requests"))
    with serve(fake.app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)
        ...
    assert fake.requests[0].headers["authorization"] == "Bearer sk-test"

Streams reproduce the §1.3 transcripts byte for byte (only ``id`` and ``created`` vary):
role chunk, one chunk per text piece / tool-call fragment, finish chunk with ``delta:{}``,
the ``choices:[]`` usage chunk only when ``stream_options.include_usage`` is true (and then
every chunk carries ``"usage":null``), and ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .upstream import (
    ClientGone,
    FakeUpstream,
    Recorded,
    SSEResponse,
    hang_until_disconnect,
    json_dumps,
    split_words,
    sse_event,
)

__all__ = ["FakeOpenAI", "Recorded", "Reply", "sse_event"]

DEFAULT_TEXT = "Hello!"
TOOL_CALL_COMPLETION_TOKENS = 17  # matches the §1.2/§1.3 examples
DEFAULT_MODEL = "gpt-4.1-mini"  # used when the request names no model


@dataclass
class Reply:
    """One scripted answer. Fields marked *stream* only affect ``stream: true`` requests."""

    # Assistant text, streamed one word-ish piece per chunk ("Hello", " world", "!").
    # None means "Hello!" for plain replies and no text (content null) for tool-call replies;
    # pass text explicitly to get content *and* tool calls.
    text: str | None = None
    # [{"id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'}];
    # "id" defaults to call_<n>, "arguments" may also be a dict (JSON-encoded for you).
    # Streamed arguments are split before each ":" (2+ fragments, like §1.3).
    tool_calls: list[dict[str, Any]] | None = None
    prompt_tokens: int = 12
    completion_tokens: int | None = None  # default: #text pieces, or 17 with tool calls
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    finish_reason: str | None = None  # default "stop", or "tool_calls" with tool calls
    # Non-200: OpenAI error body {"error":{message,type,param,code}} + x-should-retry: false.
    status: int = 200
    error_type: str = "server_error"
    error_message: str | None = None  # default: a generic message naming the status
    error_code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers
    delay: float = 0.0  # seconds before the response headers are sent
    chunk_delay: float = 0.0  # stream: seconds between chunks
    stall_after: int | None = None  # stream: hang after N chunks until the client leaves;
    #                                 non-stream: never answer (until the client leaves)
    eof_after: int | None = None  # stream: end the body after N chunks (no finish/usage/[DONE])
    mid_stream_error: str | None = None  # stream: after the content, data: {"error":{...}}, end

    # ----- derived values --------------------------------------------------------------------
    @property
    def content(self) -> str | None:
        if self.text is not None:
            return self.text
        return None if self.tool_calls else DEFAULT_TEXT

    @property
    def pieces(self) -> list[str]:
        return split_words(self.content or "")

    @property
    def calls(self) -> list[dict[str, str]]:
        """Tool calls normalised to {"id","name","arguments": str}."""
        out = []
        for i, call in enumerate(self.tool_calls or []):
            args = call.get("arguments", "")
            if not isinstance(args, str):
                args = json_dumps(args)
            out.append(
                {"id": call.get("id") or f"call_{i + 1}", "name": call["name"], "arguments": args}
            )
        return out

    @property
    def finish(self) -> str:
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"

    def usage(self) -> dict[str, Any]:
        completion = self.completion_tokens
        if completion is None:
            completion = TOOL_CALL_COMPLETION_TOKENS if self.tool_calls else len(self.pieces)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        }

    def error_body(self) -> dict[str, Any]:
        message = self.error_message or f"Fake upstream error (status {self.status})."
        return {
            "error": {
                "message": message,
                "type": self.error_type,
                "param": None,
                "code": self.error_code,
            }
        }


def split_arguments(arguments: str) -> list[str]:
    """Split a tool call's JSON arguments into 2+ stream fragments (before each ":").

    '{"city":"Paris"}' -> ['{"city"', ':"Paris"}'], exactly as in the §1.3 transcript.
    """
    parts = [p for p in re.split(r"(?=:)", arguments) if p]
    if len(parts) < 2 and len(arguments) >= 2:
        mid = len(arguments) // 2
        parts = [arguments[:mid], arguments[mid:]]
    return parts


class FakeOpenAI(FakeUpstream[Reply]):
    """Fake OpenAI API: ``POST /v1/chat/completions``, ``GET /v1/models[/{id}]``.

    Authorization is not checked; it is only recorded (``requests[i].headers``).
    Counters (from ``FakeUpstream``): ``streams_started``, ``streams_finished``, ``cancelled``.
    """

    def __init__(self, models: list[str] | None = None) -> None:
        super().__init__()
        self.models: list[str] = models or [DEFAULT_MODEL, "gpt-4o"]
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/v1/models", self._list_models, methods=["GET"]),
                Route("/v1/models/{model:path}", self._get_model, methods=["GET"]),
                Route(
                    "/{path:path}",
                    self._not_found,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                ),
            ]
        )

    def default_reply(self) -> Reply:
        return Reply()

    # ----- routes ----------------------------------------------------------------------------
    async def _chat_completions(self, request: Request) -> Response:
        rec = await self.record(request)
        body = rec.body
        if not isinstance(body, dict):
            return self._error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error"
            )
        reply = self.next_reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            return JSONResponse(
                reply.error_body(), reply.status, headers=self._headers(reply, error=True)
            )

        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        model = str(body.get("model") or DEFAULT_MODEL)

        if body.get("stream") is True:
            stream_options = body.get("stream_options") or {}
            include_usage = (
                isinstance(stream_options, dict) and stream_options.get("include_usage") is True
            )
            events = self._stream(request, reply, completion_id, created, model, include_usage)
            return SSEResponse(self.tracked(events), headers=self._headers(reply))

        if reply.stall_after is not None:
            await hang_until_disconnect(request)
            return Response(status_code=499)  # never reaches the client
        return JSONResponse(
            self._completion(reply, completion_id, created, model), headers=self._headers(reply)
        )

    async def _list_models(self, request: Request) -> Response:
        await self.record(request)
        return JSONResponse({"object": "list", "data": [self._model(m) for m in self.models]})

    async def _get_model(self, request: Request) -> Response:
        await self.record(request)
        model = request.path_params["model"]
        if model not in self.models:
            return self._error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            )
        return JSONResponse(self._model(model))

    async def _not_found(self, request: Request) -> Response:
        await self.record(request)
        return self._error(
            404, f"Invalid URL ({request.method} {request.url.path})", "invalid_request_error"
        )

    # ----- bodies ----------------------------------------------------------------------------
    @staticmethod
    def _model(model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": 1700000000, "owned_by": "openai"}

    @staticmethod
    def _headers(reply: Reply, error: bool = False) -> dict[str, str]:
        headers = {"x-request-id": f"req_{uuid.uuid4().hex}"}
        if error:
            headers["x-should-retry"] = "false"
        headers.update(reply.headers)
        return headers

    @staticmethod
    def _error(status: int, message: str, type_: str, code: str | None = None) -> Response:
        body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        return JSONResponse(body, status, headers={"x-should-retry": "false"})

    @staticmethod
    def _completion(reply: Reply, completion_id: str, created: int, model: str) -> dict[str, Any]:
        """Non-stream body (§1.2) with every field the SDK types as non-optional."""
        message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in reply.calls
            ]
        message["annotations"] = []
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish}
            ],
            "usage": reply.usage(),
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    @staticmethod
    def _chunks(
        reply: Reply, completion_id: str, created: int, model: str, include_usage: bool
    ) -> list[dict[str, Any]]:
        """The full §1.3 chunk sequence for ``reply`` (without [DONE] and mid-stream errors)."""

        def chunk(delta: dict[str, Any] | None, finish_reason: str | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": []
                if delta is None
                else [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            if include_usage:
                out["usage"] = None
            return out

        calls = reply.calls
        deltas: list[dict[str, Any]] = []
        # Role chunk: text answers start with content "", tool-only answers with content null
        # and the first call's header fragment in the same delta.
        if reply.content is not None:
            deltas.append({"role": "assistant", "content": ""})
            deltas.extend({"content": piece} for piece in reply.pieces)
        else:
            deltas.append({"role": "assistant", "content": None})
        for index, call in enumerate(calls):
            header = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": ""},
            }
            if index == 0 and reply.content is None:
                deltas[0]["tool_calls"] = [header]
            else:
                deltas.append({"tool_calls": [header]})
            deltas.extend(
                {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
                for fragment in split_arguments(call["arguments"])
            )

        chunks = [chunk(d) for d in deltas]
        chunks.append(chunk({}, reply.finish))
        if include_usage:
            usage_chunk = chunk(None)
            usage_chunk["usage"] = reply.usage()
            chunks.append(usage_chunk)
        return chunks

    async def _stream(
        self,
        request: Request,
        reply: Reply,
        completion_id: str,
        created: int,
        model: str,
        include_usage: bool,
    ) -> AsyncGenerator[bytes, None]:
        chunks = self._chunks(reply, completion_id, created, model, include_usage)
        # Content/tool-call chunks are all but the finish (and usage) chunk(s).
        n_content = len(chunks) - (2 if include_usage else 1)
        events: list[bytes] = [sse_event(c) for c in chunks[:n_content]]
        if reply.mid_stream_error is not None:
            error = {
                "message": reply.mid_stream_error,
                "type": reply.error_type,
                "param": None,
                "code": reply.error_code,
            }
            events.append(sse_event({"error": error}))
        else:
            events.extend(sse_event(c) for c in chunks[n_content:])
            events.append(sse_event("[DONE]"))

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
            # Asked to stall after the whole stream: keep the connection open anyway.
            await hang_until_disconnect(request)
            raise ClientGone


def parse_sse(raw: bytes) -> list[dict[str, Any] | str]:
    """Decode a data-only SSE body into JSON objects (and the literal "[DONE]"). For tests."""
    out: list[dict[str, Any] | str] = []
    for block in raw.decode("utf-8").split("\n\n"):
        data = "\n".join(line[6:] for line in block.split("\n") if line.startswith("data: "))
        if data:
            out.append(data if data == "[DONE]" else json.loads(data))
    return out
