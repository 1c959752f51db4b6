"""Where a running `afk dev` keeps its store: `.afk/dev.json` in the directory
it runs in (the repository, under `make dev`).

`afk dev` writes the file once its embedded DynamoDB is up and removes it when
it stops; `afk admin`, run with neither AFK_DYNAMODB_ENDPOINT nor AFK_TABLE
set, finds it in the current directory or a parent and works on that store.
A file left by a process that died is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from afk.records import dataclass

DIRECTORY = ".afk"
NAME = "dev.json"


@dataclass(frozen=True, slots=True)
class DevStore:
    endpoint: str   # the embedded DynamoDB
    table: str
    gateway: str    # the gateway's URL
    pid: int
    path: str = ""  # the file it was read from

    @property
    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def publish(store: DevStore, directory: Path | None = None) -> Path:
    folder = (directory or Path.cwd()) / DIRECTORY
    folder.mkdir(exist_ok=True)
    path = folder / NAME
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({k: v for k, v in asdict(store).items() if k != "path"},
                                    indent=2) + "\n")
    temporary.replace(path)
    return path


def withdraw(path: Path) -> None:
    """Remove the file if it is still this process's."""
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def find(start: Path | None = None) -> DevStore | None:
    """The nearest published dev store, from `start` up; None if there is none
    (a stale file, left by a process that died, has `alive` False)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        path = folder / DIRECTORY / NAME
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                return DevStore(endpoint=str(data["endpoint"]), table=str(data["table"]),
                                gateway=str(data.get("gateway", "")), pid=int(data["pid"]),
                                path=str(path))
            except (OSError, ValueError, KeyError, TypeError):
                return None
    return None
