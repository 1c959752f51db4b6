"""`afk admin` against a running `afk dev` (what `make dev` runs), with no
environment set: it finds the dev store through `.afk/dev.json`. A busy port
fails before anything is created; `--data-dir` keeps the store (issue 15)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.paths import ROOT

SHARED = str(ROOT / "shared")


def _env() -> dict[str, str]:
    """The user's shell: no AFK_* variables, no provider keys."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AFK_", "AWS_")) and not k.endswith("_API_KEY")}
    return {**env, "PYTHONPATH": SHARED, "PYTHONUNBUFFERED": "1"}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def afk(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "afk.cli", *argv], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=120)


class Dev:
    def __init__(self, cwd: Path, *argv: str, module: str = "afk.cli") -> None:
        self.port = _port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, "dev", "--port", str(self.port), *argv],
            cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        while not any(line.startswith("afk gateway on") for line in self.lines):
            line = self.process.stdout.readline()
            assert line, f"afk dev exited: {self.process.stderr.read()}"
            self.lines.append(line.strip())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/v1/models", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)

    @property
    def key(self) -> str:
        return next(line.split("=", 1)[1] for line in self.lines
                    if line.startswith("AFK_API_KEY="))

    def stop(self, how: signal.Signals = signal.SIGINT) -> str:
        if self.process.poll() is None:
            self.process.send_signal(how)
        out, _ = self.process.communicate(timeout=30)
        return out


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    running = Dev(tmp_path)
    yield running
    running.stop()


def test_admin_works_on_a_running_dev_with_no_environment(dev: Dev, tmp_path: Path):
    published = json.loads((tmp_path / ".afk" / "dev.json").read_text())
    assert published["gateway"] == dev.url and published["table"] == "afk"
    elsewhere = tmp_path / "some" / "subdirectory"
    elsewhere.mkdir(parents=True)
    listed = afk(elsewhere, "admin", "accounts", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (demo,) = json.loads(listed.stdout)
    assert demo["name"] == "Demo" and demo["available"] == "10.00"
    created = afk(tmp_path, "admin", "keys", "create", "--account", demo["id"], "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)["key"]
    # The key the operator made works on the running gateway at once.
    client = openai.OpenAI(base_url=f"{dev.url}/v1", api_key=key, max_retries=0)
    client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    usage = afk(tmp_path, "admin", "usage", "--account", demo["id"])
    assert usage.returncode == 0 and "charge" in usage.stdout and "{" not in usage.stdout


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_dev_is_said_in_operator_words(tmp_path: Path, stop: signal.Signals):
    dev = Dev(tmp_path)
    dev.stop(stop)
    assert not (tmp_path / ".afk" / "dev.json").exists()
    failed = afk(tmp_path, "admin", "accounts", "list")
    assert failed.returncode == 1 and failed.stdout == ""
    assert "table 'afk'" in failed.stderr and "make dev" in failed.stderr
    assert "Nothing was charged" not in failed.stderr


def test_a_busy_port_fails_before_any_account_or_key(dev: Dev, tmp_path: Path):
    other = tmp_path / "other"
    other.mkdir()
    second = subprocess.run(
        [sys.executable, "-m", "afk.cli", "dev", "--port", str(dev.port)], cwd=other,
        env=_env(), capture_output=True, text=True, timeout=120)
    assert second.returncode == 1
    assert f"port {dev.port}" in second.stderr and "in use" in second.stderr
    assert "AFK_API_KEY" not in second.stdout and "demo account" not in second.stdout
    assert not (other / ".afk").exists()
    # The running one still has its single demo account and answers.
    listed = afk(tmp_path, "admin", "accounts", "list", "--json")
    assert [a["name"] for a in json.loads(listed.stdout)] == ["Demo"]
    assert httpx.get(f"{dev.url}/v1/models",
                     headers={"authorization": f"Bearer {dev.key}"}).status_code == 200


def test_an_unreachable_store_is_named_before_anything_is_served(tmp_path: Path):
    port = _port()
    env = {**_env(), "AFK_DYNAMODB_ENDPOINT": f"http://127.0.0.1:{_port()}"}
    failed = subprocess.run(
        [sys.executable, "-m", "afk.cli", "dev", "--port", str(port)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    assert env["AFK_DYNAMODB_ENDPOINT"] in failed.stderr and "table 'afk'" in failed.stderr
    assert "Traceback" not in failed.stderr and "AFK_API_KEY" not in failed.stdout


def test_data_dir_keeps_the_store_across_restarts(tmp_path: Path):
    data = tmp_path / "data"
    first = Dev(tmp_path, "--data-dir", str(data))
    key = first.key
    made = afk(tmp_path, "admin", "accounts", "create", "--name", "kept", "--json")
    assert made.returncode == 0, made.stderr
    first.stop(signal.SIGTERM)  # as a service manager stops it: saved all the same
    second = Dev(tmp_path, "--data-dir", str(data))
    try:
        assert not any(line.startswith("AFK_API_KEY=") for line in second.lines)
        listed = json.loads(afk(tmp_path, "admin", "accounts", "list", "--json").stdout)
        assert sorted(a["name"] for a in listed) == ["Demo", "kept"]
        # The demo key from the first run still works.
        assert httpx.get(f"{second.url}/v1/account",
                         headers={"authorization": f"Bearer {key}"}).json()["balance"] == "10.00"
    finally:
        second.stop()
    fresh = Dev(tmp_path)  # without --data-dir: a fresh store, as before
    try:
        listed = json.loads(afk(tmp_path, "admin", "accounts", "list", "--json").stdout)
        assert [a["name"] for a in listed] == ["Demo"]
    finally:
        fresh.stop()
