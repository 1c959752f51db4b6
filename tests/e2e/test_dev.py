"""`afk dev` as a user runs it: a fresh process, an embedded DynamoDB, a seeded
demo account, every route answering on one port."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def dev_server() -> Iterator[tuple[str, str]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AFK_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_"))}
    env["OPENAI_API_KEY"] = "sk-dev-test"  # one provider configured, the others not
    process = subprocess.Popen(
        [sys.executable, "-m", "afk", "dev", "--port", str(port)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    key = None
    deadline = time.monotonic() + 30
    lines = []
    try:
        while key is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
            lines.append(line)
            match = re.match(r"AFK_API_KEY=(afk-[0-9A-Za-z]{40,})$", line.strip())
            key = match.group(1) if match else None
        assert key, "afk dev printed no key:\n" + "".join(lines)
        url = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/v1/models", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, key
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_dev_lists_models_with_prices(dev_server):
    url, key = dev_server
    models = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0).models.list()
    ids = {m.id for m in models.data}
    # The offline models and those of the provider with a key; not the keyless ones.
    assert {"echo", "gpt-4o-mini"} <= ids
    assert not ids & {"claude-3-5-sonnet-20241022", "gemini-2.0-flash-exp"}
    echo = next(m for m in models.data if m.id == "echo")
    assert echo.pricing["currency"] == "USD" and echo.pricing["per_call_cap"] is None


def test_dev_answers_a_billed_echo_stream(dev_server):
    url, key = dev_server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hello gateway"}], stream=True)
        if c.choices)
    assert text == "Echo: hello gateway"
    account = httpx.get(f"{url}/v1/account", headers={"authorization": f"Bearer {key}"}).json()
    usage = httpx.get(f"{url}/v1/account/usage",
                      headers={"authorization": f"Bearer {key}"}).json()["data"]
    charge = next(e for e in usage if e["type"] == "charge")
    assert charge["model"] == "echo" and charge["output_tokens"] == 3
    assert account["balance"] == str(10 - __import__("decimal").Decimal(charge["cost"]))


def test_dev_serves_the_dashboard(dev_server):
    url, _ = dev_server
    response = httpx.get(url)
    assert response.status_code == 200
    assert "default-src 'none'" in response.headers["content-security-policy"]
