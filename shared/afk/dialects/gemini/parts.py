"""Gemini content parts <-> IR blocks, shared by requests, responses and streams.

Parsing follows one rule: what Gemini itself would reject (a part of the wrong
type, an empty part, a call without a name) is a 400; a well-formed part the IR
cannot carry (executableCode, codeExecutionResult, parts newer than this code)
is left out and noted in `skipped`, because a Gemini caller talking to a Gemini
model is relayed verbatim and must not be refused for what only the IR lacks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from afk import ir
from afk.dialects.gemini.wire import PROVIDER
from afk.dialects.jsonwire import arguments_object, dumps
from afk.errors import InvalidRequest, UpstreamError

__all__ = ["render_function_call"]

Skipped = list[str]  # "<where> (<what>)" for each well-formed thing the IR cannot carry

# Keys that qualify a part rather than make one.
_PART_METADATA = frozenset({"thought", "thoughtSignature", "videoMetadata", "partMetadata",
                            "mediaResolution"})
# Parts the IR models; any other kind is skipped, not refused.
_MODELLED = frozenset({"text", "inlineData", "fileData", "functionCall", "functionResponse"})


def parse_signature(value: Any) -> tuple[str | None, str | None]:
    """A part's thoughtSignature as (raw signature, issuing provider)."""
    if not isinstance(value, str) or not value:
        return None, None
    issuer, raw = ir.unwrap_signature(value, dialect_provider=PROVIDER)
    return raw, issuer


def parse_part(part: Any, where: str, call_id: Callable[[dict[str, Any]], str],
               skipped: Skipped) -> list[ir.Block]:
    """One content part as IR blocks. A signature on a non-thought part becomes a
    signature-only Thinking block before it (the IR keeps signatures on thinking)."""
    if not isinstance(part, dict):
        raise InvalidRequest(f"{where} must be an object", param=where)
    raw_signature, issuer = parse_signature(part.get("thoughtSignature"))
    if "functionCall" in part:
        call = part["functionCall"]
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise InvalidRequest(f"{where}.functionCall needs a name", param=where)
        args = call.get("args") or {}
        if not isinstance(args, dict):
            raise InvalidRequest(f"{where}.functionCall.args must be an object", param=where)
        return [ir.ToolCall(id=call_id(call), name=call["name"], arguments=dumps(args),
                            signature=raw_signature, provider=issuer)]
    if part.get("thought") is True:
        return [ir.Thinking(text=str(part.get("text") or ""), signature=raw_signature,
                            provider=issuer)]
    blocks: list[ir.Block] = []
    if raw_signature:
        blocks.append(ir.Thinking(text="", signature=raw_signature, provider=issuer))
    if isinstance(part.get("text"), str):
        return blocks + ([ir.Text(text=part["text"])] if part["text"] else [])
    if isinstance(part.get("inlineData"), dict):
        data = part["inlineData"]
        return blocks + [ir.Image(data=standard_base64(data.get("data")),
                                  media_type=data.get("mimeType"))]
    if isinstance(part.get("fileData"), dict):
        data = part["fileData"]
        return blocks + [ir.Image(url=data.get("fileUri"), media_type=data.get("mimeType"))]
    kinds = sorted(k for k in part if k not in _PART_METADATA)
    if not kinds or any(k in _MODELLED for k in kinds):
        if blocks and not kinds:
            return blocks  # a signature-only part
        # Empty, malformed, or a response where only a call can be.
        found = ", ".join(sorted(part)) or "empty part"
        raise InvalidRequest(f"{where}: unsupported part ({found})", param=where)
    skipped.append(f"{where} ({', '.join(kinds)})")
    return blocks


def standard_base64(data: Any) -> Any:
    """Gemini's bytes fields take URL-safe base64 too (google-genai sends it); the IR
    carries the standard alphabet, which every other provider requires."""
    return data.replace("-", "+").replace("_", "/") if isinstance(data, str) else data


def render_image(image: ir.Image) -> dict[str, Any]:
    url = image.url or ""
    if image.data is not None:
        return {"inlineData": {"mimeType": image.media_type or "image/png",
                               "data": image.data}}
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        return {"inlineData": {"mimeType": header[5:].split(";")[0] or "image/png",
                               "data": data}}
    if url.startswith("gs://") or url.startswith(
            "https://generativelanguage.googleapis.com/"):
        file_data = {"fileUri": url}
        if image.media_type:
            file_data["mimeType"] = image.media_type
        return {"fileData": file_data}
    raise InvalidRequest("Image URLs are not supported for Gemini models yet; send the "
                         "image as base64 data.", param="messages")


def render_function_call(call: ir.ToolCall) -> dict[str, Any]:
    """A call for a Gemini caller; another provider's signature is wrapped with its
    issuer's name so it goes back to that provider only."""
    args = arguments_object(call.arguments)
    if args is None:
        raise UpstreamError(f"The model produced invalid JSON arguments for {call.name!r}.")
    part: dict[str, Any] = {"functionCall": {"name": call.name, "args": args, "id": call.id}}
    if call.signature and call.provider:
        part["thoughtSignature"] = ir.wrap_signature(call.provider, call.signature,
                                                     dialect_provider=PROVIDER)
    return part
