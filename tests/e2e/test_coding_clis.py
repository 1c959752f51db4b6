"""The vendors' coding CLIs, headless, pointed at the gateway: each completes a
prompt on a model of its own provider and of another provider, billed
correctly, with its system prompt and tools arriving upstream in the
target's form.

The CLIs come from the npm registry (pinned in tests/e2e/clis/package.json) and
are installed once into .venv/clis.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from afk.catalog import Catalog
from tests.conftest import KEEPALIVE, Customer
from tests.fakes import fake_anthropic, fake_gemini, fake_openai
from tests.fakes.search import offered
from tests.support.billing import assert_billed
from tests.support.paths import ROOT

PREFIX = ROOT / ".venv" / "clis"
CLAUDE = PREFIX / "node_modules" / ".bin" / "claude"
GEMINI = PREFIX / "node_modules" / ".bin" / "gemini"
CODEX = PREFIX / "node_modules" / ".bin" / "codex"
ANSWER = "The gateway relayed this answer."
CATALOG = Catalog.load()


@pytest.fixture(scope="session")
def clis() -> None:
    if CLAUDE.exists() and GEMINI.exists() and CODEX.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to install the coding CLIs (Node.js 20+)")
    PREFIX.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "tests" / "e2e" / "clis" / "package.json", PREFIX / "package.json")
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=PREFIX, check=True, timeout=600)


def script(provider: str, fakes: dict, delay: float = 0.0) -> tuple[int, int]:
    """Every upstream answer of this run: ANSWER, with known usage (input, output),
    each after `delay` seconds of silence."""
    for _ in range(6):
        if provider == "openai":
            fakes[provider].push(fake_openai.Reply(text=ANSWER, prompt_tokens=900,
                                                   completion_tokens=7, delay=delay))
        elif provider == "anthropic":
            fakes[provider].push(fake_anthropic.Reply(text=ANSWER, input_tokens=900,
                                                      output_tokens=7, delay=delay))
        else:
            fakes[provider].push(fake_gemini.Reply(text=ANSWER, prompt_tokens=900,
                                                   candidates_tokens=7, delay=delay))
    return 900, 7


def assert_prompt_and_tools_arrived(provider: str, body: dict) -> None:
    if provider == "openai":
        assert body["messages"][0]["role"] == "system" and body["messages"][0]["content"]
        assert body["tools"] and all(t["type"] == "function" for t in body["tools"])
    elif provider == "anthropic":
        assert body["system"]
        assert body["tools"] and all("input_schema" in t or "type" in t for t in body["tools"])
    else:
        assert body["systemInstruction"]["parts"][0]["text"]
        declarations = body["tools"][0]["functionDeclarations"]
        assert declarations and all(d["name"] for d in declarations)


def run(command: list[str], env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=180, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{command[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def base_env(home: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "TERM", "SYSTEMROOT")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, "HOME": str(home),
            "NO_COLOR": "1", "CI": "1"}


@pytest.fixture
def fakes(fake_openai, fake_anthropic, fake_gemini) -> dict:
    return {"openai": fake_openai, "anthropic": fake_anthropic, "gemini": fake_gemini}


def claude_code(customer: Customer, model: str, tmp_path: Path,
                *flags: str) -> str:
    env = {**base_env(tmp_path), "ANTHROPIC_BASE_URL": customer.url,
           "ANTHROPIC_API_KEY": customer.key, "ANTHROPIC_MODEL": model,
           "ANTHROPIC_DEFAULT_HAIKU_MODEL": model, "ANTHROPIC_SMALL_FAST_MODEL": model,
           "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1"}
    return run([str(CLAUDE), *flags, "-p", "Say hello"], env, tmp_path)


def gemini_cli(customer: Customer, model: str, tmp_path: Path) -> str:
    (tmp_path / ".gemini").mkdir()
    (tmp_path / ".gemini" / "settings.json").write_text(json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "telemetry": {"enabled": False}, "usageStatisticsEnabled": False}))
    env = {**base_env(tmp_path), "GEMINI_API_KEY": customer.key,
           "GOOGLE_GEMINI_BASE_URL": customer.url, "GEMINI_CLI_TRUST_WORKSPACE": "true",
           "GEMINI_CLI_NO_RELAUNCH": "1"}
    return run([str(GEMINI), "-m", model, "-p", "Say hello"], env, tmp_path)


def codex_env(customer: Customer, model: str, tmp_path: Path) -> dict[str, str]:
    """Codex configured for the gateway as the README says (its config in
    tmp_path/.codex): the gateway as a model provider, nothing disabled."""
    (tmp_path / ".codex").mkdir()
    (tmp_path / ".codex" / "config.toml").write_text(
        f'model = "{model}"\nmodel_provider = "afk"\n\n'
        "[model_providers.afk]\n"
        'name = "afk gateway"\n'
        f'base_url = "{customer.url}/v1"\n'
        'env_key = "AFK_API_KEY"\n'
        'wire_api = "responses"\n')
    return {**base_env(tmp_path), "AFK_API_KEY": customer.key}


def codex(customer: Customer, model: str, tmp_path: Path, prompt: str = "Say hello") -> str:
    return run([str(CODEX), "exec", "--skip-git-repo-check", prompt],
               codex_env(customer, model, tmp_path), tmp_path)


@pytest.mark.parametrize("model", ["claude-haiku-4-5", "gpt-4o-mini", "gemini-2.5-flash"])
def test_claude_code(clis, model: str, customer: Customer, fakes: dict, tmp_path: Path):
    provider = CATALOG.get(model).provider
    usage = script(provider, fakes)
    assert ANSWER in claude_code(customer, model, tmp_path)
    requests = fakes[provider].requests
    assert requests, "nothing reached the upstream"
    assert_prompt_and_tools_arrived(provider, requests[0].body)
    assert_billed(customer, model, len(requests), usage)


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "claude-haiku-4-5", "gpt-4o-mini"])
def test_gemini_cli(clis, model: str, customer: Customer, fakes: dict, tmp_path: Path):
    provider = CATALOG.get(model).provider
    usage = script(provider, fakes)
    assert ANSWER in gemini_cli(customer, model, tmp_path)
    requests = fakes[provider].requests
    assert requests, "nothing reached the upstream"
    assert_prompt_and_tools_arrived(provider, requests[0].body)
    assert_billed(customer, model, len(requests), usage)


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash"])
def test_codex(clis, model: str, customer: Customer, fakes: dict, tmp_path: Path):
    """Codex with its default configuration (issue 13: it always sends the hosted
    web_search tool, which used to be a 400 on every model): developer messages,
    namespaced tools, reasoning settings and web search reach each provider in its
    own form. Gemini cannot take search next to function tools, so there it is
    dropped (and the response says so)."""
    provider = CATALOG.get(model).provider
    usage = script(provider, fakes)
    assert ANSWER in codex(customer, model, tmp_path)
    requests = fakes[provider].requests
    assert requests, "nothing reached the upstream"
    body = requests[0].body
    if provider == "openai":
        assert requests[0].path == "/v1/responses"  # Responses passthrough
        assert any(i.get("role") == "developer" for i in body["input"])
        assert any(t["type"] == "namespace" for t in body["tools"])
        assert "reasoning" not in body  # gpt-4o-mini takes no reasoning settings
        assert offered(provider, body) and body["max_tool_calls"] == 5
    else:
        assert_prompt_and_tools_arrived(provider, body)
        names = json.dumps(body["tools"])
        assert "multi_agent_v1__spawn_agent" in names  # namespaced tools, flattened
    if provider == "anthropic":
        assert offered(provider, body)["max_uses"] == 5
    if provider == "gemini":
        assert offered(provider, body) is None
    assert_billed(customer, model, len(requests), usage)


@pytest.mark.parametrize("model", ["claude-haiku-4-5", "gpt-4o-mini"])
def test_codex_searches_the_web_and_each_search_is_billed(clis, model: str,
                                                           customer: Customer, fakes: dict,
                                                           tmp_path: Path):
    """With its defaults, Codex on a Claude or GPT model gets hosted web search: the
    model searches, Codex shows the answer, the ledger bills the search at its fee."""
    provider = CATALOG.get(model).provider
    for _ in range(6):
        if provider == "openai":
            fakes[provider].push(fake_openai.Reply(text=ANSWER, prompt_tokens=900,
                                                   completion_tokens=7, search="afk gateway"))
        else:
            fakes[provider].push(fake_anthropic.Reply(text=ANSWER, input_tokens=900,
                                                      output_tokens=7, search="afk gateway"))
    assert ANSWER in codex(customer, model, tmp_path, "What is new about afk gateway?")
    searched = [e for e in customer.charges() if e.web_searches]
    assert searched, "the search was billed"
    fee = CATALOG.get(model).prices.web_search_per_1000 / 1000
    for entry in searched:
        assert entry.web_searches == 1 and Decimal(entry.web_search_cost) / 10**12 == fee
    customer.assert_books_balance()


@pytest.mark.parametrize(("cli", "model"), [(claude_code, "claude-haiku-4-5"),
                                            (gemini_cli, "gemini-2.5-flash"),
                                            (codex, "gpt-4o-mini")])
def test_keepalives_are_ignored(clis, cli, model: str, patient_customer: Customer,
                                keepalive_server, fakes: dict, tmp_path: Path):
    """Issue 12: while the model is silent (thinking), the gateway sends keepalives;
    each CLI reads through them to the answer."""
    usage = script(CATALOG.get(model).provider, fakes, delay=5 * KEEPALIVE)
    assert ANSWER in cli(patient_customer, model, tmp_path)
    keepalives = (b": keepalive\n\n", b"\n")
    assert any(e.chunks and e.chunks[0] in keepalives for e in keepalive_server[0].posts())
    assert_billed(patient_customer, model, len(fakes[CATALOG.get(model).provider].requests),
                  usage)


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gemini-2.5-flash"])
def test_claude_code_web_search_works_on_other_providers(clis, model: str,
                                                         customer: Customer, fakes: dict,
                                                         tmp_path: Path):
    """Claude Code's WebSearch tool asks the API for Anthropic's server-side search; on a
    GPT or Gemini model the gateway serves it with that provider's own search: the
    search runs upstream, its result reaches the agent, the search is billed."""
    provider = CATALOG.get(model).provider
    fake = fakes[provider]
    if provider == "openai":
        fake.push(fake_openai.Reply(tool_calls=[{"name": "WebSearch",
                                                 "arguments": {"query": "afk gateway"}}]),
                  fake_openai.Reply(text="afk gateway shipped.", search="afk gateway"),
                  *[fake_openai.Reply(text=ANSWER) for _ in range(4)])
    else:
        fake.push(fake_gemini.Reply(function_calls=[{"name": "WebSearch",
                                                     "args": {"query": "afk gateway"}}]),
                  fake_gemini.Reply(text="afk gateway shipped.", search="afk gateway"),
                  *[fake_gemini.Reply(text=ANSWER) for _ in range(4)])
    # Headless, Claude Code asks before searching; a user at the prompt would say yes.
    assert ANSWER in claude_code(customer, model, tmp_path, "--allowedTools", "WebSearch")
    searched = [r.body for r in fake.requests if offered(provider, r.body)]
    assert searched, "Claude Code's search reached the provider as its own search tool"
    assert [e.web_searches for e in customer.charges() if e.web_searches] == [1]
    customer.assert_books_balance()
