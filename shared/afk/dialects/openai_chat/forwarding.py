"""What a Chat Completions body may carry to an OpenAI upstream as it is.

A same-dialect call forwards the caller's body, so the gateway must know what
every field of it costs. Fields it understands and prices pass; premium
features the catalog has no price for (service tiers, audio, predicted
outputs, web search) and fields it does not know are refused with a 400 naming
them, before any money moves. `check_translatable` names what only OpenAI can
serve when another provider answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from afk.catalog import Model
from afk.dialects.allowlist import check_fields
from afk.errors import InvalidRequest

__all__ = ["check_forwardable", "check_translatable"]

# Fields that change nothing the provider bills beyond the tokens the quote bounds.
PRICED = frozenset({
    "model", "messages", "max_completion_tokens", "max_tokens", "stream", "stream_options",
    "tools", "tool_choice", "parallel_tool_calls", "response_format", "temperature", "top_p",
    "stop", "seed", "reasoning_effort", "user", "metadata", "n", "frequency_penalty",
    "presence_penalty", "logit_bias", "logprobs", "top_logprobs", "store", "prompt_cache_key",
    "prompt_cache_retention", "safety_identifier", "verbosity", "service_tier", "functions",
    "function_call", "moderation",
})
STANDARD_TIERS = (None, "auto", "default")
_UNPRICED = {
    "audio": "audio output is not priced by this gateway",
    "prediction": "predicted outputs bill rejected prediction tokens the gateway cannot "
                  "bound before the call",
    "web_search_options": "web search on Chat Completions needs a search model; the "
                          "gateway serves it through the Responses API",
    "prompt_cache_options": "explicit prompt-cache writes are not priced for this model",
    "modalities": "output other than text is not priced by this gateway",  # but ["text"]
}
_MESSAGE_FIELDS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id",
                             "refusal", "function_call"})


def refuse(field: str, why: str, *, code: str = "unpriced_feature") -> InvalidRequest:
    return InvalidRequest(f"'{field}': {why}.", param=field, code=code)


def check_forwardable(body: dict[str, Any], *, model: Model,
                      headers: Mapping[str, str]) -> None:
    """Raise a 400 naming the first field of `body` the gateway cannot price."""
    del headers
    check_fields(body, priced=PRICED, unpriced=_UNPRICED, refuse=refuse,
                 allowed=lambda field, value: (
                     field == "prompt_cache_options" and model.prices.cache_write is not None
                     or field == "modalities" and value == ["text"]))
    check_service_tier(body.get("service_tier"))
    for i, message in enumerate(body.get("messages") or []):
        if isinstance(message, dict):
            for field in message:
                if field not in _MESSAGE_FIELDS:
                    raise refuse(f"messages[{i}].{field}",
                                 "not a message field this gateway understands and prices",
                                 code="unknown_field")


def check_service_tier(tier: Any) -> None:
    if tier not in STANDARD_TIERS:
        raise refuse("service_tier", f"the {tier!r} tier is not priced by this gateway; "
                     "send 'auto' or 'default' (or omit it)")


def check_translatable(body: Any) -> None:
    """Raise a 400 naming what only OpenAI can serve (legacy function calling, audio,
    predicted outputs, web search), for a call another provider answers."""
    if not isinstance(body, dict):
        return
    for field in ("functions", "function_call", "audio", "prediction"):
        if body.get(field) is not None:
            raise InvalidRequest(f"'{field}': only OpenAI models can serve this, and this "
                                 "model is served by another provider.", param=field)
    if body.get("modalities") not in (None, ["text"]):
        raise InvalidRequest("'modalities': only text output can be served by this model.",
                             param="modalities")
