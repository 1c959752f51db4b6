"""The offline `echo` models: deterministic answers derived from the prompt.

They let every endpoint work with no provider key (local development, demos,
tests): the reply repeats the last user message, word by word, and usage is
counted in words (one token per whitespace-separated word), so billing is
visible and exact.

A stream yields to the event loop after every word, delay or not: generated
in one tight loop, a long echo never let the server notice a client that had
hung up (uvicorn learns of it in a callback the loop must get to run), so it
generated and billed the whole answer as `ok`. Now it stops where the client
left and is billed as `disconnected`, like any upstream.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

from afk import ir
from afk.providers import Call, Completion, Frame, UpstreamStream


def _words(text: str) -> list[str]:
    return text.split()


def _prompt_text(request: ir.Request) -> list[str]:
    texts: list[str] = []
    for message in request.messages:
        for block in message.content:
            if isinstance(block, ir.Text):
                texts.append(block.text)
            elif isinstance(block, ir.ToolResult):
                texts += [p.text for p in block.content if isinstance(p, ir.Text)]
    return texts


def reply_words(request: ir.Request) -> list[str]:
    last_user = next((m for m in reversed(request.messages) if m.role == "user"), None)
    said = " ".join(b.text for b in (last_user.content if last_user else [])
                    if isinstance(b, ir.Text))
    return ["Echo:", *(_words(said) or ["(silence)"])]


class EchoProvider:
    name = "echo"
    dialect = None

    def __init__(self, word_delay: float = 0.0) -> None:
        self._word_delay = word_delay

    def _plan(self, call: Call) -> tuple[list[str], ir.Usage, ir.StopReason]:
        words = reply_words(call.request)
        limit = call.request.max_output_tokens or len(words)
        stop: ir.StopReason = "length" if len(words) > limit else "stop"
        words = words[:limit]
        usage = ir.Usage(input_tokens=sum(len(_words(t)) for t in _prompt_text(call.request)),
                         output_tokens=len(words))
        return words, usage, stop

    async def prepare(self, call: Call) -> None:
        return None

    def upstream_body(self, call: Call, *, stream: bool) -> None:
        return None  # offline: the quote estimates from the request itself

    async def count_tokens(self, call: Call) -> int | None:
        return sum(len(_words(t)) for t in _prompt_text(call.request))

    async def complete(self, call: Call) -> Completion:
        words, usage, stop = self._plan(call)
        return Completion(response=ir.Response(
            id=f"echo-{uuid.uuid4().hex[:24]}", model=call.model.id, created=int(time.time()),
            content=[ir.Text(text=" ".join(words))], stop_reason=stop, usage=usage))

    async def open_stream(self, call: Call) -> UpstreamStream:
        words, usage, stop = self._plan(call)

        async def frames() -> AsyncIterator[list[Frame]]:
            yield [Frame(events=[ir.StreamStart(id=f"echo-{uuid.uuid4().hex[:24]}",
                                                model=call.model.id, created=int(time.time()))])]
            for i, word in enumerate(words):
                await asyncio.sleep(self._word_delay)  # 0: a turn of the loop, see above
                yield [Frame(events=[ir.TextDelta(index=0,
                                                  text=word if i == 0 else " " + word)])]
            yield [Frame(events=[ir.UsageUpdate(usage=usage), ir.StreamEnd(stop_reason=stop)])]

        return UpstreamStream(frames=frames())
