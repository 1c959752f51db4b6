"""AWS event-stream framing (`application/vnd.amazon.eventstream`), decoded incrementally.

The binary framing of Bedrock's ConverseStream (and every AWS streaming API), as
documented in "Event stream encoding"
(https://docs.aws.amazon.com/lexv2/latest/dg/event-stream-encoding.html, the same
format as https://docs.aws.amazon.com/transcribe/latest/dg/event-stream.html):

    prelude   total length (u32 BE, the whole message) | headers length (u32 BE)
    prelude CRC32 (u32 BE, of the 8 prelude bytes)
    headers   repeated: name length (u8) | name (UTF-8) | value type (u8) | value
    payload   total - headers - 16 bytes
    message CRC32 (u32 BE, of everything before it)

CRC32 is the GZIP one (zlib.crc32). A header value is, by type: 0 true, 1 false
(no bytes), 2 byte, 3 short, 4 int, 5 long (signed, BE), 6 bytes and 7 string
(u16 BE length first), 8 timestamp (i64 ms), 9 UUID (16 bytes).

Like the SSE decoder (afk/sse.py) this is framing only: bytes in, messages out, no
meaning. A corrupt frame raises: the gateway never guesses past a bad checksum.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import field
from typing import Any

from afk.errors import UpstreamError
from afk.records import dataclass

PRELUDE = 12  # two lengths and the prelude CRC
OVERHEAD = 16  # the prelude and the message CRC
MAX_MESSAGE = 16 * 1024 * 1024  # AWS: a message is at most 16 MB
_FIXED = {2: ">b", 3: ">h", 4: ">i", 5: ">q", 8: ">q"}


@dataclass(frozen=True, slots=True)
class Message:
    headers: dict[str, Any] = field(default_factory=dict)
    payload: bytes = b""

    @property
    def data(self) -> str:
        """The payload as text (Bedrock's payloads are JSON)."""
        return self.payload.decode("utf-8", "replace")


class EventStreamDecoder:
    """Bytes in, whole messages out, however the bytes are split across reads."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished message are held (the stream ended mid-message)."""
        return bool(self._buffer)

    def feed(self, chunk: bytes) -> list[Message]:
        self._buffer += chunk
        messages = []
        while len(self._buffer) >= PRELUDE:
            total, headers_length, prelude_crc = struct.unpack_from(">III", self._buffer)
            if zlib.crc32(self._buffer[:8]) != prelude_crc:
                raise UpstreamError("The upstream event stream is corrupt (prelude checksum).")
            if not OVERHEAD + headers_length <= total <= MAX_MESSAGE:
                raise UpstreamError("The upstream event stream is corrupt (message length).")
            if len(self._buffer) < total:
                break
            frame = bytes(self._buffer[:total])
            del self._buffer[:total]
            (message_crc,) = struct.unpack_from(">I", frame, total - 4)
            if zlib.crc32(frame[:-4]) != message_crc:
                raise UpstreamError("The upstream event stream is corrupt (message checksum).")
            end = PRELUDE + headers_length
            messages.append(Message(headers=_headers(frame[PRELUDE:end]),
                                    payload=frame[end:total - 4]))
        return messages

    def close(self) -> list[Message]:
        return []


def _headers(raw: bytes) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    at = 0
    try:
        while at < len(raw):
            size = raw[at]
            name = raw[at + 1:at + 1 + size].decode("utf-8")
            kind = raw[at + 1 + size]
            at += 2 + size
            if kind in (0, 1):
                headers[name] = kind == 0
            elif kind in _FIXED:
                fmt = _FIXED[kind]
                (headers[name],) = struct.unpack_from(fmt, raw, at)
                at += struct.calcsize(fmt)
            elif kind in (6, 7):
                (length,) = struct.unpack_from(">H", raw, at)
                value = raw[at + 2:at + 2 + length]
                if len(value) != length:
                    raise ValueError("short header value")
                headers[name] = value.decode("utf-8") if kind == 7 else value
                at += 2 + length
            elif kind == 9:
                headers[name] = raw[at:at + 16]
                at += 16
            else:
                raise ValueError(f"header type {kind}")
    except (IndexError, ValueError, struct.error, UnicodeDecodeError):
        raise UpstreamError("The upstream event stream is corrupt (headers).") from None
    return headers
