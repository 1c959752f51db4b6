"""Anthropic Messages conversations: the caller's system prompt and message
history to IR messages, and IR messages to an upstream's.

Parsing follows one rule: what Anthropic itself would reject (wrong types,
missing fields, blocks in the wrong role) is a 400 here; what is well formed
but beyond the IR (server-tool blocks, Files-API sources, block types newer
than this code) is left out of the IR and noted in `skipped`, because an
Anthropic caller talking to a Claude model is relayed verbatim and must not
be refused for content only the IR cannot carry. `anthropic.check_translatable`
turns those notes into a 400 on the cross-dialect path.
"""

from __future__ import annotations

from typing import Any

from afk import ir
from afk.dialects.anthropic.wire import PROVIDER, sanitize_id, tool_input
from afk.dialects.jsonwire import dumps
from afk.errors import InvalidRequest

Skipped = list[str]  # "<where> (<what>)" for each well-formed thing the IR cannot carry

# Base64 prefixes of the image formats Anthropic accepts, for images that
# arrive without a media type.
# ================================================================ parse: wire -> IR
def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or an array of content blocks",
                             param=f"{where}.content")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise InvalidRequest(f"{where}.content[{j}] must be an object with a 'type'",
                                 param=f"{where}.content[{j}]")
    return content


def _text(block: dict[str, Any], where: str) -> ir.Text:
    if not isinstance(block.get("text"), str):
        raise InvalidRequest(f"{where}.text must be a string", param=f"{where}.text")
    return ir.Text(text=block["text"])


def parse_system(system: Any, skipped: Skipped) -> list[ir.Message]:
    if system is None or system == "" or system == []:
        return []
    texts = [_text(b, f"system[{j}]") if b["type"] == "text" else _bad_type(b, f"system[{j}]")
             for j, b in enumerate(_blocks(system, "system"))]
    return [ir.Message(role="system", content=[t for t in texts if t.text])]


def _bad_type(block: dict[str, Any], where: str) -> Any:
    raise InvalidRequest(f"{where}: unsupported content block type {block['type']!r}",
                         param=where)


def _source(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("type"), str):
        raise InvalidRequest(f"{where}.source must be an object with a 'type'",
                             param=f"{where}.source")
    return source


def _string(source: dict[str, Any], key: str, where: str) -> str:
    value = source.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{where}.source.{key} is required", param=f"{where}.source.{key}")
    return value


Media = list[ir.Text | ir.Image]


def _image(block: dict[str, Any], where: str, skipped: Skipped) -> Media:
    source = _source(block, where)
    if source["type"] == "base64":
        return [ir.Image(data=_string(source, "data", where),
                         media_type=_string(source, "media_type", where))]
    if source["type"] == "url":
        return [ir.Image(url=_string(source, "url", where))]
    skipped.append(f"{where} (image source {source['type']!r})")
    return []


def _document(block: dict[str, Any], where: str, skipped: Skipped) -> Media:
    """Documents map where the IR has a home for them: PDFs travel as an Image
    with their media type (Gemini reads inline PDFs, Anthropic gets a document
    back), plain-text documents as their text."""
    source = _source(block, where)
    kind = source["type"]
    if kind == "base64":
        return [ir.Image(data=_string(source, "data", where),
                         media_type=_string(source, "media_type", where))]
    if kind == "url":
        return [ir.Image(url=_string(source, "url", where), media_type="application/pdf")]
    if kind == "text":
        return [ir.Text(text=_string(source, "data", where))]
    if kind == "content":
        inner = _blocks(source.get("content"), f"{where}.source")
        if all(b["type"] == "text" for b in inner):
            return [_text(b, f"{where}.source.content[{j}]") for j, b in enumerate(inner)]
    skipped.append(f"{where} (document source {kind!r})")
    return []


def _media(block: dict[str, Any], where: str, skipped: Skipped) -> Media:
    """A text, image or document block, as found in user turns and tool results."""
    kind = block["type"]
    if kind == "text":
        text = _text(block, where)
        return [text] if text.text else []
    if kind == "image":
        return _image(block, where, skipped)
    if kind == "document":
        return _document(block, where, skipped)
    skipped.append(f"{where} ({kind!r} block)")
    return []


def _tool_result(block: dict[str, Any], where: str, skipped: Skipped) -> ir.Message:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}.tool_use_id is required", param=f"{where}.tool_use_id")
    content = block.get("content")
    parts: Media = []
    if content is not None:
        for j, inner in enumerate(_blocks(content, where)):
            parts += _media(inner, f"{where}.content[{j}]", skipped)
    return ir.Message(role="tool", content=[ir.ToolResult(
        call_id=call_id, content=parts, is_error=bool(block.get("is_error")))])


def _user_turn(blocks: list[dict[str, Any]], where: str, skipped: Skipped) -> list[ir.Message]:
    """Tool results become role="tool" messages ahead of the turn's other content,
    the order every dialect wants them in."""
    results: list[ir.Message] = []
    content: list[ir.Block] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content[{j}]"
        if block["type"] == "tool_result":
            results.append(_tool_result(block, at, skipped))
        elif block["type"] in ("tool_use", "thinking", "redacted_thinking"):
            raise InvalidRequest(f"{at}: a {block['type']!r} block is only valid in an "
                                 "assistant turn", param=at)
        else:
            content += _media(block, at, skipped)
    if content or not results:
        return [*results, ir.Message(role="user", content=content)]
    return results


def _tool_use(block: dict[str, Any], where: str) -> ir.ToolCall:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}.id is required", param=f"{where}.id")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name is required", param=f"{where}.name")
    if not isinstance(arguments, dict):
        raise InvalidRequest(f"{where}.input must be an object", param=f"{where}.input")
    return ir.ToolCall(id=call_id, name=name, arguments=dumps(arguments))


def _thinking(block: dict[str, Any], where: str) -> ir.Thinking:
    if block["type"] == "redacted_thinking":
        data = block.get("data")
        if not isinstance(data, str) or not data:
            raise InvalidRequest(f"{where}.data is required", param=f"{where}.data")
        provider, raw = ir.unwrap_signature(data, dialect_provider=PROVIDER)
        return ir.Thinking(text="", signature=raw, provider=provider, redacted=True)
    if not isinstance(block.get("thinking"), str):
        raise InvalidRequest(f"{where}.thinking must be a string", param=f"{where}.thinking")
    signature = block.get("signature")
    if not isinstance(signature, str) or not signature:
        # A thinking block the gateway issued without a signature (the model's
        # provider gave none): readable, but there is nothing to verify.
        return ir.Thinking(text=block["thinking"])
    provider, raw = ir.unwrap_signature(signature, dialect_provider=PROVIDER)
    return ir.Thinking(text=block["thinking"], signature=raw, provider=provider)


def _assistant_turn(blocks: list[dict[str, Any]], where: str, skipped: Skipped) -> ir.Message:
    content: list[ir.Block] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content[{j}]"
        kind = block["type"]
        if kind == "text":
            text = _text(block, at)
            if text.text:
                content.append(text)
        elif kind == "tool_use":
            call = _tool_use(block, at)
            carrier = content[-1] if content else None
            if _carries_call_signature(carrier):
                # An empty thinking block the gateway put before this call to carry
                # another provider's per-call signature (see render_response).
                assert isinstance(carrier, ir.Thinking)
                call.signature, call.provider = carrier.signature, carrier.provider
                content.pop()
            content.append(call)
        elif kind in ("thinking", "redacted_thinking"):
            content.append(_thinking(block, at))
        elif kind in ("tool_result", "image", "document"):
            raise InvalidRequest(f"{at}: a {kind!r} block is not valid in an assistant turn",
                                 param=at)
        elif kind in ("server_tool_use", "web_search_tool_result"):
            continue  # a past web search: its results are Anthropic's (encrypted) alone
        else:
            skipped.append(f"{at} ({kind!r} block)")
    return ir.Message(role="assistant", content=content)


def _carries_call_signature(block: ir.Block | None) -> bool:
    return (isinstance(block, ir.Thinking) and not block.text and not block.redacted
            and block.signature is not None and block.provider not in (None, PROVIDER))


def parse_messages(messages: list[Any], skipped: Skipped) -> list[ir.Message]:
    out: list[ir.Message] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object", param=where)
        role = message.get("role")
        if "content" not in message:
            raise InvalidRequest(f"{where}.content is required", param=f"{where}.content")
        blocks = _blocks(message["content"], where)
        if role == "user":
            out += _user_turn(blocks, where, skipped)
        elif role == "assistant":
            out.append(_assistant_turn(blocks, where, skipped))
        elif role == "system":
            out += parse_system(message["content"], skipped)
        else:
            raise InvalidRequest(f"{where}.role: invalid role {role!r}; expected 'user' or "
                                 "'assistant'", param=f"{where}.role")
    return out


# ================================================================ render: IR -> wire
def render_image(image: ir.Image) -> dict[str, Any]:
    """Images as image blocks; other media (PDFs) as document blocks."""
    media_type = image.media_type or (ir.sniff_media_type(image.data) if image.data else None)
    kind = "image" if media_type is None or media_type.startswith("image/") else "document"
    if image.data is not None:
        source = {"type": "base64", "media_type": media_type or "image/png", "data": image.data}
    else:
        source = {"type": "url", "url": image.url or ""}
    return {"type": kind, "source": source}


def _render_result(result: ir.ToolResult) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": sanitize_id(result.call_id)}
    parts = [{"type": "text", "text": b.text} if isinstance(b, ir.Text) else render_image(b)
             for b in result.content if not isinstance(b, ir.Text) or b.text]
    if parts:
        block["content"] = parts
    if result.is_error:
        block["is_error"] = True
    return block


def _render_user(content: list[ir.Block]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, ir.Text | ir.Refusal) and block.text:
            out.append({"type": "text", "text": block.text})
        elif isinstance(block, ir.Image):
            out.append(render_image(block))
        elif isinstance(block, ir.ToolResult):
            out.append(_render_result(block))
    return out


def _render_assistant(content: list[ir.Block]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, ir.Text | ir.Refusal) and block.text:
            out.append({"type": "text", "text": block.text})
        elif isinstance(block, ir.ToolCall):
            out.append({"type": "tool_use", "id": sanitize_id(block.id), "name": block.name,
                        "input": tool_input(block.arguments)})
        elif isinstance(block, ir.Thinking) and block.provider == PROVIDER and block.signature:
            # Only Anthropic can verify its own signatures; anyone else's thinking
            # (and unsigned thinking) is dropped, never forged.
            out.append({"type": "redacted_thinking", "data": block.signature} if block.redacted
                       else {"type": "thinking", "thinking": block.text,
                             "signature": block.signature})
    return out


def render_messages(messages: list[ir.Message]) -> tuple[list[dict[str, Any]],
                                                         list[dict[str, Any]]]:
    """(system blocks, turns): system hoisted, same-role runs merged, tool results
    first in their turn, and every tool_use answered in the turn after it."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system += [{"type": "text", "text": b.text} for b in message.content
                       if isinstance(b, ir.Text) and b.text]
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = (_render_assistant if role == "assistant" else _render_user)(message.content)
        if not blocks:
            continue  # Anthropic rejects empty turns
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            turn["content"].sort(key=lambda b: b["type"] != "tool_result")  # stable
    return system, _answer_orphans(turns)


def _answer_orphans(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Anthropic 400s on a tool_use whose result is not in the next user turn
    (a client that dropped a result, or history cut mid-exchange)."""
    out: list[dict[str, Any]] = []
    for i, turn in enumerate(turns):
        out.append(turn)
        calls = [b["id"] for b in turn["content"] if b["type"] == "tool_use"]
        if turn["role"] != "assistant" or not calls:
            continue
        following = turns[i + 1] if i + 1 < len(turns) else None
        if following is None or following["role"] != "user":
            following = {"role": "user", "content": []}
            out.append(following)
        answered = {b["tool_use_id"] for b in following["content"]
                    if b["type"] == "tool_result"}
        following["content"][:0] = [
            {"type": "tool_result", "tool_use_id": call_id, "is_error": True,
             "content": [{"type": "text", "text": "No result was provided for this tool call."}]}
            for call_id in calls if call_id not in answered]
    return out


# ================================================================ responses
