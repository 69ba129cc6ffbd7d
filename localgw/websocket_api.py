"""The WebSocket API's core, without I/O: the API read from a template, route selection, and the
events API Gateway hands to Lambda for ``$connect``, messages and ``$disconnect``.

The transport (:mod:`localgw.websocket`) parses bytes and calls these functions; keeping them free
of sockets lets the tests check every AWS rule on plain values.

Sources for the shapes and limits:

- events: "Set up a WebSocket API integration request" and "Lambda proxy integration" in the API
  Gateway developer guide; ``requestContext`` carries ``routeKey``, ``eventType``,
  ``connectionId``, ``connectedAt``, ``requestId``, ``messageId`` (messages only),
  ``domainName``, ``stage``, ``apiId``, ``identity.sourceIp`` and the authorizer's context;
- limits: "Quotas for configuring and running a WebSocket API": 32 KB frames, 128 KB messages
  (a larger frame or message closes the connection with 1009), 10 minutes idle, 2 hours in all.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from localgw.template import TemplateModel

__all__ = [
    "FRAME_LIMIT_BYTES",
    "IDLE_TIMEOUT_SECONDS",
    "MAX_CONNECTION_SECONDS",
    "MESSAGE_LIMIT_BYTES",
    "AuthorizerDecision",
    "ConnectionInfo",
    "InvocationError",
    "Invoker",
    "WebSocketApi",
    "WebSocketApiError",
    "WebSocketAuthorizer",
    "WebSocketRoute",
    "authorizer_event",
    "connect_event",
    "disconnect_event",
    "identity_values",
    "message_event",
    "new_connection_id",
    "parse_query",
    "read_authorizer_response",
    "runtime_invoker",
    "select_route",
    "websocket_apis",
    "websocket_apis_from_model",
]

FRAME_LIMIT_BYTES = 32 * 1024
MESSAGE_LIMIT_BYTES = 128 * 1024
IDLE_TIMEOUT_SECONDS = 10 * 60.0
MAX_CONNECTION_SECONDS = 2 * 60 * 60.0

_ACCOUNT_ID = "123456789012"


class WebSocketApiError(ValueError):
    """The template's WebSocket API cannot be served as written; the message says why."""


@dataclass(frozen=True)
class WebSocketAuthorizer:
    """A REQUEST authorizer on ``$connect``: its function and identity sources."""

    name: str
    function: str
    identity_sources: tuple[str, ...]


@dataclass(frozen=True)
class WebSocketRoute:
    """One route: the function its AWS_PROXY integration calls, and whether it answers."""

    key: str
    function: str | None
    has_route_response: bool = False
    authorizer: WebSocketAuthorizer | None = None


@dataclass
class WebSocketApi:
    """A WEBSOCKET ``AWS::ApiGatewayV2::Api`` and what hangs off it."""

    logical_id: str
    api_id: str
    route_selection_expression: str
    stage: str
    routes: dict[str, WebSocketRoute] = field(default_factory=dict)
    region: str = "us-east-1"

    @property
    def domain_name(self) -> str:
        return f"{self.api_id}.execute-api.{self.region}.amazonaws.com"

    def method_arn(self, route_key: str) -> str:
        prefix = f"arn:aws:execute-api:{self.region}:{_ACCOUNT_ID}"
        return f"{prefix}:{self.api_id}/{self.stage}/{route_key}"

    @property
    def management_url(self) -> str:
        """The ``@connections`` endpoint the functions would be given on AWS."""
        return f"https://{self.domain_name}/{self.stage}"


@dataclass
class ConnectionInfo:
    """What the events repeat about one connection."""

    connection_id: str
    connected_at_ms: int
    source_ip: str
    user_agent: str
    headers: dict[str, str]
    multi_headers: dict[str, list[str]]
    query: dict[str, str]
    multi_query: dict[str, list[str]]
    authorizer: dict[str, Any] | None = None


def new_connection_id() -> str:
    """A connection id shaped like API Gateway's: 16 characters of base64 ending in ``=``."""
    return base64.b64encode(secrets.token_bytes(10)).decode("ascii").replace("/", "_")


# Reading the template ------------------------------------------------------------------------


def _props(resource: Mapping[str, Any]) -> dict[str, Any]:
    properties = resource.get("Properties") or {}
    return dict(properties)


def _refs(value: Any) -> set[str]:
    """Every logical id that ``value`` names through Ref, Fn::GetAtt or a ``${...}`` in Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
                found.add(str(target))
            elif key == "Fn::Sub":
                template = inner[0] if isinstance(inner, list) else inner
                found.update(_sub_names(str(template)))
                if isinstance(inner, list) and len(inner) > 1:
                    found.update(_refs(inner[1]))
            else:
                found.update(_refs(inner))
    elif isinstance(value, list):
        for inner in value:
            found.update(_refs(inner))
    return found


def _sub_names(template: str) -> set[str]:
    names: set[str] = set()
    start = template.find("${")
    while start != -1:
        end = template.find("}", start)
        if end == -1:
            break
        name = template[start + 2 : end]
        if not name.startswith("!"):
            names.add(name.split(".")[0])
        start = template.find("${", end)
    return names


def _names(value: Any, resolved_ids: Mapping[str, str]) -> set[str]:
    """Logical ids ``value`` points at: through intrinsics, or a physical id already resolved."""
    found = _refs(value)
    if isinstance(value, str):
        found.update(logical for logical, physical in resolved_ids.items() if physical == value)
        found.update(
            logical
            for logical, physical in resolved_ids.items()
            if f":function:{physical}" in value or f"/functions/{physical}" in value
        )
    return found


def _identity(value: Any) -> Any:
    return value


_NAMES = (
    "ProtocolType",
    "RouteSelectionExpression",
    "StageName",
    "RouteKey",
    "IdentitySource",
    "AuthorizationType",
    "Name",
)


def _resolve_names(resource: Mapping[str, Any], resolve: Callable[[Any], Any]) -> dict[str, Any]:
    """The resource with its name-like properties evaluated and its references left as written."""
    if not str(resource.get("Type", "")).startswith("AWS::ApiGatewayV2::"):
        return dict(resource)
    props = _props(resource)
    for name in _NAMES:
        if name in props:
            props[name] = resolve(props[name])
    return {**resource, "Properties": props}


def websocket_apis(
    resources: Mapping[str, Mapping[str, Any]],
    *,
    functions: set[str],
    resolved_ids: Mapping[str, str] | None = None,
    resolve: Callable[[Any], Any] = _identity,
    region: str = "us-east-1",
    stage: str | None = None,
) -> list[WebSocketApi]:
    """Read every WEBSOCKET API of a CloudFormation ``Resources`` section.

    ``functions`` are the logical ids of the template's Lambda functions; ``resolved_ids`` maps
    logical ids to the physical ids the template loader gave them, for values it already
    resolved (an ``ApiId`` that is a plain string); ``resolve`` evaluates intrinsics in names
    (a ``StageName: !Ref Stage``). Resources whose Condition is false must have been dropped by
    the caller.
    """
    ids = dict(resolved_ids or {})
    resources = {
        logical: _resolve_names(resource, resolve) for logical, resource in resources.items()
    }
    apis: list[WebSocketApi] = []
    for logical, resource in resources.items():
        props = _props(resource)
        if resource.get("Type") != "AWS::ApiGatewayV2::Api":
            continue
        if str(props.get("ProtocolType", "")).upper() != "WEBSOCKET":
            continue
        api = WebSocketApi(
            logical_id=logical,
            api_id=_local_api_id(ids.get(logical, logical)),
            route_selection_expression=str(
                props.get("RouteSelectionExpression", "$request.body.action")
            ),
            stage=stage or _stage_name(resources, logical, ids) or "local",
            region=region,
        )
        api.routes = _routes(resources, logical, functions, ids)
        apis.append(api)
    return apis


def websocket_apis_from_model(model: TemplateModel, stage: str | None = None) -> list[WebSocketApi]:
    """The WEBSOCKET APIs of a loaded template (resources whose Condition is false left out)."""
    kept = {
        logical: model.raw_resources[logical]
        for logical in model.resources
        if logical in model.raw_resources
    }
    return websocket_apis(
        kept,
        functions=set(model.functions),
        resolved_ids={logical: model.resolver.physical_id(logical) for logical in kept},
        resolve=model.resolver.resolve,
        region=model.region,
        stage=stage,
    )


def _local_api_id(physical: str) -> str:
    cleaned = "".join(ch for ch in physical.lower() if ch.isalnum())
    return cleaned[:10] or "localwsapi"


def _belongs(props: Mapping[str, Any], api: str, ids: Mapping[str, str]) -> bool:
    return api in _names(props.get("ApiId"), ids)


def _stage_name(
    resources: Mapping[str, Mapping[str, Any]], api: str, ids: Mapping[str, str]
) -> str | None:
    for resource in resources.values():
        props = _props(resource)
        if resource.get("Type") == "AWS::ApiGatewayV2::Stage" and _belongs(props, api, ids):
            name = props.get("StageName")
            if isinstance(name, str):
                return name
    return None


def _by_type(
    resources: Mapping[str, Mapping[str, Any]], kind: str, api: str, ids: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    return {
        logical: _props(resource)
        for logical, resource in resources.items()
        if resource.get("Type") == kind and _belongs(_props(resource), api, ids)
    }


def _routes(
    resources: Mapping[str, Mapping[str, Any]],
    api: str,
    functions: set[str],
    ids: Mapping[str, str],
) -> dict[str, WebSocketRoute]:
    integrations = {
        logical: _one_function(props.get("IntegrationUri"), functions, ids, logical)
        for logical, props in _by_type(
            resources, "AWS::ApiGatewayV2::Integration", api, ids
        ).items()
    }
    authorizers = {
        logical: WebSocketAuthorizer(
            name=str(props.get("Name", logical)),
            function=_one_function(props.get("AuthorizerUri"), functions, ids, logical),
            identity_sources=tuple(str(item) for item in props.get("IdentitySource") or []),
        )
        for logical, props in _by_type(resources, "AWS::ApiGatewayV2::Authorizer", api, ids).items()
    }
    answering = {
        logical
        for props in _by_type(resources, "AWS::ApiGatewayV2::RouteResponse", api, ids).values()
        for logical in _names(props.get("RouteId"), ids)
    }
    routes: dict[str, WebSocketRoute] = {}
    for logical, props in _by_type(resources, "AWS::ApiGatewayV2::Route", api, ids).items():
        key = str(props.get("RouteKey"))
        target = _names(props.get("Target"), ids) & set(integrations)
        authorizer = None
        if str(props.get("AuthorizationType", "NONE")).upper() == "CUSTOM":
            chosen = _names(props.get("AuthorizerId"), ids) & set(authorizers)
            if not chosen:
                raise WebSocketApiError(f"route {key!r} is CUSTOM but names no authorizer")
            authorizer = authorizers[chosen.pop()]
        routes[key] = WebSocketRoute(
            key=key,
            function=integrations[target.pop()] if target else None,
            has_route_response=logical in answering,
            authorizer=authorizer,
        )
    return routes


def _one_function(value: Any, functions: set[str], ids: Mapping[str, str], owner: str) -> str:
    named = _names(value, ids) & functions
    if len(named) != 1:
        raise WebSocketApiError(f"{owner}: cannot tell which function {value!r} invokes")
    return named.pop()


# Route selection ----------------------------------------------------------------------------


def select_route(
    expression: str, message: str | bytes, route_keys: set[str] | frozenset[str]
) -> str:
    """The route key a message goes to, or ``$default``.

    Only ``$request.body.<path>`` expressions are understood (the only kind API Gateway allows
    for a WebSocket API besides a constant). A binary frame, a body that is not a JSON object, a
    missing value or a value naming no route all fall to ``$default``.
    """
    if not expression.startswith("$request.body."):
        return expression if expression in route_keys else "$default"
    chosen = _body_value(expression.removeprefix("$request.body."), message)
    if chosen is None or chosen not in route_keys or chosen in {"$connect", "$disconnect"}:
        return "$default"
    return chosen


def _body_value(path: str, message: str | bytes) -> str | None:
    """The value at ``path`` of a JSON object body, as text; None when there is none."""
    if isinstance(message, bytes):
        return None
    try:
        value: Any = json.loads(message)
    except ValueError:
        return None
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if not isinstance(value, str | int | float | bool):
        return None
    return json.dumps(value) if isinstance(value, bool) else str(value)


# Events -------------------------------------------------------------------------------------


def parse_query(raw: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Query parameters as API Gateway's 1.0-style events carry them (last value wins)."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def _request_time(now: float) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now))


def _context(
    api: WebSocketApi, info: ConnectionInfo, route_key: str, event_type: str, now: float
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": _short_id(),
        "requestTime": _request_time(now),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": info.connected_at_ms,
        "requestTimeEpoch": int(now * 1000),
        "identity": {"sourceIp": info.source_ip, "userAgent": info.user_agent},
        "requestId": _short_id(),
        "domainName": api.domain_name,
        "connectionId": info.connection_id,
        "apiId": api.api_id,
    }
    if info.authorizer is not None:
        context["authorizer"] = dict(info.authorizer)
    return context


def _short_id() -> str:
    return base64.b64encode(uuid.uuid4().bytes[:12]).decode("ascii").replace("/", "_")


def connect_event(
    api: WebSocketApi, info: ConnectionInfo, now: float | None = None
) -> dict[str, Any]:
    """The ``$connect`` event: the handshake's headers and query, no body."""
    stamp = time.time() if now is None else now
    event: dict[str, Any] = {
        "headers": dict(info.headers),
        "multiValueHeaders": {name: list(values) for name, values in info.multi_headers.items()},
        "requestContext": _context(api, info, "$connect", "CONNECT", stamp),
        "isBase64Encoded": False,
    }
    if info.query:
        event["queryStringParameters"] = dict(info.query)
        event["multiValueQueryStringParameters"] = {k: list(v) for k, v in info.multi_query.items()}
    return event


def message_event(
    api: WebSocketApi,
    info: ConnectionInfo,
    route_key: str,
    message: str | bytes,
    now: float | None = None,
) -> dict[str, Any]:
    """A MESSAGE event; a binary frame's body travels in base64 with ``isBase64Encoded``."""
    stamp = time.time() if now is None else now
    context = _context(api, info, route_key, "MESSAGE", stamp)
    context["messageId"] = _short_id()
    if isinstance(message, bytes):
        return {
            "requestContext": context,
            "body": base64.b64encode(message).decode("ascii"),
            "isBase64Encoded": True,
        }
    return {"requestContext": context, "body": message, "isBase64Encoded": False}


def disconnect_event(
    api: WebSocketApi,
    info: ConnectionInfo,
    status_code: int,
    reason: str,
    now: float | None = None,
) -> dict[str, Any]:
    """The ``$disconnect`` event, with the close code and reason as API Gateway reports them."""
    stamp = time.time() if now is None else now
    context = _context(api, info, "$disconnect", "DISCONNECT", stamp)
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    headers = {"Host": info.headers.get("Host", api.domain_name), "x-api-key": "", "x-restapi": ""}
    return {
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "requestContext": context,
        "isBase64Encoded": False,
    }


# The $connect authorizer --------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def identity_values(authorizer: WebSocketAuthorizer, info: ConnectionInfo) -> list[str] | None:
    """The identity sources' values, or None when one is missing or empty (API Gateway: 401)."""
    values: list[str] = []
    for source in authorizer.identity_sources:
        value: str | None = None
        if source.startswith("route.request.querystring."):
            value = info.query.get(source.removeprefix("route.request.querystring."))
        elif source.startswith("route.request.header."):
            value = _header(info.headers, source.removeprefix("route.request.header."))
        elif source.startswith("context.") or source.startswith("stageVariables."):
            value = "local"
        if not value:
            return None
        values.append(value)
    return values


def authorizer_event(
    api: WebSocketApi, info: ConnectionInfo, now: float | None = None
) -> dict[str, Any]:
    """The REQUEST authorizer's event for a ``$connect``: ``methodArn`` plus the request."""
    stamp = time.time() if now is None else now
    event = connect_event(api, info, stamp)
    event["type"] = "REQUEST"
    event["methodArn"] = api.method_arn("$connect")
    event["stageVariables"] = {}
    event.pop("isBase64Encoded", None)
    return event


@dataclass(frozen=True)
class AuthorizerDecision:
    """What an authorizer's answer means for the handshake."""

    allowed: bool
    context: dict[str, Any] | None = None
    error: str | None = None


_CONTEXT_TYPES = (str, int, float, bool)


def read_authorizer_response(payload: Any, method_arn: str) -> AuthorizerDecision:
    """Read an IAM-policy answer; WebSocket authorizers have no simple-response form.

    Allowed only if some statement allows ``execute-api:Invoke`` on a resource matching
    ``method_arn`` and no statement denies it. The context keeps string, number and boolean
    values, as API Gateway does; ``principalId`` joins it.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("policyDocument"), dict):
        return AuthorizerDecision(False, error="the authorizer answered no policyDocument")
    statements = payload["policyDocument"].get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    allowed = denied = False
    for statement in statements:
        if not isinstance(statement, dict) or not _matches(statement, method_arn):
            continue
        effect = str(statement.get("Effect", "")).lower()
        allowed = allowed or effect == "allow"
        denied = denied or effect == "deny"
    raw_context = payload.get("context") or {}
    if not isinstance(raw_context, dict):
        return AuthorizerDecision(False, error="the authorizer's context is not an object")
    context = {k: v for k, v in raw_context.items() if isinstance(v, _CONTEXT_TYPES)}
    context["principalId"] = str(payload.get("principalId", ""))
    return AuthorizerDecision(allowed and not denied, context)


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item) for item in value]
    return [str(value)] if value is not None else []


def _matches(statement: Mapping[str, Any], method_arn: str) -> bool:
    actions = _as_list(statement.get("Action"))
    if not any(action in {"*", "execute-api:*", "execute-api:Invoke"} for action in actions):
        return False
    return any(_arn_matches(pattern, method_arn) for pattern in _as_list(statement.get("Resource")))


def _arn_matches(pattern: str, arn: str) -> bool:
    from fnmatch import fnmatchcase

    return fnmatchcase(arn, pattern.replace("?", "[?]"))


# Invoking functions -------------------------------------------------------------------------


class InvocationError(Exception):
    """A function crashed, timed out or answered something unreadable."""


Invoker = Callable[[str, dict[str, Any]], Awaitable[Any]]
"""``await invoke(function_logical_id, event)``: the function's answer, or
:class:`InvocationError`. The WebSocket API and the Kafka event source mappings call functions
only through this, so tests can stand in for the runtime."""


class _RuntimeLike(Protocol):
    async def invoke(self, logical_id: str, event: Any, timeout: float | None = None) -> Any: ...


def runtime_invoker(runtime: _RuntimeLike, *, timeout: float | None = None) -> Invoker:
    """An :data:`Invoker` over :class:`localgw.runtime.Runtime` (its ``InvokeResult``)."""

    async def invoke(function: str, event: dict[str, Any]) -> Any:
        result = await runtime.invoke(function, event, timeout)
        if not result.ok:
            detail = f"{result.error_type}: {result.error_message}".strip(": ")
            raise InvocationError(f"{function} {result.error}: {detail}")
        return result.payload

    return invoke
