"""`afk dev`: every function app in one process, on an embedded DynamoDB.

Order matters to a first user: the port is taken first, so a busy port fails
before any account is created or key printed; then the store (embedded, or
AFK_DYNAMODB_ENDPOINT's), published in `.afk/dev.json` for `afk admin`; then
the demo account; then the server. The embedded store runs in a process of its
own, started before anything heavy is imported here (afk/local/aws.py): the two
start side by side, and this process waits for it only at its first store call.
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
from typing import TYPE_CHECKING

from afk.money import parse_usd, to_pico
from afk.settings import Settings

if TYPE_CHECKING:
    import uvicorn

    from afk.gateway import Gateway
    from afk.local.aws import AwsSide

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
    sock = _bind(args.host, args.port)
    if sock is None:
        return 1
    settings = Settings.from_env()
    data_dir = Path(args.data_dir).resolve() if args.data_dir else None
    if settings.dynamodb_endpoint is not None and data_dir is not None:
        sock.close()
        print("afk: error: --data-dir keeps the embedded store; with "
              "AFK_DYNAMODB_ENDPOINT set, that store keeps its own data.", file=sys.stderr)
        return 2
    from afk.local.aws import AwsSide

    aws = None
    if settings.dynamodb_endpoint is None:
        # First: the embedded DynamoDB imports moto in its own process meanwhile.
        aws = AwsSide.take(settings.table, settings.region)
        settings = replace(settings, dynamodb_endpoint=aws.endpoint)
    else:
        AwsSide.discard()
    try:
        return _serve(args, sock, settings, aws, data_dir)
    finally:
        sock.close()
        if aws is not None:
            aws.stop()


def _serve(args: argparse.Namespace, sock: socket.socket, settings: Settings,
           aws: AwsSide | None, data_dir: Path | None) -> int:
    import uvicorn

    from afk.gateway import Gateway
    from afk.http.apps import create_app
    from afk.local import devfile, snapshot
    from afk.store import Dynamo, Store, create_table

    saver = published = aggregator = None
    store = Store(Dynamo(settings.table, endpoint_url=settings.dynamodb_endpoint,
                         region=settings.region))
    gateway = Gateway(settings, store=store)
    # No websocket route: uvicorn need not import a websocket library. The C HTTP
    # parser and event loop, as the functions run them (afk/serve.py).
    config = uvicorn.Config(create_app("local", gateway), log_level=args.log_level,
                            access_log=args.log_level == "debug", ws="none",
                            http="httptools", loop="uvloop")
    try:
        if aws is not None:
            _warm(gateway, config)
            created = aws.ready()  # the first call to the store waits for it
            print(f"embedded DynamoDB (moto) at {aws.endpoint}", flush=True)
        else:
            try:
                created = create_table(store.dynamo.client, settings.table)
            except Exception as exc:  # noqa: BLE001 - said in an operator's words, then stop
                print(f"afk: error: cannot use DynamoDB at {settings.dynamodb_endpoint} "
                      f"(table {settings.table!r}): {exc}. Check AFK_DYNAMODB_ENDPOINT, or "
                      "unset it to use the embedded store.", file=sys.stderr, flush=True)
                return 1
        if created:
            print(f"created table {settings.table}", flush=True)
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
        if aws is None:
            from afk.aggregator import local_poller

            # The usage aggregator on the table's stream, as the AggregatorFunction on
            # AWS (with the embedded store, its process runs it: afk/local/aws.py).
            aggregator = local_poller(store, settings.dynamodb_endpoint,
                                      settings.region).start()
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
        _dev_logging(args.log_level)  # after uvicorn configured (and replaced) its handlers
        # uvicorn re-raises the SIGTERM it stopped on once it is done: make that an exit
        # that runs the cleanup below (the dev file, the store's last save), not a kill.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        if aggregator is not None:
            aggregator.stop()
        if published is not None:
            devfile.withdraw(published)
        if saver is not None:
            with contextlib.suppress(Exception):
                print(f"saved {saver.stop()} items to {data_dir}", flush=True)
    return 0


def _warm(gateway: Gateway, config: uvicorn.Config) -> None:
    """What the first call would load on demand, loaded while the embedded store
    starts (this process would only wait for it): uvicorn's protocol and loop
    modules, the catalog, each provider this gateway can call, and with them the
    upstream client and its TLS context (bench/LEVERS.md)."""
    from afk import tls

    config.load()
    for name in sorted({model.provider for model in gateway.catalog}):
        if gateway.has_credentials(name):
            gateway.provider(name)
    tls.context()


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
