"""DynamoDB round trips per request on a warm path, and the time spent waiting on them.

An in-process gateway (create_app("local") over httpx's ASGI transport) against
the embedded DynamoDB and the fake upstream, each in its own process. Every
DynamoDB call is counted by operation with botocore's event hooks
(`before-call.dynamodb.*` / `after-call.dynamodb.*`) and timed between the two.
The first request fills the key and account caches; the next ones are warm.
A cProfile of warm non-stream requests names where the gateway's own CPU goes.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import os
import pstats
import subprocess
import threading
import time
from collections import Counter
from typing import Any

import httpx
from common import BENCH, PROJECT_PYTHON, free_port, median, stop, wait_for_port

TABLE = "afk-bench-rt"
MODEL = "gpt-4o-mini"
WARM_REQUESTS = int(os.environ.get("BENCH_RT_REQUESTS", "100"))

CASES = {
    "chat": ("/v1/chat/completions", {"model": MODEL, "max_tokens": 64,
                                      "messages": [{"role": "user", "content": "hi"}]}),
    "chat stream": ("/v1/chat/completions", {"model": MODEL, "max_tokens": 64, "stream": True,
                                             "messages": [{"role": "user", "content": "hi"}]}),
    "messages (translated)": ("/v1/messages", {"model": MODEL, "max_tokens": 64,
                                               "messages": [{"role": "user",
                                                             "content": "hi"}]}),
    # The fake upstream speaks Chat Completions only: Responses cases use the offline
    # echo model (the round trips do not depend on the upstream).
    "responses, store=false (echo)": ("/v1/responses", {"model": "echo", "input": "hi",
                                                        "store": False}),
    "responses, stored turn (echo)": ("/v1/responses", {"model": "echo", "input": "hi"}),
}


class CallLog:
    """Counts and times DynamoDB calls made through one botocore client."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds = 0.0
        self.cpu = 0.0  # CPU of the calling thread inside botocore (serialize, sign, parse)
        self._local = threading.local()
        client.meta.events.register("before-call.dynamodb.*", self._before)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def _before(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1
        self._local.start = time.perf_counter()
        self._local.cpu = time.thread_time()

    def _after(self, **_: Any) -> None:
        self.seconds += time.perf_counter() - getattr(self._local, "start", time.perf_counter())
        self.cpu += time.thread_time() - getattr(self._local, "cpu", time.thread_time())

    def take(self) -> tuple[dict[str, int], float]:
        calls, seconds = dict(self.calls), self.seconds
        self.calls, self.seconds = Counter(), 0.0
        return calls, seconds

    def take_cpu(self) -> float:
        cpu, self.cpu = self.cpu, 0.0
        return cpu


async def _measure(client: httpx.AsyncClient, log: CallLog, key: str) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {key}"}
    out: dict[str, Any] = {}
    path, body = CASES["chat"]
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code == 200, response.text
    out["cold (first request)"] = {"calls": log.take()[0]}
    for name, (path, body) in CASES.items():
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == 200, (name, response.status_code, response.text[:300])
        calls, _ = log.take()
        out[name] = {"calls": calls}
    # Time waiting on DynamoDB per warm non-stream chat request, and the whole request.
    path, body = CASES["chat"]
    waits, totals = [], []
    log.take_cpu()
    for _ in range(WARM_REQUESTS):
        start = time.perf_counter()
        response = await client.post(path, json=body, headers=headers)
        totals.append(time.perf_counter() - start)
        assert response.status_code == 200
        waits.append(log.take()[1])
    out["chat"]["botocore_cpu_ms_per_request"] = log.take_cpu() / WARM_REQUESTS * 1000
    out["chat"]["dynamodb_wait_ms_p50"] = median(waits) * 1000
    out["chat"]["request_ms_p50"] = median(totals) * 1000
    return out


async def _profile(client: httpx.AsyncClient, key: str, n: int) -> str:
    headers = {"authorization": f"Bearer {key}"}
    path, body = CASES["chat"]
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        await client.post(path, json=body, headers=headers)
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(25)
    return text.getvalue()


def run() -> dict[str, Any]:
    from afk.gateway import Gateway
    from afk.http.apps import create_app
    from afk.settings import Settings

    out_dir = BENCH / "out"
    out_dir.mkdir(exist_ok=True)
    procs: list[subprocess.Popen] = []
    try:
        up_port = free_port()
        upstream = subprocess.Popen([PROJECT_PYTHON, str(BENCH / "fake_upstream.py"),
                                     str(up_port)], cwd=BENCH,
                                    stderr=(out_dir / "rt-upstream.log").open("w"))
        procs.append(upstream)
        wait_for_port(up_port, upstream)
        db = subprocess.Popen([PROJECT_PYTHON, str(BENCH / "dynamodb_server.py"),
                               str(free_port()), TABLE], stdout=subprocess.PIPE, text=True,
                              cwd=BENCH, stderr=(out_dir / "rt-dynamodb.log").open("w"))
        procs.append(db)
        seeded = json.loads(db.stdout.readline())
        env = {"AFK_TABLE": TABLE, "AFK_DYNAMODB_ENDPOINT": seeded["endpoint"],
               "OPENAI_BASE_URL": f"http://127.0.0.1:{up_port}/v1",
               "OPENAI_API_KEY": "sk-bench"}
        gateway = Gateway(Settings.from_env(env))
        log = CallLog(gateway.store.dynamo.client)
        app = create_app("local", gateway)

        async def main() -> dict[str, Any]:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway",
                                         timeout=60) as client:
                result = await _measure(client, log, seeded["key"])
                result["profile"] = await _profile(client, seeded["key"], 200)
            return result

        return asyncio.run(main())
    finally:
        for proc in reversed(procs):
            stop(proc)


if __name__ == "__main__":
    result = run()
    print(result.pop("profile"))
    print(json.dumps(result, indent=1))
