"""What the upstream client sends and answers, and how it fails.

The subset of httpx's models the providers use (a request of bytes, a response's
status, case-insensitive headers, body and JSON), without their cost: no URL
objects, no cookies, no content decoders (the client asks for identity).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol


class TransportError(Exception):
    """The upstream connection failed; `transport.upstream_errors` words it for the caller."""


class ConnectFailed(TransportError):
    """No connection: refused, unresolvable host, TLS refused. The request was never sent."""


class ConnectTimeout(TransportError):
    """Connecting (or waiting for a free connection) took longer than the connect timeout."""


class ReadTimeout(TransportError):
    """The upstream sent no byte for longer than the read timeout."""


class WriteTimeout(TransportError):
    """The upstream took no byte of the request for longer than the write timeout."""


class DeadlineReached(TransportError):
    """The caller's deadline for the answer passed while waiting for it."""


class ProtocolFailure(TransportError):
    """The upstream broke HTTP: a malformed answer, or the connection closed mid-answer."""


class Headers(dict[str, str]):
    """Response headers by lower-case name (a repeated header's values joined by ', ');
    looked up case-insensitively."""

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name.lower() if isinstance(name, str) else name)

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)


@dataclass(slots=True)
class Request:
    """One upstream request: a URL with its query, headers, and the body's bytes."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""

    @classmethod
    def post_json(cls, url: str, body: Any, headers: dict[str, str]) -> Request:
        """A POST of `body` as JSON, encoded as httpx's `json=` does."""
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                             allow_nan=False).encode()
        return cls("POST", url, {"content-type": "application/json", **headers}, content)


@dataclass(slots=True)
class Response:
    """A whole answer: status, headers, body."""

    status_code: int
    headers: Headers
    content: bytes = b""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class Exchange(Protocol):
    """An answer being read: its status and headers, then its body (`read`: what
    arrived since the last read, None at the end; or `read_all`); `aclose` ends it
    (idempotent), whether or not the body was read."""

    status_code: int
    headers: Headers

    def read(self, until: float | None) -> Awaitable[bytes | None]:
        """`until`: the loop time (time.monotonic()) after which waiting for bytes
        raises DeadlineReached."""

    async def read_all(self) -> bytes: ...

    async def aclose(self) -> None: ...
