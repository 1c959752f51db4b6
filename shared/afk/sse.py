"""Server-sent events framing: bytes in, events out; events in, bytes out.

Codecs never see bytes; this module never sees JSON semantics.
"""

from __future__ import annotations

import re

from afk.records import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(slots=True, frozen=True)
class ServerSentEvent:
    data: str
    event: str | None = None
    raw: bytes = b""  # the exact bytes of the event as received, blank line included


class SSEDecoder:
    """Incremental SSE parser (WHATWG rules; LF, CR and CRLF line ends).

    `feed(chunk)` returns the events completed by that chunk; `raw` keeps each
    event's original bytes so a passthrough can relay them unchanged.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._raw = bytearray()
        self._data: list[str] = []
        self._event: str | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        self._buffer += chunk
        events: list[ServerSentEvent] = []
        while True:
            line, sep, rest = self._split_line(self._buffer)
            if sep is None:
                return events
            self._buffer = rest
            self._raw += line + sep
            event = self._take_line(line.decode("utf-8"))
            if event is not None:
                events.append(event)

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered (a truncated stream)."""
        return bool(self._buffer.strip() or self._data or self._event is not None)

    def close(self) -> list[ServerSentEvent]:
        """End of stream: a final line ended by a lone CR is complete after all."""
        if not self._buffer.endswith(b"\r"):
            return []
        line, self._buffer = self._buffer[:-1], b""
        self._raw += line + b"\r"
        event = self._take_line(line.decode("utf-8"))
        return [event] if event is not None else []

    @staticmethod
    def _split_line(buffer: bytes) -> tuple[bytes, bytes | None, bytes]:
        match = _LINE_END.search(buffer)
        if match is None or (match.group() == b"\r" and match.end() == len(buffer)):
            return buffer, None, buffer  # no line end yet, or a \r that may be half of \r\n
        return buffer[: match.start()], match.group(), buffer[match.end():]

    def _take_line(self, line: str) -> ServerSentEvent | None:
        if line == "":
            if not self._data and self._event is None:
                self._raw.clear()
                return None
            event = ServerSentEvent(data="\n".join(self._data), event=self._event,
                                    raw=bytes(self._raw))
            self._data, self._event = [], None
            self._raw.clear()
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


def encode(data: str, event: str | None = None) -> bytes:
    """One event as bytes. Data with newlines is split over several `data:` lines."""
    head = f"event: {event}\n" if event else ""
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"{head}{body}\n".encode()
