"""An ASGI app wrapped to record each exchange: what was asked, and every byte of
the answer as it was written (a transcript of the wire, keepalives included)."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class Exchange:
    method: str
    path: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)  # one per body write

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


class Recorder:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []

    def posts(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == "POST"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = Exchange(scope["method"], scope["path"])
        self.exchanges.append(exchange)

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                exchange.headers = {k.decode().lower(): v.decode()
                                    for k, v in message.get("headers", [])}
            elif message["type"] == "http.response.body" and message.get("body"):
                exchange.chunks.append(message["body"])
            await send(message)

        await self.app(scope, receive, recording)
