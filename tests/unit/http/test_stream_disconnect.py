"""A caller that leaves while a stream's settlement is being written: the write and
what follows it (the settlement's metrics and log, the upstream's close) finish,
because the pipeline shields them (anyio) and a disconnect cancels the relay
through anyio's scope, which a shield holds off. A native `Task.cancel()` would not
be held off: the awaits after the write would be abandoned mid-way."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.to_thread
from starlette.types import Message

from afk import sse
from afk.http.streaming import SSE, Answer
from afk.pipeline import Admission, Outcome


class SettlingStream:
    """One batch, then the end of the stream, whose settlement (a write in a worker
    thread, shielded as the pipeline's reservation is) blocks until released."""

    def __init__(self, writing: threading.Event, release: threading.Event) -> None:
        self.writing, self.release = writing, release
        self.sent = False
        self.settled_and_after: list[str] = []

    def __aiter__(self) -> AsyncIterator[list[sse.ServerSentEvent]]:
        return self

    async def __anext__(self) -> list[sse.ServerSentEvent]:
        if not self.sent:
            self.sent = True
            return [sse.ServerSentEvent(data='{"delta": "Hi"}')]
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._write)
            self.settled_and_after.append("written")
            await asyncio.sleep(0)  # e.g. the upstream's close
            self.settled_and_after.append("observed")
        raise StopAsyncIteration

    def _write(self) -> None:
        self.writing.set()
        self.release.wait(5)

    async def aclose(self) -> None:
        return None


def test_a_disconnect_during_the_settlement_waits_for_it_and_what_follows() -> None:
    writing, release = threading.Event(), threading.Event()
    stream = SettlingStream(writing, release)
    sent: list[Message] = []

    async def generate(*, admitted: Callable[[Admission], None]) -> Outcome:
        admitted(Admission(headers={}, stream=True))
        return Outcome(stream=stream)

    async def receive() -> Message:  # the relay's watch for a disconnect
        await anyio.to_thread.run_sync(writing.wait, 5)  # the settlement is being written
        threading.Timer(0.2, release.set).start()  # ... and finishes after the caller left
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    async def main() -> None:
        answer = Answer(generate, codec=None, stream_framing=SSE,  # type: ignore[arg-type]
                        keepalive=0)
        await answer({"type": "http", "method": "POST", "path": "/"}, receive, send)

    asyncio.run(main())
    assert stream.settled_and_after == ["written", "observed"]
    assert sent[0]["type"] == "http.response.start"
    assert any(b"Hi" in m.get("body", b"") for m in sent[1:])
