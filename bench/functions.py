"""Each Lambda function started as Lambda starts it, from `make build`'s output.

What runs is .aws-sam/build and nothing else (as tests/deploy/test_lambda_built.py runs
it): each function's folder and the built layers merged into one `opt/python`
(Lambda extracts every layer into /opt), on a python3.12 stand-in for the
runtime whose site-packages holds only what the runtime ships (boto3 and its
dependencies). DynamoDB is the embedded one in its own process
(bench/dynamodb_server.py), the provider the fake upstream.

* Web Adapter functions (Handler: run.sh): the parent execs the built run.sh
  (its /opt/python path moved to the merged layers), polls `GET /` as the
  adapter's readiness check does, then sends the function's first real call
  (an authenticated, billed request to the fake upstream). Cold start = exec ->
  that call answered; `ready` = exec -> the readiness check passing.
  `cpu` = the function process's own CPU time (utime+stime) at that answer,
  which the machine's other load does not inflate as it does wall time.
* Mangum functions (Handler: app.handler): a fresh python3.12 imports `app`
  from the function's folder (what the runtime's bootstrap does; its own
  bootstrap code is not ours and not counted) and calls `app.handler` on the
  function's sample event from events/ with the bench key; cold start = exec ->
  the handler's answer on stdout.

Then each function serves a little more (40 calls, and 5 streams where it
streams) and its peak RSS (VmHWM) is read. Without a build (`make build`) the
section is skipped and says so.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    BENCH,
    PROJECT_PYTHON,
    ROOT,
    cpu_seconds,
    free_port,
    import_table,
    median,
    peak_rss_mb,
    stop,
    wait_for_port,
)

BUILD = ROOT / ".aws-sam" / "build"
RUNS = int(os.environ.get("BENCH_COLD_RUNS", "7"))
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
PLACEHOLDER_KEY = "afk-EXAMPLE0000000000000000000000000000"
MODEL = "gpt-4o-mini"
TABLE = "afk-bench-functions"

# Web Adapter functions: (method, path, body, a stream body or None).
WEB_ADAPTER = {
    "ChatCompletionsFunction": (
        "/v1/chat/completions",
        {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "Hi."}]}),
    "MessagesFunction": (
        "/v1/messages",
        {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "Hi."}]}),
    "ResponsesFunction": (
        "/v1/responses", {"model": MODEL, "max_output_tokens": 64, "input": "Hi.",
                          "store": False}),
    "GeminiFunction": (
        f"/v1beta/models/{MODEL}:generateContent",
        {"contents": [{"role": "user", "parts": [{"text": "Hi."}]}]}),
}
# Mangum functions: the sample event of their first call.
MANGUM = {"ModelsFunction": "models_list", "AccountFunction": "account_get",
          "DashboardFunction": "dashboard"}
# The account function's framework floor (fastapi_floor/app.py), started as the
# account function is, on the same first call.
FLOOR = ("FastAPI floor", BENCH / "fastapi_floor", "account_get")

DRIVER = """
import json, os, resource, sys
import app
class Context:
    function_name = "bench"
    aws_request_id = "bench-request-1"
    def get_remaining_time_in_millis(self):
        return 30_000
events = [json.loads(line) for line in sys.stdin]
first = app.handler(events[0], Context())
cpu = os.times()
print("BENCH", json.dumps({"status": first["statusCode"], "cpu": cpu.user + cpu.system}),
      flush=True)
for event in events[1:]:
    app.handler(event, Context())
kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("BENCH", json.dumps({"rss_mb": kb / 1024}), flush=True)
"""


def _python312() -> str | None:
    candidates = [os.popen("command -v python3.12").read().strip(),
                  *sorted(map(str, Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")))]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    return None


def runtime(out: Path) -> Path:
    """A python3.12 venv standing in for the Lambda runtime (see tests/deploy/test_lambda_built.py)."""
    home = out / "lambda-runtime"
    if (home / "bin" / "python").exists():
        return home
    python = _python312()
    if python is None:
        raise RuntimeError("no python3.12 (on PATH or in pyenv)")
    subprocess.run([python, "-m", "venv", "--without-pip", str(home)], check=True)
    [site] = home.glob("lib/python3.12/site-packages")
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec and spec.origin, f"{name} is missing from the project venv"
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        if source.is_dir():
            shutil.copytree(source, site / source.name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, site / source.name)
    # The runtime ships these compiled; without bytecode every cold start would
    # compile botocore (seconds), which no Lambda does.
    subprocess.run([str(home / "bin" / "python"), "-m", "compileall", "-q", "-j", "0",
                    str(site)], check=True)
    return home


def host_dependencies(out: Path, python: Path) -> Path:
    """The dependency layer for this host's architecture when the build's native
    extensions are for another (arm64 on an x86_64 bench host): the same lock,
    installed the way layers/dependencies/Makefile installs it, so C extensions
    (PyYAML's loader) load here as they do on Lambda instead of falling back."""
    built = BUILD / "DependenciesLayer" / "python"
    machine = os.uname().machine
    if not any(machine not in so.name for so in built.rglob("*.so")):
        return built
    lock = ROOT / "layers" / "dependencies" / "requirements.txt"
    target = out / f"dependencies-{machine}"
    stamp = target / ".lock"
    if stamp.is_file() and stamp.read_text() == lock.read_text():
        return target
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run([PROJECT_PYTHON, "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", "--no-compile", "--require-hashes",
                    "--no-deps", "--requirement", str(lock), "--target", str(target),
                    "--only-binary=:all:", "--python-version", "3.12", "--implementation",
                    "cp"], check=True)
    subprocess.run([str(python), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
                    "unchecked-hash", str(target)], check=True)
    stamp.write_text(lock.read_text())
    return target


def merged_opt(out: Path, dependencies: Path) -> Path:
    """/opt as Lambda lays it out: every layer's python/ merged into one."""
    opt = out / "opt"
    target = opt / "python"
    if target.exists():
        for entry in target.iterdir():
            entry.unlink()
    target.mkdir(parents=True, exist_ok=True)
    for layer in (dependencies, BUILD / "AfkLayer" / "python"):
        for entry in layer.iterdir():
            link = target / entry.name
            if not link.exists():
                link.symlink_to(entry, target_is_directory=entry.is_dir())
    return opt


def _env(runtime_home: Path, endpoint: str, upstream: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AFK_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_",
                                "POWERTOOLS_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(AFK_TABLE=TABLE, AFK_DYNAMODB_ENDPOINT=endpoint,
               AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1",
               POWERTOOLS_SERVICE_NAME="afk", POWERTOOLS_METRICS_NAMESPACE="afk/bench",
               OPENAI_BASE_URL=upstream + "/v1", OPENAI_API_KEY="sk-bench",
               PYTHONDONTWRITEBYTECODE="1",  # the build is read-only on Lambda
               PATH=f"{runtime_home / 'bin'}:{os.environ.get('PATH', '')}", **extra)
    return env


def _request(port: int, method: str, path: str, body: bytes | None,
             headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def web_adapter_start(function: str, opt: Path, env: dict[str, str], key: str,
                      out: Path) -> dict[str, Any]:
    """One cold start of a run.sh function: ready ms, first call ms, status, the process."""
    folder = BUILD / function
    script = out / f"{function}.run.sh"
    script.write_text((folder / "run.sh").read_text().replace("/opt/python",
                                                              str(opt / "python")))
    port = free_port()
    path, body = WEB_ADAPTER[function]
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}",
               "x-goog-api-key": key}
    start = time.perf_counter()
    proc = subprocess.Popen(["sh", str(script)], cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=(out / f"{function}.log").open("w"),
                            env={**env, "PORT": str(port), "LAMBDA_TASK_ROOT": str(folder),
                                 "AWS_LWA_INVOKE_MODE": "response_stream"})
    try:
        while True:  # the Web Adapter's readiness check: any answer below 500 on GET /
            if proc.poll() is not None:
                raise RuntimeError(f"{function} exited with {proc.returncode}")
            try:
                if _request(port, "GET", "/", None, {})[0] < 500:
                    break
            except OSError:
                time.sleep(0.002)
        ready = time.perf_counter() - start
        status, answer = _request(port, "POST", path, json.dumps(body).encode(), headers)
        first = time.perf_counter() - start
        cpu = cpu_seconds(proc.pid)
        if status != 200:
            raise RuntimeError(f"{function}: {status} {answer[:300]!r}")
    except BaseException:
        stop(proc)
        raise
    return {"ready": ready, "first": first, "cpu": cpu, "status": status, "proc": proc,
            "port": port,
            "headers": headers}


def web_adapter_rss(started: dict[str, Any], function: str) -> float:
    """Peak RSS after 40 more calls and 5 streams."""
    path, body = WEB_ADAPTER[function]
    port, headers = started["port"], started["headers"]
    for i in range(45):
        call = dict(body)
        if i >= 40 and function != "ResponsesFunction":  # the fake streams chat only
            if "generateContent" in path:
                path = path.replace(":generateContent", ":streamGenerateContent?alt=sse")
            else:
                call["stream"] = True
        _request(port, "POST", path, json.dumps(call).encode(), headers)
    return peak_rss_mb(started["proc"].pid)


def _events(name: str, key: str, count: int) -> bytes:
    text = (ROOT / "events" / f"{name}.json").read_text().replace(PLACEHOLDER_KEY, key)
    line = json.dumps(json.loads(text)) + "\n"
    return (line * count).encode()


def mangum_start(function: str, opt: Path, env: dict[str, str], key: str,
                 out: Path, folder: Path | None = None, event: str | None = None
                 ) -> dict[str, Any]:
    folder = folder or BUILD / function
    events = _events(event or MANGUM[function], key, 41)
    start = time.perf_counter()
    proc = subprocess.Popen([env["PATH"].split(":")[0] + "/python", "-c", DRIVER], cwd=folder,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=(out / f"{folder.name}.log").open("w"),
                            env={**env, "PYTHONPATH": f"{folder}:{opt / 'python'}",
                                 "LAMBDA_TASK_ROOT": str(folder)})
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(events)
        proc.stdin.close()
        lines = (line for line in proc.stdout if line.startswith(b"BENCH "))  # not EMF lines
        first_line = next(lines, b"")
        first = time.perf_counter() - start
        if not first_line:
            raise RuntimeError(f"{function} answered nothing: see bench/out/{function}.log")
        answer = json.loads(first_line[6:])
        status, cpu = answer["status"], answer["cpu"]
        rss = json.loads(next(lines)[6:])["rss_mb"]
        proc.wait(30)
    finally:
        stop(proc)
    return {"first": first, "cpu": cpu, "status": status, "rss_mb": rss}


def chat_imports(opt: Path, env: dict[str, str], key: str, out: Path) -> dict[str, Any]:
    """`-X importtime` (PYTHONPROFILEIMPORTTIME, so run.sh is unchanged) of the built
    chat function, from exec to its first answered call."""
    started = web_adapter_start("ChatCompletionsFunction", opt,
                                {**env, "PYTHONPROFILEIMPORTTIME": "1"}, key, out)
    stop(started["proc"])
    return import_table((out / "ChatCompletionsFunction.log").read_text())


def _start(function: str, last: bool, opt: Path, env: dict[str, str], key: str, out: Path,
           **where: Any) -> dict[str, Any]:
    """One cold start of `function`; on the `last` one, its peak RSS too. `where`: a
    Mangum function's folder and event other than the build's (the floor)."""
    if function not in WEB_ADAPTER:
        return mangum_start(function, opt, env, key, out, **where)
    started = web_adapter_start(function, opt, env, key, out)
    try:
        started["rss_mb"] = web_adapter_rss(started, function) if last else float("nan")
    finally:
        stop(started["proc"])
    return started


def _row(function: str, starts: list[dict[str, Any]]) -> dict[str, Any]:
    """A function's figures from its starts, the first of which (it warmed the page
    cache) is left out."""
    kept = starts[1:]
    firsts = [s["first"] for s in kept]
    readies = [s["ready"] for s in kept if "ready" in s]
    row = {"function": function, "handler": "run.sh" if function in WEB_ADAPTER
           else "app.handler (Mangum)",
           "median_ms": median(firsts) * 1000, "min_ms": min(firsts) * 1000,
           "max_ms": max(firsts) * 1000,
           "ready_ms": median(readies) * 1000 if readies else None,
           "cpu_ms": median([s["cpu"] for s in kept]) * 1000, "runs": len(kept),
           "status": sorted({s["status"] for s in starts}), "peak_rss_mb": starts[-1]["rss_mb"]}
    print(f"  {function:26} {row['median_ms']:7.1f} ms  cpu {row['cpu_ms']:7.1f} ms  "
          f"rss {row['peak_rss_mb']:5.1f} MiB", file=sys.stderr, flush=True)
    return row


def run(runs: int = RUNS) -> dict[str, Any]:
    if not (BUILD / "template.yaml").is_file():
        return {"skipped": "no .aws-sam/build: run `make build` first"}
    out = BENCH / "out" / "functions"
    out.mkdir(parents=True, exist_ok=True)
    home = runtime(BENCH / "out")
    dependencies = host_dependencies(out, home / "bin" / "python")
    opt = merged_opt(out, dependencies)
    procs: list[subprocess.Popen[Any]] = []
    try:
        up_port = free_port()
        upstream = subprocess.Popen([PROJECT_PYTHON, str(BENCH / "fake_upstream.py"),
                                     str(up_port), "50"], cwd=BENCH,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(upstream)
        wait_for_port(up_port, upstream)
        db_port = free_port()
        db = subprocess.Popen([PROJECT_PYTHON, str(BENCH / "dynamodb_server.py"), str(db_port),
                               TABLE], stdout=subprocess.PIPE, text=True, cwd=BENCH,
                              stderr=(out / "dynamodb.log").open("w"))
        procs.append(db)
        assert db.stdout is not None
        seeded = json.loads(db.stdout.readline())
        env = _env(home, seeded["endpoint"], f"http://127.0.0.1:{up_port}")
        label, folder, event = FLOOR
        where: dict[str, dict[str, Any]] = {label: {"folder": folder, "event": event}}
        starts: dict[str, list[dict[str, Any]]] = {f: [] for f in (*WEB_ADAPTER, *MANGUM, label)}
        # Round robin, one start of each function per round: a slow minute of the
        # machine lands on every function alike, not on whichever ran in it.
        for i in range(runs + 1):
            for function, taken in starts.items():
                taken.append(_start(function, i == runs, opt, env, seeded["key"], out,
                                    **where.get(function, {})))
        rows = [_row(function, starts[function]) for function in (*WEB_ADAPTER, *MANGUM)]
        floor = _row(label, starts[label])
        return {"functions": rows, "floor": floor,
                "imports": chat_imports(opt, env, seeded["key"], out), "load": os.getloadavg()}
    finally:
        for proc in reversed(procs):
            stop(proc)


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
