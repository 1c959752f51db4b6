"""`afk dev --data-dir`: the embedded store kept across restarts.

moto keeps its tables in memory only, so the table is saved as a file of its
items (DynamoDB JSON, one Scan) when `afk dev` stops and every few seconds
while it runs, and loaded back (BatchWriteItem) before it serves. Without
`--data-dir` every `afk dev` starts from an empty store, as before.
A process killed with SIGKILL loses at most the last `every` seconds.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("afk.dev")

FILE = "table.json"


def load(client: Any, table: str, directory: Path) -> int:
    """Put the saved items back into `table`; returns how many (0: nothing saved)."""
    path = directory / FILE
    if not path.is_file():
        return 0
    items = json.loads(path.read_text())["items"]
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]
        while requests:
            left = client.batch_write_item(RequestItems={table: requests})
            requests = left.get("UnprocessedItems", {}).get(table, [])
    return len(items)


def save(client: Any, table: str, directory: Path) -> int:
    items = [item for page in client.get_paginator("scan").paginate(TableName=table)
             for item in page["Items"]]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"table": table, "items": items}))
    temporary.replace(path)  # a crash mid-write never leaves half a file
    return len(items)


class Saver:
    """Saves every `every` seconds in the background, and once more on `stop()`."""

    def __init__(self, client: Any, table: str, directory: Path, every: float = 5.0) -> None:
        self._args = (client, table, directory)
        self._every = every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="afk-dev-saver", daemon=True)

    def start(self) -> Saver:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopped.wait(self._every):
            try:
                save(*self._args)
            except Exception:  # noqa: BLE001 - the next round or the final save retries
                log.warning("could not save the dev store", exc_info=True)

    def stop(self) -> int:
        self._stopped.set()
        self._thread.join(timeout=10)
        return save(*self._args)
