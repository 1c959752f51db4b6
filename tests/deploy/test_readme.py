"""The README's SDK examples, as written, against the gateway as deployed.

Every ```python block of README.md runs in one fresh interpreter (later blocks reuse
the `client` and imports of earlier ones, as a reader pasting them would), with the
local address `http://127.0.0.1:3000` replaced by the deployed API's base (`$API`,
the stack's ApiUrl output: the gateway only under its `/prod` stage, a 403 elsewhere)
and the deploy section's `API` and `AFK_KEY` exported. So an example that leaves the
stage out of a path, or reads a variable the README never exports, fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import Customer
from tests.support.paths import ROOT

README = ROOT / "README.md"
LOCAL = "http://127.0.0.1:3000"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)


def exported_in_readme() -> set[str]:
    """Variables a ```sh block of the README exports (`export A=… B=…`)."""
    names: set[str] = set()
    for block in re.findall(r"^```sh\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL):
        for line in block.splitlines():
            if line.startswith("export "):
                names.update(re.findall(r"\b([A-Z_][A-Z0-9_]*)=", line))
    return names


def environ_reads(code: str) -> set[str]:
    return set(re.findall(r"os\.environ\[\"([A-Z_0-9]+)\"\]", code))


def test_every_variable_an_example_reads_is_exported_by_the_readme():
    reads = set().union(*(environ_reads(block) for block in python_blocks()))
    assert reads, "no example reads its key from the environment"
    assert reads <= exported_in_readme(), reads - exported_in_readme()


def test_readme_sdk_examples_run_against_the_deployed_stage(staged_url: str, customer: Customer):
    blocks = python_blocks()
    script = "\n\n".join(blocks).replace(LOCAL, staged_url)
    assert LOCAL not in script and len(blocks) >= 5
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AFK_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_"))}
    env.update(AFK_API_KEY=customer.key, AFK_KEY=customer.key, API=staged_url)
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]

    # Each SDK's calls reached the model the example names, and each was billed.
    models = {entry.model for entry in customer.charges()}
    assert {"echo", "claude-haiku-4-5", "gemini-2.5-flash", "gpt-4o-mini"} <= models, models
    assert "hello gateway" in run.stdout  # the echo model's streamed answer
    assert re.search(r"charged \$ 0\.\d+ request req_", run.stdout), run.stdout[-1000:]
