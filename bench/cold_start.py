"""Cold start of the local server: `afk dev` exec -> its first answered request.

`afk dev` with its embedded DynamoDB, as a user starts it; the parent times
Popen -> the first answered chat completion (billed, through the fake upstream).
One discarded warm-up run (bytecode compiled), then the median of RUNS. LiteLLM's
proxy is timed the same way, to its first answered GET /health/liveliness (its
cheapest route, which flatters it). Each Lambda function's own cold start, and
the import profile of the chat function, are functions.py's.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    BENCH,
    LITELLM_VENV,
    PROJECT_PYTHON,
    child_pids,
    cpu_seconds,
    free_port,
    median,
    peak_rss_mb,
    stop,
    wait_for_port,
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
    # What Lambda puts in every function's environment (the DynamoDB client signs with it).
    env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
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


def afk_dev_cold_start(upstream: str, runs: int = RUNS) -> dict:
    """`afk dev` (the whole local server, its embedded DynamoDB included): exec ->
    its first answered chat completion, made with the demo key it prints."""
    times, cpus, store_cpus, rss = [], [], [], float("nan")
    env = {**_clean_env(), "OPENAI_BASE_URL": upstream + "/v1", "OPENAI_API_KEY": "sk-bench"}
    body = json.dumps({"model": "gpt-4o-mini", "max_tokens": 64,
                       "messages": [{"role": "user", "content": "Hi."}]}).encode()
    for i in range(runs + 1):
        port = free_port()
        with tempfile.TemporaryDirectory() as cwd:  # it writes .afk/dev.json there
            start = time.perf_counter()
            proc = subprocess.Popen([PROJECT_PYTHON, "-m", "afk", "dev", "--port", str(port),
                                     "--log-level", "warning"], env=env, cwd=cwd,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                assert proc.stdout is not None
                key = next(line.strip().split("=", 1)[1] for line in proc.stdout
                           if line.startswith("AFK_API_KEY="))
                status = _poll(port, "POST", "/v1/chat/completions", body,
                               {"content-type": "application/json",
                                "authorization": f"Bearer {key}"}, proc)
                seconds = time.perf_counter() - start
                cpu = cpu_seconds(proc.pid)
                # Its embedded DynamoDB's process (afk/local/aws.py), which starts
                # alongside it: on its own core here, so counted apart.
                store_cpu = sum(cpu_seconds(pid) for pid in child_pids(proc.pid))
                if status != 200:
                    raise RuntimeError(f"afk dev answered {status}")
                rss = peak_rss_mb(proc.pid)
            finally:
                stop(proc)
        if i:
            times.append(seconds)
            cpus.append(cpu)
            store_cpus.append(store_cpu)
    return {"app": "afk dev", "median_ms": median(times) * 1000,
            "cpu_ms": median(cpus) * 1000, "store_cpu_ms": median(store_cpus) * 1000, "min_ms": min(times) * 1000,
            "max_ms": max(times) * 1000, "runs": runs, "status": [200], "peak_rss_mb": rss}


def _poll(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str],
          proc: subprocess.Popen) -> int:
    deadline = time.perf_counter() + TIMEOUT
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers)
            return conn.getresponse().status
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
            time.sleep(0.002)
        finally:
            conn.close()
    raise TimeoutError(f"nothing answered on port {port} within {TIMEOUT}s")


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


def run(litellm_config: Path | None) -> dict:
    up_port = free_port()
    upstream = subprocess.Popen([PROJECT_PYTHON, str(BENCH / "fake_upstream.py"), str(up_port)],
                                cwd=BENCH, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(up_port, upstream)
        out = {"afk_dev": afk_dev_cold_start(f"http://127.0.0.1:{up_port}"),
               "load": os.getloadavg()}
    finally:
        stop(upstream)
    if litellm_config is not None:
        out["litellm"] = litellm_cold_start(litellm_config)
    return out


if __name__ == "__main__":
    config = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    print(json.dumps(run(config), indent=2))
