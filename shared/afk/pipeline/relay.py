"""A streamed answer: the upstream's frames metered, encoded in the caller's
dialect (or relayed byte for byte), and billed before the end reaches the caller.

    unread --(first read)--> streaming --(the meter sees the end)--> billed
        --(upstream ends)--> done
    streaming --(GatewayError)--> failed: billed for what ran, the dialect's
                                  error event sent, done
    any state --(the caller goes away, the upstream ends early, or `aclose()`)
        --> done, billed by the reservation's exit if nothing billed it yet
        (a stream closed unread too: the caller left before its first byte)
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, Literal

import anyio

from afk import ir, sse
from afk.dialects.base import Decoder, Encoder
from afk.errors import GatewayError
from afk.pipeline.answering import Answering
from afk.providers import Frame, UpstreamStream

log = logging.getLogger("afk.pipeline")

State = Literal["unread", "streaming", "billed", "failed"]
# A failure after billing is an upstream error event after the end of the answer.
TRANSITIONS: dict[State, frozenset[State]] = {
    "unread": frozenset({"streaming", "failed"}), "streaming": frozenset({"billed", "failed"}),
    "billed": frozenset({"failed"}), "failed": frozenset()}
Batch = list[sse.ServerSentEvent]


class Relay:
    """One call's stream to the caller, what the HTTP layer sends: an async iterator
    of batches, which the HTTP layer closes (`aclose`) however it ends.

    `owner` holds the reservation (and the upstream's close): leaving it, however
    the stream ends, closes the upstream and settles what nothing settled yet. It
    is left as an `async with` around a generator would leave it (an error, the
    end, or GeneratorExit for a close mid-stream), by hand: an async generator
    and its `asend` per upstream read were a few µs of every one-event read
    (bench/LEVERS.md).
    """

    def __init__(self, answering: Answering, upstream: UpstreamStream,
                 owner: AsyncExitStack) -> None:
        self._answering = answering
        self._upstream = upstream
        self._owner = owner
        call, turn = answering.call, answering.turn
        self._encoder = answering.codec.StreamEncoder(
            model=call.model.id, include_usage=call.request.stream_usage, echo=turn.echo)
        self._seen: list[ir.StreamEvent] = []  # for a stateful turn's stored response
        self.state: State = "unread"
        self._frames: AsyncIterator[list[Frame]] | None = None  # once reading
        self._left = False  # the owner is left: nothing more comes
        self._bounded = False  # the upstream's frames stop at the deadline themselves

    def __aiter__(self) -> Relay:
        return self

    async def __anext__(self) -> Batch:
        if self._left:
            raise StopAsyncIteration
        if self._frames is None:
            if self.state != "unread":
                raise StopAsyncIteration  # closed unread
            self._enter("streaming")  # from here on the owner is left however it ends
            self._frames = self._upstream.frames
            self._bound()
        try:
            batch = await self._batch()
        except BaseException as error:
            await self._leave(error)
            raise
        if batch is None:
            await self._leave(None)
            raise StopAsyncIteration
        return batch

    async def aclose(self) -> None:
        """Stop: a stream never read settles now (the caller left before its first
        byte); one being read leaves its owner as a generator closed at its yield
        would (a no-op once it ended)."""
        if self._frames is not None:
            if not self._left:
                await self._leave(GeneratorExit())
        elif self.state == "unread":
            self._enter("failed")
            await self._owner.aclose()

    def _enter(self, state: State) -> None:
        if state not in TRANSITIONS[self.state]:
            raise RuntimeError(f"a stream cannot go from {self.state} to {state}")
        self.state = state

    def _bound(self) -> None:
        """Before the first read: the upstream's own timer bounds it where it has one."""
        if self._upstream.stop_at is not None:
            deadline = self._answering.deadline
            self._upstream.stop_at(deadline.at, deadline.error)
            self._bounded = True

    async def _leave(self, error: BaseException | None) -> None:
        self._left = True
        await self._owner.__aexit__(type(error) if error is not None else None, error,
                                    error.__traceback__ if error is not None else None)

    async def _batch(self) -> Batch | None:
        """The caller's next batch (what one upstream read brought), None at the end."""
        if self.state == "failed":  # its error event went out last
            return None
        frames = self._frames
        assert frames is not None
        try:
            while True:
                try:
                    batch = await (frames.__anext__() if self._bounded else self._next(frames))
                except StopAsyncIteration:
                    return None
                out: Batch = []
                for frame in batch:
                    out.extend(self._take(frame))
                    if self.state == "streaming" and self._answering.reservation.meter \
                            .completed:
                        await self._bill()
                if out:
                    return out
        except GatewayError as error:
            return await self._fail(error)

    async def _next(self, frames: AsyncIterator[list[Frame]]) -> list[Frame]:
        """The next batch within the deadline, for an upstream without a timer of its
        own (StopAsyncIteration at the end): the deadline bounds each wait only (a
        cancel scope never spans a yield). The upstream's one timer, where it has
        one, does the same without a cancel scope per batch (~10% of a relayed
        chunk's CPU)."""
        deadline = self._answering.deadline
        with anyio.move_on_after(deadline.at - time.monotonic()) as waiting:
            batch = await frames.__anext__()
        if waiting.cancelled_caught:
            raise deadline.error()
        return batch

    def _take(self, frame: Frame) -> Batch:
        """Meter one upstream frame and turn it into what the caller gets (no I/O)."""
        answering = self._answering
        for event in frame.events:
            answering.reservation.meter.feed(event)
        if answering.turn.completed is not None:
            self._seen.extend(frame.events)
        if answering.passthrough:
            relay = answering.turn.relay
            if not frame.relay or frame.raw is None:
                return []
            return [relay(frame.raw) if relay else frame.raw]
        return [out for event in frame.events for out in self._encoder.feed(event)]

    async def _bill(self) -> None:
        """Bill (and store the turn) before the terminal event: once the caller has
        seen the end of the answer, its ledger entry exists."""
        self._enter("billed")
        answering = self._answering
        await answering.reservation.settle("ok")
        if answering.turn.completed is not None:
            decoder = self._upstream.decoder
            final = decoder.final_response if answering.passthrough and decoder else None
            await answering.turn.completed(ir.collect(self._seen), final)

    async def _fail(self, error: GatewayError) -> Batch:
        """Bill what ran, then the failure as the caller's dialect frames it."""
        self._enter("failed")
        answering = self._answering
        await answering.reservation.fail(error)
        log.warning("stream failed after it started: %s", error.message)
        # A stateful stream (Responses) frames its error from where it stands:
        # the relayed upstream's position in a passthrough, ours otherwise.
        decoder = self._upstream.decoder
        source: Decoder[Any] | Encoder = decoder if answering.passthrough and decoder \
            else self._encoder
        failure: Batch = source.fail(error)
        relay = answering.turn.relay
        return [relay(out) if relay and answering.passthrough else out for out in failure]


async def close_upstream(upstream: UpstreamStream) -> None:
    """Stop reading and cancel the upstream request, even while being cancelled."""
    with anyio.CancelScope(shield=True):
        await upstream.aclose()
