"""A fake OpenAI upstream: Chat Completions (PROTOCOLS.md §1) and Responses (§2).

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

``POST /v1/responses`` answers from the same ``Reply`` queue. Streams reproduce the §2.4
transcripts byte for byte (only the ``resp_``/``msg_``/``fc_`` ids and ``created_at`` vary)
when ``cache_write_tokens=None``; by default usage carries ``"cache_write_tokens":0``, which
SDK 3.57 requires (§7.10). ``reasoning`` adds a reasoning item (summary and
``encrypted_content``) first; ``failed`` ends with ``response.failed`` (non-stream: a
``status:"failed"`` body); ``finish_reason="length"`` gives ``incomplete``;
``mid_stream_error`` ends with the nested in-stream ``error`` event the SDK raises on.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field, replace
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
    fake_vector,
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
    # ----- Responses only (POST /v1/responses) ------------------------------------------------
    reasoning: str | None = None  # a reasoning item first: this summary ("" = no summary)
    encrypted_content: str = "gAAAAfake-encrypted-reasoning"  # the reasoning item's state
    failed: str | None = None  # end with response.failed (status "failed") and this message
    cache_write_tokens: int | None = 0  # None: omit the key, like §2.4 and older real bodies
    # Hosted web search (Responses): when the request offers `web_search`, the model runs
    # this query first (a web_search_call item; its sources only with `include`
    # "web_search_call.action.sources") and its text cites the first page (url_citation).
    search: str | None = None

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
    """Fake OpenAI API: ``POST /v1/chat/completions``, ``POST /v1/responses``,
    ``GET /v1/models[/{id}]``.

    Authorization is not checked; it is only recorded (``requests[i].headers``).
    Counters (from ``FakeUpstream``): ``streams_started``, ``streams_finished``, ``cancelled``.
    """

    def __init__(self, models: list[str] | None = None, *, azure_key: str | None = None
                 ) -> None:
        super().__init__()
        self.models: list[str] = models or [DEFAULT_MODEL, "gpt-4o"]
        self.azure_key = azure_key  # the api-key Azure OpenAI deployments accept
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
                Route("/openai/deployments/{deployment}/chat/completions", self._azure_chat,
                      methods=["POST"]),
                Route("/v1/responses", self._responses, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
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
    async def _begin(self, request: Request) -> tuple[dict[str, Any], Reply] | Response:
        """What every generation route does first: record the request, take the next
        reply, and answer at once when that reply is an error (or the body is not JSON)."""
        rec = await self.record(request)
        body = rec.body
        if not isinstance(body, dict):
            return self._error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error"
            )
        scripted = bool(self._replies)
        reply = self.next_reply()
        if not scripted:
            reply = _within_limit(reply, body)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            return JSONResponse(
                reply.error_body(), reply.status, headers=self._headers(reply, error=True)
            )
        return body, reply

    async def _chat_completions(self, request: Request) -> Response:
        started = await self._begin(request)
        if isinstance(started, Response):
            return started
        body, reply = started

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

    async def _azure_chat(self, request: Request) -> Response:
        """Azure OpenAI's Chat Completions on a deployment, with its refusals: no
        `api-version` is a 404 and a wrong `api-key` a 401, each in Azure's
        `{"error": {"code": "<status>", "message": ...}}` shape
        (https://learn.microsoft.com/azure/ai-foundry/openai/reference)."""
        if not request.query_params.get("api-version"):
            await self.record(request)
            return JSONResponse({"error": {"code": "404", "message": "Resource not found"}}, 404)
        if request.headers.get("api-key") != self.azure_key:
            await self.record(request)
            return JSONResponse({"error": {"code": "401", "message": (
                "Access denied due to invalid subscription key or wrong API endpoint. Make "
                "sure to provide a valid key for an active subscription and use a correct "
                "regional API endpoint for your resource.")}}, 401)
        return await self._chat_completions(request)

    async def _embeddings(self, request: Request) -> Response:
        """Embeddings: a fake vector per input; usage one token per 4 bytes, at least 1
        (the request is recorded; a queued error reply answers instead)."""
        started = await self._begin(request)
        if isinstance(started, Response):
            return started
        body, _ = started
        texts = body["input"] if isinstance(body.get("input"), list) else [body.get("input")]
        tokens = sum(max(1, len(str(t).encode()) // 4) for t in texts)
        return JSONResponse({"object": "list", "model": body.get("model"), "data": [
            {"object": "embedding", "index": i,
             "embedding": fake_vector(str(t), body.get("dimensions"))}
            for i, t in enumerate(texts)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def _responses(self, request: Request) -> Response:
        started = await self._begin(request)
        if isinstance(started, Response):
            return started
        body, reply = started
        script = ResponseScript(reply, str(body.get("model") or DEFAULT_MODEL), body)
        if body.get("stream") is True:
            return SSEResponse(
                self.tracked(self._play(request, reply, script.events())),
                headers=self._headers(reply),
            )
        if reply.stall_after is not None:
            await hang_until_disconnect(request)
            return Response(status_code=499)  # never reaches the client
        return JSONResponse(script.final(), headers=self._headers(reply))

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

        async with aclosing(self._play(request, reply, events)) as played:
            async for event in played:
                yield event

    @staticmethod
    async def _play(
        request: Request, reply: Reply, events: list[bytes]
    ) -> AsyncGenerator[bytes, None]:
        """Send ``events`` with the reply's timing: chunk_delay, stall_after, eof_after."""
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


class ResponseScript:
    """One ``Reply`` as a Responses answer: the §2.4 event sequence, or the final body."""

    def __init__(self, reply: Reply, model: str, body: dict[str, Any] | None = None) -> None:
        body = body or {}
        self.reply = reply
        offered = any(isinstance(t, dict) and str(t.get("type", "")).startswith("web_search")
                      for t in body.get("tools") or [])
        self.search = reply.search if offered else None
        self.sources = "web_search_call.action.sources" in (body.get("include") or [])
        self.id = f"resp_{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model
        self.sequence = 0
        self.output: list[dict[str, Any]] = []  # the finished output items

    def response(self, status: str, *, final: bool = False) -> dict[str, Any]:
        """The response object; ``final`` adds the output and usage (§2.4 key order)."""
        out: dict[str, Any] = {
            "id": self.id, "object": "response", "created_at": self.created, "status": status,
        }
        if final and status != "completed":  # §2.4's completed event carries neither
            out.update(error=None, incomplete_details=None)
        out.update(model=self.model, output=list(self.output) if final else [],
                   parallel_tool_calls=True, tool_choice="auto", tools=[])
        return out

    def usage(self) -> dict[str, Any]:
        reply, chat = self.reply, self.reply.usage()
        cached: dict[str, Any] = {"cached_tokens": reply.cached_tokens}
        if reply.cache_write_tokens is not None:
            cached["cache_write_tokens"] = reply.cache_write_tokens
        return {
            "input_tokens": chat["prompt_tokens"], "input_tokens_details": cached,
            "output_tokens": chat["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
            "total_tokens": chat["total_tokens"],
        }

    def terminal(self) -> tuple[str, dict[str, Any]]:
        """(event type, final response object) for the end of the answer."""
        reply = self.reply
        if reply.failed is not None:
            body = self.response("failed", final=True)
            body["error"] = {"code": reply.error_code or "server_error", "message": reply.failed}
            return "response.failed", body
        if reply.finish == "length":
            body = self.response("incomplete", final=True)
            body["incomplete_details"] = {"reason": "max_output_tokens"}
            body["usage"] = self.usage()
            return "response.incomplete", body
        body = self.response("completed", final=True)
        body["usage"] = self.usage()
        return "response.completed", body

    def final(self) -> dict[str, Any]:
        """The non-stream body (§2.2: with `error` and `incomplete_details`, in its key order)."""
        self.events()
        body = self.terminal()[1]
        head = {k: body[k] for k in ("id", "object", "created_at", "status")}
        return {**head, "error": body.get("error"),
                "incomplete_details": body.get("incomplete_details"),
                **{k: v for k, v in body.items() if k not in head}}

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return sse_event(data, event=kind)

    def events(self) -> list[bytes]:
        """The whole stream (the terminal event, or an in-stream error, last)."""
        self.sequence, self.output = 0, []
        reply = self.reply
        out = [self._event("response.created", response=self.response("in_progress")),
               self._event("response.in_progress", response=self.response("in_progress"))]
        if reply.reasoning is not None:
            out += self._reasoning(reply.reasoning)
        if self.search is not None:
            out += self._search(self.search)
        if reply.content is not None:
            out += self._message(reply.pieces)
        for call in reply.calls:
            out += self._call(call)
        if reply.mid_stream_error is not None:
            error = {"type": reply.error_type, "code": reply.error_code,
                     "message": reply.mid_stream_error, "param": None}
            return [*out, self._event("error", error=error)]
        kind, body = self.terminal()
        return [*out, self._event(kind, response=body)]

    def _added(self, item: dict[str, Any]) -> bytes:
        return self._event("response.output_item.added", output_index=len(self.output),
                           item=item)

    def _done(self, item: dict[str, Any]) -> bytes:
        self.output.append(item)
        return self._event("response.output_item.done", output_index=len(self.output) - 1,
                           item=item)

    def _reasoning(self, summary: str) -> list[bytes]:
        item_id = f"rs_{uuid.uuid4().hex[:24]}"
        where = {"item_id": item_id, "output_index": len(self.output), "summary_index": 0}
        out = [self._added({"id": item_id, "type": "reasoning", "summary": []})]
        parts = []
        if summary:
            part = {"type": "summary_text", "text": summary}
            out.append(self._event("response.reasoning_summary_part.added", **where,
                                   part={"type": "summary_text", "text": ""}))
            out += [self._event("response.reasoning_summary_text.delta", **where, delta=piece)
                    for piece in split_words(summary)]
            out += [self._event("response.reasoning_summary_text.done", **where, text=summary),
                    self._event("response.reasoning_summary_part.done", **where, part=part)]
            parts.append(part)
        item = {"id": item_id, "type": "reasoning", "summary": parts,
                "encrypted_content": self.reply.encrypted_content}
        return [*out, self._done(item)]

    def _search(self, query: str) -> list[bytes]:
        item_id = f"ws_{uuid.uuid4().hex[:24]}"
        where = {"item_id": item_id, "output_index": len(self.output)}
        action: dict[str, Any] = {"type": "search", "query": query}
        if self.sources:
            action["sources"] = [{"type": "url", "url": url} for url, _ in results(query)]
        out = [self._added({"id": item_id, "type": "web_search_call", "status": "in_progress"})]
        out += [self._event(f"response.web_search_call.{step}", **where)
                for step in ("in_progress", "searching", "completed")]
        return [*out, self._done({"id": item_id, "type": "web_search_call",
                                  "status": "completed", "action": action})]

    def _message(self, pieces: list[str]) -> list[bytes]:
        item_id = f"msg_{uuid.uuid4().hex[:24]}"
        text = "".join(pieces)
        where = {"item_id": item_id, "output_index": len(self.output), "content_index": 0}
        item = {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant",
                "content": []}
        annotations = []
        if self.search is not None:
            url, title = results(self.search)[0]
            annotations = [{"type": "url_citation", "start_index": 0, "end_index": len(text),
                            "url": url, "title": title}]
        part = {"type": "output_text", "text": text, "annotations": annotations}
        out = [self._added(item),
               self._event("response.content_part.added", **where,
                           part={"type": "output_text", "text": "", "annotations": []})]
        out += [self._event("response.output_text.delta", **where, delta=piece, logprobs=[])
                for piece in pieces]
        out += [self._event("response.output_text.annotation.added", **where,
                            annotation_index=i, annotation=a)
                for i, a in enumerate(annotations)]
        out += [self._event("response.output_text.done", **where, text=text, logprobs=[]),
                self._event("response.content_part.done", **where, part=part)]
        return [*out, self._done({**item, "status": "completed", "content": [part]})]

    def _call(self, call: dict[str, str]) -> list[bytes]:
        item_id = f"fc_{uuid.uuid4().hex[:24]}"
        where = {"item_id": item_id, "output_index": len(self.output)}
        item = {"id": item_id, "type": "function_call", "status": "in_progress",
                "call_id": call["id"], "name": call["name"], "arguments": ""}
        out = [self._added(item)]
        out += [self._event("response.function_call_arguments.delta", **where, delta=fragment)
                for fragment in split_arguments(call["arguments"])]
        out.append(self._event("response.function_call_arguments.done", **where,
                               arguments=call["arguments"]))
        return [*out, self._done({**item, "status": "completed",
                                  "arguments": call["arguments"]})]


def parse_sse(raw: bytes) -> list[dict[str, Any] | str]:
    """Decode a data-only SSE body into JSON objects (and the literal "[DONE]"). For tests."""
    out: list[dict[str, Any] | str] = []
    for block in raw.decode("utf-8").split("\n\n"):
        data = "\n".join(line[6:] for line in block.split("\n") if line.startswith("data: "))
        if data:
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def _within_limit(reply: Reply, body: dict[str, Any]) -> Reply:
    """A default answer stops at the request's output limit, as the real API does
    (finish_reason "length"): coding CLIs probe with `max_tokens: 1`."""
    limit = next((body[k] for k in ("max_completion_tokens", "max_tokens", "max_output_tokens")
                  if isinstance(body.get(k), int)), None)
    if limit is None or reply.completion_tokens is not None or reply.tool_calls:
        return reply
    if len(reply.pieces) <= limit:
        return reply
    return replace(reply, completion_tokens=limit, finish_reason="length")
