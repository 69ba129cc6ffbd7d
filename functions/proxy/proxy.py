"""Route-group proxy: one code base, deployed once per route group (auth, tickets).

A request on ``/<group>/...`` goes to ``{UPSTREAM_URL}/<group>/...``: the route group's prefix is
kept, and a path inside ``UPSTREAM_URL`` (``http://auth.internal/v1``) is put in front of it. On
its way the request is checked in this order, each step able to answer on its own:

1. the path is normalised and must stay below ``/<group>`` (else 400); a circuit this instance
   knows to be open answers 503 at once, with no I/O;
2. the rate limit of the caller (user id on protected routes, source IP on public ones), and on
   ``POST /auth/login`` the login guard (else 429 with ``Retry-After``);
3. the route group's circuit breaker (else 503 with ``Retry-After``);
4. the upstream call, bounded by ``UPSTREAM_TIMEOUT_SECONDS`` in total (else 504, or 502).

Environment variables read: ``ROUTE_GROUP``, ``UPSTREAM_URL``, ``UPSTREAM_TIMEOUT_SECONDS``
(default 5), ``UPSTREAM_MAX_BODY_BYTES`` (default 4 MiB), ``RATE_LIMIT`` (default ``100/60``),
``RATE_LIMIT_FAILURE_POLICY`` (``open``), ``LOGIN_*`` (see docs/ratelimit.md), ``BREAKER_*``
(see docs/http-path.md), ``REDIS_URL``, ``REDIS_CLUSTER``, ``FRONTEND_ORIGIN``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from gateway.breaker import CircuitBreaker, CircuitOpen
from gateway.config import ConfigError, env_float, env_int, env_str
from gateway.cors import frontend_origin
from gateway.observability import get_logger, get_metrics
from gateway.ratelimit import (
    Decision,
    LoginGuard,
    Policy,
    RateLimiter,
    client_identity,
    limit_key,
    rate_limit_headers,
)
from gateway.redis_client import RedisLike
from gateway.upstream import (
    DEFAULT_MAX_BODY_BYTES,
    Caller,
    ConnectionPool,
    RequestRejected,
    UpstreamClient,
    UpstreamError,
    UpstreamResponse,
    client_headers,
    error_result,
    forward_request_headers,
    normalise_path,
    request_body,
    request_path,
    upstream_result,
)

__all__ = [
    "Proxy",
    "ProxySettings",
    "WarmInstance",
    "answer",
    "denied_result",
    "handler",
    "reset",
]

# Checked on import, so that a function with a wildcard or malformed origin fails to start.
FRONTEND_ORIGIN = frontend_origin()

logger = get_logger()
metrics = get_metrics()

Result = dict[str, Any]


class _Handles(Protocol):
    def handle(self, event: Mapping[str, Any]) -> Result: ...


@dataclass(frozen=True)
class ProxySettings:
    """What one deployed proxy is configured with; :meth:`from_env` reads the environment."""

    route_group: str
    upstream_url: str
    timeout: float = 5.0
    rate_limit: Policy | None = None
    frontend_origin: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @property
    def prefix(self) -> str:
        return f"/{self.route_group}"

    @classmethod
    def from_env(cls) -> ProxySettings:
        group = (env_str("ROUTE_GROUP") or "").strip().strip("/")
        url = (env_str("UPSTREAM_URL") or "").strip()
        if not group or "/" in group:
            raise ConfigError(f"ROUTE_GROUP must be one path segment such as 'tickets': {group!r}")
        if not url:
            raise ConfigError("UPSTREAM_URL is not set")
        return cls(
            route_group=group,
            upstream_url=url,
            timeout=env_float("UPSTREAM_TIMEOUT_SECONDS", 5.0),
            rate_limit=Policy.from_env(group),
            frontend_origin=FRONTEND_ORIGIN,
            max_body_bytes=env_int("UPSTREAM_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        )


class Proxy:
    """Forwards a route group's requests to its upstream; one per warm function.

    Every collaborator can be handed in (tests, the emulator); the defaults come from the
    environment: the process's Redis client, connection pool, limiter, guard and breaker.
    """

    def __init__(
        self,
        settings: ProxySettings,
        *,
        redis: RedisLike | None = None,
        pool: ConnectionPool | None = None,
        limiter: RateLimiter | None = None,
        login_guard: LoginGuard | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.settings = settings
        self.policy = settings.rate_limit or Policy.parse("100/60", settings.route_group)
        self.client = UpstreamClient(
            settings.upstream_url,
            timeout=settings.timeout,
            pool=pool,
            max_body_bytes=settings.max_body_bytes,
        )
        self.limiter = limiter or RateLimiter.from_env(redis)
        self.login_guard = login_guard or (
            LoginGuard.from_env(self.limiter) if settings.route_group == "auth" else None
        )
        self.breaker = breaker or CircuitBreaker.from_env(
            settings.route_group, client=redis, probe_lease=settings.timeout + 1
        )

    def handle(self, event: Mapping[str, Any]) -> Result:
        """Answer one HTTP API 2.0 route event."""
        caller = Caller.from_event(event)
        try:
            path = normalise_path(request_path(event), self.settings.prefix)
            body = request_body(event)
        except RequestRejected as exc:
            logger.warning("request rejected: %s", exc, extra={"status": 400})
            return error_result(400, exc.client_message)

        # An open circuit is known without I/O: turn the request away before the limiter's trip.
        cooling = self.breaker.open_for()
        if cooling:
            logger.info("upstream spared: circuit open", extra={"status": 503})
            return _unavailable(cooling)

        decision = self.limiter.hit(
            limit_key(self.settings.route_group, client_identity(caller.user_id, caller.source_ip)),
            self.policy,
        )
        if not decision.allowed:
            return denied_result([decision])
        decisions = [decision]

        login = self._is_login(caller.method, path)
        username = _username(body) if login else None
        check: Decision | None = None
        if login and self.login_guard is not None:
            check = self.login_guard.check(username, caller.source_ip)
            decisions.append(check)
            if not check.allowed:
                return denied_result(decisions)

        result = self._forward(caller, event, path, body)
        if check is not None and self.login_guard is not None:
            self.login_guard.record(username, caller.source_ip, result["statusCode"], check=check)
        # Ours win over any the upstream sent; its header names are already lower case.
        for name, value in rate_limit_headers(decisions).items():
            result["headers"][name.lower()] = value
        return result

    def _forward(
        self, caller: Caller, event: Mapping[str, Any], path: str, body: bytes | None
    ) -> Result:
        try:
            permit = self.breaker.acquire()
        except CircuitOpen as exc:
            logger.info("upstream spared: %s", exc, extra={"status": 503})
            return _unavailable(exc.retry_after)

        headers = forward_request_headers(
            client_headers(event),
            user_id=caller.user_id,
            roles=caller.roles,
            request_id=caller.request_id,
        )
        started = time.perf_counter()
        try:
            response = self.client.request(
                caller.method,
                path,
                query=str(event.get("rawQueryString") or ""),
                headers=headers,
                body=body,
            )
        except RequestRejected as exc:
            self.breaker.record(permit, success=True)
            logger.warning("request rejected: %s", exc, extra={"status": 400})
            return error_result(400, exc.client_message)
        except UpstreamError as exc:
            self.breaker.record(permit, success=False)
            logger.warning("upstream failed: %s", exc, extra={"status": exc.status})
            return error_result(exc.status, exc.client_message)
        finally:
            _latency(started)

        self.breaker.record(permit, success=response.status < 500)
        _log_answer(caller, path, response)
        return upstream_result(response, allowed_origin=self.settings.frontend_origin)

    def _is_login(self, method: str, path: str) -> bool:
        return self.settings.route_group == "auth" and method == "POST" and path == "/auth/login"


def _username(body: bytes | None) -> str | None:
    """The ``username`` of a JSON login body; None when the body is not JSON (then IP only)."""
    if not body:
        return None
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return None
    username = document.get("username") if isinstance(document, dict) else None
    return username if isinstance(username, str) else None


def denied_result(decisions: list[Decision]) -> Result:
    """429 when a limit is spent; 503 when Redis is unreachable and the policy fails closed."""
    headers = rate_limit_headers(decisions)
    if any(decision.degraded for decision in decisions):
        logger.warning("refused: rate limiter unreachable, failing closed", extra={"status": 503})
        return error_result(503, "Service Unavailable", headers)
    logger.info("rate limited", extra={"status": 429, "policy": decisions[-1].policy.name})
    return error_result(429, "Too Many Requests", headers)


def _unavailable(retry_after: float) -> Result:
    """503 with ``Retry-After`` in whole seconds, rounded up: the upstream's breaker is open."""
    seconds = max(1, int(retry_after + 0.999))
    return error_result(503, "Service Unavailable", {"retry-after": str(seconds)})


def _latency(started: float) -> None:
    elapsed_ms = (time.perf_counter() - started) * 1000
    metrics.add_metric(name="UpstreamLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)


def _log_answer(caller: Caller, path: str, response: UpstreamResponse) -> None:
    logger.info(
        "proxied",
        extra={
            "method": caller.method,
            "path": path,
            "status": response.status,
            "upstream_ms": round(response.elapsed * 1000, 2),
        },
    )


class WarmInstance[T: _Handles]:
    """The one object a warm function builds on its first invocation and keeps until reset.

    Built on first use rather than on import, so that tests and the emulator can set the
    environment first.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._instance: T | None = None

    def __call__(self) -> T:
        """The warm instance, built now if this is the first call since the last reset."""
        if self._instance is None:
            self._instance = self._build()
        return self._instance

    def reset(self) -> None:
        """Forget the warm instance, so the next invocation reads the environment again."""
        self._instance = None


def answer(instance: Callable[[], _Handles], event: dict[str, Any], failure: str) -> Result:
    """Count the request and let the warm instance answer it; a crash is logged and answered 500.

    Building the instance stays outside the ``try``: a configuration error fails the invocation
    (it shows in the function's errors metric at deploy time) instead of passing as a 500.
    """
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    handled = instance()
    try:
        return handled.handle(event)
    except Exception:
        logger.exception(failure, extra={"status": 500})
        return error_result(500, "Internal Server Error")


_instance = WarmInstance(lambda: Proxy(ProxySettings.from_env()))
reset = _instance.reset


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> Result:
    """Lambda entry point (``proxy.handler``)."""
    return answer(_instance, event, "request failed")
