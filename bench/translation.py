"""In-process translation costs, no I/O: request translation per dialect pair and
stream translation per chunk per dialect pair, with the codecs of afk.dialects.

Request: `parse_request` of the caller's dialect, then `render_request` of the
upstream's, on a 1 KB, 10 KB and 100 KB chat (system prompt, alternating user
and assistant turns, one tool). The same body is produced in every dialect by
rendering one IR request with each codec.

Stream: 200 text deltas (plus start, usage and end) rendered by the upstream
dialect's StreamEncoder give the upstream's wire events; the upstream's
StreamDecoder feeds the caller's StreamEncoder. "codec" times exactly that;
"full" adds what the gateway does around it per chunk: SSE parsing of the
upstream bytes (afk.sse.SSEDecoder), the meter, and SSE encoding of the output.
Times are CPU time (time.process_time), median of REPEATS, per request / per
upstream event.
"""

from __future__ import annotations

import copy
import gc
import json
import time
from collections.abc import Callable
from typing import Any

from afk import ir, sse
from afk.billing.meter import Meter
from afk.dialects import anthropic, gemini, openai_chat, openai_responses

DIALECTS = {"openai_chat": openai_chat, "openai_responses": openai_responses,
            "anthropic": anthropic, "gemini": gemini}
SIZES = {"1KB": 1_000, "10KB": 10_000, "100KB": 100_000}
STREAM_CHUNKS = 200
REPEATS = 5
MODEL = "bench-model"


def _cpu_per_call(fn: Callable[[], Any], *, min_seconds: float = 0.1,
                  repeats: int = REPEATS) -> float:
    """Median CPU seconds per call of `fn`, over `repeats` timed batches."""
    fn()
    n, start = 1, time.process_time()
    while time.process_time() - start < 0.02 and n < 1_000_000:
        fn()
        n += 1
    batch = max(1, int(n * min_seconds / max(time.process_time() - start, 1e-9)))
    results = []
    gc.collect()
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(batch):
            fn()
        results.append((time.process_time() - start) / batch)
    return sorted(results)[len(results) // 2]


# ------------------------------------------------------------------ requests
def _chat_body(size: int) -> dict[str, Any]:
    """An OpenAI Chat body of about `size` bytes of JSON."""
    sentence = "The quick brown fox jumps over the lazy dog near the river bank. "
    body: dict[str, Any] = {
        "model": MODEL, "max_tokens": 512, "temperature": 0.2,
        "messages": [{"role": "system", "content": "You are a concise assistant."}],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Current weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}}],
    }
    turn = 0
    while len(json.dumps(body)) < size:
        role = "user" if turn % 2 == 0 else "assistant"
        body["messages"].append({"role": role, "content": sentence * 3})
        turn += 1
    if body["messages"][-1]["role"] != "user":
        body["messages"].append({"role": "user", "content": "Go on."})
    return body


def _bodies(size: int) -> dict[str, tuple[Any, Callable[[Any], ir.Request]]]:
    """The same request in every dialect, with the function parsing it."""
    request = openai_chat.parse_request(_chat_body(size))
    out = {}
    for name, codec in DIALECTS.items():
        body = codec.render_request(copy.deepcopy(request), model=MODEL)
        if name == "gemini":
            out[name] = (body, lambda b: gemini.parse_request(b, model=MODEL, stream=False))
        else:
            out[name] = (body, codec.parse_request)
    return out


def request_matrix() -> list[dict[str, Any]]:
    rows = []
    for label, size in SIZES.items():
        bodies = _bodies(size)
        for src, (body, parse) in bodies.items():
            for dst, codec in DIALECTS.items():
                def translate(body=body, parse=parse, codec=codec) -> None:
                    codec.render_request(parse(body), model=MODEL)

                rows.append({"size": label, "bytes": len(json.dumps(body)), "from": src,
                             "to": dst, "us": _cpu_per_call(translate) * 1e6})
            rows.append({"size": label, "bytes": len(json.dumps(body)), "from": src,
                         "to": "parse only",
                         "us": _cpu_per_call(lambda body=body, parse=parse: parse(body)) * 1e6})
    return rows


# ------------------------------------------------------------------ streams
def _ir_stream(chunks: int) -> list[ir.StreamEvent]:
    events: list[ir.StreamEvent] = [ir.StreamStart(id="resp_bench", model=MODEL,
                                                   created=1_700_000_000)]
    events += [ir.TextDelta(index=0, text=f" word{i}") for i in range(chunks)]
    events.append(ir.UsageUpdate(usage=ir.Usage(input_tokens=12, output_tokens=chunks)))
    events.append(ir.StreamEnd(stop_reason="stop"))
    return events


def _upstream_events(codec: Any, chunks: int) -> list[sse.ServerSentEvent]:
    encoder = codec.StreamEncoder(model=MODEL, include_usage=True)
    out: list[sse.ServerSentEvent] = []
    for event in _ir_stream(chunks):
        out += encoder.feed(event)
    return out


def stream_matrix(chunks: int = STREAM_CHUNKS) -> list[dict[str, Any]]:
    rows = []
    for up_name, up in DIALECTS.items():
        events = _upstream_events(up, chunks)
        raw = [sse.encode(e.data, e.event) for e in events]
        for caller_name, caller in DIALECTS.items():
            def codec_only(up=up, caller=caller, events=events) -> None:
                decoder = up.StreamDecoder()
                encoder = caller.StreamEncoder(model=MODEL, include_usage=False)
                for event in events:
                    for item in decoder.feed(event):
                        encoder.feed(item)
                for item in decoder.finish():
                    encoder.feed(item)

            def full(up=up, caller=caller, raw=raw) -> None:
                framing = sse.SSEDecoder()
                decoder = up.StreamDecoder()
                encoder = caller.StreamEncoder(model=MODEL, include_usage=False)
                meter = Meter()
                for chunk in raw:
                    for event in framing.feed(chunk):
                        for item in decoder.feed(event):
                            meter.feed(item)
                            for out in encoder.feed(item):
                                sse.encode(out.data, out.event)
                for item in decoder.finish():
                    meter.feed(item)
                    for out in encoder.feed(item):
                        sse.encode(out.data, out.event)

            rows.append({"upstream": up_name, "caller": caller_name, "events": len(events),
                         "codec_us": _cpu_per_call(codec_only) / len(events) * 1e6,
                         "full_us": _cpu_per_call(full) / len(events) * 1e6})
    return rows


def run() -> dict[str, Any]:
    return {"requests": request_matrix(), "streams": stream_matrix()}


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
