"""The WebSocket API's core without I/O: route selection, authorizer answers, identity sources,
events and the template reading, on plain values."""

from __future__ import annotations

import re
from typing import Any

import pytest

from localgw.management import management_path
from localgw.websocket_api import (
    ConnectionInfo,
    WebSocketApi,
    WebSocketApiError,
    WebSocketAuthorizer,
    identity_values,
    message_event,
    new_connection_id,
    read_authorizer_response,
    select_route,
    websocket_apis,
)

ROUTES = frozenset({"$connect", "$disconnect", "$default", "subscribe", "42", "true"})
EXPR = "$request.body.action"
ARN = "arn:aws:execute-api:us-east-1:123456789012:abc/dev/$connect"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('{"action": "subscribe"}', "subscribe"),
        ('{"action": "subscribe", "projectId": "p-1"}', "subscribe"),
        ('{"action": "unknown"}', "$default"),
        ('{"action": "$connect"}', "$default"),
        ('{"action": "$disconnect"}', "$default"),
        ('{"action": 42}', "42"),
        ('{"action": true}', "true"),
        ('{"action": {"nested": 1}}', "$default"),
        ('{"other": "subscribe"}', "$default"),
        ("[]", "$default"),
        ("not json", "$default"),
        ("", "$default"),
        (b'{"action": "subscribe"}', "$default"),
    ],
)
def test_select_route_by_body_action(message: str | bytes, expected: str) -> None:
    assert select_route(EXPR, message, ROUTES) == expected


def test_select_route_follows_a_nested_path() -> None:
    routes = frozenset({"$default", "ping"})
    assert select_route("$request.body.meta.kind", '{"meta": {"kind": "ping"}}', routes) == "ping"
    assert select_route("$request.body.meta.kind", '{"meta": "ping"}', routes) == "$default"


def policy(effect: str, resource: Any = ARN, **extra: Any) -> dict[str, Any]:
    statement = {"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}
    return {"principalId": "u-1", "policyDocument": {"Statement": [statement]}, **extra}


def test_authorizer_allow_on_the_method_arn_allows_and_keeps_scalar_context() -> None:
    answer = policy("Allow", context={"userId": "u-1", "n": 2, "ok": True, "bad": {"x": 1}})

    decision = read_authorizer_response(answer, ARN)

    assert decision.allowed
    assert decision.context == {"userId": "u-1", "n": 2, "ok": True, "principalId": "u-1"}


@pytest.mark.parametrize(
    "resource", ["arn:aws:execute-api:us-east-1:123456789012:abc/*", ["*"], "arn:aws:*"]
)
def test_authorizer_allow_on_a_matching_wildcard_allows(resource: Any) -> None:
    assert read_authorizer_response(policy("Allow", resource), ARN).allowed


@pytest.mark.parametrize(
    "answer",
    [
        policy("Deny"),
        policy("Allow", "arn:aws:execute-api:us-east-1:123456789012:other/dev/$connect"),
        {"principalId": "u-1"},
        {"isAuthorized": True},
        "Allow",
        None,
        {
            "principalId": "u",
            "policyDocument": {
                "Statement": [
                    {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"},
                    {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": ARN},
                ]
            },
        },
    ],
)
def test_authorizer_answer_without_an_unopposed_allow_denies(answer: Any) -> None:
    assert not read_authorizer_response(answer, ARN).allowed


def connection(**overrides: Any) -> ConnectionInfo:
    fields: dict[str, Any] = {
        "connection_id": "abc=",
        "connected_at_ms": 1_700_000_000_000,
        "source_ip": "127.0.0.1",
        "user_agent": "test",
        "headers": {"Authorization": "Bearer t", "Host": "x"},
        "multi_headers": {},
        "query": {"token": "t"},
        "multi_query": {"token": ["t"]},
    }
    fields.update(overrides)
    return ConnectionInfo(**fields)


def test_identity_values_read_query_strings_and_headers_in_any_case() -> None:
    authorizer = WebSocketAuthorizer(
        "a", "Fn", ("route.request.querystring.token", "route.request.header.authorization")
    )
    assert identity_values(authorizer, connection()) == ["t", "Bearer t"]
    assert identity_values(authorizer, connection(query={})) is None
    assert identity_values(authorizer, connection(query={"token": ""})) is None


def test_message_event_of_a_binary_frame_is_base64_encoded() -> None:
    api = WebSocketApi("Api", "abc", EXPR, "dev")

    event = message_event(api, connection(), "$default", b"\x00\xff", now=1_700_000_001.5)

    assert event["body"] == "AP8="
    assert event["isBase64Encoded"] is True
    assert event["requestContext"]["requestTimeEpoch"] == 1_700_000_001_500
    assert event["requestContext"]["eventType"] == "MESSAGE"


def test_new_connection_ids_look_like_api_gateways_and_differ() -> None:
    ids = {new_connection_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9+_]{14}==", value) for value in ids)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/@connections/abc%3D", "abc="),
        ("/dev/@connections/abc=", "abc="),
        ("/dev/@connections/abc=/", "abc="),
        ("/dev/other/abc", None),
        ("/dev/@connections/", None),
        ("/a/b/@connections/x", None),
    ],
)
def test_management_path_names_the_connection(path: str, expected: str | None) -> None:
    assert management_path(path) == expected


def raw_api(**route: Any) -> dict[str, dict[str, Any]]:
    return {
        "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"ProtocolType": "WEBSOCKET"}},
        "Integration": {
            "Type": "AWS::ApiGatewayV2::Integration",
            "Properties": {
                "ApiId": {"Ref": "Api"},
                "IntegrationUri": {"Fn::Sub": "arn:${AWS::Partition}:.../${Fn.Arn}/invocations"},
            },
        },
        "Route": {
            "Type": "AWS::ApiGatewayV2::Route",
            "Properties": {
                "ApiId": {"Ref": "Api"},
                "RouteKey": "$connect",
                "Target": {"Fn::Sub": "integrations/${Integration}"},
                **route,
            },
        },
        "Http": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"ProtocolType": "HTTP"}},
    }


def test_websocket_apis_read_routes_and_skip_http_apis() -> None:
    (api,) = websocket_apis(raw_api(), functions={"Fn"})

    assert api.logical_id == "Api"
    assert api.route_selection_expression == EXPR
    assert api.routes["$connect"].function == "Fn"
    assert api.routes["$connect"].authorizer is None
    assert api.routes["$connect"].has_route_response is False


def test_websocket_apis_refuse_a_custom_route_without_an_authorizer() -> None:
    with pytest.raises(WebSocketApiError, match="CUSTOM"):
        websocket_apis(raw_api(AuthorizationType="CUSTOM"), functions={"Fn"})


def test_websocket_apis_refuse_an_integration_naming_no_known_function() -> None:
    with pytest.raises(WebSocketApiError, match="which function"):
        websocket_apis(raw_api(), functions={"Other"})
