"""The functions as `sam build` packaged them, run the way Lambda runs them.

What runs is the BUILD and nothing else: each function's folder in .aws-sam/build
and the built layers (DependenciesLayer, AfkLayer), never shared/ and never this
venv's site-packages. The interpreter is a stand-in for the Lambda runtime's: the
runtime's Python (3.12), its standard library, and in its own site-packages only
what the runtime ships (boto3 and its dependencies), so a package the layer lacks
fails the import here as it would on Lambda. DynamoDB is the moto server of the
`dynamodb_endpoint` fixture.

* Mangum functions: `app.handler(event, context)` on every events/ event of
  their routes, in a subprocess whose path is the function and the layers, which
  then checks that every module it loaded came from the build, the standard
  library or the runtime's own packages.
* Web Adapter functions: started by their built run.sh, with PORT set and
  /opt/python being the built layers merged, as Lambda extracts them (a private
  mount namespace binds it there, so run.sh's own PYTHONPATH line is what finds
  it), then an SSE request.
* Every native extension (.so) in the build is an ELF object for the architecture
  the template gives its function or layer, and the dependency layer holds exactly
  the lock (layers/dependencies/requirements.txt), each of whose direct
  requirements something imports.

The layers' native extensions are built for the functions' architecture (arm64),
which an x86_64 test host cannot load, and pydantic-core (FastAPI's, for the account
function) has no pure-Python fallback: the functions run here with the layer's
native distributions replaced by this host's build of the same pinned versions,
installed from the lock with its hashes (`native_twins`), and nothing else
replaced; the architecture check above is what proves the layer's own are the
right ones. CI runs `make build` first and sets
AFK_REQUIRE_SAM=1, so nothing here skips.
"""

from __future__ import annotations

import filecmp
import importlib.util
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from cfnlint.decode import cfn_yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import Customer
from tests.fakes import fake_stripe
from tests.support.paths import ROOT

BUILD = ROOT / ".aws-sam" / "build"
LAYER = BUILD / "AfkLayer" / "python"
DEPENDENCIES = BUILD / "DependenciesLayer" / "python"
LOCK = ROOT / "layers" / "dependencies" / "requirements.txt"
REQUIREMENTS = ROOT / "layers" / "dependencies" / "requirements.in"
PLACEHOLDER_KEY = "afk-EXAMPLE0000000000000000000000000000"
# What the python3.12 runtime ships beside the standard library (import names).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
# ELF header e_machine values (System V ABI, <elf.h>: EM_X86_64 62, EM_AARCH64 183).
ELF_MACHINES = {"x86_64": 62, "arm64": 183}


def _require(reason: str) -> None:
    if os.environ.get("AFK_REQUIRE_SAM"):
        pytest.fail(reason)
    pytest.skip(reason)


def _stale(source: Path, built: Path) -> list[str]:
    """Source modules whose built copy is missing or differs."""
    stale = []
    for path in source.rglob("*"):
        copy = built / path.relative_to(source)
        if path.is_file() and "__pycache__" not in path.parts and not (
                copy.is_file() and filecmp.cmp(path, copy, shallow=False)):
            stale.append(str(path.relative_to(source)))
    return stale


@pytest.fixture(scope="module")
def build() -> Path:
    if not (BUILD / "template.yaml").is_file():
        _require("no .aws-sam/build: run `make build`")
    stale = _stale(ROOT / "shared" / "afk", LAYER / "afk")
    if stale:
        _require(f"the built afk layer is older than shared/afk ({stale[:3]}): `make build`")
    return BUILD


def _python312() -> str | None:
    """The runtime's Python, found as the Makefile finds it for `sam build`."""
    candidates = [shutil.which("python3.12"),
                  *sorted(map(str, Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")))]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Path:
    """A python3.12 venv standing in for the Lambda runtime: its site-packages holds
    only the runtime's own packages, linked from this venv (they are pure Python)."""
    python = _python312()
    if python is None:
        _require("no python3.12 (on PATH or in pyenv): the built functions run on it")
    home = tmp_path_factory.mktemp("lambda-runtime")
    subprocess.run([python, "-m", "venv", "--without-pip", str(home)], check=True)
    [site] = home.glob("lib/python3.12/site-packages")
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec and spec.origin, f"{name} is missing from the test venv"
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (site / source.name).symlink_to(source, target_is_directory=source.is_dir())
    return home


@pytest.fixture(scope="module")
def native_twins(build: Path, tmp_path_factory) -> Path:
    """The dependency layer's native distributions (those with a .so) built for this
    host: the lock's pins, installed with its hashes. The built functions run here
    with these first on the path, and only these: every other module comes from
    the build (the driver checks)."""
    pins = _pins(LOCK.read_text())
    native = sorted({_normalize(record.parent.name.split("-", 1)[0])
                     for record in DEPENDENCIES.glob("*.dist-info/RECORD")
                     if re.search(r"\.so[,.]", record.read_text())})
    twins = tmp_path_factory.mktemp("native-twins")
    requirements = twins.parent / f"{twins.name}.txt"
    requirements.write_text("".join(
        f"{name}=={pins[name][0]} " + " ".join(f"--hash=sha256:{h}" for h in pins[name][1])
        + "\n" for name in native))
    machine = platform.machine()
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--require-hashes",
         "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
         "--platform", f"manylinux2014_{machine}", "--platform", f"manylinux_2_28_{machine}",
         "--target", str(twins), "--requirement", str(requirements)],
        capture_output=True, text=True)
    if installed.returncode != 0:
        _require(f"cannot install this host's build of {native}: {installed.stderr[-500:]}")
    return twins


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn_yaml.load(str(ROOT / "template.yaml"))


@pytest.fixture(scope="module")
def routes(template: dict[str, Any]) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """(method, resource) -> (function name, its properties), from the template."""
    found = {}
    for name, res in template["Resources"].items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        for event in res["Properties"].get("Events", {}).values():
            if event["Type"] == "Api":
                props = event["Properties"]
                found[(props["Method"].upper(), props["Path"])] = (name, res["Properties"])
    return found


def _events() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text())
            for path in sorted((ROOT / "events").glob("*.json")) if path.stem != "env"}


def _function_of(event: dict[str, Any], routes: dict) -> str:
    method, resource = event["httpMethod"], event["resource"]
    return (routes.get((method, resource)) or routes[("ANY", resource)])[0]


def _env(dynamodb_endpoint: str, runtime: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AFK_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_",
                                "POWERTOOLS_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(AFK_TABLE="afk-test", AFK_DYNAMODB_ENDPOINT=dynamodb_endpoint,
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1",
               POWERTOOLS_SERVICE_NAME="afk", POWERTOOLS_METRICS_NAMESPACE="afk/test",
               # The build is read-only on Lambda; keep it as built here too.
               PYTHONDONTWRITEBYTECODE="1",
               # The runtime stand-in's python first: `python` in run.sh is that one.
               PATH=f"{runtime / 'bin'}:{os.environ.get('PATH', '')}", **extra)
    return env


def _emf(output: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if "_aws" in line]


def test_every_route_has_an_event_and_every_event_a_route(routes: dict) -> None:
    events = _events()
    covered = {(e["httpMethod"], e["resource"]) for e in events.values()}
    for (method, resource) in routes:
        assert any(r == resource and (method == "ANY" or m == method) for m, r in covered), (
            f"no event in events/ for {method} {resource}")
    for name, event in events.items():
        assert _function_of(event, routes), name
        assert event["requestContext"]["resourcePath"] == event["resource"], name
        assert event["requestContext"]["path"] == "/prod" + event["path"], name


# ------------------------------------------------------------------ Mangum functions
DRIVER = """
import json, os, sys, sysconfig
build, out, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
import afk, app

class Context:
    function_name = "test"
    aws_request_id = "lambda-request-1"
    def get_remaining_time_in_millis(self):
        return 30_000

results = [app.handler(json.loads(open(path).read()), Context()) for path in paths]
# Everything loaded came from the build, the standard library or the runtime's packages
# (or the host's build of the layer's native distributions: NATIVE_TWINS).
allowed = (build, os.environ["NATIVE_TWINS"], sysconfig.get_path("stdlib"),
           sysconfig.get_path("platstdlib"), sysconfig.get_path("purelib"))
outside = sorted({m.__file__ for m in list(sys.modules.values())
                  if getattr(m, "__file__", None) and not m.__file__.startswith(allowed)})
with open(out, "w") as f:
    json.dump({"results": results, "outside": outside, "afk": afk.__file__,
               "modules": sorted(m.__file__ for m in list(sys.modules.values())
                                 if getattr(m, "__file__", None))}, f)
"""


def _ids(body: dict) -> set[str]:
    return {m["id"] for m in body["data"]}


# In the order they run (the cap is set before it is cleared).
MANGUM_EXPECTATIONS = {
    # No provider key in this environment: only the offline models are listed.
    "models_list": (200, lambda b: "echo" in _ids(b) and "gpt-4o-mini" not in _ids(b)),
    "models_get": (200, lambda b: b["id"] == "echo"),
    "models_list_v1beta": (200, lambda b: "models/echo" in {m["name"] for m in b["models"]}),
    "models_get_v1beta": (200, lambda b: b["name"] == "models/echo"),
    "account_get": (200, lambda b: b["balance"] == "10.00"),
    "account_usage": (200, lambda b: [e["type"] for e in b["data"]] == ["credit"]),
    "account_keys_list": (200, lambda b: len(b["data"]) == 2),
    "account_keys_create": (201, lambda b: b["key"].startswith("afk-") and b["name"] == "laptop"),
    "account_keys_revoke": (200, lambda b: b["status"] == "revoked"),
    "account_caps_put": (200, lambda b: (b["model"], b["usd"]) == ("echo", "0.05")),
    "account_caps_delete": (200, lambda b: b["deleted"] is True),
    "dashboard": (200, None),
    # Last, so the credit it makes is not in account_usage's list: a Stripe delivery
    # signed with the function's secret credits the account ($5.00) exactly once.
    "webhooks_stripe": (200, lambda b: b == {"received": True, "result": "credited"}),
}
STRIPE_SECRET = "whsec_built_function_test"


def _prepared(name: str, event: dict[str, Any], customer: Customer, key_id: str) -> str:
    """The sample event with the test's key, key id and account in place of the
    placeholders; a Stripe delivery is signed afresh, as Stripe signs (its
    tolerance refuses the sample's old timestamp)."""
    text = json.dumps(event).replace(PLACEHOLDER_KEY, customer.key)
    event = json.loads(text.replace("key_EXAMPLE", key_id))
    if name == "webhooks_stripe":
        body = event["body"].replace("acct_EXAMPLE", customer.account_id)
        signature = fake_stripe.sign(body.encode(), STRIPE_SECRET)
        event["body"] = body
        event["headers"]["Stripe-Signature"] = signature
        event["multiValueHeaders"]["Stripe-Signature"] = [signature]
    return json.dumps(event)


def test_mangum_functions_answer_their_events(build: Path, routes: dict, tmp_path: Path,
                                              dynamodb_endpoint: str, customer: Customer,
                                              runtime: Path, native_twins: Path):
    events = _events()
    second_key, second = customer.store.keys.create(customer.account_id, "to-revoke")
    mangum = {name for name, event in events.items()
              if routes_handler(routes, event) != "run.sh"}
    assert mangum == set(MANGUM_EXPECTATIONS), "an event of a buffered route lacks a check"
    by_function: dict[str, list[str]] = {}
    for name in MANGUM_EXPECTATIONS:
        by_function.setdefault(_function_of(events[name], routes), []).append(name)

    for function, names in by_function.items():
        paths = []
        for name in names:
            path = tmp_path / f"{name}.json"
            path.write_text(_prepared(name, events[name], customer, second.key_id))
            paths.append(str(path))
        out = tmp_path / f"{function}.out.json"
        # Lambda's order: the function's code, then the layers (/opt/python).
        run = subprocess.run(
            [str(runtime / "bin" / "python"), "-c", DRIVER, str(build), str(out), *paths],
            cwd=build / function, capture_output=True, text=True, timeout=120,
            env=_env(dynamodb_endpoint, runtime, STRIPE_WEBHOOK_SECRET=STRIPE_SECRET,
                     NATIVE_TWINS=str(native_twins),
                     PYTHONPATH=f"{build / function}:{native_twins}:{DEPENDENCIES}:{LAYER}"))
        assert run.returncode == 0, run.stderr[-3000:]
        loaded = json.loads(out.read_text())
        assert loaded["outside"] == [], f"{function} loaded code from outside the build"
        assert loaded["afk"].startswith(str(LAYER)), loaded["afk"]
        for package in ("mangum", "starlette", "anyio"):
            assert f"{DEPENDENCIES}/{package}/__init__.py" in loaded["modules"], package
        fastapi = [m for m in loaded["modules"] if "/fastapi/" in m]
        assert bool(fastapi) == (function == "AccountFunction"), (  # the account API only
            function, fastapi[:3])
        for name, response in zip(names, loaded["results"], strict=True):
            status, check = MANGUM_EXPECTATIONS[name]
            assert response["statusCode"] == status, (name, response)
            headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
            assert "x-afk-request-id" in headers or "x-afk-request-id" in {
                k.lower() for k in response.get("multiValueHeaders") or {}}, name
            if check is None:
                assert headers["content-type"].startswith("text/html"), name
            else:
                assert check(json.loads(response["body"])), (name, response["body"][:500])
        # Per request, one EMF line with the route as a dimension; no key in any output.
        emf = _emf(run.stdout)
        assert len([m for m in emf if "Requests" in m]) == len(names), run.stdout[-2000:]
        for key in (customer.key, second_key):
            assert key not in run.stdout + run.stderr
    assert customer.balance() == Decimal("15.00"), "the Stripe delivery credits $5.00 once"


def routes_handler(routes: dict, event: dict[str, Any]) -> str:
    method, resource = event["httpMethod"], event["resource"]
    return (routes.get((method, resource)) or routes[("ANY", resource)])[1]["Handler"]


# ------------------------------------------------------------------ Web Adapter functions
WORDS = " ".join(f"word{i}" for i in range(1500))
STREAMS = {
    "ChatCompletionsFunction": (
        "/v1/chat/completions",
        {"model": "echo", "stream": True, "max_tokens": 2000,
         "messages": [{"role": "user", "content": WORDS}]}, b"data: [DONE]"),
    "MessagesFunction": (
        "/v1/messages",
        {"model": "echo", "stream": True, "max_tokens": 2000,
         "messages": [{"role": "user", "content": WORDS}]}, b"event: message_stop"),
    "ResponsesFunction": (
        "/v1/responses",
        {"model": "echo", "stream": True, "max_output_tokens": 2000, "input": WORDS},
        b"event: response.completed"),
    "GeminiFunction": (
        "/v1beta/models/echo:streamGenerateContent?alt=sse",
        {"contents": [{"role": "user", "parts": [{"text": WORDS}]}],
         "generationConfig": {"maxOutputTokens": 2000}}, b'"finishReason"'),
}


def _route_of(path: str) -> str:
    """The FastAPI route template a request path matched (the metrics' route)."""
    return "/{version}/models/{target:path}" if ":" in path else path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _namespace_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--mount", "sh", "-c", "mount --bind /tmp /mnt"],
                           capture_output=True)
    return probe.returncode == 0


def _start_command(function_dir: Path, opt: Path) -> list[str]:
    """The built run.sh with the built layer at /opt/python, as on Lambda. Where
    mount namespaces are not allowed, a copy of run.sh with only that path moved."""
    if _namespace_works():
        return ["unshare", "--mount", "sh", "-c",
                'mount --bind "$1" /opt && cd "$2" && exec sh ./run.sh', "run.sh", str(opt),
                str(function_dir)]
    script = (function_dir / "run.sh").read_text()
    moved = opt.parent / "run.sh"
    moved.write_text(script.replace("/opt/python", str(opt / "python")))
    assert moved.read_text().count(str(opt)) == script.count("/opt/python") == 1
    return ["sh", str(moved)]


@pytest.fixture
def web_adapter_function(build: Path, tmp_path: Path, dynamodb_endpoint: str, runtime: Path,
                         native_twins: Path):
    started: list[tuple[subprocess.Popen, Path]] = []

    def start(function: str) -> tuple[str, Path]:
        opt = tmp_path / function / "opt"
        opt.mkdir(parents=True)
        # Lambda extracts every layer of the function into /opt, merged (the host's
        # build of the native distributions first: see native_twins).
        for layer in (native_twins, DEPENDENCIES, LAYER):
            for entry in layer.iterdir():
                merged = opt / "python" / entry.name
                merged.parent.mkdir(exist_ok=True)
                if not merged.exists():
                    merged.symlink_to(entry, target_is_directory=entry.is_dir())
        port = _free_port()
        log = tmp_path / function / "stdout.log"
        process = subprocess.Popen(
            _start_command(build / function, opt), cwd=build / function,
            stdout=log.open("wb"), stderr=subprocess.STDOUT,
            env=_env(dynamodb_endpoint, runtime, PORT=str(port), LAMBDA_TASK_ROOT=str(build / function),
                     AWS_LWA_INVOKE_MODE="response_stream"))
        started.append((process, log))
        url = f"http://127.0.0.1:{port}"
        # The Web Adapter's readiness check: any answer below 500 on GET /.
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(url + "/", timeout=1).status_code < 500:
                    return url, log
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)

    yield start
    for process, _ in started:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("function", sorted(STREAMS))
def test_web_adapter_function_streams_sse_in_chunks(function: str, web_adapter_function,
                                                    customer: Customer, routes: dict):
    assert routes_handler(routes, {"httpMethod": "POST", "resource": {
        "ChatCompletionsFunction": "/v1/chat/completions", "MessagesFunction": "/v1/messages",
        "ResponsesFunction": "/v1/responses",
        "GeminiFunction": "/{version}/models/{proxy+}"}[function]}) == "run.sh"
    url, log = web_adapter_function(function)
    path, body, terminal = STREAMS[function]
    header = {"x-goog-api-key": customer.key} if function == "GeminiFunction" \
        else {"authorization": f"Bearer {customer.key}"}
    chunks: list[bytes] = []
    with httpx.stream("POST", url + path, json=body, headers=header, timeout=60) as response:
        assert response.status_code == 200, response.read()[:1000]
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-afk-request-id"].startswith("req_")
        for chunk in response.iter_raw():
            chunks.append(chunk)
    answer = b"".join(chunks)
    assert len(chunks) >= 3, f"{len(chunks)} chunk(s): the answer was buffered"
    assert terminal not in chunks[0], "the end arrived with the first chunk"
    assert terminal in answer
    assert answer.count(b"word1499") >= 1
    # Billed before the terminal event went out; metrics flushed for the request.
    assert len(customer.charges()) == 1
    deadline = time.monotonic() + 5
    while not [m for m in _emf(log.read_text()) if "Requests" in m] and (
            time.monotonic() < deadline):
        time.sleep(0.1)
    emf = _emf(log.read_text())
    assert [m for m in emf if "Requests" in m], log.read_text()[-2000:]
    usage = [m for m in emf if "OutputTokens" in m]
    assert [(m["model"], m["route"]) for m in usage] == [("echo", _route_of(path))]
    assert usage[0]["OutputTokens"] in (1501, [1501])  # "Echo:" and the 1500 words
    assert customer.key not in log.read_text()


# ------------------------------------------------------------------ what the build holds
def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF object"
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def _architectures(template: dict[str, Any]) -> dict[str, str]:
    """Each built resource's architecture, as the template gives it: a function's
    Architectures (or the Globals'), a layer's one CompatibleArchitectures entry."""
    default = template["Globals"]["Function"].get("Architectures", ["x86_64"])
    found = {}
    for name, res in template["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":
            [found[name]] = props.get("Architectures", default)
        elif res["Type"] == "AWS::Serverless::LayerVersion":
            [found[name]] = props["CompatibleArchitectures"]
            assert res["Metadata"]["BuildArchitecture"] == found[name], name
    return found


def test_every_native_extension_matches_its_functions_architecture(build: Path,
                                                                   template: dict[str, Any]):
    """Regression (issue 12): a layer built with x86-64 wheels for arm64 functions
    passed every test, because the tests imported the venv's packages instead."""
    architectures = _architectures(template)
    functions = {name: res for name, res in template["Resources"].items()
                 if res["Type"] == "AWS::Serverless::Function"}
    for name, res in functions.items():
        for layer in template["Globals"]["Function"]["Layers"] + res["Properties"].get(
                "Layers", []):
            if isinstance(layer, dict) and "Ref" in layer:
                assert architectures[layer["Ref"]] == architectures[name], (name, layer)
    checked = []
    for resource, architecture in architectures.items():
        for path in (build / resource).rglob("*.so*"):
            if path.is_file():
                assert _elf_machine(path) == ELF_MACHINES[architecture], (
                    f"{path.relative_to(build)} is not built for {architecture}")
                checked.append(path)
    assert any(DEPENDENCIES in path.parents for path in checked), \
        "no native extension in the dependency layer: nothing was checked"


def _pins(lock: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a pip lock (`name==version \\ --hash=sha256:…`)."""
    pins = {}
    for entry in re.split(r"\n(?=[A-Za-z0-9])", lock):
        if match := re.match(r"([A-Za-z0-9._-]+)==(\S+)", entry):
            pins[_normalize(match[1])] = (match[2], re.findall(r"--hash=sha256:(\w{64})", entry))
    return pins


def _normalize(name: str) -> str:
    return canonicalize_name(name)


def _direct_requirements() -> list[Requirement]:
    return [Requirement(line) for line in REQUIREMENTS.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_dependency_layer_is_exactly_the_lock(build: Path):
    pins = _pins(LOCK.read_text())
    assert pins and all(hashes for _, hashes in pins.values()), "every pin carries its hashes"
    for requirement in _direct_requirements():
        version, _ = pins[_normalize(requirement.name)]
        assert requirement.specifier.contains(version), (
            f"the lock pins {requirement.name} {version}, outside {requirement}: `make lock`")
    built = {}
    for meta in DEPENDENCIES.glob("*.dist-info/METADATA"):
        fields = dict(re.findall(r"^(Name|Version): (.+)$", meta.read_text(), re.MULTILINE))
        built[_normalize(fields["Name"])] = fields["Version"]
    assert built == {name: version for name, (version, _) in pins.items()}


def _imported_names() -> set[str]:
    """Top-level names the deployed code imports, the packages uvicorn imports by the
    name it is given (`http="httptools"`, `loop="uvloop"`), and the modules run.sh
    runs (-m)."""
    names = set()
    sources = [*(ROOT / "shared" / "afk").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    for path in sources:
        text = path.read_text()
        names.update(re.findall(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", text, re.MULTILINE))
        names.update(re.findall(r"\b(?:http|loop)=\"([A-Za-z_]\w*)\"", text))
    for script in (ROOT / "functions").rglob("run.sh"):
        names.update(re.findall(r"-m\s+([A-Za-z_]\w*)", script.read_text()))
    return names


def test_every_direct_dependency_is_imported(build: Path):
    imported = _imported_names()
    unused = []
    for requirement in _direct_requirements():
        name = _normalize(requirement.name)
        [record] = [r for r in DEPENDENCIES.glob("*.dist-info/RECORD")
                    if _normalize(r.parent.name.split("-", 1)[0]) == name]
        provides = {row.split(",")[0].split("/")[0].removesuffix(".py")
                    for row in record.read_text().splitlines()}
        if not provides & imported:
            unused.append(name)
    assert unused == [], f"layer dependencies nothing imports: {unused}"
