"""An HTTP API served locally: one request through CORS, routing, the authorizer and the function.

:class:`HttpApiService` is the handler :func:`localgw.http_server.serve_http` calls. Per request:

1. a preflight is answered from the CorsConfiguration (no function runs);
2. the route is picked (:mod:`localgw.routes`); none gives 404 ``{"message":"Not Found"}``;
3. the route's authorizer runs (:mod:`localgw.authorizer`): 401, 403 or 500 as API Gateway;
4. the function runs with a payload 2.0 event within its integration timeout (the function's
   timeout, the route's ``TimeoutInMillis``, and 30 s, whichever is least): a timeout gives 503
   ``{"message":"Service Unavailable"}``, a crash or a malformed answer 500
   ``{"message":"Internal Server Error"}`` (the reason goes to the log, never to the client);
5. CORS headers are set for an allowed origin; ``apigw-requestid`` is added.

Bodies over 10 MB get 413 from the transport. Lambda's 6 MB limit on the event is kept too (413).
"""

from __future__ import annotations

import json
import logging
import random
import time
from typing import Any, Protocol

from localgw.authorizer import (
    AuthorizerAnswerError,
    AuthorizerCache,
    Decision,
    identity_values,
    read_authorizer_answer,
)
from localgw.cors import apply_cors, is_preflight, preflight_response
from localgw.events import (
    HttpRequest,
    HttpResponse,
    MalformedResponse,
    build_authorizer_event,
    build_http_event,
    error_response,
    parse_http_response,
)
from localgw.routes import RouteTable
from localgw.runtime import InvokeResult
from localgw.template import Authorizer, HttpApiSpec

__all__ = ["HttpApiService", "Invoker"]

logger = logging.getLogger(__name__)

MAX_INTEGRATION_TIMEOUT_SECONDS = 30.0
MAX_EVENT_BYTES = 6 * 1024 * 1024


class Invoker(Protocol):
    async def invoke(
        self, logical_id: str, event: Any, timeout: float | None = None
    ) -> InvokeResult: ...


class HttpApiService:
    """Serve ``api``, invoking functions through ``invoker`` (a ``Runtime``)."""

    def __init__(
        self,
        api: HttpApiSpec,
        invoker: Invoker,
        *,
        function_timeouts: dict[str, float],
        region: str = "us-east-1",
        account_id: str = "123456789012",
    ) -> None:
        self.api = api
        self.invoker = invoker
        self.function_timeouts = function_timeouts
        self.region = region
        self.account_id = account_id
        self.routes = RouteTable(api.routes)
        self.cache = AuthorizerCache()

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = _request_id()
        started = time.perf_counter()
        response, route_key = await self._handle(request, request_id)
        if self.api.cors is not None and not is_preflight(request):
            apply_cors(self.api.cors, request, response)
        response.headers.append(("apigw-requestid", request_id))
        logger.info(
            "%s %s -> %s (%s) %d %.1f ms",
            request.method, request.path, route_key or "-", request_id, response.status,
            (time.perf_counter() - started) * 1000,
        )  # fmt: skip
        return response

    async def _handle(self, request: HttpRequest, request_id: str) -> tuple[HttpResponse, str]:
        if self.api.cors is not None and is_preflight(request):
            return preflight_response(self.api.cors, request), "preflight"
        match = self.routes.match(request.method, request.path)
        if match is None:
            return error_response(404), ""
        route = match.route
        event = build_http_event(
            request,
            route_key=route.route_key,
            path_parameters=match.path_parameters,
            api_id=self.api.api_id,
            stage=self.api.stage,
            request_id=request_id,
        )
        if route.authorizer is not None:
            authorizer = self.api.authorizers[route.authorizer]
            outcome = await self._authorize(authorizer, request, event, request_id)
            if isinstance(outcome, HttpResponse):
                return outcome, route.route_key
            event["requestContext"]["authorizer"] = {"lambda": outcome.context}
        return await self._integrate(route.function_id, route.timeout_ms, event), route.route_key

    async def _integrate(self, function_id: str, timeout_ms: int, event: Any) -> HttpResponse:
        # Only a body near the limit can push the event past it (the head is at most 64 KB).
        body_size = len(event.get("body", ""))
        if body_size > MAX_EVENT_BYTES - 128 * 1024 and len(json.dumps(event)) > MAX_EVENT_BYTES:
            logger.warning("%s: event over Lambda's 6 MB invocation limit", function_id)
            return error_response(413)
        timeout = min(
            self.function_timeouts.get(function_id, MAX_INTEGRATION_TIMEOUT_SECONDS),
            timeout_ms / 1000,
            MAX_INTEGRATION_TIMEOUT_SECONDS,
        )
        result = await self.invoker.invoke(function_id, event, timeout)
        if result.error == "timeout":
            return error_response(503)
        if result.error is not None:
            logger.error(
                "%s failed (%s): %s: %s",
                function_id, result.error, result.error_type, result.error_message,
            )  # fmt: skip
            return error_response(500)
        try:
            return parse_http_response(result.payload)
        except MalformedResponse as exc:
            logger.error("%s answered a malformed response: %s", function_id, exc)  # noqa: TRY400
            return error_response(500)

    async def _authorize(
        self,
        authorizer: Authorizer,
        request: HttpRequest,
        route_event: dict[str, Any],
        request_id: str,
    ) -> Decision | HttpResponse:
        query = _query(request.query)
        route_key = str(route_event["routeKey"])
        values = identity_values(
            authorizer, request, query, {"routeKey": route_key, "requestId": request_id}
        )
        if values is None:
            return error_response(401)
        decision = self.cache.get(authorizer, values)
        if decision is None:
            route_arn = self._route_arn(request.method, request.path)
            event = build_authorizer_event(route_event, route_arn=route_arn, identity_source=values)
            result = await self.invoker.invoke(
                authorizer.function_id,
                event,
                min(self.function_timeouts.get(authorizer.function_id, 10.0), 10.0),
            )
            if result.error is not None:
                logger.error(
                    "authorizer %s failed (%s): %s: %s",
                    authorizer.name, result.error, result.error_type, result.error_message,
                )  # fmt: skip
                return error_response(500)
            try:
                decision = read_authorizer_answer(authorizer, result.payload, route_arn)
            except AuthorizerAnswerError as exc:
                logger.error("authorizer %s answered badly: %s", authorizer.name, exc)  # noqa: TRY400
                return error_response(500)
            self.cache.put(authorizer, values, decision)
        if not decision.allowed:
            return error_response(403)
        return decision

    def _route_arn(self, method: str, path: str) -> str:
        return (
            f"arn:aws:execute-api:{self.region}:{self.account_id}:"
            f"{self.api.api_id}/{self.api.stage}/{method}{path}"
        )


def _query(raw: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    values: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        values[key] = f"{values[key]},{value}" if key in values else value
    return values


def _request_id() -> str:
    # API Gateway's request ids look like "JKJaXmPLvHcESHA="; 16 random hex digits serve as well
    # locally, and cost a tenth of a UUID.
    return f"{random.getrandbits(64):016x}"
