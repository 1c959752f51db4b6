"""Cold start: exec of a fresh process -> its first answered request.

For every function app: `python bench/serve_app.py NAME PORT` (the app built by
create_app, as functions/<name>/app.py does, under uvicorn) and the parent
times Popen -> the first HTTP response (200, or 401 for an unauthenticated
call, which still builds the gateway's auth and its DynamoDB client). One
discarded warm-up run per app (bytecode compiled), then the median of RUNS.
LiteLLM's proxy is timed the same way, to its first answered GET /health/liveliness.
Also: `python -X importtime` of the chat app up to its first answer.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import (
    BENCH,
    LITELLM_VENV,
    PROJECT_PYTHON,
    free_port,
    median,
    stop,
)

RUNS = int(os.environ.get("BENCH_COLD_RUNS", "7"))
TIMEOUT = 120.0

# The first request each function answers: (method, path, body).
PROBES = {
    "models": ("GET", "/v1/models", None),
    "chat": ("POST", "/v1/chat/completions", b'{"model":"gpt-4o-mini","messages":[]}'),
    "responses": ("POST", "/v1/responses", b'{"model":"gpt-4o-mini","input":"hi"}'),
    "messages": ("POST", "/v1/messages", b'{"model":"gpt-4o-mini","max_tokens":8,'
                                          b'"messages":[]}'),
    "gemini": ("POST", "/v1beta/models/gpt-4o-mini:generateContent", b'{"contents":[]}'),
    "account": ("GET", "/v1/account", None),
    "dashboard": ("GET", "/", None),
}


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AFK_", "OPENAI_",
                                                                    "ANTHROPIC_", "GEMINI_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "0"
    return env


def first_answer(cmd: list[str], port: int, method: str, path: str, body: bytes | None,
                 env: dict[str, str], *, stderr=subprocess.DEVNULL) -> tuple[float, int, object]:
    """Seconds from exec to the first HTTP response, its status, and the process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
                            cwd=BENCH)
    deadline = start + TIMEOUT
    try:
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd} exited with {proc.returncode}")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
            try:
                conn.request(method, path, body=body,
                             headers={"content-type": "application/json"} if body else {})
                status = conn.getresponse().status
                return time.perf_counter() - start, status, proc
            except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
                time.sleep(0.002)
            finally:
                conn.close()
        raise TimeoutError(f"{cmd} did not answer within {TIMEOUT}s")
    except BaseException:
        stop(proc)
        raise


def app_cold_start(name: str, runs: int = RUNS) -> dict:
    method, path, body = PROBES[name]
    times, statuses = [], set()
    for i in range(runs + 1):
        port = free_port()
        cmd = [PROJECT_PYTHON, str(BENCH / "serve_app.py"), name, str(port)]
        seconds, status, proc = first_answer(cmd, port, method, path, body, _clean_env())
        stop(proc)
        statuses.add(status)
        if i:  # run 0 compiles bytecode and warms the page cache
            times.append(seconds)
    return {"app": name, "median_ms": median(times) * 1000, "min_ms": min(times) * 1000,
            "max_ms": max(times) * 1000, "runs": runs, "status": sorted(statuses)}


def litellm_cold_start(config: Path, runs: int = RUNS) -> dict:
    times = []
    env = {**_clean_env(), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    for i in range(runs + 1):
        port = free_port()
        cmd = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(config), "--host",
               "127.0.0.1", "--port", str(port), "--num_workers", "1"]
        seconds, _, proc = first_answer(cmd, port, "GET", "/health/liveliness", None, env)
        stop(proc)
        if i:
            times.append(seconds)
    return {"app": "litellm proxy", "median_ms": median(times) * 1000,
            "min_ms": min(times) * 1000, "max_ms": max(times) * 1000, "runs": runs}


def import_times(top: int = 15) -> dict:
    """`-X importtime` of the chat function up to its first answer: import time by
    top-level package (sum of its modules' self times) and the heaviest modules."""
    port = free_port()
    method, path, body = PROBES["chat"]
    cmd = [PROJECT_PYTHON, "-X", "importtime", str(BENCH / "serve_app.py"), "chat", str(port)]
    log = BENCH / "out" / "importtime-chat.txt"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as err:
        _, _, proc = first_answer(cmd, port, method, path, body, _clean_env(), stderr=err)
        stop(proc)
    rows = []
    for line in log.read_text().splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        rows.append((name.strip(), int(self_us), int(cumulative_us), depth))
    total_us = sum(r[1] for r in rows)
    roots: dict[str, int] = {}
    for name, self_us, _, _ in rows:  # self time is exclusive: it sums without overlap
        root = name.split(".")[0]
        roots[root] = roots.get(root, 0) + self_us
    heavy_roots = sorted(roots.items(), key=lambda kv: -kv[1])[:top]
    heavy_self = sorted(rows, key=lambda r: -r[1])[:top]
    return {"total_ms": total_us / 1000,
            "packages": [{"package": k, "self_ms": v / 1000} for k, v in heavy_roots],
            "modules": [{"module": r[0], "self_ms": r[1] / 1000} for r in heavy_self]}


def run(litellm_config: Path | None) -> dict:
    from afk.http.apps import APPS  # noqa: PLC0415 - the list, from the library itself

    out = {"apps": [app_cold_start(name) for name in APPS], "imports": import_times()}
    if litellm_config is not None:
        out["litellm"] = litellm_cold_start(litellm_config)
    return out


if __name__ == "__main__":
    config = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print(json.dumps(run(config), indent=2))
