"""The wiring of template.yaml, read from the CloudFormation that aws-sam-translator makes of it.

Each test names one promise of docs/architecture.md or issue 2: which routes the authorizer
guards, that API Gateway may invoke exactly the functions it routes to, that only the broadcast
function may post to connections, the Kafka mapping under each source, and that no secret sits in
an environment variable. Intrinsics are evaluated with ``tests.support.template.evaluate``, which
leaves deployed-only values as ``${LogicalId}`` placeholders, so ARNs compare as plain strings.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.template import (
    ACCOUNT_ID,
    REGION,
    ROOT,
    condition_holds,
    evaluate,
    parameter_values,
    parse_template,
    resources_of_type,
    translate,
    translated,
)

EXECUTE_API = f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}"
APIGATEWAY = "apigateway.amazonaws.com"

PUBLIC_ROUTES = {
    ("POST", "/auth/login"): "AuthProxyFunction",
    ("POST", "/auth/refresh"): "AuthProxyFunction",
    ("GET", "/auth/.well-known/jwks.json"): "AuthProxyFunction",
}
PROTECTED_ROUTES = {
    ("ANY", "/auth/{proxy+}"): "AuthProxyFunction",
    ("ANY", "/tickets"): "TicketsProxyFunction",
    ("ANY", "/tickets/{proxy+}"): "TicketsProxyFunction",
    ("GET", "/projects/{projectId}/board"): "BoardFunction",
}
WEBSOCKET_ROUTES = {"$connect", "$disconnect", "subscribe", "unsubscribe", "$default"}

COMMON_ENVIRONMENT = {"LOG_LEVEL", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}
REDIS_ENVIRONMENT = {"REDIS_URL", "REDIS_CLUSTER"}
RATE_LIMIT_ENVIRONMENT = {"RATE_LIMIT", "RATE_LIMIT_FAILURE_POLICY"}
UPSTREAM_ENVIRONMENT = {"UPSTREAM_URL", "UPSTREAM_TIMEOUT_SECONDS", "FRONTEND_ORIGIN"}
BREAKER_ENVIRONMENT = {"BREAKER_FAILURE_THRESHOLD", "BREAKER_COOLDOWN_SECONDS"}
LOGIN_ENVIRONMENT = {
    "LOGIN_PER_IP",
    "LOGIN_PER_IP_FAILURES",
    "LOGIN_PER_USER_FAILURES",
    "LOGIN_PER_USER_GLOBAL_FAILURES",
    "LOGIN_TRUST_SECONDS",
}
# docs/architecture.md, "Functions, routes, environment": code folder, handler, variables.
FUNCTIONS: dict[str, tuple[str, str, set[str]]] = {
    "AuthorizerFunction": (
        "functions/authorizer",
        "authorizer.handler",
        {
            "JWT_SETTINGS_SECRET_ARN",
            "JWT_LEEWAY_SECONDS",
            "JWKS_MIN_REFETCH_SECONDS",
            "JWKS_FETCH_TIMEOUT_SECONDS",
        },
    ),
    "AuthProxyFunction": (
        "functions/proxy",
        "proxy.handler",
        {"ROUTE_GROUP"}
        | UPSTREAM_ENVIRONMENT
        | BREAKER_ENVIRONMENT
        | REDIS_ENVIRONMENT
        | RATE_LIMIT_ENVIRONMENT
        | LOGIN_ENVIRONMENT,
    ),
    "TicketsProxyFunction": (
        "functions/proxy",
        "proxy.handler",
        {"ROUTE_GROUP"}
        | UPSTREAM_ENVIRONMENT
        | BREAKER_ENVIRONMENT
        | REDIS_ENVIRONMENT
        | RATE_LIMIT_ENVIRONMENT,
    ),
    "BoardFunction": (
        "functions/proxy",
        "board.handler",
        {"TICKETS_URL", "ASSIGNMENTS_URL", "UPSTREAM_TIMEOUT_SECONDS", "FRONTEND_ORIGIN"}
        | BREAKER_ENVIRONMENT
        | REDIS_ENVIRONMENT
        | RATE_LIMIT_ENVIRONMENT,
    ),
    "WsConnectFunction": (
        "functions/ws_connect",
        "ws_connect.handler",
        REDIS_ENVIRONMENT | {"WS_MAX_BODY_BYTES"},
    ),
    "WsBroadcastFunction": (
        "functions/ws_broadcast",
        "ws_broadcast.handler",
        REDIS_ENVIRONMENT | {"WS_MANAGEMENT_ENDPOINT", "BROADCAST_CONCURRENCY"},
    ),
}
ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}


class Stack:
    """A translated template and the parameter values its intrinsics are evaluated with."""

    def __init__(self, overrides: dict[str, Any] | None = None) -> None:
        self.template = translate(parameters=overrides) if overrides else translated()
        self.parameters = parameter_values(self.template, overrides)
        self.resources: dict[str, Any] = self.template["Resources"]

    def value(self, raw: Any) -> Any:
        return evaluate(raw, self.template, self.parameters)

    def properties(self, logical_id: str) -> dict[str, Any]:
        properties: dict[str, Any] = self.value(self.resources[logical_id]["Properties"])
        return properties

    def deployed(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Resources of ``kind`` whose Condition holds, their properties evaluated."""
        for logical_id, resource in resources_of_type(self.template, kind):
            condition = resource.get("Condition")
            if condition and not condition_holds(condition, self.template, self.parameters):
                continue
            yield logical_id, self.properties(logical_id)

    def http_api_body(self) -> dict[str, Any]:
        body: dict[str, Any] = self.resources["HttpApi"]["Properties"]["Body"]
        return body


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack()


def _function_of(reference: str) -> str:
    """``${AuthorizerFunction.Arn}`` or ``${AuthorizerFunction}`` -> ``AuthorizerFunction``."""
    match = re.fullmatch(r"\$\{(\w+)(?:\.Arn)?\}", reference)
    assert match, f"not a reference to a function: {reference!r}"
    return match.group(1)


def _invoked_function(integration_uri: str) -> str:
    match = re.search(r"/functions/\$\{(\w+)\.Arn\}/invocations$", integration_uri)
    assert match, f"not a Lambda integration: {integration_uri!r}"
    return match.group(1)


def _http_routes(stack: Stack) -> dict[tuple[str, str], dict[str, Any]]:
    routes = {}
    for path, methods in stack.http_api_body()["paths"].items():
        for method, operation in methods.items():
            name = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
            routes[(name, path)] = operation
    return routes


def _invoke_permissions(stack: Stack) -> list[dict[str, Any]]:
    return [props for _, props in stack.deployed("AWS::Lambda::Permission")]


def _permitted(stack: Stack, function: str, source_arn: str) -> bool:
    return any(
        _function_of(props["FunctionName"]) == function
        and props["Principal"] == APIGATEWAY
        and props["Action"] == "lambda:InvokeFunction"
        and props["SourceArn"] == source_arn
        for props in _invoke_permissions(stack)
    )


def _policy_statements(stack: Stack) -> Iterator[tuple[str, dict[str, Any]]]:
    """(role logical id, statement) for every inline and standalone policy that is deployed."""
    for role_id, role in stack.deployed("AWS::IAM::Role"):
        for policy in role.get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                yield role_id, statement
    for _, policy in stack.deployed("AWS::IAM::Policy"):
        for role_ref in policy["Roles"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                yield role_ref.strip("${}"), statement


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def _resources(statement: dict[str, Any]) -> list[str]:
    resources = statement["Resource"]
    return [resources] if isinstance(resources, str) else list(resources)


# --- the HTTP API ---------------------------------------------------------------------------


def test_http_api_comes_first_among_the_apis_in_the_template() -> None:
    api_types = {
        "AWS::Serverless::HttpApi",
        "AWS::Serverless::Api",
        "AWS::ApiGatewayV2::Api",
        "AWS::ApiGateway::RestApi",
    }
    apis = [
        logical_id
        for logical_id, resource in parse_template()["Resources"].items()
        if resource["Type"] in api_types
    ]
    assert apis == ["HttpApi", "WebSocketApi"]
    assert parse_template()["Resources"]["HttpApi"]["Type"] == "AWS::Serverless::HttpApi"


def test_http_routes_are_exactly_the_public_and_protected_sets(stack: Stack) -> None:
    routes = _http_routes(stack)

    assert set(routes) == set(PUBLIC_ROUTES) | set(PROTECTED_ROUTES)
    for route in PUBLIC_ROUTES:
        assert routes[route]["security"] == [{"NONE": []}], f"{route} must be public"
    for route in PROTECTED_ROUTES:
        assert routes[route]["security"] == [{"JwtAuthorizer": []}], f"{route} must be protected"


def test_http_routes_invoke_their_route_groups_function_with_payload_2(stack: Stack) -> None:
    for route, operation in _http_routes(stack).items():
        integration = stack.value(operation["x-amazon-apigateway-integration"])

        assert integration["type"] == "aws_proxy"
        assert integration["payloadFormatVersion"] == "2.0"
        expected = {**PUBLIC_ROUTES, **PROTECTED_ROUTES}[route]
        assert _invoked_function(integration["uri"]) == expected, route


def test_http_authorizer_is_a_cached_simple_request_authorizer_on_the_authorization_header(
    stack: Stack,
) -> None:
    scheme = stack.http_api_body()["components"]["securitySchemes"]["JwtAuthorizer"]
    authorizer = scheme["x-amazon-apigateway-authorizer"]

    assert authorizer["type"] == "request"
    assert authorizer["authorizerPayloadFormatVersion"] == "2.0"
    assert authorizer["enableSimpleResponses"] is True
    assert authorizer["identitySource"] == ["$request.header.Authorization"]
    assert authorizer["authorizerResultTtlInSeconds"] == {"Ref": "AuthorizerCacheTtlSeconds"}
    assert _invoked_function(stack.value(authorizer["authorizerUri"])) == "AuthorizerFunction"


def test_http_authorizer_ttl_follows_its_parameter() -> None:
    stack = Stack({"AuthorizerCacheTtlSeconds": 42})
    authorizer = stack.http_api_body()["components"]["securitySchemes"]["JwtAuthorizer"]

    ttl = stack.value(authorizer["x-amazon-apigateway-authorizer"]["authorizerResultTtlInSeconds"])
    assert ttl == 42


def test_http_authorizer_has_default_permissions_enabled_in_the_sam_template() -> None:
    http_api = parse_template()["Resources"]["HttpApi"]["Properties"]
    authorizer = http_api["Auth"]["Authorizers"]["JwtAuthorizer"]

    assert authorizer["EnableFunctionDefaultPermissions"] is True
    assert http_api["Auth"]["DefaultAuthorizer"] == "JwtAuthorizer"


def test_cors_allows_exactly_the_frontend_origin_parameter() -> None:
    origin = "https://board.wiring.example"
    cors = Stack({"FrontendOrigin": origin}).http_api_body()["x-amazon-apigateway-cors"]

    assert cors["allowOrigins"] == [origin]
    assert cors.get("allowCredentials") is not True
    assert "authorization" in [header.lower() for header in cors["allowHeaders"]]


@pytest.mark.parametrize(
    "origin",
    [
        "https://board.syncroboard.example",
        "https://board.syncroboard.example:8443",
        "http://localhost:5173",
        "http://127.0.0.1:5173",
    ],
)
def test_frontend_origin_pattern_accepts_one_exact_origin(origin: str) -> None:
    pattern = parse_template()["Parameters"]["FrontendOrigin"]["AllowedPattern"]

    assert re.fullmatch(pattern, origin)


@pytest.mark.parametrize(
    "origin",
    [
        "*",
        "null",
        "https://*.syncroboard.example",
        "*.syncroboard.example",
        "https://board.syncroboard.example/",
        "https://board.syncroboard.example/app",
        "https://board.syncroboard.example,https://evil.example",
        "http://board.syncroboard.example",
        "https://Board.Syncroboard.example",
        "https://user@board.syncroboard.example",
        "board.syncroboard.example",
        "",
    ],
)
def test_frontend_origin_pattern_refuses_wildcards_null_paths_and_lists(origin: str) -> None:
    pattern = parse_template()["Parameters"]["FrontendOrigin"]["AllowedPattern"]

    assert not re.fullmatch(pattern, origin)


# --- who may invoke what ----------------------------------------------------------------------


def test_every_http_route_function_may_be_invoked_by_this_http_api_for_that_route(
    stack: Stack,
) -> None:
    for (method, path), function in {**PUBLIC_ROUTES, **PROTECTED_ROUTES}.items():
        arn_method = "*" if method == "ANY" else method
        arn_path = re.sub(r"\{\w+\+?\}", "*", path)
        source = f"{EXECUTE_API}:${{HttpApi}}/*/{arn_method}{arn_path}"

        assert _permitted(stack, function, source), f"{function} for {method} {path}: {source}"


def test_http_authorizer_may_be_invoked_by_this_http_api(stack: Stack) -> None:
    assert _permitted(stack, "AuthorizerFunction", f"{EXECUTE_API}:${{HttpApi}}/authorizers/*")


def test_websocket_routes_and_authorizer_may_invoke_their_functions_on_this_api_only(
    stack: Stack,
) -> None:
    stage = stack.properties("WebSocketStage")["StageName"]

    assert _permitted(stack, "WsConnectFunction", f"{EXECUTE_API}:${{WebSocketApi}}/{stage}/*")
    assert _permitted(
        stack,
        "AuthorizerFunction",
        f"{EXECUTE_API}:${{WebSocketApi}}/authorizers/${{WebSocketAuthorizer}}",
    )


def test_every_invoke_permission_names_api_gateway_and_one_of_this_stacks_apis(
    stack: Stack,
) -> None:
    permissions = _invoke_permissions(stack)

    assert permissions
    for props in permissions:
        assert props["Principal"] == APIGATEWAY
        assert re.match(
            rf"{re.escape(EXECUTE_API)}:\$\{{(HttpApi|WebSocketApi)\}}/", props["SourceArn"]
        ), props


def test_websocket_routes_are_exactly_the_five_and_only_connect_is_authorized(
    stack: Stack,
) -> None:
    routes = dict(stack.deployed("AWS::ApiGatewayV2::Route"))
    by_key = {props["RouteKey"]: props for props in routes.values()}

    assert set(by_key) == WEBSOCKET_ROUTES
    for key, props in by_key.items():
        assert props["ApiId"] == "${WebSocketApi}"
        if key == "$connect":
            assert props["AuthorizationType"] == "CUSTOM"
            assert props["AuthorizerId"] == "${WebSocketAuthorizer}"
        else:
            assert props["AuthorizationType"] == "NONE", key


def test_websocket_routes_all_integrate_with_the_connect_function(stack: Stack) -> None:
    integrations = dict(stack.deployed("AWS::ApiGatewayV2::Integration"))

    for _, route in stack.deployed("AWS::ApiGatewayV2::Route"):
        integration_id = route["Target"].removeprefix("integrations/").strip("${}")
        integration = integrations[integration_id]
        assert integration["IntegrationType"] == "AWS_PROXY"
        assert integration["IntegrationMethod"] == "POST"
        assert _invoked_function(integration["IntegrationUri"]) == "WsConnectFunction"


def test_websocket_api_selects_routes_by_action_and_authorizes_connect_by_token_query(
    stack: Stack,
) -> None:
    api = stack.properties("WebSocketApi")
    authorizer = stack.properties("WebSocketAuthorizer")

    assert api["ProtocolType"] == "WEBSOCKET"
    assert api["RouteSelectionExpression"] == "$request.body.action"
    assert authorizer["ApiId"] == "${WebSocketApi}"
    assert authorizer["AuthorizerType"] == "REQUEST"
    assert authorizer["IdentitySource"] == ["route.request.querystring.token"]
    assert _invoked_function(authorizer["AuthorizerUri"]) == "AuthorizerFunction"


def test_websocket_answers_reach_the_client_on_subscribe_unsubscribe_and_default(
    stack: Stack,
) -> None:
    routes = dict(stack.deployed("AWS::ApiGatewayV2::Route"))
    answered = {
        routes[props["RouteId"].strip("${}")]["RouteKey"]
        for _, props in stack.deployed("AWS::ApiGatewayV2::RouteResponse")
        if props["RouteResponseKey"] == "$default"
    }

    assert answered == {"subscribe", "unsubscribe", "$default"}
    for props in routes.values():
        if props["RouteKey"] in answered:
            assert props["RouteResponseSelectionExpression"] == "$default"


def test_both_apis_throttle_every_route_by_the_throttling_parameters() -> None:
    stack = Stack({"ApiThrottlingRateLimit": 11, "ApiThrottlingBurstLimit": 22})
    http_stages = [
        props
        for _, props in stack.deployed("AWS::ApiGatewayV2::Stage")
        if props["ApiId"] == "${HttpApi}"
    ]
    expected = {"ThrottlingRateLimit": 11, "ThrottlingBurstLimit": 22}

    assert len(http_stages) == 1
    assert http_stages[0]["DefaultRouteSettings"] == expected
    assert stack.properties("WebSocketStage")["DefaultRouteSettings"] == expected


def test_websocket_stage_is_named_by_its_parameter_and_deploys_itself() -> None:
    stage = Stack({"StageName": "wiring"}).properties("WebSocketStage")

    assert stage["StageName"] == "wiring"
    assert stage["ApiId"] == "${WebSocketApi}"
    assert stage["AutoDeploy"] is True


# --- AWS permissions of the functions ---------------------------------------------------------


def test_only_the_broadcast_function_may_manage_connections_and_only_on_this_stage() -> None:
    stack = Stack({"StageName": "wiring"})
    grants = [
        (role, statement)
        for role, statement in _policy_statements(stack)
        if any(
            action in ("*", "execute-api:*", "execute-api:ManageConnections")
            for action in _actions(statement)
        )
    ]

    assert [role for role, _ in grants] == ["WsBroadcastFunctionRole"]
    _, statement = grants[0]
    assert statement["Effect"] == "Allow"
    assert _resources(statement) == [f"{EXECUTE_API}:${{WebSocketApi}}/wiring/POST/@connections/*"]


def test_broadcast_management_endpoint_is_this_apis_stage() -> None:
    stack = Stack({"StageName": "wiring"})
    environment = stack.properties("WsBroadcastFunction")["Environment"]["Variables"]
    endpoint = f"https://${{WebSocketApi}}.execute-api.{REGION}.amazonaws.com/wiring"

    assert environment["WS_MANAGEMENT_ENDPOINT"] == endpoint
    assert stack.value(stack.template["Outputs"]["ManagementApiEndpoint"]["Value"]) == endpoint
    websocket_url = stack.value(stack.template["Outputs"]["WebSocketUrl"]["Value"])
    assert websocket_url == endpoint.replace("https://", "wss://")


def test_roles_carry_no_managed_policy_beyond_logs_vpc_and_tracing(stack: Stack) -> None:
    for role_id, role in stack.deployed("AWS::IAM::Role"):
        assert set(role.get("ManagedPolicyArns", [])) <= ALLOWED_MANAGED_POLICIES, role_id


def test_only_the_authorizer_reads_the_jwt_settings_secret_and_only_that_secret(
    stack: Stack,
) -> None:
    readers = [
        (role, statement)
        for role, statement in _policy_statements(stack)
        if any(action.startswith("secretsmanager:") for action in _actions(statement))
    ]

    assert [role for role, _ in readers] == ["AuthorizerFunctionRole"]
    _, statement = readers[0]
    assert _actions(statement) == ["secretsmanager:GetSecretValue"]
    assert _resources(statement) == ["${JwtSettingsSecret}"]


def test_no_environment_variable_holds_a_secret_in_plain_text(stack: Stack) -> None:
    sensitive = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|CREDENTIAL|_KEY$", re.IGNORECASE)
    secret = stack.properties("JwtSettingsSecret")["GenerateSecretString"]

    for function_id, props in stack.deployed("AWS::Lambda::Function"):
        for name, value in props.get("Environment", {}).get("Variables", {}).items():
            assert "{{resolve:" not in str(value), f"{function_id} {name} resolves a secret"
            if sensitive.search(name):
                assert name.endswith("_ARN"), f"{function_id} {name} looks like a secret"
                assert value == "${JwtSettingsSecret}", f"{function_id} {name}={value!r}"
    assert secret["GenerateStringKey"] == "secret"
    assert '"secret"' not in secret["SecretStringTemplate"]


def test_jwt_settings_secret_carries_the_public_settings_from_parameters() -> None:
    stack = Stack({"JwtIssuer": "https://issuer.wiring.example", "JwtAlgorithms": "RS256,ES256"})
    template = stack.properties("JwtSettingsSecret")["GenerateSecretString"]

    assert '"issuer": "https://issuer.wiring.example"' in template["SecretStringTemplate"]
    assert '"algorithms": "RS256,ES256"' in template["SecretStringTemplate"]
    assert '"jwksUrl": ' in template["SecretStringTemplate"]


# --- the functions ----------------------------------------------------------------------------


def test_functions_are_exactly_the_six_of_the_architecture(stack: Stack) -> None:
    assert {function for function, _ in stack.deployed("AWS::Lambda::Function")} == set(FUNCTIONS)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_function_has_its_code_folder_handler_and_environment(stack: Stack, function: str) -> None:
    folder, handler, variables = FUNCTIONS[function]
    props = stack.properties(function)

    assert props["Code"]["S3Key"] == folder
    assert props["Handler"] == handler
    assert set(props["Environment"]["Variables"]) == COMMON_ENVIRONMENT | variables


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_function_runs_python312_traced_in_the_vpc_with_the_common_layer(
    stack: Stack, function: str
) -> None:
    props = stack.properties(function)
    layers = stack.value(stack.resources[function]["Properties"]["Layers"])

    assert props["Runtime"] == "python3.12"
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["VpcConfig"]["SecurityGroupIds"] == ["${FunctionSecurityGroup}"]
    assert re.fullmatch(r"\$\{CommonLayer\w*\}", layers[0])
    if "UPSTREAM_TIMEOUT_SECONDS" in props["Environment"]["Variables"]:
        longest_upstream_wait = parse_template()["Parameters"]["UpstreamTimeoutSeconds"]["MaxValue"]
        assert props["Timeout"] > longest_upstream_wait


def test_redis_users_reach_the_serverless_cache_over_tls_in_cluster_mode(stack: Stack) -> None:
    url = "rediss://${RedisCache.Endpoint.Address}:${RedisCache.Endpoint.Port}"

    for function, (_, _, variables) in FUNCTIONS.items():
        if "REDIS_URL" in variables:
            environment = stack.properties(function)["Environment"]["Variables"]
            assert environment["REDIS_URL"] == url, function
            assert environment["REDIS_CLUSTER"] == "true", function


def test_only_the_functions_security_group_reaches_the_cache_on_the_redis_ports(
    stack: Stack,
) -> None:
    cache = stack.properties("RedisCache")
    ingress = [
        props
        for _, props in stack.deployed("AWS::EC2::SecurityGroupIngress")
        if props["GroupId"] == "${CacheSecurityGroup}"
    ]

    assert cache["SecurityGroupIds"] == ["${CacheSecurityGroup}"]
    assert "SecurityGroupIngress" not in stack.properties("CacheSecurityGroup")
    assert len(ingress) == 1
    assert ingress[0]["SourceSecurityGroupId"] == "${FunctionSecurityGroup}"
    assert (ingress[0]["FromPort"], ingress[0]["ToPort"]) == (6379, 6380)


def test_route_groups_get_their_own_upstream_and_rate_limit_parameters() -> None:
    stack = Stack({"AuthRateLimit": "7/60", "TicketsRateLimit": "8/60", "BoardRateLimit": "9/60"})

    def environment(function: str) -> dict[str, Any]:
        variables: dict[str, Any] = stack.properties(function)["Environment"]["Variables"]
        return variables

    assert environment("AuthProxyFunction")["ROUTE_GROUP"] == "auth"
    assert environment("AuthProxyFunction")["RATE_LIMIT"] == "7/60"
    assert environment("AuthProxyFunction")["UPSTREAM_URL"] == stack.parameters["AuthServiceUrl"]
    assert environment("TicketsProxyFunction")["ROUTE_GROUP"] == "tickets"
    assert environment("TicketsProxyFunction")["RATE_LIMIT"] == "8/60"
    tickets_url = stack.parameters["TicketServiceUrl"]
    assert environment("TicketsProxyFunction")["UPSTREAM_URL"] == tickets_url
    assert environment("BoardFunction")["RATE_LIMIT"] == "9/60"
    assert environment("BoardFunction")["TICKETS_URL"] == tickets_url
    assert (
        environment("BoardFunction")["ASSIGNMENTS_URL"] == stack.parameters["AssignmentServiceUrl"]
    )


# --- the Kafka event source mapping -----------------------------------------------------------

GROUP = "wiring-group"
MSK_CLUSTER = f"arn:aws:kafka:{REGION}:{ACCOUNT_ID}:cluster/board/0a1b2c3d-1"
KAFKA_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:kafka-AbCdEf"
KAFKA_OVERRIDES = {
    "KafkaConsumerGroupId": GROUP,
    "KafkaBatchSize": 250,
    "KafkaStartingPosition": "TRIM_HORIZON",
    "MskClusterArn": MSK_CLUSTER,
    "KafkaBootstrapServers": "b-1.wiring.example:9096,b-2.wiring.example:9096",
}


def _mapping(source: str, secret: str = "") -> dict[str, Any]:
    stack = Stack({**KAFKA_OVERRIDES, "KafkaSource": source, "KafkaSaslSecretArn": secret})
    mappings = [props for _, props in stack.deployed("AWS::Lambda::EventSourceMapping")]
    assert len(mappings) == 1, f"{source}: exactly one mapping is deployed"
    return mappings[0]


@pytest.mark.parametrize("source", ["self-managed", "msk"])
def test_kafka_mapping_reads_ticket_updated_into_the_broadcast_function(source: str) -> None:
    mapping = _mapping(source)

    assert _function_of(mapping["FunctionName"]) == "WsBroadcastFunction"
    assert mapping["Topics"] == ["ticket.updated"]
    assert mapping["BatchSize"] == 250
    assert mapping["StartingPosition"] == "TRIM_HORIZON"


def test_self_managed_kafka_mapping_has_brokers_group_and_vpc_access() -> None:
    mapping = _mapping("self-managed")
    access = mapping["SourceAccessConfigurations"]

    assert mapping["SelfManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": GROUP}
    assert mapping["SelfManagedEventSource"]["Endpoints"]["KafkaBootstrapServers"] == [
        "b-1.wiring.example:9096",
        "b-2.wiring.example:9096",
    ]
    assert "EventSourceArn" not in mapping
    assert {
        "Type": "VPC_SECURITY_GROUP",
        "URI": "security_group:${FunctionSecurityGroup}",
    } in access
    assert [item["URI"] for item in access if item["Type"] == "VPC_SUBNET"] == [
        "subnet:subnet-0123456789abcdef1",
        "subnet:subnet-0123456789abcdef2",
    ]
    assert not [item for item in access if item["Type"].startswith(("SASL", "BASIC"))]


def test_msk_mapping_has_the_cluster_and_group() -> None:
    mapping = _mapping("msk")

    assert mapping["EventSourceArn"] == MSK_CLUSTER
    assert mapping["AmazonManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": GROUP}
    assert "SelfManagedEventSource" not in mapping
    assert "SourceAccessConfigurations" not in mapping


@pytest.mark.parametrize("source", ["self-managed", "msk"])
def test_kafka_sasl_secret_is_used_and_readable_only_when_given(source: str) -> None:
    mapping = _mapping(source, secret=KAFKA_SECRET)
    stack = Stack({**KAFKA_OVERRIDES, "KafkaSource": source, "KafkaSaslSecretArn": KAFKA_SECRET})
    readers = [
        role
        for role, statement in _policy_statements(stack)
        if KAFKA_SECRET in _resources(statement)
    ]

    assert {"Type": "SASL_SCRAM_512_AUTH", "URI": KAFKA_SECRET} in mapping[
        "SourceAccessConfigurations"
    ]
    assert readers == ["WsBroadcastFunctionRole"]


@pytest.mark.parametrize("source", ["self-managed", "msk"])
def test_kafka_secret_key_is_decryptable_by_the_poller_only_when_named(source: str) -> None:
    key = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
    with_key = Stack(
        {
            **KAFKA_OVERRIDES,
            "KafkaSource": source,
            "KafkaSaslSecretArn": KAFKA_SECRET,
            "KafkaSaslKmsKeyArn": key,
        }
    )
    without_key = Stack(
        {**KAFKA_OVERRIDES, "KafkaSource": source, "KafkaSaslSecretArn": KAFKA_SECRET}
    )

    def decrypters(stack: Stack) -> list[tuple[str, list[str]]]:
        return [
            (role, _resources(statement))
            for role, statement in _policy_statements(stack)
            if "kms:Decrypt" in _actions(statement)
        ]

    assert decrypters(with_key) == [("WsBroadcastFunctionRole", [key])]
    assert decrypters(without_key) == []


def test_msk_poller_may_read_only_its_topic_and_group() -> None:
    stack = Stack({**KAFKA_OVERRIDES, "KafkaSource": "msk"})
    statements = [
        statement
        for role, statement in _policy_statements(stack)
        if any(action.startswith("kafka-cluster:") for action in _actions(statement))
    ]

    assert len(statements) == 1
    assert _resources(statements[0]) == [
        MSK_CLUSTER,
        f"arn:aws:kafka:{REGION}:{ACCOUNT_ID}:topic/board/0a1b2c3d-1/ticket.updated",
        f"arn:aws:kafka:{REGION}:{ACCOUNT_ID}:group/board/0a1b2c3d-1/{GROUP}",
    ]


def test_kafka_rules_refuse_a_source_without_its_address_and_msk_without_scram512() -> None:
    rules = parse_template()["Rules"]

    assert rules["SelfManagedKafkaNeedsBrokers"]["RuleCondition"] == {
        "Fn::Equals": [{"Ref": "KafkaSource"}, "self-managed"]
    }
    assert rules["MskNeedsCluster"]["RuleCondition"] == {
        "Fn::Equals": [{"Ref": "KafkaSource"}, "msk"]
    }
    assert rules["MskSaslIsScram512"]["Assertions"] == [
        {
            "Assert": {"Fn::Equals": [{"Ref": "KafkaSaslMechanism"}, "SASL_SCRAM_512_AUTH"]},
            "AssertDescription": "Lambda reaches MSK with SASL_SCRAM_512_AUTH only",
        }
    ]


# --- parameters and samconfig.toml ------------------------------------------------------------


def _satisfies(spec: dict[str, Any], value: Any) -> bool:
    # CloudFormation compares parameter values as strings.
    if "AllowedValues" in spec and str(value) not in [str(item) for item in spec["AllowedValues"]]:
        return False
    if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], str(value)):
        return False
    if spec["Type"] == "Number":
        number = float(value)
        return spec.get("MinValue", number) <= number <= spec.get("MaxValue", number)
    return True


def test_every_parameter_default_satisfies_its_own_constraints() -> None:
    for name, spec in parse_template()["Parameters"].items():
        if "Default" in spec:
            assert _satisfies(spec, spec["Default"]), name


def _samconfig_overrides(environment: str) -> dict[str, str]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    deploy = config[environment]["deploy"]["parameters"]
    return dict(item.split("=", 1) for item in deploy["parameter_overrides"])


@pytest.mark.parametrize("environment", ["default", "staging", "prod"])
def test_samconfig_environment_deploys_a_complete_valid_parameter_set(environment: str) -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    deploy = config[environment]["deploy"]["parameters"]
    parameters = parse_template()["Parameters"]
    overrides = _samconfig_overrides(environment)

    assert config["version"] == 0.1
    assert deploy["stack_name"].startswith("syncroboard-gateway-")
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert set(overrides) <= set(parameters), set(overrides) - set(parameters)
    required = {name for name, spec in parameters.items() if "Default" not in spec}
    assert required <= set(overrides), required - set(overrides)
    for name, value in overrides.items():
        if not parameters[name]["Type"].startswith(("AWS::", "List<")):
            assert _satisfies(parameters[name], value), f"{environment}: {name}={value}"
