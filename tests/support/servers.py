"""Run ASGI apps on real loopback sockets for tests.

``serve(app)`` starts uvicorn in a daemon thread on a socket we bind ourselves to port 0,
so the port is known before the server starts and there is no "pick a free port, then
bind it" race. Any number of servers can run side by side (one thread and one event loop
each).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

__all__ = ["serve"]


@contextmanager
def serve(
    app: Any,
    host: str = "127.0.0.1",
    *,
    startup_timeout: float = 10.0,
    shutdown_timeout: float = 2.0,
) -> Iterator[str]:
    """Serve ``app`` on ``host`` and yield its base URL, e.g. ``http://127.0.0.1:54321``.

    On exit the server is asked to stop gracefully; requests still in flight after
    ``shutdown_timeout`` seconds (e.g. a deliberately stalled stream) are cancelled.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.set_inheritable(True)
    port: int = sock.getsockname()[1]

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=shutdown_timeout,
        # Providers keep connections open for a minute or more; uvicorn's 5 s default
        # races the client's reuse of an idle connection (a ReadError under load).
        timeout_keep_alive=75,
    )
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            # uvicorn skips signal handlers off the main thread, so this is thread-safe.
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - surfaced to the caller below
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if errors or not thread.is_alive():
                raise RuntimeError(f"server on port {port} failed to start") from (
                    errors[0] if errors else None
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"server on port {port} did not start in {startup_timeout}s")
            time.sleep(0.005)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(shutdown_timeout + 1.0)
        if thread.is_alive():
            # Skip waiting for open connections; asyncio.run() then cancels what's left.
            server.force_exit = True
            thread.join(5.0)
        sock.close()
