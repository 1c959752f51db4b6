"""Which dialect a request body is written in, from the fields only one dialect has.

A body posted to the wrong route (a Gemini `contents` body on the chat route,
an Anthropic top-level `system` there, a chat body on `/v1/messages`) would
otherwise be half understood: fields the route's dialect does not know are
ignored, and the answer is wrong without a word. `check_body` refuses it with a
400 naming the route the body belongs to.
"""

from __future__ import annotations

from typing import Any

from afk.errors import InvalidRequest

ROUTES = {
    "openai_chat": "POST /v1/chat/completions",
    "openai_responses": "POST /v1/responses",
    "anthropic": "POST /v1/messages",
    "gemini": "POST /v1beta/models/{model}:generateContent",
}
NAMES = {
    "openai_chat": "OpenAI Chat Completions",
    "openai_responses": "OpenAI Responses",
    "anthropic": "Anthropic Messages",
    "gemini": "Gemini generateContent",
}

# Top-level fields that exactly one of the four dialects defines (Gemini in both
# the REST camelCase and google-genai's snake_case).
_ONLY = {
    "gemini": ("contents", "systemInstruction", "system_instruction", "generationConfig",
               "generation_config", "safetySettings", "safety_settings", "toolConfig",
               "tool_config", "cachedContent", "cached_content"),
    "anthropic": ("system", "stop_sequences"),
    "openai_responses": ("input", "instructions", "max_output_tokens",
                         "previous_response_id"),
    "openai_chat": ("max_completion_tokens", "response_format", "reasoning_effort",
                    "frequency_penalty", "presence_penalty", "logit_bias",
                    "web_search_options"),
}
# Message roles and fields only Chat Completions has (Anthropic shares `messages`).
_CHAT_ROLES = ("developer", "tool")
_CHAT_MESSAGE_FIELDS = ("tool_calls", "tool_call_id")
# `messages` is both Chat's and Anthropic's; a body with it on another route
# belongs to one of the two.
_MESSAGES_ROUTES = ("openai_chat", "anthropic")


def check_body(body: Any, dialect: str) -> None:
    """Raise a 400 naming the right route when `body` carries a field that only
    another dialect has."""
    if not isinstance(body, dict):
        return
    found = _foreign(body, dialect)
    if found is None:
        return
    field, owners = found
    where = " or ".join(f"{ROUTES[d]} ({NAMES[d]})" for d in owners)
    raise InvalidRequest(
        f"'{field}' is not a {NAMES[dialect]} field: this body is written for {where}. "
        f"Send it there, or rewrite it for {ROUTES[dialect]}.",
        param=field, code="wrong_dialect")


def _foreign(body: dict[str, Any], dialect: str) -> tuple[str, tuple[str, ...]] | None:
    for other, fields in _ONLY.items():
        if other == dialect:
            continue
        for field in fields:
            if field in body:
                return field, (other,)
    if "messages" in body and dialect not in _MESSAGES_ROUTES:
        return "messages", _MESSAGES_ROUTES
    if dialect == "anthropic":
        return _chat_message(body.get("messages"))
    return None


def _chat_message(messages: Any) -> tuple[str, tuple[str, ...]] | None:
    """A Chat-only role or field in a `messages` list posted to the Anthropic route."""
    if not isinstance(messages, list):
        return None
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        if message.get("role") in _CHAT_ROLES:
            return f"messages[{i}].role", ("openai_chat",)
        for field in _CHAT_MESSAGE_FIELDS:
            if field in message:
                return f"messages[{i}].{field}", ("openai_chat",)
    return None
