"""What every benchmark shares: processes, ports, /proc readings, statistics.

Stdlib only, so the fake upstream and the runners import it without the project.
"""

from __future__ import annotations

import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PROJECT_PYTHON = str(ROOT / ".venv" / "bin" / "python")
LITELLM_VENV = BENCH / ".venv-litellm"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# This checkout's library, for this process and every process it starts (the
# project venv may hold another checkout's, or none).
SHARED = str(ROOT / "shared")
if SHARED not in sys.path:
    sys.path.insert(0, SHARED)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [SHARED, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started that still run (`afk dev`'s embedded DynamoDB)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set size, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.01)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


def stop(proc: subprocess.Popen | None) -> None:
    """Terminate one process we started (by its own pid), then kill it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def pinned(cmd: Sequence[str], cpu: int | None) -> list[str]:
    """`cmd` pinned to one CPU with taskset, when there is a CPU to spare."""
    if cpu is None or (os.cpu_count() or 1) < 2 or not _has("taskset"):
        return list(cmd)
    return ["taskset", "-c", str(cpu), *cmd]


def _has(tool: str) -> bool:
    return any((Path(d) / tool).exists() for d in os.environ.get("PATH", "").split(":"))


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": str(os.cpu_count()), "python": sys.version.split()[0],
            "os": f"{platform.system()} {platform.release()}"}


def import_table(text: str, top: int = 15) -> dict:
    """`-X importtime` output (stderr) summed: import time by top-level package (sum
    of its modules' self times, which are exclusive) and the heaviest modules."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line[len("import time:"):].split("|")
        rows.append((name.strip(), int(self_us)))
    roots: dict[str, int] = {}
    for name, self_us in rows:
        root = name.split(".")[0]
        roots[root] = roots.get(root, 0) + self_us
    heavy_roots = sorted(roots.items(), key=lambda kv: -kv[1])[:top]
    heavy_self = sorted(rows, key=lambda r: -r[1])[:top]
    return {"total_ms": sum(r[1] for r in rows) / 1000,
            "packages": [{"package": k, "self_ms": v / 1000} for k, v in heavy_roots],
            "modules": [{"module": r[0], "self_ms": r[1] / 1000} for r in heavy_self]}

