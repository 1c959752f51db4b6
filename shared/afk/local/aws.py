"""`afk dev`'s AWS side in a process of its own: the embedded DynamoDB (moto), its
table, and the usage aggregator on the table's stream.

Deployed, these are apart from the API functions too: the table is DynamoDB's,
the aggregator its own Lambda function on the table's stream (template.yaml,
`AggregatorFunction`). Locally the split buys the first answer: moto and its web
stack (Flask, werkzeug, botocore, ~0.7 s of imports) load in this process while
the gateway imports its own, on another core, instead of before them; and the
aggregator's reads and rollup writes cost the gateway's process nothing.

The gateway binds the listening socket and hands it over (`AwsSide.spawn`), so it
knows the endpoint at once; `python -m afk dev` does so before it imports anything
else (`prestart`). This process imports moto meanwhile, then reads the table and
region on its stdin (`AwsSide.take`, once the gateway has read its settings), and
the gateway waits for its one line on stdout ({"created": bool}) before its first
call to the store. This process never outlives
the gateway: it stops when its stdin closes (the gateway stopped, or died, even by
SIGKILL) or on SIGTERM, and ignores the terminal's Ctrl-C (the gateway saves the
store, with `--data-dir`, before it lets this process go).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import afk


class AwsSide:
    """The child process, seen from the gateway."""

    # Started by `prestart()` (`python -m afk dev`), before the gateway's imports.
    early: AwsSide | None = None

    def __init__(self, proc: subprocess.Popen[bytes], endpoint: str) -> None:
        self._proc = proc
        self.endpoint = endpoint

    @classmethod
    def spawn(cls) -> AwsSide:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)  # calls made before the child serves wait in the backlog
        port = sock.getsockname()[1]
        # This checkout's afk first, for a child started from any directory.
        root = str(Path(afk.__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])}
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "afk.local.aws", "--fd", str(sock.fileno())],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(sock.fileno(),),
                env=env, start_new_session=True)  # no Ctrl-C from the terminal
        finally:
            sock.close()  # the child holds it now
        return cls(proc, f"http://127.0.0.1:{port}")

    @classmethod
    def take(cls, table: str, region: str) -> AwsSide:
        """The store for `table` in `region`: the one started early, or a new one."""
        side, cls.early = cls.early or cls.spawn(), None
        assert side._proc.stdin is not None
        try:
            side._proc.stdin.write(json.dumps({"table": table, "region": region}).encode()
                                   + b"\n")
            side._proc.stdin.flush()
        except BrokenPipeError:
            pass  # it failed to start: `ready()` says so
        return side

    @classmethod
    def discard(cls) -> None:
        """Stop the one started early, if the gateway uses another store."""
        if cls.early is not None:
            cls.early.stop()
            cls.early = None

    def ready(self) -> bool:
        """Wait until the store serves; True if the table was created (not kept)."""
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the embedded DynamoDB did not start (exit status "
                               f"{self._proc.wait()}; its error is above)")
        return bool(json.loads(line)["created"])

    def stop(self) -> None:
        """Let the child go (it stops when its stdin closes) and wait for it."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def prestart() -> None:
    """`python -m afk dev`: start the store before the gateway imports anything else
    (~40 ms of its CPU sooner). A peek at the environment: with a store of the
    user's own (AFK_DYNAMODB_ENDPOINT) there is nothing to start; the gateway's
    settings decide, and `AwsSide.discard()` stops one started for nothing."""
    if not os.environ.get("AFK_DYNAMODB_ENDPOINT"):
        AwsSide.early = AwsSide.spawn()


def serve(fd: int, stdin: IO[bytes], stdout: IO[str]) -> None:
    from afk.aggregator import local_poller
    from afk.local.dynamodb import EmbeddedDynamoDB
    from afk.store import Dynamo, Store, create_table

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    db = EmbeddedDynamoDB(sock=socket.socket(fileno=fd)).start()
    poller: Any = None
    try:
        line = stdin.readline()  # the gateway's table and region, once it has read them
        if not line:
            return  # the gateway stopped first
        wanted = json.loads(line)
        table, region = str(wanted["table"]), str(wanted["region"])

        def parent_gone() -> None:
            stdin.read()  # returns at EOF: the gateway closed it, or its process is gone
            done.set()

        threading.Thread(target=parent_gone, name="afk-dev-parent", daemon=True).start()
        store = Store(Dynamo(table, endpoint_url=db.endpoint, region=region))
        created = create_table(store.dynamo.client, table)
        print(json.dumps({"created": created}), file=stdout, flush=True)
        # The usage aggregator on the table's stream, as the AggregatorFunction on AWS;
        # its first reads (the table, the stream, its shards) after the gateway's
        # first calls, which this process serves one at a time.
        poller = local_poller(store, db.endpoint, region).start(first_after=1.0)
        done.wait()
    finally:
        if poller is not None:
            poller.stop()
        db.stop()


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway decides when this stops
    parser = argparse.ArgumentParser(prog="python -m afk.local.aws")
    parser.add_argument("--fd", type=int, required=True, help="a listening socket")
    args = parser.parse_args(argv)
    serve(args.fd, sys.stdin.buffer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
