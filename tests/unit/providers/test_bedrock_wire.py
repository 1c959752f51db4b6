"""Bedrock's wire, below HTTP: the event-stream framing (checked against botocore's own
parser on the fake's bytes, fed in every split) and the Converse request codec."""

from __future__ import annotations

import struct
import zlib

import pytest
from botocore.eventstream import EventStreamBuffer

from afk import ir
from afk.errors import InvalidRequest, UpstreamError
from afk.providers.bedrock import converse
from afk.providers.eventstream import EventStreamDecoder, Message
from tests.fakes.fake_bedrock import Reply, encode_message

FRAMES = Reply(text="Hello there, friend!", cache_read=3,
               tool_calls=[{"id": "t1", "name": "f", "input": {"a": [1, 2]}}]).events()
STREAM = b"".join(FRAMES)
BOUNDARIES = {sum(len(f) for f in FRAMES[:i]) for i in range(len(FRAMES) + 1)}


def test_the_fakes_frames_are_what_botocore_reads():
    """The fake's encoder is right by an independent reader: AWS's own."""
    buffer = EventStreamBuffer()
    buffer.add_data(STREAM)
    theirs = [(m.headers, m.payload) for m in buffer]
    ours = EventStreamDecoder().feed(STREAM)
    assert [(m.headers, m.payload) for m in ours] == theirs
    assert [h[":event-type"] for h, _ in theirs][:2] == ["messageStart", "contentBlockDelta"]


@pytest.mark.parametrize("size", [1, 3, 7, 12, 13, 64, 1000])
def test_frames_decode_whatever_way_the_bytes_are_split(size):
    decoder = EventStreamDecoder()
    messages: list[Message] = []
    for at in range(0, len(STREAM), size):
        messages += decoder.feed(STREAM[at:at + size])
        fed = min(at + size, len(STREAM))
        # Whole messages leave as soon as their last byte is in; a part waits.
        assert decoder.pending == (fed not in BOUNDARIES)
        assert len(messages) == len([b for b in BOUNDARIES if 0 < b <= fed])
    assert not decoder.pending
    assert messages == EventStreamDecoder().feed(STREAM)


def test_every_header_type_is_read():
    name = b":x"
    raw = b"".join([
        bytes([len(name)]) + name + b"\x00",  # true
        bytes([2]) + b"b1" + b"\x01",  # false
        bytes([2]) + b"i1" + b"\x02" + struct.pack(">b", -3),
        bytes([2]) + b"i2" + b"\x03" + struct.pack(">h", -300),
        bytes([2]) + b"i4" + b"\x04" + struct.pack(">i", 70000),
        bytes([2]) + b"i8" + b"\x05" + struct.pack(">q", 2**40),
        bytes([2]) + b"by" + b"\x06" + struct.pack(">H", 3) + b"\x00\x01\x02",
        bytes([2]) + b"ts" + b"\x08" + struct.pack(">q", 1700000000000),
        bytes([2]) + b"id" + b"\x09" + bytes(range(16)),
    ])
    prelude = struct.pack(">II", 16 + len(raw) + 2, len(raw))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw + b"{}"
    (message,) = EventStreamDecoder().feed(head + struct.pack(">I", zlib.crc32(head)))
    assert message.headers == {":x": True, "b1": False, "i1": -3, "i2": -300, "i4": 70000,
                               "i8": 2**40, "by": b"\x00\x01\x02", "ts": 1700000000000,
                               "id": bytes(range(16))}
    assert message.payload == b"{}"


@pytest.mark.parametrize("corrupt_at, says", [(2, "prelude"), (9, "prelude"),
                                              (20, "message checksum"), (-1, "checksum")])
def test_a_corrupt_frame_raises_never_guesses(corrupt_at, says):
    frame = bytearray(encode_message({":event-type": "messageStart"}, b'{"role":"assistant"}'))
    frame[corrupt_at] ^= 0x40
    with pytest.raises(UpstreamError, match=says):
        EventStreamDecoder().feed(bytes(frame))


def _request(**fields) -> ir.Request:
    return ir.Request(model="m", messages=fields.pop("messages"), **fields)


def test_the_ir_renders_as_alternating_converse_turns():
    body = converse.render_request(_request(messages=[
        ir.Message(role="system", content=[ir.Text(text="Be brief.")]),
        ir.Message(role="user", content=[ir.Text(text="Weather?")]),
        ir.Message(role="assistant", content=[
            ir.Thinking(text="hidden", signature="sig", provider="anthropic"),
            ir.Text(text=""),
            ir.ToolCall(id="c1", name="w", arguments='{"city":"Oslo"}')]),
        ir.Message(role="tool", content=[ir.ToolResult(call_id="c1", content=[
            ir.Text(text="cold")], is_error=True)]),
        ir.Message(role="user", content=[ir.Text(text="And tomorrow?")]),
    ], tools=[ir.Tool(name="w", parameters={"properties": {"city": {"type": "string"}}})],
        tool_choice=ir.ToolChoice(mode="required"), max_output_tokens=50, top_p=0.5),
        model="m")
    assert body == {
        "system": [{"text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [{"text": "Weather?"}]},
            # another provider's reasoning cannot be read by Bedrock: dropped, as blank text
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "c1", "name": "w",
                                                           "input": {"city": "Oslo"}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "c1", "content": [{"text": "cold"}],
                                "status": "error"}},
                {"text": "And tomorrow?"}]}],
        "inferenceConfig": {"maxTokens": 50, "topP": 0.5},
        "toolConfig": {"tools": [{"toolSpec": {"name": "w", "inputSchema": {"json": {
            "type": "object", "properties": {"city": {"type": "string"}}}}}}],
            "toolChoice": {"any": {}}},
    }


@pytest.mark.parametrize("fields, param", [
    ({"top_k": 5}, "top_k"),
    ({"response_format": ir.ResponseFormat(type="json_object")}, "response_format"),
])
def test_what_converse_cannot_say_is_a_400_naming_it(fields, param):
    with pytest.raises(InvalidRequest) as refused:
        converse.render_request(_request(
            messages=[ir.Message(role="user", content=[ir.Text(text="hi")])], **fields),
            model="m")
    assert refused.value.param == param


def test_usage_adds_the_cache_reads_and_writes_converse_reports_beside_input():
    usage = converse.parse_usage({"inputTokens": 100, "outputTokens": 20,
                                  "cacheReadInputTokens": 30, "cacheWriteInputTokens": 7,
                                  "totalTokens": 157})
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens,
            usage.output_tokens) == (137, 30, 7, 20)
