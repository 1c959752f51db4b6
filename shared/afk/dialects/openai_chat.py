"""OpenAI Chat Completions (`POST /v1/chat/completions`), both directions."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from afk import ir
from afk.errors import (
    GatewayError,
    InvalidRequest,
    Overloaded,
    RateLimited,
    UpstreamError,
)
from afk.sse import ServerSentEvent

DIALECT = "openai_chat"
DONE = "[DONE]"

_STOP_FROM_WIRE: dict[str, ir.StopReason] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls",
    "function_call": "tool_calls", "content_filter": "content_filter",
}
_STOP_TO_WIRE: dict[str, str] = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls",
    "stop_sequence": "stop", "content_filter": "content_filter", "refusal": "content_filter",
    "pause": "stop", "error": "stop",
}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ================================================================ requests
def parse_request(body: Any) -> ir.Request:
    """Validate a caller's Chat Completions body and lift it into the IR."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    n = body.get("n")
    if n not in (None, 1):
        raise InvalidRequest("This gateway supports only n=1.", param="n")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    stream_options = body.get("stream_options")
    if stream_options is not None and not stream:
        raise InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' "
                             "is enabled.", param="stream_options")
    stop = body.get("stop")
    return ir.Request(
        model=model,
        messages=[_parse_message(m, i) for i, m in enumerate(messages)],
        max_output_tokens=requested_max_tokens(body),
        stream=stream,
        stream_usage=bool((stream_options or {}).get("include_usage")),
        tools=[_parse_tool(t, i) for i, t in enumerate(body.get("tools") or [])],
        tool_choice=_parse_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=body.get("parallel_tool_calls"),
        response_format=_parse_response_format(body.get("response_format")),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stop=[stop] if isinstance(stop, str) else list(stop or []),
        seed=body.get("seed"),
        reasoning_effort=body.get("reasoning_effort"),
        user=body.get("user"),
        metadata=body.get("metadata"),
    )


def requested_max_tokens(body: dict[str, Any]) -> int | None:
    """The caller's output cap: `max_completion_tokens` and/or the legacy `max_tokens`
    (the smaller, when both are sent)."""
    values = []
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidRequest(f"'{name}' must be a positive integer", param=name)
        values.append(value)
    return min(values) if values else None


def patch_request(body: dict[str, Any], *, model: str, max_tokens: int,
                  stream_usage: bool) -> dict[str, Any]:
    """The caller's body for a same-dialect upstream: only the model, the output
    cap and the stream-usage option change; every other field is forwarded."""
    patched = dict(body)
    patched["model"] = model
    # Clamp whichever output caps the caller sent (both, if both), so no field
    # the upstream might honour can exceed the quote.
    fields = [f for f in ("max_completion_tokens", "max_tokens") if body.get(f) is not None]
    for field in fields or ["max_completion_tokens"]:
        patched[field] = max_tokens
    if patched.get("stream") and stream_usage:
        patched["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return patched


def _parse_message(message: Any, i: int) -> ir.Message:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    role = message.get("role")
    content = message.get("content")
    if role in ("system", "developer"):
        return ir.Message(role="system", content=_parse_parts(content, where, user=False))
    if role == "user":
        return ir.Message(role="user", content=_parse_parts(content, where, user=True),
                          name=message.get("name"))
    if role == "assistant":
        blocks: list[ir.Block] = []
        if content is not None:
            blocks += _parse_parts(content, where, user=False)
        if message.get("refusal"):
            blocks.append(ir.Refusal(text=message["refusal"]))
        for j, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise InvalidRequest(f"{where}.tool_calls[{j}] needs function.name",
                                     param=f"{where}.tool_calls")
            blocks.append(ir.ToolCall(id=str(call.get("id") or ""), name=function["name"],
                                      arguments=function.get("arguments") or ""))
        return ir.Message(role="assistant", content=blocks, name=message.get("name"))
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str):
            raise InvalidRequest(f"{where}: a tool message needs 'tool_call_id'",
                                 param=f"{where}.tool_call_id")
        parts = _parse_parts(content, where, user=False)
        return ir.Message(role="tool", content=[ir.ToolResult(call_id=call_id, content=parts)])
    raise InvalidRequest(f"{where}: invalid role {role!r}; expected one of 'system', "
                         "'developer', 'user', 'assistant', 'tool'", param=f"{where}.role")


def _parse_parts(content: Any, where: str, *, user: bool) -> list[Any]:
    if isinstance(content, str):
        return [ir.Text(text=content)] if content else []
    if content is None:
        return []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or an array of parts",
                             param=f"{where}.content")
    blocks: list[Any] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            blocks.append(ir.Text(text=part["text"]))
        elif kind == "refusal" and not user:
            blocks.append(ir.Refusal(text=part.get("refusal") or ""))
        elif kind == "image_url" and user:
            image = part.get("image_url") or {}
            blocks.append(_parse_image(image.get("url"), image.get("detail"), where))
        else:
            raise InvalidRequest(f"{where}.content: unsupported part type {kind!r}",
                                 param=f"{where}.content")
    return blocks


def _parse_image(url: Any, detail: Any, where: str) -> ir.Image:
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{where}: image_url.url is required", param=f"{where}.content")
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header[5:].split(";")[0] or None
        if ";base64" not in header or not data:
            raise InvalidRequest(f"{where}: image data URLs must be base64",
                                 param=f"{where}.content")
        return ir.Image(data=data, media_type=media_type, detail=detail)
    return ir.Image(url=url, detail=detail)


def _parse_tool(tool: Any, i: int) -> ir.Tool:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(
            function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"tools[{i}] must be a function tool with a name",
                             param=f"tools[{i}]")
    return ir.Tool(name=function["name"], description=function.get("description"),
                   parameters=function.get("parameters"), strict=function.get("strict"))


def _parse_tool_choice(choice: Any) -> ir.ToolChoice | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return ir.ToolChoice(mode=choice)
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str):
            return ir.ToolChoice(mode="tool", name=name)
    raise InvalidRequest("Invalid 'tool_choice'", param="tool_choice")


def _parse_response_format(value: Any) -> ir.ResponseFormat | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("text", "json_object"):
        return ir.ResponseFormat(type=kind)
    if kind == "json_schema" and isinstance(value.get("json_schema"), dict):
        spec = value["json_schema"]
        return ir.ResponseFormat(type="json_schema", name=spec.get("name"),
                                 schema=spec.get("schema"), description=spec.get("description"),
                                 strict=spec.get("strict"))
    raise InvalidRequest("Invalid 'response_format'", param="response_format")


def render_request(request: ir.Request, *, model: str) -> dict[str, Any]:
    """The IR as a Chat Completions body for an OpenAI(-compatible) upstream."""
    body: dict[str, Any] = {"model": model, "messages": _render_messages(request.messages)}
    if request.max_output_tokens is not None:
        body["max_completion_tokens"] = request.max_output_tokens
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": {
                k: v for k, v in (("name", t.name), ("description", t.description),
                                  ("parameters", t.parameters), ("strict", t.strict))
                if v is not None}}
            for t in request.tools
        ]
    if request.tool_choice is not None:
        choice = request.tool_choice
        body["tool_choice"] = ({"type": "function", "function": {"name": choice.name}}
                               if choice.mode == "tool" else choice.mode)
    if request.response_format is not None:
        fmt = request.response_format
        if fmt.type == "json_schema":
            spec = {k: v for k, v in (("name", fmt.name or "response"), ("schema", fmt.schema),
                                      ("description", fmt.description), ("strict", fmt.strict))
                    if v is not None}
            body["response_format"] = {"type": "json_schema", "json_schema": spec}
        else:
            body["response_format"] = {"type": fmt.type}
    for name in ("parallel_tool_calls", "temperature", "top_p", "seed", "reasoning_effort",
                 "metadata"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.user:
        # Other dialects' user ids can be long JSON (Claude Code's); OpenAI's end-user
        # id is short. A digest keeps one stable id per user.
        body["user"] = request.user if len(request.user) <= 64 else \
            hashlib.sha256(request.user.encode()).hexdigest()
    if request.stop:
        body["stop"] = request.stop
    if request.reasoning_effort is None and request.thinking_budget is not None:
        body["reasoning_effort"] = ir.effort_for_budget(request.thinking_budget)
    return body


def _render_messages(messages: list[ir.Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            for block in message.content:
                if isinstance(block, ir.ToolResult):
                    out.append({"role": "tool", "tool_call_id": block.call_id,
                                "content": _render_text(block.content)})
            continue
        if message.role == "assistant":
            text = "".join(b.text for b in message.content if isinstance(b, ir.Text))
            calls = [b for b in message.content if isinstance(b, ir.ToolCall)]
            entry: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                entry["tool_calls"] = [
                    {"id": c.id, "type": "function",
                     "function": {"name": c.name, "arguments": c.arguments or "{}"}}
                    for c in calls]
            out.append(entry)
            continue
        parts: list[dict[str, Any]] = []
        for block in message.content:
            if isinstance(block, ir.Text):
                parts.append({"type": "text", "text": block.text})
            elif isinstance(block, ir.Image) and block.data and block.media_type and \
                    not block.media_type.startswith("image/"):
                parts.append({"type": "file", "file": {
                    "file_data": f"data:{block.media_type};base64,{block.data}",
                    "filename": "document" + _extension(block.media_type)}})
            elif isinstance(block, ir.Image):
                url = block.url or f"data:{block.media_type};base64,{block.data}"
                image = {"url": url, **({"detail": block.detail} if block.detail else {})}
                parts.append({"type": "image_url", "image_url": image})
        entry = {"role": message.role,
                 "content": "".join(p["text"] for p in parts)
                 if all(p["type"] == "text" for p in parts) else parts}
        if message.name:
            entry["name"] = message.name
        out.append(entry)
    return out


def _extension(media_type: str) -> str:
    return {"application/pdf": ".pdf", "text/plain": ".txt"}.get(media_type, "")


def _render_text(blocks: list[Any]) -> str:
    return "".join(b.text for b in blocks if isinstance(b, ir.Text))


# ================================================================ responses
def parse_usage(usage: dict[str, Any] | None) -> ir.Usage:
    usage = usage or {}
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return ir.Usage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cached_input_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def render_usage(usage: ir.Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def parse_response(body: dict[str, Any]) -> ir.Response:
    choices = body.get("choices") or []
    if not choices:
        raise UpstreamError("The upstream answer has no choices.")
    choice = choices[0]
    message = choice.get("message") or {}
    blocks: list[ir.Block] = []
    if message.get("reasoning_content"):
        blocks.append(ir.Thinking(text=message["reasoning_content"]))
    if message.get("content"):
        blocks.append(ir.Text(text=message["content"]))
    if message.get("refusal"):
        blocks.append(ir.Refusal(text=message["refusal"]))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        blocks.append(ir.ToolCall(id=call.get("id") or "", name=function.get("name") or "",
                                  arguments=function.get("arguments") or ""))
    return ir.Response(
        id=body.get("id") or "", model=body.get("model") or "",
        created=int(body.get("created") or time.time()), content=blocks,
        stop_reason=_STOP_FROM_WIRE.get(choice.get("finish_reason") or "stop", "stop"),
        usage=parse_usage(body.get("usage")),
    )


def render_response(response: ir.Response) -> dict[str, Any]:
    text = "".join(b.text for b in response.content if isinstance(b, ir.Text))
    refusal = "".join(b.text for b in response.content if isinstance(b, ir.Refusal))
    calls = [b for b in response.content if isinstance(b, ir.ToolCall)]
    message: dict[str, Any] = {"role": "assistant", "content": text or None,
                               "refusal": refusal or None, "annotations": []}
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name,
                                                          "arguments": c.arguments}}
            for c in calls]
    return {
        "id": response.id, "object": "chat.completion", "created": response.created,
        "model": response.model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": _STOP_TO_WIRE[response.stop_reason]}],
        "usage": render_usage(response.usage),
    }


# ================================================================ streams
class StreamDecoder:
    """Upstream `chat.completion.chunk` events -> IR stream events.

    Block indices: the text block and each tool call (by the wire's
    `tool_calls[].index`) get an IR block index in order of first appearance.
    """

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._stop: ir.StopReason | None = None
        self._text_index: int | None = None
        self._refusal_index: int | None = None
        self._thinking_index: int | None = None
        self._tool_index: dict[int, int] = {}
        self._blocks = 0
        # Whether the last chunk fed was the usage-only chunk (`choices: []`);
        # a passthrough drops it when the caller did not ask for usage.
        self.last_was_usage_only = False

    def _block(self, current: int | None) -> int:
        if current is not None:
            return current
        self._blocks += 1
        return self._blocks - 1

    def feed(self, event: ServerSentEvent) -> list[ir.StreamEvent]:
        if self._done:
            raise UpstreamError("The upstream sent data after [DONE].")
        self.last_was_usage_only = False
        if event.data == DONE:
            self._done = True
            return [ir.StreamEnd(stop_reason=self._stop or "stop")]
        try:
            chunk = json.loads(event.data)
        except ValueError:
            raise UpstreamError("The upstream sent a malformed stream event.") from None
        if not isinstance(chunk, dict):
            raise UpstreamError("The upstream sent a malformed stream event.")
        if chunk.get("error"):
            raise error_from_body(chunk, status=502)
        out: list[ir.StreamEvent] = []
        if not self._started:
            self._started = True
            out.append(ir.StreamStart(id=chunk.get("id") or "", model=chunk.get("model") or "",
                                      created=int(chunk.get("created") or time.time())))
        choices = chunk.get("choices") or []
        for choice in choices[:1]:
            out += self._feed_delta(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self._stop = _STOP_FROM_WIRE.get(choice["finish_reason"], "stop")
        if chunk.get("usage"):
            out.append(ir.UsageUpdate(usage=parse_usage(chunk["usage"])))
            self.last_was_usage_only = not choices
        return out

    def _feed_delta(self, delta: dict[str, Any]) -> list[ir.StreamEvent]:
        out: list[ir.StreamEvent] = []
        if delta.get("reasoning_content"):
            self._thinking_index = self._block(self._thinking_index)
            out.append(ir.ThinkingDelta(index=self._thinking_index,
                                        text=delta["reasoning_content"]))
        if delta.get("content"):
            self._text_index = self._block(self._text_index)
            out.append(ir.TextDelta(index=self._text_index, text=delta["content"]))
        if delta.get("refusal"):
            self._refusal_index = self._block(self._refusal_index)
            out.append(ir.RefusalDelta(index=self._refusal_index, text=delta["refusal"]))
        for call in delta.get("tool_calls") or []:
            wire_index = call.get("index", 0)
            function = call.get("function") or {}
            if wire_index not in self._tool_index:
                self._tool_index[wire_index] = self._block(None)
                out.append(ir.ToolCallStart(index=self._tool_index[wire_index],
                                            id=call.get("id") or "",
                                            name=function.get("name") or ""))
            if function.get("arguments"):
                out.append(ir.ToolCallDelta(index=self._tool_index[wire_index],
                                            arguments=function["arguments"]))
        return out

    def finish(self) -> list[ir.StreamEvent]:
        """The upstream closed the stream. Without `[DONE]` the answer is truncated."""
        if not self._done:
            raise UpstreamError("The upstream stream ended before it was complete.")
        return []

    @property
    def done(self) -> bool:
        return self._done


class StreamEncoder:
    """IR stream events -> `chat.completion.chunk` events for the caller."""

    def __init__(self, *, model: str, include_usage: bool) -> None:
        self._model = model
        self._include_usage = include_usage
        self._id = ""
        self._created = 0
        self._tool_ordinal: dict[int, int] = {}
        self._usage: ir.Usage | None = None
        self._finished = False

    def _chunk(self, delta: dict[str, Any] | None, finish: str | None = None) -> ServerSentEvent:
        chunk: dict[str, Any] = {
            "id": self._id, "object": "chat.completion.chunk", "created": self._created,
            "model": self._model,
            "choices": [] if delta is None else [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self._include_usage:
            chunk["usage"] = None
        return ServerSentEvent(data=_dumps(chunk))

    def feed(self, event: ir.StreamEvent) -> list[ServerSentEvent]:
        if self._finished:
            raise ValueError("event after the end of the stream")
        match event:
            case ir.StreamStart(id=response_id, created=created):
                self._id, self._created = response_id, created
                return [self._chunk({"role": "assistant", "content": ""})]
            case ir.TextDelta(text=text):
                return [self._chunk({"content": text})]
            case ir.RefusalDelta(text=text):
                return [self._chunk({"refusal": text})]
            case ir.ThinkingDelta():
                return []  # reasoning text never leaks into visible content
            case ir.ToolCallStart(index=index, id=call_id, name=name):
                ordinal = self._tool_ordinal.setdefault(index, len(self._tool_ordinal))
                return [self._chunk({"tool_calls": [{
                    "index": ordinal, "id": call_id, "type": "function",
                    "function": {"name": name, "arguments": ""}}]})]
            case ir.ToolCallDelta(index=index, arguments=arguments):
                return [self._chunk({"tool_calls": [{
                    "index": self._tool_ordinal[index], "function": {"arguments": arguments}}]})]
            case ir.UsageUpdate(usage=usage):
                self._usage = usage
                return []
            case ir.StreamEnd(stop_reason=reason):
                self._finished = True
                out = [self._chunk({}, _STOP_TO_WIRE[reason])]
                if self._include_usage:
                    usage_chunk = json.loads(self._chunk(None).data)
                    usage_chunk["usage"] = render_usage(self._usage or ir.Usage())
                    out.append(ServerSentEvent(data=_dumps(usage_chunk)))
                out.append(ServerSentEvent(data=DONE))
                return out
        raise TypeError(f"unknown stream event {event!r}")


def passthrough_keep(decoder: StreamDecoder, *, include_usage: bool) -> bool:
    """Whether the event the decoder just read is relayed to the caller."""
    return include_usage or not decoder.last_was_usage_only


# ================================================================ errors
_ERROR_TYPES = {
    "invalid_request": ("invalid_request_error", None),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "authentication": ("invalid_request_error", "invalid_api_key"),
    "permission": ("invalid_request_error", "permission_denied"),
    "billing": ("insufficient_quota", "insufficient_credits"),
    "not_found": ("invalid_request_error", "not_found"),
    "rate_limit": ("requests", "rate_limit_exceeded"),
    "upstream": ("server_error", "upstream_error"),
    "timeout": ("server_error", "upstream_timeout"),
    "overloaded": ("server_error", "overloaded"),
    "api_error": ("server_error", None),
}


def render_error(error: GatewayError) -> dict[str, Any]:
    kind, code = _ERROR_TYPES.get(error.kind, ("server_error", None))
    return {"error": {"message": error.message, "type": kind, "param": error.param,
                      "code": error.code or code}}


def render_stream_error(error: GatewayError) -> list[ServerSentEvent]:
    return [ServerSentEvent(data=_dumps(render_error(error)))]


def error_from_body(body: Any, *, status: int) -> GatewayError:
    """An upstream OpenAI-shaped error as ours, keeping its message."""
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        message = str(detail.get("message") or "upstream error")
        code = detail.get("code")
        param = detail.get("param")
    else:
        message, code, param = (str(detail) if detail else "upstream error"), None, None
    if status == 429:
        return RateLimited(message, code=code)
    if status in (400, 413, 422):
        return InvalidRequest(message, param=param, code=code, status=status)
    if status in (503, 529):
        return Overloaded(message)
    return UpstreamError(f"upstream error ({status}): {message}")


def strip_reasoning(body: dict[str, Any]) -> dict[str, Any]:
    """The body without reasoning settings, for a model that takes none."""
    return {k: v for k, v in body.items() if k != "reasoning_effort"}
