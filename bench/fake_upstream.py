"""A zero-latency fake OpenAI Chat Completions upstream, run in its own process.

`python bench/fake_upstream.py PORT [CHUNKS [GAP_MS]]`. A raw ASGI app (no framework) so it
costs as little CPU as possible; its bodies follow the wire format of
tests/fakes/fake_openai.py (PROTOCOLS.md §1): a non-stream completion, or a
stream of CHUNKS content chunks (default 200), the finish chunk, the usage chunk
when `stream_options.include_usage` is true, and `data: [DONE]`. Each event is
its own write; with GAP_MS > 0 the next one waits that long, so a proxy reading
the stream finds each event alone in its buffer (the worst case for per-chunk
CPU: nothing to batch); with 0 they go back to back, each still its own write,
and a proxy finds whatever arrived since its last read. `PUT /bench/gap` with a
body of milliseconds sets GAP_MS for the streams that follow (the bench runs
both cases against one gateway). `POST .../responses` answers a non-stream
Responses body.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

CHUNKS = 200


def _completion(model: str) -> bytes:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the "
                     "bench upstream!", "refusal": None, "annotations": []},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18,
                  "prompt_tokens_details": {"cached_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0}},
        "service_tier": "default", "system_fingerprint": "fp_bench",
    }, separators=(",", ":")).encode()


def _response(model: str) -> bytes:
    """A non-stream Responses API answer (POST /v1/responses), PROTOCOLS.md §2.2."""
    return json.dumps({
        "id": "resp_bench", "object": "response", "created_at": int(time.time()),
        "status": "completed", "error": None, "incomplete_details": None, "model": model,
        "output": [{"type": "message", "id": "msg_bench", "status": "completed",
                    "role": "assistant", "content": [{"type": "output_text", "annotations": [],
                                                      "text": "Hello from the bench upstream!"}]}],
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 6, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 18},
    }, separators=(",", ":")).encode()


def _stream(model: str, chunks: int, include_usage: bool) -> list[bytes]:
    created = int(time.time())

    def chunk(delta: dict | None, finish: str | None = None, usage: dict | None = None) -> bytes:
        body: dict = {"id": "chatcmpl-bench", "object": "chat.completion.chunk",
                      "created": created, "model": model,
                      "choices": [] if delta is None else
                      [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            body["usage"] = usage
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": f" word{i}"}) for i in range(chunks)]
    out.append(chunk({}, "stop"))
    if include_usage:
        out.append(chunk(None, usage={"prompt_tokens": 12, "completion_tokens": chunks,
                                      "total_tokens": 12 + chunks,
                                      "prompt_tokens_details": {"cached_tokens": 0},
                                      "completion_tokens_details": {"reasoning_tokens": 0}}))
    out.append(b"data: [DONE]\n\n")
    return out


def make_app(chunks: int = CHUNKS, gap: float = 0.0):
    state = {"gap": gap}

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "PUT" and scope["path"] == "/bench/gap":
            state["gap"] = float(raw) / 1000
            await _send(send, 200, b"{}", "application/json")
            return
        if scope["method"] == "POST" and scope["path"].endswith("/responses"):
            body = json.loads(raw or b"{}")
            await _send(send, 200, _response(str(body.get("model"))), "application/json")
            return
        if scope["method"] != "POST" or not scope["path"].endswith("/chat/completions"):
            await _send(send, 404, b'{"error":{"message":"not found","type":"invalid_request_'
                                   b'error","param":null,"code":null}}', "application/json")
            return
        body = json.loads(raw or b"{}")
        model = str(body.get("model") or "gpt-4o-mini")
        if not body.get("stream"):
            await _send(send, 200, _completion(model), "application/json")
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        # As the API does: never more output tokens (one a chunk) than the request allows.
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or chunks
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for event in _stream(model, min(chunks, int(limit)), include_usage):
            await send({"type": "http.response.body", "body": event, "more_body": True})
            if state["gap"]:
                await asyncio.sleep(state["gap"])
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


async def _send(send, status: int, body: bytes, content_type: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    import uvicorn

    port = int(sys.argv[1])
    chunks = int(sys.argv[2]) if len(sys.argv) > 2 else CHUNKS
    gap = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.0
    uvicorn.run(make_app(chunks, gap), host="127.0.0.1", port=port, log_level="warning",
                access_log=False, lifespan="off")
