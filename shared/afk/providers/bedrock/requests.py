"""The IR as a Converse request body
(https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html).

System messages become `system` blocks; tool results travel in user turns;
same-role turns are merged (Converse takes alternating turns). Images and PDFs
go inline as `bytes` (base64 in the JSON body): Converse takes no URLs, so the
provider fetches image URLs before the call (providers/images.py). Reasoning
issued by another provider cannot be read here and is dropped (Bedrock's own is
sent back with its signature, as Claude requires within a tool-use turn); what Converse
cannot express (top_k, a JSON response format, tool_choice none over a history
of tool calls) is a 400 naming it.
"""

from __future__ import annotations

import json
from typing import Any

from afk import ir
from afk.errors import InvalidRequest
from afk.providers.bedrock.wire import PROVIDER

MIN_THINKING_BUDGET = 1024  # Claude's floor for thinking.budget_tokens
# A reasoning effort as a thinking budget (the inverse of ir.effort_for_budget's steps).
EFFORT_BUDGETS = {"low": 2048, "medium": 8192, "high": 16384, "xhigh": 32000, "max": 64000}
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg",
                 "image/gif": "gif", "image/webp": "webp"}


def render_request(request: ir.Request, *, model: str) -> dict[str, Any]:
    """`model` travels in the URL, not in the body."""
    _refuse_untranslatable(request)
    system = [{"text": b.text} for m in request.messages if m.role == "system"
              for b in m.content if isinstance(b, ir.Text) and b.text]
    documents = _Documents()
    turns: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = [out for block in message.content
                  for out in _render_block(block, role, documents)]
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    body: dict[str, Any] = {"messages": turns}
    if system:
        body["system"] = system
    config: dict[str, Any] = {}
    if request.max_output_tokens:
        config["maxTokens"] = request.max_output_tokens
    thinking = _thinking(request)
    if thinking is not None:
        # Claude's extended thinking, in Anthropic's own shape; it takes no sampling
        # settings (https://docs.aws.amazon.com/bedrock/latest/userguide/claude-messages-extended-thinking.html).
        body["additionalModelRequestFields"] = {"thinking": thinking}
    else:
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.top_p is not None:
            config["topP"] = request.top_p
    if request.stop:
        config["stopSequences"] = request.stop
    if config:
        body["inferenceConfig"] = config
    tools = _render_tools(request, has_tool_blocks=any(
        "toolUse" in b or "toolResult" in b for t in turns for b in t["content"]))
    if tools:
        body["toolConfig"] = tools
    return body


def _thinking(request: ir.Request) -> dict[str, Any] | None:
    """Extended thinking for a reasoning model (the pipeline clears these settings for
    the others; on Bedrock only Claude models are catalogued as reasoning): the
    caller's budget, or its effort as one, under max tokens and at least Anthropic's
    floor; none where the caller forces a tool (Claude refuses both at once)."""
    choice = request.tool_choice
    if choice is not None and choice.mode in ("required", "tool"):
        return None
    budget = request.thinking_budget
    if budget is None:
        budget = EFFORT_BUDGETS.get(request.reasoning_effort or "")
    if not budget or not request.max_output_tokens:
        return None
    budget = min(budget, request.max_output_tokens - 1)
    return {"type": "enabled", "budget_tokens": budget} if budget >= MIN_THINKING_BUDGET \
        else None


def _refuse_untranslatable(request: ir.Request) -> None:
    if request.top_k is not None:
        raise InvalidRequest("top_k cannot be sent to a Bedrock model through this gateway "
                             "(Converse has no such setting); leave it out.", param="top_k")
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        raise InvalidRequest("A JSON response format cannot be sent to a Bedrock model "
                             "through this gateway; describe the format in the prompt, or "
                             "use a tool with the schema.", param="response_format")


def _render_tools(request: ir.Request, *, has_tool_blocks: bool) -> dict[str, Any] | None:
    choice = request.tool_choice
    if not request.tools:
        return None
    if choice is not None and choice.mode == "none":
        if has_tool_blocks:  # Converse needs toolConfig to read tool calls in the history
            raise InvalidRequest("tool_choice none cannot be sent to a Bedrock model with "
                                 "tool calls in the conversation (Converse has no such "
                                 "choice); use auto.", param="tool_choice")
        return None
    config: dict[str, Any] = {"tools": [{"toolSpec": {
        "name": tool.name,
        **({"description": tool.description} if tool.description else {}),
        "inputSchema": {"json": _schema(tool.parameters)}}} for tool in request.tools]}
    if choice is not None and choice.mode == "required":
        config["toolChoice"] = {"any": {}}
    elif choice is not None and choice.mode == "tool" and choice.name:
        config["toolChoice"] = {"tool": {"name": choice.name}}
    elif choice is not None and choice.mode == "auto":
        config["toolChoice"] = {"auto": {}}
    return config


def _schema(parameters: dict[str, Any] | None) -> dict[str, Any]:
    schema = parameters or {}
    return schema if "type" in schema else {"type": "object", **schema}


class _Documents:
    """Converse wants every document in a request named, uniquely."""

    def __init__(self) -> None:
        self.count = 0

    def name(self) -> str:
        self.count += 1
        return f"document-{self.count}"


def _render_block(block: ir.Block, role: str, documents: _Documents) -> list[dict[str, Any]]:
    match block:
        case ir.Text(text=text) | ir.Refusal(text=text):
            return [{"text": text}] if text else []  # Converse refuses blank text
        case ir.Image():
            return [_render_media(block, documents)]
        case ir.ToolCall(id=call_id, name=name, arguments=arguments) if role == "assistant":
            return [{"toolUse": {"toolUseId": call_id, "name": name,
                                 "input": _arguments(arguments)}}]
        case ir.ToolResult():
            content = [_render_block(part, role, documents) for part in block.content]
            parts = [p for group in content for p in group] or [{"text": ""}]
            return [{"toolResult": {"toolUseId": block.call_id, "content": parts,
                                    **({"status": "error"} if block.is_error else {})}}]
        case ir.Thinking() if role == "assistant" and block.provider == PROVIDER:
            if block.redacted:
                return [{"reasoningContent": {"redactedContent": block.signature or ""}}]
            reasoning: dict[str, Any] = {"text": block.text}
            if block.signature:
                reasoning["signature"] = block.signature
            return [{"reasoningContent": {"reasoningText": reasoning}}]
    return []  # another provider's reasoning; tool calls in a user turn cannot occur


def _arguments(arguments: str) -> Any:
    try:
        value = json.loads(arguments) if arguments else {}
    except ValueError:
        raise InvalidRequest("A tool call's arguments in the conversation are not valid "
                             "JSON; Bedrock takes them only as a JSON object.",
                             param="messages") from None
    return value if isinstance(value, dict) else {"value": value}


def _render_media(image: ir.Image, documents: _Documents) -> dict[str, Any]:
    if image.data is None:
        raise InvalidRequest("Bedrock takes images only inline: send the image as base64 "
                             "data.", param="messages", code="image_fetch_failed")
    media_type = (image.media_type or ir.sniff_media_type(image.data) or "").lower()
    if media_type == "application/pdf":
        return {"document": {"format": "pdf", "name": documents.name(),
                             "source": {"bytes": image.data}}}
    if media_type not in IMAGE_FORMATS:
        raise InvalidRequest(f"Bedrock takes PNG, JPEG, GIF and WebP images and PDF "
                             f"documents, not {media_type or 'this file'}.", param="messages")
    return {"image": {"format": IMAGE_FORMATS[media_type], "source": {"bytes": image.data}}}
