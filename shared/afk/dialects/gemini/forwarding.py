"""What a GenerateContentRequest may carry to Gemini as it is.

A same-dialect call forwards the caller's body, so the gateway must know what
every part of it costs. Function declarations, inline media the quote can
bound, and tuning knobs pass. Refused with a 400 naming them: Gemini's hosted
tools (Google Search grounding, code execution, URL context, file search,
maps, computer use), billed per use or by input the gateway cannot see;
cached content and files by URI (input it cannot see); service tiers other
than standard; output it does not price (audio, images, speech); model
routing; and fields it does not know. Every key is checked in either spelling
(camelCase or snake_case; both at once are refused by `normalize_keys`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from afk.catalog import Model
from afk.dialects.allowlist import check_fields
from afk.dialects.gemini.keys import camel, normalize_keys
from afk.errors import InvalidRequest

__all__ = ["check_forwardable"]

PRICED = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "generationConfig",
                    "safetySettings", "labels", "model", "serviceTier"})
GENERATION = frozenset({
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema",
    "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed",
    "presencePenalty", "frequencyPenalty", "responseLogprobs", "logprobs",
    "enableEnhancedCivicAnswers", "thinkingConfig", "mediaResolution", "responseModalities",
})
PARTS = frozenset({"text", "inlineData", "functionCall", "functionResponse", "thought",
                   "thoughtSignature", "executableCode", "codeExecutionResult", "partMetadata",
                   "mediaResolution"})
WEB_SEARCH = frozenset({"googleSearch", "googleSearchRetrieval", "enterpriseWebSearch"})
_UNPRICED = {
    "cachedContent": "cached content adds input (and storage) the gateway cannot see to price",
}


def refuse(field: str, why: str, *, code: str = "unpriced_feature") -> InvalidRequest:
    return InvalidRequest(f"{field}: {why}.", param=field, code=code)


def check_forwardable(body: dict[str, Any], *, model: Model,
                      headers: Mapping[str, str]) -> None:
    """Raise a 400 naming (as the caller spelt it) the first part of `body` the
    gateway cannot price."""
    del headers
    normalize_keys(body)  # a field spelt both ways is ambiguous: refused there
    check_fields(body, priced=PRICED, unpriced=_UNPRICED, refuse=refuse, name=camel,
                 inside=lambda name, field, value: _inside(name, field, value, model))


def _inside(name: str, field: str, value: Any, model: Model) -> None:
    if name == "serviceTier" and str(value).lower() not in (
            "unspecified", "standard", "service_tier_unspecified"):
        raise refuse(field, f"the {value!r} tier is not priced by this gateway")
    if name == "generationConfig":
        _generation(value, field)
    elif name == "tools":
        for i, tool in enumerate(value if isinstance(value, list) else []):
            for kind in tool if isinstance(tool, dict) else ():
                _tool(kind, f"{field}[{i}].{kind}", model)
    elif name == "toolConfig":
        for key in value if isinstance(value, dict) else ():
            if camel(key) not in ("functionCallingConfig", "retrievalConfig"):
                raise refuse(f"{field}.{key}", "not a tool setting this gateway prices",
                             code="unknown_field")
    elif name == "contents":
        for i, content in enumerate(value if isinstance(value, list) else []):
            parts = content.get("parts") if isinstance(content, dict) else None
            for j, part in enumerate(parts if isinstance(parts, list) else []):
                for key in part if isinstance(part, dict) else ():
                    _part_key(key, f"{field}[{i}].parts[{j}]")


def _generation(config: Any, where: str) -> None:
    if not isinstance(config, dict):
        return
    for key, value in config.items():
        at = f"{where}.{key}"
        if value is None:
            continue
        if camel(key) not in GENERATION:
            raise refuse(at, "not a generation setting this gateway understands and prices "
                         "(audio, image and speech output and model routing are not priced)",
                         code="unknown_field")
        if camel(key) == "responseModalities" and any(
                str(m).upper() not in ("TEXT", "MODALITY_UNSPECIFIED")
                for m in (value if isinstance(value, list) else [value])):
            raise refuse(at, "output other than text is not priced by this gateway")


def _tool(kind: str, where: str, model: Model) -> None:
    name = camel(kind)
    if name == "functionDeclarations":
        return
    if name in ("googleSearch", "googleSearchRetrieval") and model.web_search:
        return  # priced per search or grounded request (catalog)
    if name in WEB_SEARCH:
        raise refuse(where, f"grounding with {kind!r} is not priced by this gateway for "
                     f"{model.id}; leave it out")
    raise refuse(where, f"the hosted tool {kind!r} is billed by Gemini per use (or by input "
                 "the gateway cannot see) at prices this gateway does not have; leave it out")


def _part_key(key: str, where: str) -> None:
    name = camel(key)
    if name in PARTS:
        return
    if name == "fileData":
        raise refuse(f"{where}.{key}", "a file by URI cannot be priced before the call "
                     "(its size is unknown); send it inline as base64 data")
    if name == "videoMetadata":
        raise refuse(f"{where}.{key}", "video input is not priced by this gateway")
    raise refuse(f"{where}.{key}", "not a part this gateway understands and prices",
                 code="unknown_field")
