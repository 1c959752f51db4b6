"""CPU of the upstream call alone (bench/LEVERS.md, "the upstream client"): an
OpenAI provider against bench/fake_upstream.py in its own process, this process's
main-thread CPU (`time.thread_time`) per non-stream call and per relayed chunk of
a 200-chunk stream (open_stream + reading every batch of frames).

`python -m bench.profiling.upstream [GAP_MS [CALLS [STREAMS]]]`; with PROFILE=FILE,
a thread_time cProfile of the same loop is written to FILE (bench/profiling/group.py
reads it)."""

from __future__ import annotations

import asyncio
import cProfile
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from afk import ir
from afk.catalog import Catalog
from afk.providers import Call
from afk.providers.openai import OpenAIProvider
from afk.settings import Settings, Upstream

CHUNKS = 200


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the fake upstream did not start")


async def _measure(provider: OpenAIProvider, call: Call, stream_call: Call, calls: int,
                   streams: int, profile: cProfile.Profile | None) -> tuple[float, float, int]:
    for _ in range(5):  # warm: the pool's connection, imports, caches
        await provider.complete(call)
    if profile:
        profile.enable()
    started = time.thread_time()
    for _ in range(calls):
        await provider.complete(call)
    per_call = (time.thread_time() - started) / calls
    chunks = 0
    started = time.thread_time()
    for _ in range(streams):
        upstream = await provider.open_stream(stream_call)
        async for batch in upstream.frames:
            chunks += len(batch)
        await upstream.aclose()
    stream_cpu = time.thread_time() - started
    if profile:
        profile.disable()
    return per_call, stream_cpu, chunks


def main(gap_ms: float = 1.0, calls: int = 300, streams: int = 20) -> dict[str, float]:
    port = _port()
    root = Path(__file__).resolve().parents[1]
    server = subprocess.Popen([sys.executable, str(root / "fake_upstream.py"), str(port),
                               str(CHUNKS), str(gap_ms)])
    try:
        _wait(port)
        settings = Settings(upstreams={"openai": Upstream(f"http://127.0.0.1:{port}/v1", "k")})
        provider = OpenAIProvider(settings)
        model = next(m for m in Catalog.load() if m.provider == "openai"
                     and m.kind == "chat")
        messages = [ir.Message(role="user", content=[ir.Text(text="Hello")])]
        call = Call(request=ir.Request(model=model.id, messages=messages), model=model)
        stream_call = Call(request=ir.Request(model=model.id, messages=messages, stream=True,
                                              stream_usage=True), model=model)
        out = os.environ.get("PROFILE")
        profile = cProfile.Profile(time.thread_time) if out else None
        per_call, stream_cpu, chunks = asyncio.run(
            _measure(provider, call, stream_call, calls, streams, profile))
        if profile and out:
            profile.dump_stats(out)
        per_stream = stream_cpu / streams
        result = {"gap_ms": gap_ms, "call_ms": per_call * 1e3,
                  "stream_ms": per_stream * 1e3,
                  "chunk_us": (per_stream - per_call) / (chunks / streams) * 1e6,
                  "load": os.getloadavg()[0]}
        print(" ".join(f"{k}={v:.3f}" for k, v in result.items()), flush=True)
        return result
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(float(args[0]) if args else 1.0, int(args[1]) if len(args) > 1 else 300,
         int(args[2]) if len(args) > 2 else 20)
