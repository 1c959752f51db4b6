"""`afk dev`: every function app in one process, on an embedded DynamoDB.

Order matters to a first user: the port is taken first, so a busy port fails
before any account is created or key printed; then the store (embedded, or
AFK_DYNAMODB_ENDPOINT's), published in `.afk/dev.json` for `afk admin`; then
the demo account; then the server.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path

from afk.money import parse_usd, to_pico
from afk.settings import Settings

DEMO_CREDITS_USD = "10"


def _bind(host: str, port: int) -> socket.socket | None:
    """The listening socket, or None (said on stderr) when the port is taken."""
    # IPPROTO_TCP named, not 0: asyncio turns Nagle off only on sockets whose proto says
    # TCP (base_events._set_nodelay); with proto 0 every answer's body waited for the
    # caller's delayed ACK of its headers, ~40 ms per request (bench/LEVERS.md).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                         socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT, not a listener
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = ("is in use (is another `afk dev` running?)" if exc.errno == errno.EADDRINUSE
                  else f"cannot be opened ({exc.strerror})")
        print(f"afk: error: port {port} on {host} {reason}. Stop what holds it, or pick "
              f"another port: make dev ARGS='--port {port + 1}'. Nothing was created.",
              file=sys.stderr, flush=True)
        return None
    sock.set_inheritable(True)
    return sock


def run_dev(args: argparse.Namespace) -> int:
    import uvicorn

    from afk.gateway import Gateway
    from afk.http.apps import create_app
    from afk.local import devfile, snapshot
    from afk.store import Dynamo, Store, create_table

    sock = _bind(args.host, args.port)
    if sock is None:
        return 1
    settings = Settings.from_env()
    embedded = saver = published = aggregator = None
    data_dir = Path(args.data_dir).resolve() if args.data_dir else None
    try:
        if settings.dynamodb_endpoint is None:
            from afk.local.dynamodb import EmbeddedDynamoDB

            embedded = EmbeddedDynamoDB().start()
            settings = replace(settings, dynamodb_endpoint=embedded.endpoint)
            print(f"embedded DynamoDB (moto) at {embedded.endpoint}", flush=True)
        elif data_dir is not None:
            print("afk: error: --data-dir keeps the embedded store; with "
                  "AFK_DYNAMODB_ENDPOINT set, that store keeps its own data.", file=sys.stderr)
            return 2
        store = Store(Dynamo(settings.table, endpoint_url=settings.dynamodb_endpoint,
                             region=settings.region))
        try:
            if create_table(store.dynamo.client, settings.table):
                print(f"created table {settings.table}", flush=True)
        except Exception as exc:  # noqa: BLE001 - said in an operator's words, then stop
            print(f"afk: error: cannot use DynamoDB at {settings.dynamodb_endpoint} (table "
                  f"{settings.table!r}): {exc}. Check AFK_DYNAMODB_ENDPOINT, or unset it to "
                  "use the embedded store.", file=sys.stderr, flush=True)
            return 1
        kept = 0
        if data_dir is not None:
            kept = snapshot.load(store.dynamo.client, settings.table, data_dir)
            print(f"store kept in {data_dir} ({kept} items loaded)", flush=True)
            saver = snapshot.Saver(store.dynamo.client, settings.table, data_dir).start()
        url = f"http://{args.host}:{args.port}"
        published = devfile.publish(devfile.DevStore(
            endpoint=settings.dynamodb_endpoint or "", table=settings.table, gateway=url,
            pid=os.getpid()))
        print(f"afk admin works on this store from here ({published.relative_to(Path.cwd())})",
              flush=True)
        from afk.aggregator import local_poller

        # The usage aggregator on the table's stream, as the AggregatorFunction on AWS.
        aggregator = local_poller(store, settings.dynamodb_endpoint, settings.region).start()
        gateway = Gateway(settings, store=store)
        if not args.no_seed and not kept:
            account = store.accounts.create("Demo",
                                            credits=to_pico(parse_usd(DEMO_CREDITS_USD)))
            key, _ = store.keys.create(account.id, "demo", scope="manage")
            print(f"demo account {account.id} with ${DEMO_CREDITS_USD} of credits", flush=True)
            print(f"AFK_API_KEY={key}", flush=True)
        elif kept:
            print("kept store: no new demo account (your keys from before still work; "
                  "`afk admin accounts list` shows the accounts)", flush=True)
        print(f"afk gateway on {url}  (dashboard: /, API: /v1)", flush=True)
        config = uvicorn.Config(create_app("local", gateway), log_level=args.log_level,
                                access_log=args.log_level == "debug")
        _dev_logging(args.log_level)  # after uvicorn configured (and replaced) its handlers
        # uvicorn re-raises the SIGTERM it stopped on once it is done: make that an exit
        # that runs the cleanup below (the dev file, the store's last save), not a kill.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        if aggregator is not None:
            aggregator.stop()
        if published is not None:
            devfile.withdraw(published)
        if saver is not None:
            with contextlib.suppress(Exception):
                print(f"saved {saver.stop()} items to {data_dir}", flush=True)
        if embedded is not None:
            embedded.stop()
    return 0


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _dev_logging(level: str) -> None:
    """The gateway's own log lines on stderr next to uvicorn's, every handler
    redacting (the app's startup redoes this for whatever a server installs later)."""
    import logging

    from afk import observability

    root = logging.getLogger()
    if not root.handlers:  # else Python's last-resort handler, which nothing filters
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        root.addHandler(handler)
    logging.getLogger("afk").setLevel(level.upper())
    observability.install_redaction()
