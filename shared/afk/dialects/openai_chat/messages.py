"""Chat Completions conversations: the caller's `messages` to IR messages, and IR
messages to an upstream's."""

from __future__ import annotations

from typing import Any

from afk import ir
from afk.errors import InvalidRequest


def parse_message(message: Any, i: int) -> ir.Message:
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


def render_messages(messages: list[ir.Message]) -> list[dict[str, Any]]:
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
