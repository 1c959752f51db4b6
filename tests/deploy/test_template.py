"""The SAM template: lint-clean, and wired the way the architecture says.

cfn-lint passes templates that deploy the wrong thing (an Api event with
`ResponseTransferMode: STREAM` lints clean and deploys a buffered integration),
so the routes, the streaming setup and the IAM scope are asserted here too.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import cfn_yaml

from tests.support.paths import ROOT

TEMPLATE = ROOT / "template.yaml"

# Every route of this milestone and the function that must serve it.
ROUTES = {
    ("GET", "/v1/models"): "ModelsFunction",
    ("GET", "/v1/models/{proxy+}"): "ModelsFunction",
    ("GET", "/{version}/models"): "ModelsFunction",
    ("GET", "/{version}/models/{proxy+}"): "ModelsFunction",
    ("POST", "/v1/chat/completions"): "ChatCompletionsFunction",
    ("POST", "/v1/embeddings"): "ChatCompletionsFunction",
    ("POST", "/v1/responses"): "ResponsesFunction",
    ("ANY", "/v1/responses/{proxy+}"): "ResponsesFunction",
    ("POST", "/v1/messages"): "MessagesFunction",
    ("POST", "/v1/messages/count_tokens"): "MessagesFunction",
    ("POST", "/v1/models/{proxy+}"): "GeminiFunction",
    ("POST", "/{version}/models/{proxy+}"): "GeminiFunction",
    ("ANY", "/v1/account"): "AccountFunction",
    ("ANY", "/v1/account/{proxy+}"): "AccountFunction",
    ("POST", "/webhooks/stripe"): "AccountFunction",
    ("GET", "/"): "DashboardFunction",
}
# Every route of a Web Adapter function streams: in response_stream mode its output
# is the streaming prelude + body, which a buffered proxy integration cannot parse.
STREAMING_ROUTES = {("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings"),
                    ("POST", "/v1/responses"),
                    ("ANY", "/v1/responses/{proxy+}"), ("POST", "/v1/messages"),
                    ("POST", "/v1/messages/count_tokens"), ("POST", "/v1/models/{proxy+}"),
                    ("POST", "/{version}/models/{proxy+}")}
LWA_LAYER = "753240598075:layer:LambdaAdapterLayerArm64:"
BEDROCK_POLICY = {"Ref": "BedrockInvoke"}
GENERATION_FUNCTIONS = {"ChatCompletionsFunction", "ResponsesFunction", "MessagesFunction",
                        "GeminiFunction"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn_yaml.load(str(TEMPLATE))


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: res
        for name, res in template["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }


def _api_events(function: dict[str, Any]) -> list[dict[str, Any]]:
    events = function["Properties"].get("Events", {}).values()
    return [e["Properties"] for e in events if e["Type"] == "Api"]


def _environment(template: dict[str, Any], function: dict[str, Any]) -> dict[str, Any]:
    env = dict(
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    env.update(function["Properties"].get("Environment", {}).get("Variables", {}))
    return env


def _statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    statements = []
    for policy in function["Properties"].get("Policies", []):
        if policy == BEDROCK_POLICY:
            continue  # the one shared managed policy (test_bedrock_access_is_the_catalogs)
        assert isinstance(policy, dict) and "Statement" in policy, (
            f"only inline policy documents are allowed, got {policy!r}"
        )
        statements.extend(policy["Statement"])
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [a.lower() for a in ([actions] if isinstance(actions, str) else actions)]


def test_cfn_lint_is_clean() -> None:
    matches = lint_file(TEMPLATE, config=ManualArgs(regions=["us-east-1"]))
    problems = [m for m in matches if m.rule.id[0] in "EW"]
    assert not problems, "\n".join(str(m) for m in problems)


def test_every_route_maps_to_its_function(template: dict[str, Any]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for name, function in _functions(template).items():
        for event in _api_events(function):
            assert event.get("RestApiId") == {"Ref": "Api"}, (
                f"{name}: event not on the one REST API"
            )
            route = (event["Method"].upper(), event["Path"])
            assert route not in seen, f"{route} served by both {seen[route]} and {name}"
            seen[route] = name
    missing = {r: f for r, f in ROUTES.items() if seen.get(r) != f}
    assert not missing, f"routes not served by the right function: {missing}"


def test_api_is_regional_with_prod_stage(template: dict[str, Any]) -> None:
    api = template["Resources"]["Api"]
    assert api["Type"] == "AWS::Serverless::Api"
    assert api["Properties"]["StageName"] == "prod"
    assert api["Properties"]["EndpointConfiguration"]["Type"] == "REGIONAL"


def test_streaming_routes_use_response_stream_transfer_mode(template: dict[str, Any]) -> None:
    for name, function in _functions(template).items():
        for event in _api_events(function):
            route = (event["Method"].upper(), event["Path"])
            mode = event.get("ResponseTransferMode")
            # "STREAM" is the API Gateway spelling; SAM silently ignores it.
            assert mode in (None, "RESPONSE_STREAM"), f"{name} {route}: {mode!r}"
            assert (mode == "RESPONSE_STREAM") == (route in STREAMING_ROUTES), f"{name} {route}"


def test_streaming_functions_run_uvicorn_behind_the_web_adapter(template: dict[str, Any]) -> None:
    for name, function in _functions(template).items():
        props = function["Properties"]
        streams = any(e.get("ResponseTransferMode") for e in _api_events(function))
        assert (props["Handler"] == "run.sh") == streams, f"{name}: handler {props['Handler']}"
        if not streams:
            continue
        env = _environment(template, function)
        assert env.get("AWS_LWA_INVOKE_MODE") == "response_stream", name
        assert env.get("AWS_LAMBDA_EXEC_WRAPPER") == "/opt/bootstrap", name
        assert env.get("PORT"), name
        layers = [str(layer) for layer in props.get("Layers", [])]
        assert any(LWA_LAYER in layer for layer in layers), f"{name}: no Web Adapter layer"
        run_sh = ROOT / props["CodeUri"] / "run.sh"
        assert run_sh.is_file() and os.access(run_sh, os.X_OK), (
            f"{run_sh} missing or not executable"
        )
        script = run_sh.read_text()
        assert "PYTHONPATH=/opt/python:$LAMBDA_TASK_ROOT" in script
        # uvicorn on $PORT, as afk/serve.py starts it (tests/unit/test_serve.py).
        assert "exec python -m afk.serve" in script


def test_handlers_exist(template: dict[str, Any]) -> None:
    for name, function in _functions(template).items():
        props = function["Properties"]
        code = ROOT / props["CodeUri"]
        module = (
            props["Handler"]
            if props["Handler"].endswith(".sh")
            else props["Handler"].split(".")[0] + ".py"
        )
        assert (code / module).is_file(), f"{name}: {code / module} missing"


def test_sweeper_runs_on_a_schedule(template: dict[str, Any]) -> None:
    sweeper = template["Resources"]["SweeperFunction"]["Properties"]
    schedules = [
        e["Properties"]["Schedule"] for e in sweeper["Events"].values() if e["Type"] == "Schedule"
    ]
    assert schedules == ["rate(5 minutes)"]
    assert "from afk.sweeper import handler" in (ROOT / sweeper["CodeUri"] / "app.py").read_text()


def test_dynamodb_access_is_least_privilege(template: dict[str, Any]) -> None:
    for name, function in _functions(template).items():
        on_request_path = bool(_api_events(function))
        statements = _statements(function)
        assert statements, f"{name}: no policy"
        for statement in statements:
            actions = _actions(statement)
            for action in actions:
                assert action not in ("*", "dynamodb:*"), f"{name}: grants {action}"
                assert not action.endswith("*"), f"{name}: wildcard action {action}"
                # Not an IAM action: transactions are authorized per contained item.
                assert action != "dynamodb:transactwriteitems", f"{name}: {action}"
            if on_request_path:
                assert "dynamodb:scan" not in actions, (
                    f"{name} is on the request path and may not Scan"
                )
            resources = statement["Resource"]
            resources = resources if isinstance(resources, list) else [resources]
            assert "*" not in resources, f"{name}: Resource *"


def test_query_is_allowed_on_the_index(template: dict[str, Any]) -> None:
    for name, function in _functions(template).items():
        for statement in _statements(function):
            if "dynamodb:query" in _actions(statement):
                assert {"Fn::Sub": "${Table.Arn}/index/*"} in statement["Resource"], name


def test_table_keys_ttl_and_protection(template: dict[str, Any]) -> None:
    table = template["Resources"]["Table"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {
        ("PK", "HASH"),
        ("SK", "RANGE"),
    }
    (gsi,) = table["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "gsi1"
    assert {(k["AttributeName"], k["KeyType"]) for k in gsi["KeySchema"]} == {
        ("GSI1PK", "HASH"),
        ("GSI1SK", "RANGE"),
    }
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["DeletionProtectionEnabled"] == {"Ref": "TableDeletionProtection"}


def test_functions_share_runtime_layers_and_table(template: dict[str, Any]) -> None:
    globals_ = template["Globals"]["Function"]
    assert globals_["Runtime"] == "python3.12"
    assert globals_["Architectures"] == ["arm64"]
    assert globals_["Environment"]["Variables"]["AFK_TABLE"] == {"Ref": "Table"}
    assert {"Ref": "DependenciesLayer"} in globals_["Layers"]
    assert {"Ref": "AfkLayer"} in globals_["Layers"]
    requirements = (ROOT / "layers/dependencies/requirements.in").read_text().lower().split()
    names = {r.split(">")[0].split("=")[0] for r in requirements if not r.startswith("#")}
    assert not {"boto3", "botocore", "moto", "pytest", "aws-sam-cli", "cfn-lint"} & names
    assert "aws-lambda-powertools" in names


# ------------------------------------------------------------------ secret, logs, alarms
# The functions that call providers, and the models function: its lists show only
# models whose provider has a key.
PROVIDER_FUNCTIONS = {"ChatCompletionsFunction", "ResponsesFunction", "MessagesFunction",
                      "GeminiFunction", "ModelsFunction"}
# The secret also holds the Stripe keys, which the account function's top-ups read.
SECRET_FUNCTIONS = PROVIDER_FUNCTIONS | {"AccountFunction"}


def test_provider_keys_secret_is_created_empty(template: dict[str, Any]) -> None:
    secret = template["Resources"]["ProviderKeys"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert json.loads(secret["Properties"]["SecretString"]) == {
        "OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": "", "GEMINI_API_KEY": ""}
    assert "ProviderKeysSecretArn" in template["Outputs"]


def test_only_functions_that_call_providers_get_the_secret(template: dict[str, Any]) -> None:
    for name, function in _functions(template).items():
        env = _environment(template, function)
        reads = [s for s in _statements(function)
                 if "secretsmanager:getsecretvalue" in _actions(s)]
        if name in SECRET_FUNCTIONS:
            assert env.get("AFK_SECRET_ARN") == {"Ref": "ProviderKeys"}, name
            assert [(_actions(s), s["Resource"]) for s in reads] == [
                (["secretsmanager:getsecretvalue"], {"Ref": "ProviderKeys"})], name
        else:
            assert "AFK_SECRET_ARN" not in env and not reads, name


def test_powertools_is_configured_for_every_function(template: dict[str, Any]) -> None:
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"]


def _alarm_metrics(alarm: dict[str, Any]) -> set[tuple[str, str]]:
    props = alarm["Properties"]
    if "MetricName" in props:
        namespace = props["Namespace"]
        if isinstance(namespace, dict):  # !Sub afk/${AWS::StackName}
            namespace = namespace["Fn::Sub"]
        return {(namespace, props["MetricName"])}
    return {(m["MetricStat"]["Metric"]["Namespace"], m["MetricStat"]["Metric"]["MetricName"])
            for m in props["Metrics"] if "MetricStat" in m}


def test_alarms_cover_5xx_throttles_and_the_sweeper(template: dict[str, Any]) -> None:
    alarms = {name: res for name, res in template["Resources"].items()
              if res["Type"] == "AWS::CloudWatch::Alarm"}
    watched = set().union(*(_alarm_metrics(a) for a in alarms.values()))
    assert {("AWS/ApiGateway", "5XXError"), ("AWS/Lambda", "Throttles"),
            ("AWS/DynamoDB", "ReadThrottleEvents"), ("AWS/DynamoDB", "WriteThrottleEvents"),
            ("AWS/Lambda", "Errors")} <= watched
    sweeper = template["Resources"]["SweeperErrorsAlarm"]["Properties"]
    assert sweeper["Dimensions"] == [{"Name": "FunctionName",
                                      "Value": {"Ref": "SweeperFunction"}}]
    throttled = {m["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]
                 for m in template["Resources"]["LambdaThrottlesAlarm"]["Properties"]["Metrics"]
                 if "MetricStat" in m}
    assert throttled == set(_functions(template))


def test_an_uncovered_charge_alarms(template: dict[str, Any]) -> None:
    """Usage above the hold (a quoting bug) is an operator alarm, on the metric
    observe_settlement emits with the service dimension only."""
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    alarm = template["Resources"]["UncoveredChargesAlarm"]["Properties"]
    assert _alarm_metrics({"Properties": alarm}) == {
        (env["POWERTOOLS_METRICS_NAMESPACE"]["Fn::Sub"], "UncoveredNanoUSD")}
    assert alarm["Dimensions"] == [{"Name": "service",
                                    "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "Sum", 0, "GreaterThanThreshold")


# ------------------------------------------------------------------ what SAM deploys
def _translate(parameters: dict[str, str]) -> dict[str, Any]:
    """The CloudFormation SAM would deploy with these parameter values, translated
    offline (no AWS call: local code URIs become placeholders as `sam package` would
    make them; no managed policy is looked up by name)."""
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    sam = yaml_parse(TEMPLATE.read_text())
    for name, resource in sam["Resources"].items():
        for uri in ("CodeUri", "ContentUri"):
            if uri in resource.get("Properties", {}):
                resource["Properties"][uri] = f"s3://afk-artifacts/{name}.zip"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    return transform(sam, parameters, NoManagedPolicies())


@pytest.fixture(scope="module")
def translated(monkeypatch_module: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch_module.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return _translate({})


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _integrations(translated: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    paths = translated["Resources"]["Api"]["Properties"]["Body"]["paths"]
    return {("ANY" if method == "x-amazon-apigateway-any-method" else method.upper(), path):
            op["x-amazon-apigateway-integration"]
            for path, ops in paths.items() for method, op in ops.items()}


def test_translated_routes_stream_exactly_where_they_should(translated: dict[str, Any]) -> None:
    integrations = _integrations(translated)
    assert set(integrations) == set(ROUTES), "the deployed API has other routes than the table"
    for route, function in ROUTES.items():
        integration = integrations[route]
        uri = integration["uri"]["Fn::Sub"]
        assert integration["type"] == "aws_proxy", route
        assert f"${{{function}.Arn}}" in uri, (route, uri)
        if route in STREAMING_ROUTES:
            assert integration.get("responseTransferMode") == "STREAM", route
            assert uri.endswith("/response-streaming-invocations"), (route, uri)
            if route[0] == "POST":  # generations may stream for up to 15 minutes
                assert integration.get("timeoutInMillis") == 900000, route
        else:
            assert "responseTransferMode" not in integration, route
            assert uri.endswith(f"/functions/${{{function}.Arn}}/invocations"), (route, uri)


def test_translated_api_is_regional(translated: dict[str, Any]) -> None:
    api = translated["Resources"]["Api"]["Properties"]
    assert api["EndpointConfiguration"]["Types"] == ["REGIONAL"]
    stages = [r for r in translated["Resources"].values()
              if r["Type"] == "AWS::ApiGateway::Stage"]
    assert [s["Properties"]["StageName"] for s in stages] == ["prod"]


def test_translated_roles_reach_only_the_table_and_the_secret(
        translated: dict[str, Any]) -> None:
    allowed = [{"Fn::GetAtt": ["Table", "Arn"]}, {"Fn::Sub": "${Table.Arn}/index/*"},
               {"Ref": "ProviderKeys"}]
    managed = {"arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
               "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"}
    bedrock = {name for name, res in translated["Resources"].items()
               if res["Type"] == "AWS::IAM::Role"
               and BEDROCK_POLICY in res["Properties"].get("ManagedPolicyArns", [])}
    assert {name.removesuffix("Role") for name in bedrock} == GENERATION_FUNCTIONS
    roles = {name: res for name, res in translated["Resources"].items()
             if res["Type"] == "AWS::IAM::Role" and name.endswith("FunctionRole")}
    assert {name.removesuffix("Role") for name in roles} == set(
        _functions(cfn_yaml.load(str(TEMPLATE))))
    for name, role in roles.items():
        props = role["Properties"]
        # SAM gives a stream's consumer the managed stream-reading policy (the
        # stream's own actions, scoped to streams); only the aggregator has one.
        stream_reader = {"arn:aws:iam::aws:policy/service-role/"
                         "AWSLambdaDynamoDBExecutionRole"} if name == "AggregatorFunctionRole" \
            else set()
        assert [p for p in props.get("ManagedPolicyArns", [])
                if p != BEDROCK_POLICY and p not in managed | stream_reader] == [], name
        for policy in props["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                resources = statement["Resource"]
                for resource in resources if isinstance(resources, list) else [resources]:
                    assert resource in allowed, (name, resource)
                if {"Ref": "ProviderKeys"} in (resources if isinstance(resources, list)
                                               else [resources]):
                    assert _actions(statement) == ["secretsmanager:getsecretvalue"], name
                    assert name.removesuffix("Role") in SECRET_FUNCTIONS, name


def _bedrock_arns(upstream: str) -> list[str]:
    """What invoking `upstream` needs: a cross-Region inference profile (geo or global
    prefix) in this Region and its model wherever it routes; else the model here."""
    prefix, _, model = upstream.partition(".")
    if prefix in ("us", "eu", "apac", "jp", "au", "ca", "global"):
        return ["arn:${AWS::Partition}:bedrock:${AWS::Region}:${AWS::AccountId}:"
                f"inference-profile/{upstream}",
                f"arn:${{AWS::Partition}}:bedrock:*::foundation-model/{model}"]
    return [f"arn:${{AWS::Partition}}:bedrock:${{AWS::Region}}::foundation-model/{upstream}"]


def test_bedrock_access_is_the_catalogs_models_and_only_for_generation(
        template: dict[str, Any]) -> None:
    from afk.catalog import Catalog

    policy = template["Resources"]["BedrockInvoke"]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(_actions(statement)) == ["bedrock:invokemodel",
                                           "bedrock:invokemodelwithresponsestream"]
    granted = [r["Fn::Sub"] for r in statement["Resource"]]
    expected = [arn for m in Catalog.load() if m.provider == "bedrock"
                for arn in _bedrock_arns(m.upstream)]
    assert expected and granted == expected
    for name, function in _functions(template).items():
        attached = BEDROCK_POLICY in function["Properties"].get("Policies", [])
        assert attached == (name in GENERATION_FUNCTIONS), name


# ------------------------------------------------------------------ SAM CLI
SAM = ROOT / ".venv-sam" / "bin" / "sam"


def sam_cli() -> Path:
    """The SAM CLI of `make sam`; CI (AFK_REQUIRE_SAM=1) fails rather than skips."""
    if not SAM.exists():
        if os.environ.get("AFK_REQUIRE_SAM"):
            pytest.fail(f"{SAM} missing: run `make sam`")
        pytest.skip("SAM CLI not installed (make sam)")
    return SAM


def test_sam_validate_lint() -> None:
    result = subprocess.run([str(sam_cli()), "validate", "--lint"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "SAM_CLI_TELEMETRY": "0",
                                 "AWS_DEFAULT_REGION": "us-east-1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


# ------------------------------------------------------------------ the operator's parameters
NO_VALUE = object()


class Deployed:
    """The stack CloudFormation would create from the translated template with these
    parameter values: conditions decided, `Fn::If` and parameter `Ref`s resolved,
    `${Param}` substituted in `Fn::Sub`, `AWS::NoValue` dropped, and resources whose
    condition is false left out."""

    def __init__(self, translated: dict[str, Any], parameters: dict[str, str]) -> None:
        self.parameters = {name: str(p["Default"])
                           for name, p in translated["Parameters"].items() if "Default" in p}
        self.parameters.update(parameters)
        self.conditions: dict[str, bool] = {}
        for name, expression in translated.get("Conditions", {}).items():
            self.conditions[name] = self._condition(expression)
        self.resources = {name: self._resolve(res)
                          for name, res in translated["Resources"].items()
                          if self.conditions.get(res.get("Condition", ""), True)}

    def _condition(self, expression: Any) -> Any:
        if not isinstance(expression, dict):
            return expression
        [(key, value)] = expression.items()
        if key == "Ref":
            return self.parameters.get(value, value)
        if key == "Condition":
            return self.conditions[value]
        args = [self._condition(v) for v in value]
        return {"Fn::Equals": lambda: str(args[0]) == str(args[1]),
                "Fn::Not": lambda: not args[0], "Fn::And": lambda: all(args),
                "Fn::Or": lambda: any(args)}[key]()

    def _resolve(self, node: Any) -> Any:
        if isinstance(node, dict):
            if len(node) == 1:
                [(key, value)] = node.items()
                if key == "Fn::If":
                    condition, yes, no = value
                    return self._resolve(yes if self.conditions[condition] else no)
                if key == "Ref" and value == "AWS::NoValue":
                    return NO_VALUE
                if key == "Ref" and value in self.parameters:
                    return self.parameters[value]
                if key == "Fn::Sub" and isinstance(value, str):
                    for name, given in self.parameters.items():
                        value = value.replace("${" + name + "}", given)
                    return {"Fn::Sub": value}
            items = {k: self._resolve(v) for k, v in node.items()}
            return {k: v for k, v in items.items() if v is not NO_VALUE}
        if isinstance(node, list):
            return [v for v in map(self._resolve, node) if v is not NO_VALUE]
        return node

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: res for name, res in self.resources.items() if res["Type"] == kind}

    def stage(self) -> dict[str, Any]:
        [stage] = self.of_type("AWS::ApiGateway::Stage").values()
        return stage["Properties"]


@pytest.fixture(scope="module")
def deploy(monkeypatch_module: pytest.MonkeyPatch):
    monkeypatch_module.setenv("AWS_DEFAULT_REGION", "us-east-1")

    def deployed(**parameters: str) -> Deployed:
        return Deployed(_translate(parameters), parameters)

    return deployed


def test_parameters_default_to_what_an_operator_expects(template: dict[str, Any]) -> None:
    defaults = {name: p.get("Default") for name, p in template["Parameters"].items()}
    assert defaults["ThrottlingRateLimit"] == 100 and defaults["ThrottlingBurstLimit"] == 200
    assert defaults["AccessLogs"] == "false"
    assert defaults["LogRetentionDays"] == 30
    assert defaults["Tracing"] == "Disabled"
    assert defaults["WebAdapterLayerVersion"] == 30


def test_stage_throttling_follows_its_parameters(deploy) -> None:
    stage = deploy(ThrottlingRateLimit="25", ThrottlingBurstLimit="40").stage()
    assert stage["MethodSettings"] == [{"ResourcePath": "/*", "HttpMethod": "*",
                                        "ThrottlingRateLimit": "25",
                                        "ThrottlingBurstLimit": "40"}]
    default = deploy().stage()["MethodSettings"][0]
    assert (default["ThrottlingRateLimit"], default["ThrottlingBurstLimit"]) == ("100", "200")


def test_access_logs_are_opt_in_with_the_account_role_they_need(deploy) -> None:
    off = deploy()
    assert "AccessLogSetting" not in off.stage()
    assert not off.of_type("AWS::ApiGateway::Account")
    assert set(off.of_type("AWS::IAM::Role")) == {f"{f}Role" for f in _functions(
        cfn_yaml.load(str(TEMPLATE)))}, "no role beyond the functions' without access logs"

    on = deploy(AccessLogs="true", LogRetentionDays="14")
    setting = on.stage()["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    group = on.resources["ApiAccessLogs"]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == "14"
    assert group["DeletionPolicy"] == "Delete"
    line = json.loads(setting["Format"])  # one JSON object per request
    assert {"requestId", "status", "resource", "latencyMs", "error"} <= set(line)
    assert not any("querystring" in v.lower() or "header" in v.lower() for v in line.values()), \
        "access logs must not carry keys (?key=, Authorization)"

    [(name, account)] = on.of_type("AWS::ApiGateway::Account").items()
    role_ref = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    role = on.resources[role_ref]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "apigateway.amazonaws.com"}
    assert role["ManagedPolicyArns"] == [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/"
                                          "service-role/AmazonAPIGatewayPushToCloudWatchLogs"}]
    # The stage is created after the account setting (API Gateway refuses access logs
    # while the account has no CloudWatch role): API -> AccessLogsReady -> the account.
    assert on.resources["Api"]["DependsOn"] in ("AccessLogsReady", ["AccessLogsReady"])
    assert on.resources["AccessLogsReady"]["Metadata"] == {"AccountSetting": {"Ref": name}}


def test_every_function_logs_to_its_own_group_kept_for_the_retention(deploy) -> None:
    for days in ("30", "7"):
        stack = deploy(LogRetentionDays=days) if days != "30" else deploy()
        functions = stack.of_type("AWS::Lambda::Function")
        assert len(functions) == len(_functions(cfn_yaml.load(str(TEMPLATE))))
        groups = set()
        for name, function in functions.items():
            ref = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
            group = stack.resources[ref]
            assert group["Type"] == "AWS::Logs::LogGroup", name
            assert group["Properties"]["RetentionInDays"] == days, name
            assert (group["DeletionPolicy"], group["UpdateReplacePolicy"]) == ("Delete", "Delete")
            groups.add(ref)
        assert len(groups) == len(functions), "each function has its own log group"


def test_tracing_is_a_parameter_off_by_default(deploy) -> None:
    xray = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
    off = deploy()
    assert off.stage()["TracingEnabled"] is False
    for name, function in off.of_type("AWS::Lambda::Function").items():
        assert "TracingConfig" not in function["Properties"], name
    for name, role in off.of_type("AWS::IAM::Role").items():
        assert xray not in role["Properties"].get("ManagedPolicyArns", []), name

    on = deploy(Tracing="Active")
    assert on.stage()["TracingEnabled"] is True
    for name, function in on.of_type("AWS::Lambda::Function").items():
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, name
        assert xray in on.resources[f"{name}Role"]["Properties"]["ManagedPolicyArns"], name


def test_web_adapter_layer_version_is_a_parameter(deploy) -> None:
    stack = deploy(WebAdapterLayerVersion="31")
    streaming = {name for name, f in _functions(cfn_yaml.load(str(TEMPLATE))).items()
                 if f["Properties"]["Handler"] == "run.sh"}
    assert streaming
    for name in streaming:
        layers = [layer["Fn::Sub"] for layer in
                  stack.resources[name]["Properties"]["Layers"] if "Fn::Sub" in layer]
        assert layers == ["arn:${AWS::Partition}:lambda:${AWS::Region}:753240598075:"
                          "layer:LambdaAdapterLayerArm64:31"], (name, layers)
