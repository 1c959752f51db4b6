"""An upper bound of the input tokens a provider can bill for a body the gateway sends.

The bound covers exactly what is forwarded: the upstream body itself (the
patched caller's body of a passthrough, or the body rendered from the IR),
every byte of it, at one token per byte: tool schemas, history, and fields the
gateway does not model alike. Every tokenizer of the catalog's providers is
byte-level or falls back to bytes, so no token is shorter than a byte, and the
JSON around the text (keys, quotes, brackets) more than covers the few tokens
a provider adds per message. Media blobs are left out of that count and
priced by the model's own rule from their real size or pages
(billing/media.py). Provider-side text the body does not show (the tool-use
system prompt, the definitions of provider-defined tools) is a fixed
allowance. The total is clamped to the model's context window: a provider
refuses, and does not bill, a prompt beyond it.

What cannot be bounded before the call is refused with a 400 naming it: files
by id (the providers' Files APIs: the gateway cannot see them), PDFs and
files by URL (their pages are unknown until fetched), audio and video (not
priced), other binary files, and images of a model whose catalog entry has no
image rule (or whose rule needs a size the image does not declare).

The media shapes recognised here are the four upstream dialects' (OpenAI Chat
and Responses, Anthropic, Gemini) and Bedrock Converse's; they cannot be
mistaken for one another.
"""

from __future__ import annotations

import json
from typing import Any

from afk.billing.media import MediaError, decode_base64, image_size, image_tokens, pdf_facts
from afk.catalog import ImageRule, Model
from afk.errors import InvalidRequest

TOKENS_PER_BYTE = 1
REQUEST_OVERHEAD = 16
TOOL_USE_OVERHEAD = 1_000  # the tool-use system prompt (Anthropic: 346 on Claude 4 models)
PROVIDER_TOOL_OVERHEAD = 1_000  # a provider-defined tool's hidden definition (text editor: 700)
_USER_TOOL_TYPES = frozenset({None, "function", "custom", "namespace"})
_TEXT_TYPES = ("text/", "application/json", "application/xml")


def bound_input_tokens(body: dict[str, Any], model: Model) -> int:
    """The most input tokens `model`'s provider can bill for `body` (see the module)."""
    walk = _Walk(model)
    skeleton = walk.value(body, "")
    text = json.dumps(skeleton, ensure_ascii=False, separators=(",", ":"))
    tools = body.get("tools")
    if tools is None and isinstance(body.get("toolConfig"), dict):  # Bedrock Converse
        tools = body["toolConfig"].get("tools")
    overhead = REQUEST_OVERHEAD
    if isinstance(tools, list) and tools:
        overhead += TOOL_USE_OVERHEAD + PROVIDER_TOOL_OVERHEAD * sum(
            1 for t in tools if isinstance(t, dict) and t.get("type") not in _USER_TOOL_TYPES)
    total = len(text.encode("utf-8", "surrogatepass")) * TOKENS_PER_BYTE + walk.media + overhead
    return min(total, model.context_window)


def _refuse(where: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"{where}: {what}", param=where or None, code="unpriceable_input")


class _Walk:
    """A copy of a body with media blobs emptied, and the tokens of those media."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.media = 0

    def value(self, value: Any, where: str) -> Any:
        if isinstance(value, dict):
            return self._object(value, where)
        if isinstance(value, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    def _fields(self, value: dict[str, Any], where: str, *, skip: tuple[str, ...] = ()
                ) -> dict[str, Any]:
        return {k: ("" if k in skip else self.value(v, f"{where}.{k}" if where else k))
                for k, v in value.items()}

    def _object(self, part: dict[str, Any], where: str) -> Any:
        kind = part.get("type")
        for key in ("inlineData", "inline_data"):  # Gemini
            inline = part.get(key)
            if isinstance(inline, dict):
                self._blob(inline.get("mimeType", inline.get("mime_type")), inline.get("data"),
                           None, f"{where}.{key}")
                return {**self._fields(part, where, skip=(key,)),
                        key: {k: ("" if k == "data" else v) for k, v in inline.items()}}
        for key in ("image", "document"):  # Bedrock Converse: {"image": {"format", "source"}}
            media = part.get(key)
            if isinstance(media, dict) and isinstance(media.get("source"), dict) \
                    and "bytes" in media["source"]:
                return self._converse(part, key, where)
        for key in ("fileData", "file_data"):
            if isinstance(part.get(key), dict):
                raise _refuse(f"{where}.{key}", "a file by URI cannot be priced before the "
                              "call (its size is unknown); send it inline as base64 data.")
        if kind in ("image", "document") and isinstance(part.get("source"), dict):
            return self._anthropic(part, kind, where)
        if kind == "image_url" and isinstance(part.get("image_url"), dict):  # OpenAI Chat
            image = part["image_url"]
            self._url(image.get("url"), image.get("detail"), f"{where}.image_url.url")
            return {**self._fields(part, where, skip=("image_url",)),
                    "image_url": {k: ("" if k == "url" else v) for k, v in image.items()}}
        if kind == "file" and isinstance(part.get("file"), dict):
            file = part["file"]
            self._file(file.get("file_data"), None, file.get("file_id"), file.get("filename"),
                       f"{where}.file")
            return {**self._fields(part, where, skip=("file",)),
                    "file": {k: ("" if k == "file_data" else v) for k, v in file.items()}}
        if kind == "input_image":  # OpenAI Responses
            if part.get("file_id") is not None:
                raise _refuse(f"{where}.file_id", _BY_ID)
            self._url(part.get("image_url"), part.get("detail"), f"{where}.image_url")
            return self._fields(part, where, skip=("image_url",))
        if kind == "input_file":
            self._file(part.get("file_data"), part.get("file_url"), part.get("file_id"),
                       part.get("filename"), where)
            return self._fields(part, where, skip=("file_data",))
        if kind == "input_audio":
            raise _refuse(where, "audio input is not priced by this gateway.")
        return self._fields(part, where)

    # ------------------------------------------------------------ dialect shapes
    def _anthropic(self, part: dict[str, Any], kind: str, where: str) -> Any:
        source = part["source"]
        at = f"{where}.source"
        match source.get("type"):
            case "base64":
                self._blob(source.get("media_type"), source.get("data"), None, at)
                return {**self._fields(part, where, skip=("source",)),
                        "source": {k: ("" if k == "data" else v) for k, v in source.items()}}
            case "url" if kind == "image":
                self._remote_image(None, f"{at}.url")
            case "url":
                raise _refuse(f"{at}.url", "a document by URL cannot be priced before the "
                              "call (its pages are unknown); send it as base64 data.")
            case "file":
                raise _refuse(f"{at}.file_id", _BY_ID)
        return self._fields(part, where)

    def _converse(self, part: dict[str, Any], key: str, where: str) -> Any:
        media = part[key]
        fmt = str(media.get("format") or "").lower()
        media_type = f"image/{fmt}" if key == "image" else (
            "application/pdf" if fmt == "pdf" else "text/plain")
        self._blob(media_type, media["source"]["bytes"], None, f"{where}.{key}.source.bytes")
        return {**self._fields(part, where, skip=(key,)),
                key: {**{k: v for k, v in media.items() if k != "source"},
                      "source": {"bytes": ""}}}

    def _url(self, url: Any, detail: Any, where: str) -> None:
        if not isinstance(url, str) or not url:
            return  # the provider refuses it, at no cost
        if url.startswith("data:"):
            header, _, data = url.partition(",")
            if ";base64" not in header:
                raise _refuse(where, "data URLs must be base64.")
            self._blob(header[5:].split(";")[0] or None, data, detail, where)
        else:
            self._remote_image(detail, where)

    def _file(self, data: Any, url: Any, file_id: Any, filename: Any, where: str) -> None:
        if file_id is not None:
            raise _refuse(f"{where}.file_id", _BY_ID)
        if url is not None:
            raise _refuse(f"{where}.file_url", "a file by URL cannot be priced before the "
                          "call (its pages are unknown); send it as base64 file_data.")
        if not isinstance(data, str) or not data:
            return
        media_type = None
        if data.startswith("data:"):
            header, _, data = data.partition(",")
            if ";base64" not in header:
                raise _refuse(f"{where}.file_data", "data URLs must be base64.")
            media_type = header[5:].split(";")[0] or None
        if media_type is None and isinstance(filename, str) and filename.lower().endswith(
                (".txt", ".md", ".csv", ".json")):
            media_type = "text/plain"
        self._blob(media_type or "application/pdf", data, None, f"{where}.file_data")

    # ------------------------------------------------------------ pricing media
    def _remote_image(self, detail: Any, where: str) -> None:
        rule = self._rule(where)
        tokens = image_tokens(rule, None, detail if isinstance(detail, str) else None)
        if tokens is None:
            raise _refuse(where, "an image by URL cannot be priced for this model before "
                          "the call (its size is unknown); send it as base64 data.")
        self.media += tokens

    def _blob(self, media_type: Any, data: Any, detail: Any, where: str) -> None:
        if not isinstance(data, str):
            return  # malformed: the provider refuses it, at no cost
        declared = media_type.lower() if isinstance(media_type, str) else ""
        if declared.startswith(("audio/", "video/")):
            raise _refuse(where, f"{declared.split('/')[0]} input is not priced by this "
                          "gateway.")
        try:
            raw = decode_base64(data)
            if raw.lstrip()[:5] == b"%PDF-" or declared == "application/pdf":
                facts = pdf_facts(raw)
                self.media += facts.tokens(self._rule(where))
                return
        except MediaError as exc:
            raise _refuse(where, f"this {declared or 'file'} cannot be priced before the "
                          f"call: {exc}.") from None
        size = image_size(raw)
        if size is not None or declared.startswith("image/"):
            rule = self._rule(where)
            tokens = image_tokens(rule, size, detail if isinstance(detail, str) else None)
            if tokens is None:
                raise _refuse(where, "the size of this image cannot be read (PNG, JPEG, "
                              "GIF and WebP can be priced).")
            self.media += tokens
        elif declared.startswith(_TEXT_TYPES):
            self.media += len(raw) * TOKENS_PER_BYTE
        else:
            raise _refuse(where, f"a file of type {declared or 'unknown'} cannot be priced "
                          "before the call (images, PDFs and text can).")

    def _rule(self, where: str) -> ImageRule:
        if self.model.images is None:
            raise _refuse(where, f"images and documents are not priced for {self.model.id}.")
        return self.model.images


_BY_ID = ("a file by id cannot be sent: the gateway cannot see the provider's file "
          "storage to price it; send the content inline as base64 data.")
