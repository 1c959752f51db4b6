"""Input items <-> IR messages: `parse_items` (a request's `input`, or a stored
conversation chain) and `render_items` (IR history as input items).

Parsing follows the Anthropic codec's rule: what OpenAI itself would reject
(wrong types, missing fields) is a 400; what is well formed but beyond the IR
(built-in tool calls and outputs, item references, compaction items, Files-API
ids) is left out and noted in `skipped`, since a Responses caller on an OpenAI
model is relayed verbatim; `check_translatable` turns the notes into a 400.

Turn structure: consecutive `reasoning`, `function_call` and assistant
`message` items form ONE assistant message (the shape the other dialects
need); each `function_call_output` is a `tool` message of its own.
"""

from __future__ import annotations

import hashlib
import mimetypes
from typing import Any

from afk import ir
from afk.dialects.jsonwire import dumps
from afk.dialects.openai_responses.wire import (
    PROVIDER,
    Skipped,
    flat_name,
    item_id,
    signature_in,
    signature_out,
)
from afk.errors import InvalidRequest

__all__ = ["parse_items", "render_items"]

Media = list[ir.Text | ir.Image]

_ASSISTANT_ITEMS = ("reasoning", "function_call", "custom_tool_call")


# ================================================================ parse: wire -> IR
def parse_items(items: list[dict[str, Any]]) -> list[ir.Message]:
    """Input items as IR messages (what the IR cannot hold is left out)."""
    return parse_item_list(items, [], "input")


def parse_item_list(items: list[Any], skipped: Skipped, where: str) -> list[ir.Message]:
    out: list[ir.Message] = []
    assistant: ir.Message | None = None  # the open assistant turn, if the last item fed it
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{at} must be an object", param=at)
        kind = item.get("type", "message")
        if kind == "message" and item.get("role") == "assistant" or kind in _ASSISTANT_ITEMS:
            if assistant is None:
                assistant = ir.Message(role="assistant", content=[])
                out.append(assistant)
            _assistant_item(item, kind, at, assistant.content)
            continue
        assistant = None
        if kind == "message":
            out.append(_message(item, at, skipped))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            out.append(_call_output(item, at, skipped))
        elif kind == "web_search_call":
            continue  # a past hosted search: the answer that used it is in the history
        elif isinstance(kind, str):
            # Built-in tool traffic (web_search_call, local_shell_call_output, ...),
            # item_reference, compaction, newer item types: OpenAI-only.
            skipped.append(f"{at} (item type {kind!r})")
        else:
            raise InvalidRequest(f"{at}.type must be a string", param=f"{at}.type")
    return out


def _string(item: dict[str, Any], key: str, at: str, *, empty: bool = False) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not (value or empty):
        raise InvalidRequest(f"{at}.{key} must be a non-empty string", param=f"{at}.{key}")
    return value


def _message(item: dict[str, Any], at: str, skipped: Skipped) -> ir.Message:
    role = item.get("role")
    if role not in ("user", "system", "developer"):
        raise InvalidRequest(f"{at}.role: invalid role {role!r}; expected one of 'user', "
                             "'assistant', 'system', 'developer'", param=f"{at}.role")
    content = _content(item.get("content"), at, skipped, assistant=False)
    return ir.Message(role="user" if role == "user" else "system", content=content)


def _assistant_item(item: dict[str, Any], kind: str, at: str, content: list[ir.Block]) -> None:
    if kind == "message":
        content += _content(item.get("content"), at, [], assistant=True)
    elif kind == "reasoning":
        content.append(_reasoning(item, at))
    else:
        call = _call(item, kind, at)
        carrier = content[-1] if content else None
        if _carries_call_signature(carrier):
            # An empty reasoning item render_items put before this call to carry
            # another provider's per-call signature (Gemini's thoughtSignature).
            assert isinstance(carrier, ir.Thinking)
            call.signature, call.provider = carrier.signature, carrier.provider
            content.pop()
        content.append(call)


def _call(item: dict[str, Any], kind: str, at: str) -> ir.ToolCall:
    call_id = _string(item, "call_id", at)
    namespace = item.get("namespace") if isinstance(item.get("namespace"), str) else None
    name = flat_name(_string(item, "name", at), namespace)
    if kind == "custom_tool_call":
        # Freeform tools become function tools with one string parameter `input`.
        return ir.ToolCall(id=call_id, name=name,
                           arguments=dumps({"input": _string(item, "input", at, empty=True)}))
    return ir.ToolCall(id=call_id, name=name,
                       arguments=_string(item, "arguments", at, empty=True))


def _reasoning(item: dict[str, Any], at: str) -> ir.Thinking:
    summary = item.get("summary", [])
    if not isinstance(summary, list) or not all(
            isinstance(s, dict) and isinstance(s.get("text"), str) for s in summary):
        raise InvalidRequest(f"{at}.summary must be an array of summary_text parts",
                             param=f"{at}.summary")
    text = "\n\n".join(s["text"] for s in summary)
    encrypted = item.get("encrypted_content")
    if not isinstance(encrypted, str) or not encrypted:
        return ir.Thinking(text=text)
    provider, raw, redacted = signature_in(encrypted)
    return ir.Thinking(text=text, signature=raw, provider=provider, redacted=redacted)


def _carries_call_signature(block: ir.Block | None) -> bool:
    return (isinstance(block, ir.Thinking) and not block.text and not block.redacted
            and block.signature is not None and block.provider not in (None, PROVIDER))


def _call_output(item: dict[str, Any], at: str, skipped: Skipped) -> ir.Message:
    call_id = _string(item, "call_id", at)
    output = item.get("output")
    if isinstance(output, str):
        parts: Media = [ir.Text(text=output)] if output else []
    elif isinstance(output, list):
        parts = [b for b in _content(output, at, skipped, assistant=False)
                 if isinstance(b, ir.Text | ir.Image)]
    else:
        raise InvalidRequest(f"{at}.output must be a string or an array of parts",
                             param=f"{at}.output")
    return ir.Message(role="tool", content=[ir.ToolResult(call_id=call_id, content=parts)])


def _content(content: Any, at: str, skipped: Skipped, *, assistant: bool) -> list[ir.Block]:
    if isinstance(content, str):
        return [ir.Text(text=content)] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{at}.content must be a string or an array of parts",
                             param=f"{at}.content")
    blocks: list[ir.Block] = []
    for j, part in enumerate(content):
        where = f"{at}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            text = _string(part, "text", where, empty=True)
            if text:
                blocks.append(ir.Text(text=text))
        elif kind == "refusal":
            blocks.append(ir.Refusal(text=_string(part, "refusal", where, empty=True)))
        elif kind in ("input_image", "input_file") and assistant:
            raise InvalidRequest(f"{where}: {kind!r} is not valid in an assistant message",
                                 param=where)
        elif kind == "input_image":
            blocks += _image(part, where, skipped)
        elif kind == "input_file":
            blocks += _file(part, where, skipped)
        elif isinstance(kind, str):
            skipped.append(f"{where} (content type {kind!r})")
        else:
            raise InvalidRequest(f"{where} must be an object with a 'type'", param=where)
    return blocks


def _data_url(url: str, where: str) -> tuple[str | None, str]:
    header, _, data = url.partition(",")
    if ";base64" not in header or not data:
        raise InvalidRequest(f"{where}: data URLs must be base64", param=where)
    return header[5:].split(";")[0] or None, data


def _image(part: dict[str, Any], where: str, skipped: Skipped) -> Media:
    url, detail = part.get("image_url"), part.get("detail")
    detail = detail if isinstance(detail, str) and detail != "auto" else None
    if isinstance(url, str) and url.startswith("data:"):
        media_type, data = _data_url(url, where)
        return [ir.Image(data=data, media_type=media_type, detail=detail)]
    if isinstance(url, str) and url:
        return [ir.Image(url=url, detail=detail)]
    if isinstance(part.get("file_id"), str):
        skipped.append(f"{where} (image file_id)")
        return []
    raise InvalidRequest(f"{where}: input_image needs image_url or file_id", param=where)


def _file(part: dict[str, Any], where: str, skipped: Skipped) -> Media:
    """Files travel as an Image with their media type, as the Anthropic codec does
    with PDFs; a bare base64 `file_data` takes its type from the filename."""
    filename = part.get("filename") if isinstance(part.get("filename"), str) else ""
    guessed = mimetypes.guess_type(filename)[0] if filename else None
    data, url = part.get("file_data"), part.get("file_url")
    if isinstance(data, str) and data.startswith("data:"):
        media_type, raw = _data_url(data, where)
        return [ir.Image(data=raw, media_type=media_type or guessed or "application/pdf")]
    if isinstance(data, str) and data:
        return [ir.Image(data=data, media_type=guessed or "application/pdf")]
    if isinstance(url, str) and url:
        guessed = guessed or mimetypes.guess_type(url)[0]
        return [ir.Image(url=url, media_type=guessed or "application/pdf")]
    if isinstance(part.get("file_id"), str):
        skipped.append(f"{where} (file_id)")
        return []
    raise InvalidRequest(f"{where}: input_file needs file_data, file_url or file_id",
                         param=where)


# ================================================================ render: IR -> wire
def render_items(messages: list[ir.Message]) -> list[dict[str, Any]]:
    """IR history as input items, each with a deterministic id (from a digest of
    the whole history and its position). System messages become `developer`
    messages in place; thinking becomes reasoning items with the wrapped
    signature; a call carrying another provider's signature is preceded by an
    empty reasoning item holding it (parse_items folds it back)."""
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "assistant":
            items += _render_assistant(message.content)
        elif message.role == "tool":
            items += [_render_output(b) for b in message.content if isinstance(b, ir.ToolResult)]
        else:
            parts = _render_parts(message.content)
            if parts:
                role = "developer" if message.role == "system" else "user"
                items.append({"type": "message", "role": role, "status": "completed",
                              "content": parts})
    seed = hashlib.sha256(dumps(items).encode()).hexdigest()
    prefixes = {"message": "msg", "function_call": "fc", "reasoning": "rs",
                "function_call_output": "fco"}
    return [{"id": item_id(prefixes[item["type"]], seed, i), **item}
            for i, item in enumerate(items)]


def render_reasoning(block: ir.Thinking) -> dict[str, Any] | None:
    """A thinking block as a reasoning item (without id), or None if it holds nothing."""
    if not block.text and not block.signature:
        return None
    item: dict[str, Any] = {"type": "reasoning",
                            "summary": [{"type": "summary_text", "text": block.text}]
                            if block.text else []}
    if block.signature:
        item["encrypted_content"] = signature_out(block.provider, block.signature,
                                                  redacted=block.redacted)
    return item


def render_call(call: ir.ToolCall) -> list[dict[str, Any]]:
    """A tool call as a function_call item (without id), after its signature carrier."""
    carrier = render_reasoning(ir.Thinking(text="", signature=call.signature,
                                           provider=call.provider)) if call.signature else None
    return [*([carrier] if carrier else []),
            {"type": "function_call", "status": "completed", "call_id": call.id,
             "name": call.name, "arguments": call.arguments or "{}"}]


def _render_assistant(content: list[ir.Block]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []

    def flush() -> None:
        if parts:
            items.append({"type": "message", "role": "assistant", "status": "completed",
                          "content": parts.copy()})
            parts.clear()

    for block in content:
        if isinstance(block, ir.Text) and block.text:
            parts.append({"type": "output_text", "text": block.text, "annotations": []})
        elif isinstance(block, ir.Refusal) and block.text:
            parts.append({"type": "refusal", "refusal": block.text})
        elif isinstance(block, ir.Thinking):
            flush()
            reasoning = render_reasoning(block)
            items += [reasoning] if reasoning else []
        elif isinstance(block, ir.ToolCall):
            flush()
            items += render_call(block)
    flush()
    return items


def _render_parts(content: list[ir.Block]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, ir.Text | ir.Refusal) and block.text:
            parts.append({"type": "input_text", "text": block.text})
        elif isinstance(block, ir.Image):
            parts.append(render_media(block))
    return parts


def render_media(image: ir.Image) -> dict[str, Any]:
    """Images as input_image; other media (PDFs) as input_file."""
    if image.media_type and not image.media_type.startswith("image/"):
        if image.data is not None:
            extension = mimetypes.guess_extension(image.media_type) or ""
            return {"type": "input_file", "filename": f"document{extension}",
                    "file_data": f"data:{image.media_type};base64,{image.data}"}
        return {"type": "input_file", "file_url": image.url or ""}
    url = image.url if image.data is None else \
        f"data:{image.media_type or 'image/png'};base64,{image.data}"
    return {"type": "input_image", "image_url": url or "", "detail": image.detail or "auto"}


def _render_output(result: ir.ToolResult) -> dict[str, Any]:
    texts = [b for b in result.content if isinstance(b, ir.Text)]
    output: str | list[dict[str, Any]]
    if len(texts) == len(result.content):
        output = "".join(b.text for b in texts)
    else:
        output = _render_parts(list(result.content))
    return {"type": "function_call_output", "call_id": result.call_id, "output": output,
            "status": "completed"}
