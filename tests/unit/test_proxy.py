"""The route-group proxy, called as Lambda calls it, against real upstreams and a real Redis."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import proxy
import pytest
from proxy import Proxy, ProxySettings

from gateway.breaker import CircuitBreaker
from gateway.ratelimit import Policy
from gateway.redis_client import reset_redis
from gateway.upstream import default_pool
from tests.conftest import load_event
from tests.support.upstreams import (
    LambdaContext,
    Recorded,
    Upstream,
    binary,
    close_early,
    echo,
    huge,
    raw,
    slow,
    status,
)
from tests.unit.conftest import Parts

ORIGIN = "https://board.example.com"
MakeProxy = Callable[..., Proxy]


@pytest.fixture
def make_proxy(gateway_parts: Parts) -> Iterator[MakeProxy]:
    """Build a proxy as a warm function would hold it, on the session's Redis."""

    def make(
        url: str,
        group: str = "tickets",
        *,
        timeout: float = 2.0,
        limit: str = "100/60",
        threshold: int = 5,
    ) -> Proxy:
        client, pool = gateway_parts()
        settings = ProxySettings(
            group,
            url,
            timeout=timeout,
            rate_limit=Policy.parse(limit, group),
            frontend_origin=ORIGIN,
        )
        breaker = CircuitBreaker(group, client=client, failure_threshold=threshold, cooldown=30)
        return Proxy(settings, redis=client, pool=pool, breaker=breaker)

    yield make
    proxy.metrics.clear_metrics()  # Proxy.handle adds metrics that only the handler flushes


def _only(upstream: Upstream) -> Recorded:
    assert len(upstream.requests) == 1
    return upstream.requests[0]


def test_proxy_forwards_method_path_raw_query_and_body(make_proxy: MakeProxy) -> None:
    event = load_event("http-tickets-get")
    event["rawQueryString"] = "z=1&a=%20&a=2&flag&q=a%2Bb"
    event["requestContext"]["http"]["method"] = "PATCH"
    event["body"] = '{"title": "caf\u00e9"}'
    with Upstream(echo()) as upstream:
        result = make_proxy(upstream.url + "/api").handle(event)
    assert result["statusCode"] == 200
    seen = _only(upstream)
    assert seen.method == "PATCH"
    assert seen.target == "/api/tickets/t-1/comments?z=1&a=%20&a=2&flag&q=a%2Bb"
    assert seen.body == '{"title": "caf\u00e9"}'.encode()


def test_proxy_decodes_a_base64_body_before_forwarding(make_proxy: MakeProxy) -> None:
    event = load_event("http-tickets-binary")
    with Upstream(echo()) as upstream:
        make_proxy(upstream.url).handle(event)
    assert _only(upstream).body == base64.b64decode(event["body"])


def test_proxy_refuses_a_body_marked_base64_that_is_not(make_proxy: MakeProxy) -> None:
    event = load_event("http-tickets-binary")
    event["body"] = "not base64!"
    with Upstream(echo()) as upstream:
        result = make_proxy(upstream.url).handle(event)
    assert result["statusCode"] == 400
    assert upstream.requests == []


def test_proxy_drops_hop_by_hop_headers_and_joins_cookies(make_proxy: MakeProxy) -> None:
    event = load_event("http-tickets-get")
    event["headers"].update(
        {
            "connection": "keep-alive, x-hop",
            "x-hop": "1",
            "keep-alive": "timeout=5",
            "te": "trailers",
            "upgrade": "h2c",
            "proxy-authorization": "Basic eDp5",
            "x-custom": "kept",
        }
    )
    with Upstream(echo()) as upstream:
        make_proxy(upstream.url).handle(event)
    seen = _only(upstream)
    names = {name.lower() for name, _ in seen.headers}
    assert names.isdisjoint(
        {"connection", "x-hop", "keep-alive", "te", "upgrade", "proxy-authorization"}
    )
    assert seen.header("x-custom") == ["kept"]
    assert seen.header("cookie") == ["session=abc; theme=dark"]
    assert seen.header("x-forwarded-for") == ["203.0.113.7"]


@pytest.mark.parametrize(
    "spoofed",
    [
        {"x-user-id": "admin", "x-user-roles": "admin"},
        {"X-User-Id": "admin", "X-User-Roles": "admin"},
        {"X-USER-ID": "admin", "X-USER-ROLES": "admin"},
        {"x-User-iD": "admin", "X-uSeR-RoLeS": "admin", "x-user-projects": "p-9"},
    ],
)
def test_proxy_client_identity_headers_never_reach_the_upstream(
    make_proxy: MakeProxy, spoofed: dict[str, str]
) -> None:
    event = load_event("http-tickets-get")
    event["headers"].update(spoofed)
    with Upstream(echo()) as upstream:
        make_proxy(upstream.url).handle(event)
    seen = _only(upstream)
    assert seen.header("x-user-id") == ["u-42"]
    assert seen.header("x-user-roles") == ["member"]
    assert all(value != "admin" for _, value in seen.headers)
    assert seen.header("x-user-projects") == []


def test_proxy_public_route_forwards_no_identity_even_when_spoofed(make_proxy: MakeProxy) -> None:
    event = load_event("http-auth-login")
    event["headers"].update({"X-User-Id": "admin", "x-user-roles": "admin"})
    with Upstream(echo()) as upstream:
        make_proxy(upstream.url, "auth").handle(event)
    seen = _only(upstream)
    assert seen.header("x-user-id") == []
    assert seen.header("x-user-roles") == []


def test_proxy_sends_api_gateways_request_id_not_the_clients(make_proxy: MakeProxy) -> None:
    event = load_event("http-tickets-get")
    event["headers"]["x-request-id"] = "forged"
    with Upstream(echo()) as upstream:
        make_proxy(upstream.url).handle(event)
    assert _only(upstream).header("x-request-id") == [event["requestContext"]["requestId"]]


def test_proxy_returns_status_headers_cookies_and_body_unchanged(make_proxy: MakeProxy) -> None:
    headers = [
        ("Content-Type", "application/json"),
        ("Set-Cookie", "a=1; Path=/; HttpOnly"),
        ("Set-Cookie", "b=2; Expires=Wed, 21 Oct 2026 07:28:00 GMT"),
        ("Vary", "Accept"),
        ("Vary", "Origin"),
        ("Connection", "keep-alive"),
        ("Access-Control-Allow-Origin", "*"),
        ("ETag", '"v1"'),
    ]
    with Upstream(raw(201, headers, b'{"id": "t-9"}')) as upstream:
        result = make_proxy(upstream.url).handle(load_event("http-tickets-get"))
    assert result["statusCode"] == 201
    assert result["body"] == '{"id": "t-9"}'
    assert result["isBase64Encoded"] is False
    assert result["cookies"] == [
        "a=1; Path=/; HttpOnly",
        "b=2; Expires=Wed, 21 Oct 2026 07:28:00 GMT",
    ]
    assert result["headers"]["vary"] == "Accept, Origin"
    assert result["headers"]["etag"] == '"v1"'
    assert "connection" not in result["headers"]
    assert "access-control-allow-origin" not in result["headers"]


def test_proxy_rate_limit_headers_replace_the_upstreams_own(make_proxy: MakeProxy) -> None:
    headers = [("RateLimit", '"upstream";r=1'), ("RateLimit-Policy", '"upstream";q=1')]
    with Upstream(raw(200, headers, b"{}")) as upstream:
        result = make_proxy(upstream.url).handle(load_event("http-tickets-get"))
    assert "upstream" not in result["headers"]["ratelimit"]
    assert "upstream" not in result["headers"]["ratelimit-policy"]
    assert not {"RateLimit", "RateLimit-Policy"} & set(result["headers"])


def test_proxy_returns_a_binary_body_base64_encoded(make_proxy: MakeProxy) -> None:
    data = bytes(range(256)) * 4
    with Upstream(binary(data, "image/png")) as upstream:
        result = make_proxy(upstream.url).handle(load_event("http-tickets-get"))
    assert result["isBase64Encoded"] is True
    assert base64.b64decode(result["body"]) == data
    assert result["headers"]["content-type"] == "image/png"


def test_proxy_returns_a_large_chunked_body_whole_without_hop_by_hop_headers(
    make_proxy: MakeProxy,
) -> None:
    with Upstream(huge(3 * 1024 * 1024, chunked=True)) as upstream:
        result = make_proxy(upstream.url).handle(load_event("http-tickets-get"))
    assert result["statusCode"] == 200
    assert result["body"] == "z" * (3 * 1024 * 1024)
    assert "transfer-encoding" not in result["headers"]


def test_proxy_answers_502_when_the_body_would_not_fit_a_lambda_response(
    make_proxy: MakeProxy,
) -> None:
    with Upstream(huge(8 * 1024 * 1024)) as upstream:
        result = make_proxy(upstream.url).handle(load_event("http-tickets-get"))
    assert result["statusCode"] == 502
    assert json.loads(result["body"]) == {"message": "Bad Gateway"}


def test_proxy_answers_504_on_timeout_without_internal_details(make_proxy: MakeProxy) -> None:
    with Upstream(slow(2.0)) as upstream:
        result = make_proxy(upstream.url, timeout=0.3).handle(load_event("http-tickets-get"))
    assert result["statusCode"] == 504
    assert json.loads(result["body"]) == {"message": "Gateway Timeout"}
    assert "127.0.0.1" not in json.dumps(result)


@pytest.mark.parametrize("behaviour", ["refused", "closed"])
def test_proxy_answers_502_when_the_upstream_refuses_or_drops(
    make_proxy: MakeProxy, behaviour: str
) -> None:
    if behaviour == "refused":
        from devstack.services import free_port

        result = make_proxy(f"http://127.0.0.1:{free_port()}").handle(
            load_event("http-tickets-get")
        )
    else:
        with Upstream(close_early()) as upstream:
            result = make_proxy(upstream.url).handle(load_event("http-tickets-get"))
    assert result["statusCode"] == 502
    assert json.loads(result["body"]) == {"message": "Bad Gateway"}
    assert "127.0.0.1" not in json.dumps(result)
    assert "Traceback" not in json.dumps(result)


@pytest.mark.parametrize(
    "path",
    [
        "/tickets/../auth/login",
        "/tickets/%2e%2e/auth/login",
        "/tickets/..%2fauth%2flogin",
        "/tickets/..%5cauth",
        "/tickets/%252e%252e/auth",
        "/tickets/a/../../../etc/passwd",
    ],
)
def test_proxy_rejects_path_traversal_before_any_upstream_call(
    make_proxy: MakeProxy, path: str
) -> None:
    event = load_event("http-tickets-get")
    event["rawPath"] = path
    with Upstream(echo()) as upstream:
        result = make_proxy(upstream.url).handle(event)
    assert result["statusCode"] == 400
    assert json.loads(result["body"]) == {"message": "Bad Request"}
    assert upstream.requests == []


def test_proxy_resolves_harmless_dot_segments_inside_the_group(make_proxy: MakeProxy) -> None:
    event = load_event("http-tickets-get")
    event["rawPath"] = "/tickets/a/%2E%2E/t-1/./comments"
    with Upstream(echo()) as upstream:
        make_proxy(upstream.url).handle(event)
    assert _only(upstream).path == "/tickets/t-1/comments"


def test_proxy_strips_a_named_stage_from_the_path(make_proxy: MakeProxy) -> None:
    event = load_event("http-tickets-get")
    event["rawPath"] = "/dev/tickets/t-1"
    event["requestContext"]["stage"] = "dev"
    with Upstream(echo()) as upstream:
        make_proxy(upstream.url).handle(event)
    assert _only(upstream).path == "/tickets/t-1"


def test_proxy_rate_limits_per_user_before_calling_the_upstream(make_proxy: MakeProxy) -> None:
    with Upstream(echo()) as upstream:
        gateway = make_proxy(upstream.url, limit="2/60")
        answers = [gateway.handle(load_event("http-tickets-get")) for _ in range(3)]
        other = load_event("http-tickets-get")
        other["requestContext"]["authorizer"]["lambda"]["userId"] = "u-7"
        other_answer = gateway.handle(other)
    assert [answer["statusCode"] for answer in answers] == [200, 200, 429]
    assert len(upstream.requests) == 3  # two for u-42, one for u-7
    assert other_answer["statusCode"] == 200
    denied = answers[2]
    assert json.loads(denied["body"]) == {"message": "Too Many Requests"}
    assert int(denied["headers"]["Retry-After"]) >= 1
    assert "RateLimit" in denied["headers"]
    assert "RateLimit-Policy" in denied["headers"]
    assert answers[0]["headers"]["ratelimit-policy"] == denied["headers"]["RateLimit-Policy"]
    assert "ratelimit" in answers[0]["headers"]


def test_proxy_rate_limits_public_routes_per_source_ip(make_proxy: MakeProxy) -> None:
    with Upstream(echo()) as upstream:
        gateway = make_proxy(upstream.url, "auth", limit="1/60")
        event = load_event("http-auth-login")
        event["rawPath"] = "/auth/refresh"
        first = gateway.handle(event)
        second = gateway.handle(event)
        event["requestContext"]["http"]["sourceIp"] = "198.51.100.9"
        third = gateway.handle(event)
    assert [first["statusCode"], second["statusCode"], third["statusCode"]] == [200, 429, 200]


def test_proxy_login_guard_stops_repeated_failures_for_one_username(
    make_proxy: MakeProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGIN_PER_USER_FAILURES", "2/15m")
    with Upstream(status(401, "wrong password")) as upstream:
        gateway = make_proxy(upstream.url, "auth")
        answers = [gateway.handle(load_event("http-auth-login"))["statusCode"] for _ in range(3)]
    assert answers == [401, 401, 429]
    assert len(upstream.requests) == 2


def test_proxy_login_with_a_body_that_is_not_json_is_forwarded(make_proxy: MakeProxy) -> None:
    event = load_event("http-auth-login")
    event["body"] = "username=alice&password=x"
    with Upstream(echo()) as upstream:
        result = make_proxy(upstream.url, "auth").handle(event)
    assert result["statusCode"] == 200
    assert _only(upstream).body == b"username=alice&password=x"


def test_proxy_answers_503_with_retry_after_while_the_breaker_is_open(
    make_proxy: MakeProxy,
) -> None:
    with Upstream(status(500)) as upstream:
        gateway = make_proxy(upstream.url, threshold=2)
        codes = [gateway.handle(load_event("http-tickets-get"))["statusCode"] for _ in range(2)]
        rejected = gateway.handle(load_event("http-tickets-get"))
    assert codes == [500, 500]
    assert len(upstream.requests) == 2
    assert rejected["statusCode"] == 503
    assert json.loads(rejected["body"]) == {"message": "Service Unavailable"}
    assert 1 <= int(rejected["headers"]["retry-after"]) <= 30


@pytest.fixture
def module_env(monkeypatch: pytest.MonkeyPatch, redis_url: str) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("ROUTE_GROUP", "tickets")
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "tickets-proxy")
    reset_redis()
    proxy.reset()
    yield monkeypatch
    proxy.reset()
    reset_redis()
    default_pool().close()


def test_proxy_handler_reuses_the_upstream_connection_across_invocations(
    module_env: pytest.MonkeyPatch,
) -> None:
    with Upstream(echo()) as upstream:
        module_env.setenv("UPSTREAM_URL", upstream.url)
        for _ in range(3):
            result = proxy.handler(load_event("http-tickets-get"), LambdaContext())
            assert result["statusCode"] == 200
    assert upstream.accepts == 1
    assert len(upstream.requests) == 3


def test_proxy_handler_logs_with_the_request_id_as_correlation_id(
    module_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = io.StringIO()
    handler = proxy.logger.registered_handler
    module_env.setattr(handler, "stream", stream)
    with Upstream(echo()) as upstream:
        module_env.setenv("UPSTREAM_URL", upstream.url)
        proxy.handler(load_event("http-tickets-get"), LambdaContext())
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    logged = [line for line in logged if line.get("message") == "proxied"]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (
        logged[0]["correlation_id"] == load_event("http-tickets-get")["requestContext"]["requestId"]
    )
    assert logged[0]["status"] == 200
    emf = [line for line in lines if "_aws" in line]
    names = {
        metric["Name"] for line in emf for metric in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    }
    assert {"Requests", "UpstreamLatency"} <= names


def test_proxy_handler_fails_loudly_without_an_upstream_url(module_env: pytest.MonkeyPatch) -> None:
    from gateway.config import ConfigError

    module_env.delenv("UPSTREAM_URL", raising=False)
    with pytest.raises(ConfigError):
        proxy.handler(load_event("http-tickets-get"), LambdaContext())


def test_proxy_handler_answers_400_on_a_header_that_would_split_the_request(
    module_env: pytest.MonkeyPatch,
) -> None:
    with Upstream(echo()) as upstream:
        module_env.setenv("UPSTREAM_URL", upstream.url)
        event: dict[str, Any] = load_event("http-tickets-get")
        event["headers"] = {"x-bad\r\nInjected": "1"}
        result = proxy.handler(event, LambdaContext())
    assert result["statusCode"] == 400
    assert upstream.requests == []
