"""Gateway overhead: the same fake upstream reached directly, through the gateway,
and through a LiteLLM proxy, in one run, each server in its own process.

Processes: the fake upstream (bench/fake_upstream.py, every stream event its own
write, GAP_MS apart); the gateway (`afk dev` as a user starts it: the whole local
server) and its embedded DynamoDB, which `afk dev` runs in a process of its own
with the usage aggregator (afk/local/aws.py), so its CPU is counted apart from the
gateway's; the LiteLLM proxy (one worker, no database).
On a machine with 2+ CPUs the server under test (gateway or LiteLLM) is pinned
to CPU 1 and everything else (this load client, the upstream, moto) to CPU 0.

Scenarios, run round-robin over the targets: non-stream chat completions at
concurrency 1 and 32, a 200-chunk stream at concurrency 1 with the upstream's
events back to back (each its own write: a proxy reads whatever arrived since its
last read) and GAP_MS apart (one event per read), and the same through the
Anthropic Messages route (translated to the OpenAI upstream) for the gateway.
Each is bounded in requests and in seconds. Beside the gateway and LiteLLM runs
the floor (bench/floor_proxy.py): raw asyncio Protocols and httptools, no auth,
billing, translation or JSON, the least any Python proxy spends on this machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from common import (
    BENCH,
    LITELLM_VENV,
    PROJECT_PYTHON,
    child_pids,
    cpu_seconds,
    free_port,
    peak_rss_mb,
    percentile,
    pinned,
    stop,
    wait_for_port,
)

MODEL = "gpt-4o-mini"
CHUNKS = 200
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
GAP_MS = float(os.environ.get("BENCH_GAP_MS", "1"))
WARMUP = 30
# LiteLLM refuses to start without a master key; with one and no database it
# checks callers against it (as the gateway checks its keys), and tracks no spend.
LITELLM_KEY = "sk-bench-" + "5f0c" * 16

CHAT = {"model": MODEL, "max_tokens": 256,
        "messages": [{"role": "user", "content": "Say hello to the benchmark."}]}
MESSAGES = {"model": MODEL, "max_tokens": 256,
            "messages": [{"role": "user", "content": "Say hello to the benchmark."}]}


@dataclass
class Scenario:
    name: str
    path: str  # "chat" or "messages"
    stream: bool
    concurrency: int
    requests: int
    seconds: float
    gap_ms: float = 0.0  # between the upstream's stream events


BACK_TO_BACK = "back to back"
APART = f"{GAP_MS:g} ms apart"
SCENARIOS = [
    Scenario("chat c=1", "chat", False, 1, int(400 * SCALE), 60),
    Scenario("chat c=32", "chat", False, 32, int(2000 * SCALE), 60),
    # Back to back a stream costs little CPU: more of them, for the 10 ms clock tick.
    Scenario(f"chat stream {CHUNKS} chunks, {BACK_TO_BACK}", "chat", True, 1,
             int(100 * SCALE), 60),
    Scenario(f"chat stream {CHUNKS} chunks, {APART}", "chat", True, 1, int(30 * SCALE), 60,
             GAP_MS),
    Scenario("messages c=1 (translated)", "messages", False, 1, int(300 * SCALE), 60),
    Scenario(f"messages stream {CHUNKS} chunks, {BACK_TO_BACK} (translated)", "messages",
             True, 1, int(100 * SCALE), 60),
    Scenario(f"messages stream {CHUNKS} chunks, {APART} (translated)", "messages", True, 1,
             int(30 * SCALE), 60, GAP_MS),
]


@dataclass
class Target:
    name: str
    base: str
    headers: dict[str, str]
    pids: dict[str, int]  # role -> pid, CPU and memory read from each
    paths: dict[str, str] = field(default_factory=dict)
    idle: dict[str, float] = field(default_factory=dict)  # CPU s/s with nothing in flight


def litellm_config(upstream: str, path: Path) -> Path:
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: sk-bench\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  drop_params: true\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n")
    return path


async def _one(client: httpx.AsyncClient, url: str, body: dict[str, Any],
               headers: dict[str, str], stream: bool) -> tuple[float, float]:
    """(latency, time to first byte) in seconds; raises unless 200."""
    start = time.perf_counter()
    if not stream:
        response = await client.post(url, json=body, headers=headers)
        ttfb = time.perf_counter() - start
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
        return time.perf_counter() - start, ttfb
    ttfb = None
    async with client.stream("POST", url, json={**body, "stream": True},
                             headers=headers) as response:
        if response.status_code != 200:
            await response.aread()
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
        async for _ in response.aiter_raw():
            if ttfb is None:
                ttfb = time.perf_counter() - start
    return time.perf_counter() - start, ttfb or 0.0


def idle_rates(target: Target, seconds: float = 4.0) -> dict[str, float]:
    """CPU seconds per second each process of `target` burns with no request in
    flight (`afk dev` polls its table's stream for the usage aggregator, which
    the deployed functions do not: on AWS that is the AggregatorFunction)."""
    before = {role: cpu_seconds(pid) for role, pid in target.pids.items()}
    time.sleep(seconds)
    return {role: (cpu_seconds(pid) - before[role]) / seconds
            for role, pid in target.pids.items()}


async def _load(target: Target, scenario: Scenario) -> dict[str, Any]:
    url = target.base + target.paths[scenario.path]
    body = CHAT if scenario.path == "chat" else MESSAGES
    limits = httpx.Limits(max_connections=scenario.concurrency + 4,
                          max_keepalive_connections=scenario.concurrency + 4)
    async with httpx.AsyncClient(limits=limits, timeout=60.0) as client:
        for _ in range(WARMUP if not scenario.stream else 5):
            await _one(client, url, body, target.headers, scenario.stream)
        latencies: list[float] = []
        ttfbs: list[float] = []
        remaining = scenario.requests
        resets = 0
        deadline = time.perf_counter() + scenario.seconds

        async def worker() -> None:
            nonlocal remaining, resets
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                try:
                    latency, ttfb = await _one(client, url, body, target.headers,
                                               scenario.stream)
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    # A kept-alive connection the server closed as it was reused (the
                    # idle-timeout race every HTTP/1.1 client meets): counted, then once
                    # more on a fresh connection, for every target alike.
                    resets += 1
                    latency, ttfb = await _one(client, url, body, target.headers,
                                               scenario.stream)
                latencies.append(latency)
                ttfbs.append(ttfb)

        cpu_before = {role: cpu_seconds(pid) for role, pid in target.pids.items()}
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(scenario.concurrency)))
        wall = time.perf_counter() - start
        cpu_after = {role: cpu_seconds(pid) for role, pid in target.pids.items()}
    n = len(latencies)
    return {
        "target": target.name, "scenario": scenario.name, "requests": n,
        "rps": n / wall, "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "ttfb_p50_ms": percentile(ttfbs, 50) * 1000,
        # Minus what the process burns idle over the same wall time (idle_rates).
        "cpu_ms_per_request": {role: (cpu_after[role] - cpu_before[role]
                                      - target.idle.get(role, 0.0) * wall) / n * 1000
                               for role in target.pids},
        "idle_cpu_ms_per_request": {role: target.idle.get(role, 0.0) * wall / n * 1000
                                    for role in target.pids},
        "load": os.getloadavg()[0],
        "connection_resets": resets,
    }


def _spawn(cmd: list[str], env: dict[str, str], port: int, log: Path,
           *, stdout: Any = None) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=env, stdout=stdout or log.open("w"),
                            stderr=subprocess.STDOUT if stdout is None else log.open("w"),
                            cwd=BENCH / "out")  # `afk dev` writes its .afk/dev.json there
    wait_for_port(port, proc)
    return proc


def run(*, with_litellm: bool = True) -> dict[str, Any]:
    out_dir = BENCH / "out"
    out_dir.mkdir(exist_ok=True)
    two_cpus = (os.cpu_count() or 1) >= 2
    if two_cpus:
        os.sched_setaffinity(0, {0})
    procs: list[subprocess.Popen] = []
    try:
        up_port = free_port()
        upstream = _spawn(pinned([PROJECT_PYTHON, str(BENCH / "fake_upstream.py"),
                                  str(up_port), str(CHUNKS)], 0),
                          dict(os.environ), up_port, out_dir / "upstream.log")
        procs.append(upstream)
        upstream_url = f"http://127.0.0.1:{up_port}"

        # `afk dev` as a user runs it: its embedded DynamoDB (and the usage aggregator
        # on the table's stream) in its own process, the "AWS side" (afk/local/aws.py),
        # moved to CPU 0 beside the upstream so the gateway has CPU 1 to itself.
        gw_port = free_port()
        gw_env = {k: v for k, v in os.environ.items() if not k.startswith("AFK_")}
        gw_env.update(OPENAI_BASE_URL=upstream_url + "/v1", OPENAI_API_KEY="sk-bench")
        gateway = subprocess.Popen(
            pinned([PROJECT_PYTHON, "-m", "afk", "dev", "--port", str(gw_port),
                    "--log-level", "warning"], 1), env=gw_env, stdout=subprocess.PIPE,
            stderr=(out_dir / "gateway.log").open("w"), text=True, cwd=out_dir)
        procs.append(gateway)
        account, key = _demo(gateway)
        wait_for_port(gw_port, gateway)
        (db_pid,) = child_pids(gateway.pid)
        if two_cpus:
            os.sched_setaffinity(db_pid, {0})
        # Credits for the whole run, through `afk admin` on the dev store (.afk/dev.json).
        subprocess.run([PROJECT_PYTHON, "-m", "afk", "admin", "credits", "add", "--account",
                        account, "--usd", "100000"], cwd=out_dir, env=gw_env, check=True,
                       capture_output=True)

        floor_port = free_port()
        floor = _spawn(pinned([PROJECT_PYTHON, str(BENCH / "floor_proxy.py"), str(floor_port),
                               str(up_port)], 1), dict(os.environ), floor_port,
                       out_dir / "floor.log")
        procs.append(floor)

        targets = [
            Target("direct", upstream_url, {"authorization": "Bearer sk-bench"},
                   {"upstream": upstream.pid}, {"chat": "/v1/chat/completions"}),
            Target("floor", f"http://127.0.0.1:{floor_port}", {},
                   {"server": floor.pid, "upstream": upstream.pid},
                   {"chat": "/v1/chat/completions"}),
            Target("gateway", f"http://127.0.0.1:{gw_port}", {"authorization": f"Bearer {key}"},
                   {"server": gateway.pid, "dynamodb": db_pid, "upstream": upstream.pid},
                   {"chat": "/v1/chat/completions", "messages": "/v1/messages"}),
        ]
        litellm = None
        if with_litellm:
            config = litellm_config(upstream_url, out_dir / "litellm.yaml")
            ll_port = free_port()
            ll_env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                      "LITELLM_LOG": "ERROR"}
            litellm = _spawn(pinned([str(LITELLM_VENV / "bin" / "litellm"), "--config",
                                     str(config), "--host", "127.0.0.1", "--port",
                                     str(ll_port), "--num_workers", "1"], 1),
                             ll_env, ll_port, out_dir / "litellm.log")
            procs.append(litellm)
            targets.append(Target("litellm", f"http://127.0.0.1:{ll_port}",
                                  {"authorization": f"Bearer {LITELLM_KEY}"},
                                  {"server": litellm.pid, "upstream": upstream.pid},
                                  # Not /v1/messages: LiteLLM sends it for OpenAI models to
                                  # the Responses API, which the fake upstream does not serve.
                                  {"chat": "/v1/chat/completions"}))

        for target in targets:
            target.idle = idle_rates(target)
        results = []
        for scenario in SCENARIOS:
            for target in targets:
                if scenario.path not in target.paths:
                    continue
                httpx.put(f"{upstream_url}/bench/gap",
                          content=str(scenario.gap_ms)).raise_for_status()
                try:
                    results.append(asyncio.run(_load(target, scenario)))
                except Exception as exc:  # noqa: BLE001 - one failed cell must not sink the run
                    results.append({"target": target.name, "scenario": scenario.name,
                                    "error": f"{type(exc).__name__}: {exc}"[:400]})
                print(f"  {target.name:8} {scenario.name:44} "
                      f"{_summary(results[-1])}", file=sys.stderr, flush=True)
        memory = {t.name: {role: peak_rss_mb(pid) for role, pid in t.pids.items()}
                  for t in targets}
        children = {}
        if litellm is not None:
            children["litellm"] = child_pids(litellm.pid)
        return {"results": results, "peak_rss_mb": memory, "pinned": two_cpus,
                "litellm_children": children, "gap_ms": GAP_MS, "chunks": CHUNKS,
                "idle_cpu_per_s": {t.name: t.idle for t in targets}}
    finally:
        for proc in reversed(procs):
            stop(proc)


def _summary(row: dict[str, Any]) -> str:
    if "error" in row:
        return "ERROR " + row["error"][:120]
    cpu = row["cpu_ms_per_request"].get("server")
    return (f"{row['requests']:5d} req  {row['rps']:7.1f} rps  p50 {row['p50_ms']:6.2f} ms  "
            f"p99 {row['p99_ms']:6.2f} ms" + (f"  cpu {cpu:.2f} ms/req" if cpu else ""))


def _demo(gateway: subprocess.Popen) -> tuple[str, str]:
    """The demo account and key `afk dev` prints."""
    account = ""
    assert gateway.stdout is not None
    for line in gateway.stdout:
        if line.startswith("demo account "):
            account = line.split()[2]
        elif line.startswith("AFK_API_KEY="):
            return account, line.strip().split("=", 1)[1]
    raise RuntimeError(f"afk dev exited with {gateway.wait()} before printing its key")


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
