"""The HTTP API's core without I/O: reading answers, IAM policies, the authorizer cache."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from localgw.authorizer import (
    AuthorizerAnswerError,
    AuthorizerCache,
    Decision,
    read_authorizer_answer,
)
from localgw.events import MalformedResponse, parse_http_response
from localgw.template import Authorizer

ROUTE_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/$default/GET/items/1"
POLICY = Authorizer("Policy", "Fn", ("$request.header.X-Token",), ttl_seconds=60)
SIMPLE = Authorizer("Simple", "Fn", ("$request.header.Authorization",), simple_responses=True)


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {
        "principalId": "user",
        "policyDocument": {"Version": "2012-10-17", "Statement": list(statements)},
        "context": {"user": "u"},
    }


def test_response_with_status_code_keeps_headers_joins_multi_values_and_sets_default_type() -> None:
    response = parse_http_response(
        {
            "statusCode": "202",
            "headers": {"X-Number": 7, "X-Flag": True},
            "multiValueHeaders": {"x-many": ["a", "b"]},
            "body": "done",
        }
    )
    assert response.status == 202
    assert ("x-number", "7") in response.headers
    assert ("x-flag", "true") in response.headers
    assert ("x-many", "a,b") in response.headers
    assert ("content-type", "text/plain; charset=utf-8") in response.headers
    assert response.body == b"done"


@pytest.mark.parametrize(
    "payload",
    [
        {"statusCode": True},
        {"statusCode": 99},
        {"statusCode": 200, "headers": {"x": {"nested": 1}}},
        {"statusCode": 200, "headers": {"x": "a\r\nInjected: yes"}},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
        {"statusCode": 200, "cookies": "a=1"},
    ],
)
def test_response_malformed_answers_are_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponse):
        parse_http_response(payload)


@pytest.mark.parametrize("payload", ["text", 42, [1, 2], None, {"no": "status"}])
def test_response_without_status_code_is_json_200(payload: Any) -> None:
    response = parse_http_response(payload)
    assert response.status == 200
    assert response.headers == [("content-type", "application/json")]


def test_response_base64_body_is_decoded() -> None:
    body = base64.b64encode(b"\x00\xff").decode()
    assert parse_http_response({"statusCode": 200, "body": body, "isBase64Encoded": True}).body == (
        b"\x00\xff"
    )


def test_policy_allows_with_wildcard_resource_and_action() -> None:
    answer = _policy(
        {"Effect": "Allow", "Action": "execute-api:*", "Resource": "arn:aws:execute-api:*"}
    )
    assert read_authorizer_answer(POLICY, answer, ROUTE_ARN) == Decision(True, {"user": "u"})


def test_policy_explicit_deny_wins_over_allow() -> None:
    answer = _policy(
        {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": ROUTE_ARN},
        {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": "*/GET/items/*"},
    )
    assert read_authorizer_answer(POLICY, answer, ROUTE_ARN).allowed is False


def test_policy_allow_for_another_route_does_not_allow_this_one() -> None:
    answer = _policy({"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": "*/POST/*"})
    assert read_authorizer_answer(POLICY, answer, ROUTE_ARN).allowed is False


@pytest.mark.parametrize(
    ("authorizer", "answer"),
    [
        (SIMPLE, {"isAuthorized": "yes"}),
        (SIMPLE, {"isAuthorized": True, "context": "not an object"}),
        (POLICY, {"policyDocument": {}}),
        (POLICY, "Allow"),
    ],
)
def test_authorizer_answers_in_neither_format_are_errors(
    authorizer: Authorizer, answer: Any
) -> None:
    with pytest.raises(AuthorizerAnswerError):
        read_authorizer_answer(authorizer, answer, ROUTE_ARN)


def test_authorizer_cache_keeps_decision_for_ttl_and_not_when_ttl_is_zero() -> None:
    now = [1000.0]
    cache = AuthorizerCache(clock=lambda: now[0])
    decision = Decision(True, {})
    cache.put(POLICY, ["token"], decision)
    cache.put(SIMPLE, ["token"], decision)  # TTL 0: not kept
    assert cache.get(POLICY, ["token"]) is decision
    assert cache.get(POLICY, ["other"]) is None
    assert cache.get(SIMPLE, ["token"]) is None
    now[0] += 60
    assert cache.get(POLICY, ["token"]) is None
