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
        buffer = self._buffer + chunk if self._buffer else chunk
        if self._raw or b"\r" in buffer:  # mid-event, or CR line ends: line by line
            self._buffer = buffer
            return self._feed_lines([])
        # What upstreams send (LF line ends, whole `data:` or `event:` + `data:` blocks)
        # is cut at blank lines, no line-by-line work and no copy of `raw`
        # (bench/LEVERS.md); any other block goes line by line from where it starts.
        events: list[ServerSentEvent] = []
        start = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            event = _simple_block(buffer, start, end)
            if event is None:
                break
            events.append(event)
            start = end + 2
        self._buffer = buffer[start:] if start else buffer
        return self._feed_lines(events) if self._buffer else events

    def _feed_lines(self, events: list[ServerSentEvent]) -> list[ServerSentEvent]:
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


def _simple_block(buffer: bytes, start: int, end: int) -> ServerSentEvent | None:
    """The event `buffer[start:end]` (a block of LF-ended lines before a blank line)
    stands for when it is one `data: ` line, optionally after one `event: ` line;
    None for any other block (the line-by-line parser's)."""
    newline = buffer.find(b"\n", start, end)
    if newline < 0:
        if not buffer.startswith(b"data: ", start):
            return None
        return ServerSentEvent(data=buffer[start + 6:end].decode(), raw=buffer[start:end + 2])
    if not (buffer.startswith(b"event: ", start) and buffer.startswith(b"data: ", newline + 1)
            and buffer.find(b"\n", newline + 1, end) < 0):
        return None
    return ServerSentEvent(data=buffer[newline + 7:end].decode(),
                           event=buffer[start + 7:newline].decode(), raw=buffer[start:end + 2])


def encode(data: str, event: str | None = None) -> bytes:
    """One event as bytes. Data with newlines is split over several `data:` lines."""
    if "\n" not in data:  # compact JSON: one line
        return (f"event: {event}\ndata: {data}\n\n" if event else f"data: {data}\n\n").encode()
    head = f"event: {event}\n" if event else ""
    body = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"{head}{body}\n".encode()
