"""Deploying as a first AWS user meets it: `make deploy` asks nothing and takes every
parameter from samconfig.toml; `sam deploy --guided` asks what the README's walkthrough
says; and the README's deploy snippets run end to end, in order, as written.

The snippets run against stand-ins: a fake `aws` on PATH that answers the stack's
outputs (ApiUrl is the gateway under its `/prod` stage, TableName the test table) and
refuses any command without `--region "$AWS_REGION"`; `afk admin` against the moto
DynamoDB (for AWS's); the gateway behind the stage proxy for API Gateway.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

from afk.store import Store
from tests.deploy.test_template import sam_cli
from tests.support.paths import ROOT

README = ROOT / "README.md"


def _template() -> dict[str, Any]:
    return cfn_yaml.load(str(ROOT / "template.yaml"))


def _samconfig_parameters() -> dict[str, str]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    overrides = config["default"]["deploy"]["parameters"]["parameter_overrides"]
    pairs = (item.split("=", 1) for item in overrides)
    return {key: value.strip('"') for key, value in pairs}


def _deploy_section() -> str:
    text = README.read_text()
    return text[text.index("## Deploy to AWS"):text.index("### What it costs")]


def _sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


# ------------------------------------------------------------------ make deploy
def test_samconfig_sets_every_parameter_to_a_valid_value() -> None:
    parameters = _template()["Parameters"]
    given = _samconfig_parameters()
    assert set(given) == set(parameters), "samconfig.toml and the template name other parameters"
    for name, value in given.items():
        spec = parameters[name]
        assert value == str(spec.get("Default", "")), (name, value)
        if "AllowedValues" in spec:
            assert value in map(str, spec["AllowedValues"]), (name, value)
        if "AllowedPattern" in spec:
            assert re.fullmatch(spec["AllowedPattern"], value), (name, value)
        if "MinValue" in spec:
            assert float(value) >= spec["MinValue"], (name, value)


def test_make_deploy_asks_nothing_and_honours_the_region() -> None:
    run = subprocess.run(["make", "-n", "deploy", "AWS_REGION=eu-west-2"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    deploy = " ".join(run.stdout.replace("\\\n", " ").split())
    assert "sam deploy --no-confirm-changeset" in deploy, run.stdout
    assert "--region eu-west-2" in deploy
    assert "--guided" not in deploy
    assert "sam build" in deploy, "make deploy builds first"


# ------------------------------------------------------------------ sam deploy --guided
def test_guided_deploy_asks_what_the_readme_walkthrough_says(tmp_path: Path) -> None:
    """Answers Enter to every prompt but `y` to each "has no authentication" one, as
    the README says, and gets past them to SAM's first AWS call (an endpoint that
    refuses connections stands in for AWS)."""
    sam = sam_cli()
    template = _template()
    api_events = [name for name, res in template["Resources"].items()
                  if res["Type"] == "AWS::Serverless::Function"
                  for event in res["Properties"].get("Events", {}).values()
                  if event["Type"] == "Api"]
    section = _deploy_section()
    stated = re.search(r"asks it (\d+) times", section)
    others = re.search(r"and the other (\d+) parameters", section)
    assert stated and int(stated[1]) == len(api_events)
    assert others and int(others[1]) == len(template["Parameters"]) - 1

    for name in ("template.yaml", "samconfig.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("functions", "layers", "shared"):
        shutil.copytree(ROOT / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    answers = ["" for _ in range(2 + len(template["Parameters"]) + 3)]
    answers += ["y"] * len(api_events) + ["n"]  # and do not save over samconfig.toml
    run = subprocess.run(
        [str(sam), "deploy", "--guided"], cwd=tmp_path, input="\n".join(answers) + "\n",
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_ACCESS_KEY_ID": "testing",
             "AWS_SECRET_ACCESS_KEY": "testing", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
             "AWS_MAX_ATTEMPTS": "1"})
    output = run.stdout + run.stderr
    prompts = re.findall(r"(\w+) has no authentication\. Is this okay\?", output)
    assert sorted(prompts) == sorted(api_events), output[-3000:]
    assert "Security Constraints Not Satisfied" not in output
    assert "Looking for resources needed for deployment" in output, output[-3000:]
    # The defaults it offered are samconfig.toml's.
    for name, value in _samconfig_parameters().items():
        assert f"Parameter {name} [{value}]" in output, name


# ------------------------------------------------------------------ the README's snippets
FAKE_AWS = """#!{python}
import json, os, re, sys
args = sys.argv[1:]
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
def opt(name):
    return args[args.index(name) + 1] if name in args else None
if opt("--region") != os.environ["FAKE_AWS_REGION"]:
    with open(os.environ["FAKE_AWS_LOG"], "a") as log:
        log.write(json.dumps(["NO REGION", *args]) + "\\n")
    sys.exit("aws: the stack is in " + os.environ["FAKE_AWS_REGION"] + "; no --region given")
outputs = json.loads(os.environ["FAKE_AWS_OUTPUTS"])
command = tuple(args[:2])
if command == ("cloudformation", "describe-stacks"):
    assert opt("--stack-name") == "afk-gateway"
    print(outputs[re.search(r"OutputKey=='(\\w+)'", opt("--query"))[1]])
elif command == ("cloudformation", "describe-stack-resource"):
    print("afk-gateway-" + opt("--logical-resource-id") + "-0123ABCD")
elif command == ("secretsmanager", "put-secret-value"):
    assert opt("--secret-id") == outputs["ProviderKeysSecretArn"]
    json.loads(opt("--secret-string"))
    print("{{}}")
elif command == ("lambda", "update-function-configuration"):
    print("{{}}")
else:
    sys.exit("fake aws: unexpected command " + " ".join(args))
"""


def test_every_aws_command_in_the_readme_names_the_region() -> None:
    commands = []
    for block in _sh_blocks(README.read_text()):
        joined = block.replace("\\\n", " ")
        commands += re.findall(r"(?:^|[\s(;])(aws \w[^\n;)]*)", joined)
    assert commands
    for command in commands:
        assert '--region "$AWS_REGION"' in command, command


def test_readme_deploy_snippets_run_end_to_end(tmp_path: Path, staged_url: str,
                                               dynamodb_endpoint: str, store: Store,
                                               fake_openai) -> None:
    blocks = _sh_blocks(_deploy_section())
    # What CI cannot do here: build, deploy, tear down (they only call make and sam).
    steps = [b for b in blocks if not re.search(r"^(make|\.venv-sam/bin/sam) ", b, re.M)]
    assert len(blocks) - len(steps) == 2, "only the deploy and tear-down blocks are skipped"
    region = re.search(r"^export AWS_REGION=(\S+)", steps[0], re.M)[1]

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(FAKE_AWS.format(python=sys.executable))
    (bin_dir / "aws").chmod(0o755)
    log = tmp_path / "aws.log"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AFK_", "AWS_", "OPENAI_", "ANTHROPIC_", "GEMINI_"))}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", PYTHONPATH=str(ROOT / "shared"),
               FAKE_AWS_LOG=str(log), FAKE_AWS_REGION=region,
               FAKE_AWS_OUTPUTS=json.dumps({
                   "ApiUrl": staged_url, "TableName": "afk-test",
                   "ProviderKeysSecretArn": "arn:aws:secretsmanager:us-east-1:1:secret:k"}),
               # DynamoDB itself, for `afk admin`: the moto server the gateway uses.
               AFK_DYNAMODB_ENDPOINT=dynamodb_endpoint,
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    script = "set -euo pipefail\n" + "\n".join(steps) + '\necho "ACCOUNT=$ACCOUNT"\n'
    run = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert not [c for c in calls if c[0] == "NO REGION"], calls
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert [c[:2] for c in calls].count(["cloudformation", "describe-stacks"]) == 3
    assert [c[:2] for c in calls].count(["lambda", "update-function-configuration"]) == 4
    assert ["secretsmanager", "put-secret-value"] in [c[:2] for c in calls]

    # The key `afk admin` created and exported is what the curl call used: billed.
    account = re.search(r"^ACCOUNT=(acct_\w+)$", run.stdout, re.M)[1]
    assert "data: [DONE]" in run.stdout
    charges = [e for e in store.ledger.all_entries(account) if e.type == "charge"]
    assert [e.model for e in charges] == ["gpt-4o-mini"]
