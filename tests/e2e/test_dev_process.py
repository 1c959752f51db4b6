"""`afk dev`'s embedded DynamoDB runs in a process of its own (afk/local/aws.py), and
the account API is loaded on its first request (afk/http/apps.py `Deferred`): what a
user notices is that neither shows. The store's process goes when the server goes,
however it goes; the account API answers its very first requests, several at once."""

from __future__ import annotations

import json
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_dev_admin import Dev


def _store_port(cwd: Path) -> int:
    endpoint = json.loads((cwd / ".afk" / "dev.json").read_text())["endpoint"]
    return int(endpoint.rsplit(":", 1)[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


# `afk` (and `python -m afk`) start the store before the gateway's imports; `afk.cli`
# starts it once the gateway has read its settings.
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
@pytest.mark.parametrize("module", ["afk", "afk.cli"])
def test_the_embedded_store_goes_when_the_server_goes(tmp_path: Path, how: signal.Signals,
                                                      module: str):
    dev = Dev(tmp_path, module=module)
    port = _store_port(tmp_path)
    assert _answers(port)
    dev.stop(how)  # Ctrl-C, a service manager, or a crash that runs no cleanup at all
    deadline = time.monotonic() + 15
    while _answers(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _answers(port), "the embedded DynamoDB outlived afk dev"


def test_the_account_api_answers_its_first_requests(tmp_path: Path):
    dev = Dev(tmp_path)
    try:
        headers = {"authorization": f"Bearer {dev.key}"}
        with httpx.Client(base_url=dev.url, headers=headers, timeout=30) as client:
            # Several first requests at once, while the account API is still loading.
            with ThreadPoolExecutor(4) as pool:
                first = list(pool.map(lambda _: client.get("/v1/account"), range(4)))
            assert [r.status_code for r in first] == [200] * 4
            assert {r.json()["balance"] for r in first} == {"10.00"}
            # Its validation and error shape, as the account function answers.
            bad = client.post("/v1/account/keys", json={"name": 7})
            assert bad.status_code == 400
            assert bad.json()["error"]["type"] == "invalid_request_error"
            assert client.get("/v1/account/openapi.json").json()["info"]["title"] == \
                "afk gateway account API"
            # The generation routes and their own errors are unchanged beside it.
            assert client.get("/v1/models").status_code == 200
            assert client.get("/v1/nothing").status_code == 404
    finally:
        dev.stop()
