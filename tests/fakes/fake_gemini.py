"""A fake Gemini Developer API upstream that speaks the wire format of PROTOCOLS.md §4.

Usage::

    fake = FakeGemini()
    fake.push(Reply(text="Hello!"), Reply(status=429))
    with serve(fake.app) as url:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url))
        ...
    assert fake.api_key(fake.requests[0]) == "k"

Routes exist under both ``/v1`` (google-genai's default) and ``/v1beta`` (the docs'):
``POST models/{m}:generateContent``, ``:streamGenerateContent`` (SSE with ``?alt=sse``,
else one JSON array sent progressively), ``:countTokens``; ``GET models``, ``models/{m}``.

Streams reproduce the §4.3 transcripts byte for byte: one ``data: `` event per thought
piece, text piece and (whole) batch of function calls, the finishReason on the last one,
running-total usage on every one, and no terminator.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
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

__all__ = ["FakeGemini", "Recorded", "Reply", "error_body"]

DEFAULT_TEXT = "Hello!"
DEFAULT_MODELS = ["gemini-2.5-flash", "gemini-2.5-pro"]
TOOL_CALL_CANDIDATES_TOKENS = 15  # matches the §4.3 tool-call transcript
VERSIONS = ("v1", "v1beta")
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def error_body(status: int, message: str, status_name: str | None = None,
               reason: str | None = None) -> dict[str, Any]:
    """Google's error body; ``reason`` adds an ErrorInfo detail (e.g. API_KEY_INVALID)."""
    error: dict[str, Any] = {"code": status, "message": message,
                             "status": status_name or STATUS_NAMES.get(status, "UNKNOWN")}
    if reason is not None:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                             "reason": reason, "domain": "googleapis.com",
                             "metadata": {"service": "generativelanguage.googleapis.com"}}]
    return {"error": error}


@dataclass
class Reply:
    """One scripted answer. Fields marked *stream* only affect ``:streamGenerateContent``."""

    # Answer text, streamed one word-ish piece per event; `pieces` overrides the split.
    # None means "Hello!" without function calls and no text with them.
    text: str | None = None
    pieces: list[str] | None = None
    thoughts: str | None = None  # thought:true text, sent before the answer
    # [{"name": "get_weather", "args": {"city": "Paris"}, "id"?: str,
    #   "thought_signature"?: str (base64)}], all in one part list, one event.
    function_calls: list[dict[str, Any]] | None = None
    prompt_tokens: int = 5
    candidates_tokens: int | None = None  # default: #text pieces, or 15 with calls
    thoughts_tokens: int = 0
    cached_tokens: int = 0
    finish_reason: str = "STOP"
    finish_message: str | None = None
    block_reason: str | None = None  # a blocked prompt: no candidates, promptFeedback
    response_id: str | None = None  # default: random
    model_version: str | None = None  # default: the model in the URL
    # Non-200: Google's error body (see `error_body`).
    status: int = 200
    error_status: str | None = None  # default from the HTTP status
    error_message: str | None = None
    error_reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the response headers are sent
    chunk_delay: float = 0.0  # stream: seconds between events
    stall_after: int | None = None  # stream: hang after N events; non-stream: never answer
    eof_after: int | None = None  # stream: end the body after N events (no finishReason)
    mid_stream_error: str | None = None  # stream: after the content, data: {"error":…} (503)
    # Grounding with Google Search: when the request offers `googleSearch`, the model
    # runs this query and the last event's candidate carries `groundingMetadata`
    # (queries, the pages as groundingChunks, the answer's span supported by the first).
    search: str | None = None

    @property
    def answer(self) -> list[str]:
        if self.pieces is not None:
            return self.pieces
        text = self.text if self.text is not None else (
            None if self.function_calls else DEFAULT_TEXT)
        return split_words(text or "")

    @property
    def candidates(self) -> int:
        if self.candidates_tokens is not None:
            return self.candidates_tokens
        return TOOL_CALL_CANDIDATES_TOKENS if self.function_calls else len(self.answer)

    def call_parts(self) -> list[dict[str, Any]]:
        parts = []
        for call in self.function_calls or []:
            body: dict[str, Any] = {"name": call["name"], "args": call.get("args", {})}
            if call.get("id"):
                body["id"] = call["id"]
            part: dict[str, Any] = {"functionCall": body}
            if call.get("thought_signature"):
                part["thoughtSignature"] = call["thought_signature"]
            parts.append(part)
        return parts

    def error(self) -> dict[str, Any]:
        message = self.error_message or f"Fake upstream error (status {self.status})."
        return error_body(self.status, message, self.error_status, self.error_reason)


class FakeGemini(FakeUpstream[Reply]):
    """Fake Gemini API. Keys are not checked, only recorded (``api_key(requests[i])``).

    Counters (from ``FakeUpstream``): ``streams_started``, ``streams_finished``,
    ``cancelled``.
    """

    def __init__(self, models: list[str] | None = None) -> None:
        super().__init__()
        self.models: list[str] = models or list(DEFAULT_MODELS)
        self.app = Starlette(routes=[
            Route("/{version}/models", self._list_models, methods=["GET"]),
            Route("/{version}/models/{target:path}", self._get_model, methods=["GET"]),
            Route("/{version}/models/{target:path}", self._post, methods=["POST"]),
            Route("/{path:path}", self._not_found, methods=["GET", "POST", "PUT", "DELETE"]),
        ])

    def default_reply(self) -> Reply:
        return Reply()

    @staticmethod
    def api_key(rec: Recorded) -> str | None:
        """The key a request carried: the ``x-goog-api-key`` header or ``?key=``."""
        return rec.headers.get("x-goog-api-key") or rec.query.get("key")

    # ----- routes ----------------------------------------------------------------------------
    async def _post(self, request: Request) -> Response:
        rec = await self.record(request)
        version, target = request.path_params["version"], request.path_params["target"]
        model, _, method = target.partition(":")
        if version not in VERSIONS or method not in (
                "generateContent", "streamGenerateContent", "countTokens",
                "batchEmbedContents"):
            return self._error(404, f"Invalid URL ({request.method} {request.url.path})")
        if not isinstance(rec.body, dict):
            return self._error(400, "Invalid JSON payload received.")
        if method == "countTokens":
            return JSONResponse(self._count_tokens(rec.body))
        if method == "batchEmbedContents":  # no usage in the answer, as Gemini's
            return JSONResponse({"embeddings": [
                {"values": fake_vector("".join(p.get("text", "") for p in
                                               r["content"]["parts"]),
                                       r.get("outputDimensionality"))}
                for r in rec.body.get("requests") or []]})
        reply = self.next_reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            return JSONResponse(reply.error(), reply.status, headers=reply.headers)
        tools = [t for t in rec.body.get("tools") or [] if isinstance(t, dict)]
        grounded = any("googleSearch" in t or "google_search" in t for t in tools)
        if grounded and any("functionDeclarations" in t or "function_declarations" in t
                            for t in tools):
            # What the Gemini API answers an API-key caller (googleapis/go-genai#323).
            return self._error(400, "Tool use with function calling is unsupported by the "
                                    "model.")
        bodies = self._chunks(reply, reply.model_version or model,
                              reply.response_id or uuid.uuid4().hex[:8])
        if grounded and reply.search is not None:
            bodies[-1]["candidates"][0]["groundingMetadata"] = self._grounding(reply)
        if method == "streamGenerateContent":
            sse = request.query_params.get("alt") == "sse"
            events = self._stream(request, reply, bodies, sse=sse)
            if sse:
                return SSEResponse(self.tracked(events), headers=reply.headers)
            return StreamingResponse(self.tracked(events), media_type="application/json",
                                     headers=reply.headers)
        if reply.stall_after is not None:
            await hang_until_disconnect(request)
            return Response(status_code=499)  # never reaches the client
        return JSONResponse(self._whole(reply, bodies), headers=reply.headers)

    async def _list_models(self, request: Request) -> Response:
        await self.record(request)
        return JSONResponse({"models": [self._model(m) for m in self.models]})

    async def _get_model(self, request: Request) -> Response:
        await self.record(request)
        name = request.path_params["target"]
        if name not in self.models:
            return self._error(404, f"models/{name} is not found for API version "
                                    f"{request.path_params['version']}, or is not supported "
                                    "for generateContent.")
        return JSONResponse(self._model(name))

    async def _not_found(self, request: Request) -> Response:
        await self.record(request)
        return self._error(404, f"Invalid URL ({request.method} {request.url.path})")

    # ----- bodies ----------------------------------------------------------------------------
    @staticmethod
    def _error(status: int, message: str) -> Response:
        return JSONResponse(error_body(status, message), status)

    @staticmethod
    def _model(name: str) -> dict[str, Any]:
        return {"name": f"models/{name}", "version": "001", "displayName": name,
                "description": f"Fake {name}", "inputTokenLimit": 1048576,
                "outputTokenLimit": 65536,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
                "temperature": 1, "maxTemperature": 2, "topP": 0.95, "topK": 64,
                "thinking": True}

    @staticmethod
    def _count_tokens(body: dict[str, Any]) -> dict[str, Any]:
        """About four characters a token over every text in the request."""
        text = json.dumps(body.get("generateContentRequest", body), ensure_ascii=False)
        total = max(1, len(text) // 4)
        return {"totalTokens": total,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}

    @staticmethod
    def _usage(reply: Reply, thought_share: tuple[int, int],
               answer_share: tuple[int, int]) -> dict[str, Any]:
        """Running totals after `done` of `of` thought and answer events."""
        thoughts = reply.thoughts_tokens * thought_share[0] // max(1, thought_share[1])
        candidates = reply.candidates * answer_share[0] // max(1, answer_share[1])
        usage: dict[str, Any] = {"promptTokenCount": reply.prompt_tokens,
                                 "candidatesTokenCount": candidates,
                                 "totalTokenCount": reply.prompt_tokens + candidates + thoughts}
        if reply.cached_tokens:
            usage["cachedContentTokenCount"] = reply.cached_tokens
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return usage

    def _chunks(self, reply: Reply, model: str, response_id: str) -> list[dict[str, Any]]:
        """The stream's GenerateContentResponse events (the §4.3 shapes)."""
        if reply.block_reason is not None:
            return [{"promptFeedback": {"blockReason": reply.block_reason},
                     "usageMetadata": self._usage(reply, (0, 1), (0, 1)),
                     "modelVersion": model, "responseId": response_id}]
        thoughts = [[{"text": p, "thought": True}] for p in split_words(reply.thoughts or "")]
        answer = [[{"text": p}] for p in reply.answer]
        if reply.function_calls:
            answer.append(reply.call_parts())
        chunks = []
        for n, parts in enumerate(thoughts + answer, start=1):
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
            last = n == len(thoughts) + len(answer)
            if last:
                candidate["finishReason"] = reply.finish_reason
                if reply.finish_message:
                    candidate["finishMessage"] = reply.finish_message
            candidate["index"] = 0
            # Without thought events the thinking happened before the first event.
            thought_share = (min(n, len(thoughts)), len(thoughts)) if thoughts else (1, 1)
            usage = self._usage(reply, thought_share,
                                (max(0, n - len(thoughts)), len(answer)))
            chunks.append({"candidates": [candidate], "usageMetadata": usage,
                           "modelVersion": model, "responseId": response_id})
        return chunks

    @staticmethod
    def _grounding(reply: Reply) -> dict[str, Any]:
        assert reply.search is not None
        found = results(reply.search)
        text = "".join(reply.answer)
        return {"webSearchQueries": [reply.search],
                "searchEntryPoint": {"renderedContent": "<div class=\"container\"></div>"},
                "groundingChunks": [{"web": {"uri": url, "title": title}}
                                    for url, title in found],
                "groundingSupports": [{"segment": {"startIndex": 0,
                                                   "endIndex": len(text.encode()),
                                                   "text": text},
                                       "groundingChunkIndices": [0]}]}

    @staticmethod
    def _whole(reply: Reply, chunks: list[dict[str, Any]]) -> dict[str, Any]:
        """The non-stream body (§4.2): the stream's parts folded, text pieces joined."""
        body = dict(chunks[-1])
        if reply.block_reason is None:
            parts: list[dict[str, Any]] = []
            if reply.thoughts:
                parts.append({"text": reply.thoughts, "thought": True})
            if reply.answer:
                parts.append({"text": "".join(reply.answer)})
            parts += reply.call_parts()
            body["candidates"] = [{**chunks[-1]["candidates"][0],
                                   "content": {"parts": parts, "role": "model"}}]
        usage = dict(body["usageMetadata"])
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}]
        body["usageMetadata"] = usage
        return body

    async def _stream(self, request: Request, reply: Reply, chunks: list[dict[str, Any]], *,
                      sse: bool) -> AsyncGenerator[bytes, None]:
        bodies: list[dict[str, Any]] = list(chunks)
        if reply.mid_stream_error is not None:
            # All the content, but the error instead of the finishReason.
            last = dict(bodies[-1])
            if "candidates" in last:
                candidate = {k: v for k, v in last["candidates"][0].items()
                             if k not in ("finishReason", "finishMessage")}
                last["candidates"] = [candidate]
            bodies[-1:] = [last, error_body(503, reply.mid_stream_error)]
        if sse:
            events = [sse_event(b) for b in bodies]
        else:  # one JSON array, pretty-printed elements, sent progressively (§4.1)
            events = [("[" if i == 0 else "\n,\r\n").encode() + json.dumps(b, indent=2).encode()
                      for i, b in enumerate(bodies)]
        for sent, event in enumerate(events):
            if reply.stall_after is not None and sent >= reply.stall_after:
                await hang_until_disconnect(request)
                raise ClientGone
            if reply.eof_after is not None and sent >= reply.eof_after:
                return
            if sent and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            yield event
        if not sse:
            yield b"]"
        if reply.stall_after is not None and reply.stall_after >= len(events):
            await hang_until_disconnect(request)
            raise ClientGone


def parse_sse(raw: bytes) -> list[dict[str, Any]]:
    """Decode a Gemini SSE body (LF or CRLF) into its JSON objects. For tests."""
    text = raw.decode("utf-8").replace("\r\n", "\n")
    return [json.loads("\n".join(line[6:] for line in block.split("\n")
                                 if line.startswith("data: ")))
            for block in text.split("\n\n") if block.strip()]


__all__ += ["json_dumps", "parse_sse"]
