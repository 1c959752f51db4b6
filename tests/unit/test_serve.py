"""`python -m afk.serve` (what run.sh execs) serves the folder's `app:app` on
127.0.0.1:$PORT, without uvicorn's command line (click, its supervisors) loaded, with
the C HTTP parser and event loop."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.paths import ROOT

SHARED = ROOT / "shared"

APP = '''
import asyncio
import sys

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    loaded = sorted({m.split(".")[0] for m in sys.modules} & {"click", "multiprocessing",
                                                              "websockets", "h11"})
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    body = repr((loaded, loop, scope["path"])).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
'''


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serves_the_folders_app_without_uvicorns_command_line(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    port = _port()
    env = {**os.environ, "PORT": str(port), "PYTHONPATH": f"{SHARED}{os.pathsep}{tmp_path}"}
    proc = subprocess.Popen([sys.executable, "-m", "afk.serve"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/probe")
                response = conn.getresponse()
                break
            except OSError:
                assert time.monotonic() < deadline, "afk.serve never answered"
                time.sleep(0.05)
        assert response.status == 200
        # httptools parses (h11 never imported), on uvloop's loop (afk/serve.py)
        assert response.read() == repr(([], "uvloop", "/probe")).encode()
        assert response.getheader("server") == "uvicorn"
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode in (0, -15)  # stopped by our SIGTERM
