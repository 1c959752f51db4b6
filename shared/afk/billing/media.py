"""What an image or a PDF costs in input tokens, read from its own bytes.

Providers bill media by their own rules, from facts in the file: an image by
its pixel size (scaled down to the provider's largest), a PDF by its pages
(each rendered as an image) plus the text extracted from them. The gateway
reads those facts before the hold, never trusting a declared size:

* `image_size(data)`: (width, height) from a PNG, JPEG, GIF or WebP header;
* `pdf_facts(data)`: the page count and a bound on the extractable text;
* `image_tokens(rule, size, detail)`: the model's counting rule (catalog
  `ImageRule`) applied to a size, or the most the rule can bill when the size
  is unknown (an image by URL), or None when the rule has no such ceiling;
* `page_tokens(rule)`: one PDF page, rendered as an image.

A PDF's text is bounded by the decoded size of its content streams (every
stream but images, fonts, metadata and cross-reference tables): extraction
yields at most a character per byte of the operators that draw it. A font
whose ToUnicode map expands one code into many characters can exceed that;
the context-window clamp of the quote still bounds such a prompt.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import zlib

from afk.catalog import ImageRule
from afk.records import dataclass

MAX_PDF_DECODED = 64 * 1024 * 1024  # decoded stream bytes one PDF may hold
PAGE_OVERHEAD = 16  # tokens framing each page, on top of its image and text
OPENAI_MAX_TILES = 8  # 768 x 2048 after scaling: 2 x 4 tiles of 512 px


class MediaError(ValueError):
    """A medium whose facts cannot be read (the message says why)."""


# ================================================================ images
def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, JPEG, GIF or WebP image, or None if the bytes are
    none of those (or are truncated before the size)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        return _positive(int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"))
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return _positive(int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little"))
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    return None


def _positive(width: int, height: int) -> tuple[int, int] | None:
    return (width, height) if width > 0 and height > 0 else None


# Start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                  0xCF})


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            return None
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF and i + 9 <= len(data):
            height = int.from_bytes(data[i + 5:i + 7], "big")
            width = int.from_bytes(data[i + 7:i + 9], "big")
            return _positive(width, height)
        if length < 2:
            return None
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return (int.from_bytes(data[24:27], "little") + 1,
                int.from_bytes(data[27:30], "little") + 1)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return _positive(int.from_bytes(data[26:28], "little") & 0x3FFF,
                         int.from_bytes(data[28:30], "little") & 0x3FFF)
    return None


def image_tokens(rule: ImageRule, size: tuple[int, int] | None,
                 detail: str | None = None) -> int | None:
    """Input tokens of one image under `rule`: from its size, or the rule's ceiling
    when the size is unknown; None when the rule has no ceiling (Gemini 2.x tiles)."""
    match rule.kind:
        case "tiles":
            if detail == "low":
                return rule.base
            tiles = OPENAI_MAX_TILES if size is None else min(_openai_tiles(*size),
                                                               OPENAI_MAX_TILES)
            return rule.base + rule.per_tile * tiles
        case "patches":
            patches = rule.max_patches if size is None else min(
                math.ceil(size[0] / 32) * math.ceil(size[1] / 32), rule.max_patches)
            return math.ceil(patches * rule.multiplier)
        case "pixels":
            if size is None:
                return rule.max_tokens
            width, height = size
            return min(max(math.ceil(width / 28) * math.ceil(height / 28),
                           math.ceil(width * height / 750)), rule.max_tokens)
        case "gemini_tiles":
            if size is None:
                return None
            width, height = size
            if width <= 384 and height <= 384:
                return 258
            return math.ceil(width / 768) * math.ceil(height / 768) * 258
        case "fixed":
            return rule.max_tokens
    raise ValueError(f"unknown image rule {rule.kind!r}")


def _openai_tiles(width: int, height: int) -> int:
    """512-px tiles once the image fits 2048 x 2048 and its short side is <= 768 px
    (sizes rounded up, so the count never falls below the provider's)."""
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        w, h = w * 2048 / max(w, h), h * 2048 / max(w, h)
    if min(w, h) > 768:
        w, h = w * 768 / min(w, h), h * 768 / min(w, h)
    return math.ceil(math.ceil(w) / 512) * math.ceil(math.ceil(h) / 512)


def page_tokens(rule: ImageRule) -> int:
    """The image part of one PDF page: the rule's largest image (Gemini 2.x bills a
    page as one 258-token tile)."""
    if rule.kind == "gemini_tiles":
        return 258
    tokens = image_tokens(rule, None)
    assert tokens is not None
    return tokens


# ================================================================ PDFs
@dataclass(frozen=True, slots=True)
class PdfFacts:
    pages: int
    text_bytes: int  # a bound on the characters text extraction can yield

    def tokens(self, rule: ImageRule) -> int:
        return self.pages * (page_tokens(rule) + PAGE_OVERHEAD) + self.text_bytes


_STREAM = re.compile(rb"(?<!end)stream(?:\r\n|\n|\r)")
_LENGTH = re.compile(rb"/Length\s+(\d+)(?!\s+\d+\s+R)")
_FILTER = re.compile(rb"/Filter\s*(\[[^\]]*\]|/[A-Za-z0-9]+)")
_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z0-9])")
_COUNT = re.compile(rb"/Count\s+(\d+)")
_NOT_TEXT = re.compile(rb"/Subtype\s*/(?:Image|Type1C|CIDFontType0C|OpenType)\b|/Length[123]\b"
                       rb"|/Type\s*/(?:XRef|Metadata|EmbeddedFile)\b")
_OBJECT_STREAM = re.compile(rb"/Type\s*/ObjStm\b")
_IMAGE_FILTERS = frozenset({b"DCTDecode", b"JPXDecode", b"JBIG2Decode", b"CCITTFaxDecode"})


def pdf_facts(data: bytes) -> PdfFacts:
    """Page count and text bound of a PDF; MediaError when it cannot be bounded."""
    if not data.lstrip()[:5] == b"%PDF-":
        raise MediaError("it is not a PDF")
    if re.search(rb"/Encrypt\s", data):
        raise MediaError("it is encrypted")
    budget = [MAX_PDF_DECODED]
    pages = len(_PAGE.findall(data))
    counts = [int(c) for c in _COUNT.findall(data)]
    text = 0
    for match in _STREAM.finditer(data):
        start = match.end()
        head = data[data.rfind(b"obj", 0, match.start()) + 3:match.start()]
        length = _LENGTH.search(head)
        end = start + int(length.group(1)) if length else data.find(b"endstream", start)
        if end < start:
            end = len(data)
        filters = _filters(head)
        if _NOT_TEXT.search(head) or _IMAGE_FILTERS & set(filters):
            continue
        decoded = _decode(data[start:end], filters, budget)
        if _OBJECT_STREAM.search(head):  # compressed objects: pages may hide in here
            pages += len(_PAGE.findall(decoded))
            counts += [int(c) for c in _COUNT.findall(decoded)]
        else:
            text += len(decoded)
    pages = max([pages, *counts])
    if pages < 1:
        raise MediaError("its pages cannot be counted")
    return PdfFacts(pages=pages, text_bytes=text)


def _filters(head: bytes) -> list[bytes]:
    found = _FILTER.search(head)
    return re.findall(rb"/([A-Za-z0-9]+)", found.group(1)) if found else []


def _decode(raw: bytes, filters: list[bytes], budget: list[int]) -> bytes:
    out = raw
    for name in filters:
        if name in (b"FlateDecode", b"Fl"):
            inflater = zlib.decompressobj()
            try:
                decoded = inflater.decompress(out, budget[0] + 1)
            except zlib.error:
                decoded = b""  # a damaged stream: no reader gets text out of it either
            if len(decoded) > budget[0] or inflater.unconsumed_tail:
                raise MediaError("it holds more content than the gateway can bound")
            out = decoded
        elif name in (b"ASCIIHexDecode", b"AHx"):
            hexa = re.sub(rb"\s", b"", out).split(b">", 1)[0]
            out = binascii.unhexlify(hexa + b"0" * (len(hexa) % 2))
        elif name in (b"ASCII85Decode", b"A85"):
            try:
                out = base64.a85decode(out.strip().removesuffix(b"~>"))
            except ValueError:
                out = b""
        elif name in (b"RunLengthDecode", b"RL"):
            out = _run_length(out, budget[0])
        else:
            raise MediaError(f"a stream uses the {name.decode(errors='replace')} filter")
        if len(out) > budget[0]:
            raise MediaError("it holds more content than the gateway can bound")
    budget[0] -= len(out)
    return out


def _run_length(raw: bytes, limit: int) -> bytes:
    out = bytearray()
    i = 0
    while i < len(raw) and len(out) <= limit:
        n = raw[i]
        if n == 128:
            break
        if n < 128:
            out += raw[i + 1:i + 2 + n]
            i += 2 + n
        else:
            out += raw[i + 1:i + 2] * (257 - n)
            i += 2
    return bytes(out)


# ================================================================ base64
def decode_base64(text: str) -> bytes:
    """Standard or URL-safe base64 (Gemini takes both), line breaks allowed;
    MediaError otherwise."""
    text = "".join(text.split()).replace("-", "+").replace("_", "/")
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise MediaError("its data is not valid base64") from None
