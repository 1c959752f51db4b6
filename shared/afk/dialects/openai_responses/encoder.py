"""IR stream events -> Responses stream events for the caller (PROTOCOLS §2.3).

The encoder meets every rule `client.responses.stream()` enforces: the first
event is `response.created`; one response id throughout; each output item is
added once, before any event for its index, and done before the terminal
event; content parts are added before their deltas; item identity (id, or
call_id for calls) never changes. Items close in order when the next opens
(as OpenAI does), so clients that act on `output_item.done` (running a
function call) see it as early as possible. Item ids derive from the
response id and output index, as in `render_response`.
"""

from __future__ import annotations

import uuid
from typing import Any

from afk import ir
from afk.dialects.jsonwire import append_text, dumps
from afk.dialects.openai_responses import search
from afk.dialects.openai_responses.errors import failure
from afk.dialects.openai_responses.responses import ToolNames, render_call_item, response_object
from afk.dialects.openai_responses.wire import (
    ERROR_STOP,
    custom_input,
    item_id,
    signature_out,
    status_of,
)
from afk.errors import GatewayError
from afk.sse import ServerSentEvent

__all__ = ["StreamEncoder", "render_stream_error"]

_PREFIX = {"message": "msg", "function_call": "fc", "custom_tool_call": "ctc",
           "reasoning": "rs", "web_search_call": "ws"}


class StreamEncoder:
    """IR stream events -> the caller's Responses events, each with `event:` equal
    to its `type` and a `sequence_number` counting from 0.

    `echo` (see `echo_fields`) supplies the request fields the response objects
    repeat, and `echo["id"]`, if set, the response id (else the StreamStart's).
    Usage always arrives in the terminal event, so `include_usage` is moot.
    """

    def __init__(self, *, model: str, include_usage: bool,
                 echo: dict[str, Any] | None = None) -> None:
        self._model = model
        self._echo = echo or {}
        self._names = ToolNames(self._echo.get("tools"))
        self._id = ""
        self._created = 0
        self._sequence = 0
        self._started = False
        self._finished = False
        self._usage: ir.Usage | None = None
        self._items: list[dict[str, Any]] = []  # by output index, as they stand
        self._open: int | None = None  # output index of the item being streamed
        self._part_open = False  # the open message's last content part is still open
        self._where: dict[int, int] = {}  # IR block index -> output index
        self._args: dict[int, str] = {}  # output index -> call arguments so far
        self._part_block: int | None = None  # IR block of the open content part
        # Citations by IR text block, annotated when its part closes (its text whole).
        self._citations: dict[int, list[ir.Citation]] = {}
        self._parts: dict[int, dict[str, Any]] = {}  # IR text block -> its content part

    # ------------------------------------------------------------ framing
    def _emit(self, kind: str, **fields: Any) -> ServerSentEvent:
        data = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return ServerSentEvent(data=dumps(data), event=kind)

    def _response(self, status: str, **fields: Any) -> dict[str, Any]:
        return response_object(response_id=self._id, model=self._model, created=self._created,
                               status=status, echo=self._echo, output=self._items, **fields)

    # ------------------------------------------------------------ events
    def feed(self, event: ir.StreamEvent) -> list[ServerSentEvent]:
        if self._finished:
            raise ValueError("event after the end of the stream")
        if isinstance(event, ir.StreamStart):
            if self._started:
                raise ValueError("a second stream start")
            return self._start(event.id, event.created)
        if not self._started:
            raise ValueError(f"{event.type} event before the stream start")
        match event:
            case ir.TextDelta(index=index, text=text):
                return self._text(index, text, "output_text") if text else []
            case ir.RefusalDelta(index=index, text=text):
                return self._text(index, text, "refusal") if text else []
            case ir.ThinkingDelta():
                return self._thinking(event)
            case ir.ToolCallStart():
                return self._call_start(event)
            case ir.ToolCallDelta(index=index, arguments=arguments):
                return self._call_delta(index, arguments)
            case ir.UsageUpdate(usage=usage):
                self._usage = usage
                return []
            case ir.WebSearchDone(index=index, call=call):
                return self._search(index, call)
            case ir.CitationDelta(index=index, citation=citation):
                return self._citation(index, citation)
            case ir.StreamEnd(stop_reason=reason):
                return self._end(reason)
        raise TypeError(f"unknown stream event {event!r}")

    def fail(self, error: GatewayError) -> list[ServerSentEvent]:
        """End the stream with `response.failed` (after `response.created`, if
        nothing was sent yet), the output so far and `error`. The pipeline
        should prefer this to the stateless `render_stream_error`."""
        if self._finished:
            raise ValueError("the stream has already ended")
        out = [] if self._started else self._start(f"resp_{uuid.uuid4().hex}", 0)
        self._finished = True
        response = self._response("failed", error=failure(error), usage=self._usage)
        return [*out, self._emit("response.failed", response=response)]

    def _start(self, response_id: str, created: int) -> list[ServerSentEvent]:
        self._started = True
        self._id = str(self._echo.get("id") or response_id)
        self._created = created
        return [self._emit("response.created", response=self._response("in_progress")),
                self._emit("response.in_progress", response=self._response("in_progress"))]

    def _end(self, reason: ir.StopReason) -> list[ServerSentEvent]:
        out = self._close()
        self._finished = True
        status, incomplete = status_of(reason)
        kind = {"completed": "response.completed", "incomplete": "response.incomplete",
                "failed": "response.failed"}[status]
        response = self._response(status, usage=self._usage or ir.Usage(),
                                  incomplete_details=incomplete,
                                  error=dict(ERROR_STOP) if status == "failed" else None)
        return [*out, self._emit(kind, response=response)]

    # ------------------------------------------------------------ items
    def _add(self, item: dict[str, Any]) -> list[ServerSentEvent]:
        """Close the open item and open `item` (given without id) at the next index."""
        out = self._close()
        index = len(self._items)
        self._items.append({"id": item_id(_PREFIX[item["type"]], self._id, index), **item})
        self._open = index
        return [*out, self._emit("response.output_item.added", output_index=index,
                                 item=self._items[index])]

    def _close(self) -> list[ServerSentEvent]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        item = self._items[index]
        out: list[ServerSentEvent] = []
        if item["type"] == "message":
            out += self._close_part(index)
            item["status"] = "completed"
        elif item["type"] == "reasoning" and item["summary"]:
            text = item["summary"][0]["text"]
            where = {"item_id": item["id"], "output_index": index, "summary_index": 0}
            out += [self._emit("response.reasoning_summary_text.done", **where, text=text),
                    self._emit("response.reasoning_summary_part.done", **where,
                               part={"type": "summary_text", "text": text})]
        elif item["type"] == "function_call":
            item.update(status="completed", arguments=self._args[index])
            out.append(self._emit("response.function_call_arguments.done", item_id=item["id"],
                                  output_index=index, arguments=item["arguments"]))
        elif item["type"] == "custom_tool_call":
            item["input"] = custom_input(self._args[index])
            where = {"item_id": item["id"], "output_index": index}
            if item["input"]:  # freeform input is whole only once its JSON is
                out.append(self._emit("response.custom_tool_call_input.delta", **where,
                                      delta=item["input"]))
            out.append(self._emit("response.custom_tool_call_input.done", **where,
                                  input=item["input"]))
        return [*out, self._emit("response.output_item.done", output_index=index, item=item)]

    def _close_part(self, index: int) -> list[ServerSentEvent]:
        if not self._part_open:
            return []
        self._part_open = False
        out = self._close_text(index)
        self._part_block = None
        return out

    def _close_text(self, index: int) -> list[ServerSentEvent]:
        item = self._items[index]
        content_index = len(item["content"]) - 1
        part = item["content"][content_index]
        where = {"item_id": item["id"], "output_index": index, "content_index": content_index}
        if part["type"] == "output_text":
            out = [*self._annotate(where, part),
                   self._emit("response.output_text.done", **where, text=part["text"],
                              logprobs=[])]
        else:
            out = [self._emit("response.refusal.done", **where, refusal=part["refusal"])]
        return [*out, self._emit("response.content_part.done", **where, part=part)]

    def _enter(self, block: int, item: dict[str, Any]) -> list[ServerSentEvent]:
        """Make IR block `block` stream into the open item, opening `item` unless
        the block's item is the open one. A block resuming after its item closed
        (interleaved upstream blocks) continues in a new item."""
        if self._where.get(block) == self._open and self._open is not None:
            return []
        out = [] if self._joins_message(item) else self._add(item)
        assert self._open is not None
        self._where[block] = self._open
        return out

    def _joins_message(self, item: dict[str, Any]) -> bool:
        # Consecutive text and refusal blocks share one message, as in render_response.
        return (item["type"] == "message" and self._open is not None
                and self._items[self._open]["type"] == "message")

    def _text(self, block: int, text: str, kind: str) -> list[ServerSentEvent]:
        if kind == "output_text" and self._part_block == block and self._open is not None \
                and self._where.get(block) == self._open:
            return [self._more_text(text)]
        new_part = (self._where.get(block) != self._open or self._open is None
                    or self._part_block != block)
        out = self._enter(block, {"type": "message", "status": "in_progress",
                                  "role": "assistant", "content": []})
        assert self._open is not None
        item = self._items[self._open]
        if new_part:
            out += self._close_part(self._open)
            self._part_block = block
            part: dict[str, Any] = ({"type": "output_text", "text": "", "annotations": []}
                                    if kind == "output_text" else
                                    {"type": "refusal", "refusal": ""})
            out.append(self._emit("response.content_part.added", item_id=item["id"],
                                  output_index=self._open,
                                  content_index=len(item["content"]), part=dict(part)))
            item["content"].append(part)
            self._parts[block] = part
            self._part_open = True
        content_index = len(item["content"]) - 1
        where = {"item_id": item["id"], "output_index": self._open,
                 "content_index": content_index}
        part = item["content"][content_index]
        append_text(part, "text" if kind == "output_text" else "refusal", text)
        if kind == "output_text":
            return [*out, self._emit("response.output_text.delta", **where, delta=text,
                                     logprobs=[])]
        return [*out, self._emit("response.refusal.delta", **where, delta=text)]

    def _more_text(self, text: str) -> ServerSentEvent:
        """Nearly every event: more text for the open part of the open message, the
        `response.output_text.delta` `_text` would emit, written without its dicts."""
        assert self._open is not None
        item = self._items[self._open]
        content_index = len(item["content"]) - 1
        append_text(item["content"][content_index], "text", text)
        sequence, self._sequence = self._sequence, self._sequence + 1
        return ServerSentEvent(
            data=f'{{"type":"response.output_text.delta","sequence_number":{sequence},'
                 f'"item_id":{dumps(item["id"])},"output_index":{self._open},'
                 f'"content_index":{content_index},"delta":{dumps(text)},"logprobs":[]}}',
            event="response.output_text.delta")

    def _thinking(self, event: ir.ThinkingDelta) -> list[ServerSentEvent]:
        if not event.text and not event.signature:
            return []
        out = self._enter(event.index, {"type": "reasoning", "summary": []})
        assert self._open is not None
        item = self._items[self._open]
        if event.signature:
            previous = item.get("encrypted_content") if event.redacted else None
            signature = (previous or "") + event.signature  # redacted data may come in parts
            item["encrypted_content"] = signature_out(event.provider, signature,
                                                      redacted=event.redacted)
        if not event.text:
            return out
        where = {"item_id": item["id"], "output_index": self._open, "summary_index": 0}
        if not item["summary"]:
            item["summary"].append({"type": "summary_text", "text": ""})
            out.append(self._emit("response.reasoning_summary_part.added", **where,
                                  part={"type": "summary_text", "text": ""}))
        append_text(item["summary"][0], "text", event.text)
        return [*out, self._emit("response.reasoning_summary_text.delta", **where,
                                 delta=event.text)]

    def _search(self, block: int, call: ir.WebSearchCall) -> list[ServerSentEvent]:
        """A hosted search, whole: its item and progress events, as OpenAI sends them."""
        out = self._add(search.render_call(call, status="in_progress"))
        assert self._open is not None
        self._where[block] = index = self._open
        item = self._items[index]
        where = {"item_id": item["id"], "output_index": index}
        out += [self._emit(f"response.web_search_call.{step}", **where)
                for step in ("in_progress", "searching", "completed")]
        item["status"] = "completed"
        return [*out, *self._close()]

    def _citation(self, block: int, citation: ir.Citation) -> list[ServerSentEvent]:
        """Held until the block's text part closes: providers cite before, during or
        after the text, and an annotation spans text that must be whole by then. A
        citation for a part already closed (Gemini cites in its last event) has no
        event left to ride: it joins the part in the terminal response's output."""
        part = self._parts.get(block)
        if part is not None and self._part_block != block:
            part["annotations"].append(search.render_annotation(citation, part["text"]))
        else:
            self._citations.setdefault(block, []).append(citation)
        return []

    def _annotate(self, where: dict[str, Any], part: dict[str, Any]) -> list[ServerSentEvent]:
        out = []
        for citation in self._citations.pop(self._part_block, []) \
                if self._part_block is not None else []:
            annotation = search.render_annotation(citation, part["text"])
            part["annotations"].append(annotation)
            out.append(self._emit("response.output_text.annotation.added", **where,
                                  annotation_index=len(part["annotations"]) - 1,
                                  annotation=annotation))
        return out

    def _call_start(self, event: ir.ToolCallStart) -> list[ServerSentEvent]:
        if event.index in self._where:
            raise ValueError(f"a second start for tool call block {event.index}")
        out: list[ServerSentEvent] = []
        if event.signature:  # another provider's per-call signature rides ahead of it
            out += self._add({"type": "reasoning", "summary": [], "encrypted_content":
                              signature_out(event.provider, event.signature)})
        call = ir.ToolCall(id=event.id, name=event.name, arguments="")
        item = render_call_item(call, self._names, status="in_progress", arguments="")
        out += self._add(item)
        assert self._open is not None
        self._where[event.index] = self._open
        self._args[self._open] = ""
        return out

    def _call_delta(self, block: int, arguments: str) -> list[ServerSentEvent]:
        index = self._where.get(block)
        if index is None or index != self._open:
            raise ValueError(f"arguments for tool call block {block}, which is not open")
        self._args[index] += arguments
        item = self._items[index]
        if item["type"] != "function_call" or not arguments:
            return []  # a custom call's input is sent whole when it closes
        return [self._emit("response.function_call_arguments.delta", item_id=item["id"],
                           output_index=index, delta=arguments)]


def render_stream_error(error: GatewayError) -> list[ServerSentEvent]:
    """`response.created` + `response.failed` for a stream that has sent nothing.

    Stateless, so it cannot continue a stream already under way (the SDK needs
    one response id throughout): the pipeline should prefer `fail(error)` of
    the state machine that produced the caller's stream when it has one
    (`StreamEncoder.fail` when translating, `StreamDecoder.fail` when relaying).
    """
    return StreamEncoder(model="", include_usage=False).fail(error)
