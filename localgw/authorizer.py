"""Lambda REQUEST authorizers of an HTTP API, without I/O.

What API Gateway does, and this module decides (the HTTP API developer guide, "Working with AWS
Lambda authorizers for HTTP APIs"):

- every identity source must be present and non-empty, else 401 without invoking the function;
- the answer is read as the simple format (``isAuthorized`` and ``context``) when the authorizer
  enables simple responses, else as an IAM policy (``principalId``, ``policyDocument``,
  ``context``): allowed when a statement allows ``execute-api:Invoke`` on the route's ARN and none
  denies it; anything else is an authorizer error (500);
- a decision (allow or deny) is cached by the identity sources' values for the authorizer's TTL;
  errors are not cached;
- the context reaches the route's event at ``requestContext.authorizer.lambda``.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from localgw.events import HttpRequest
from localgw.template import Authorizer

__all__ = ["AuthorizerCache", "Decision", "identity_values", "read_authorizer_answer"]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    context: dict[str, Any]


class AuthorizerAnswerError(ValueError):
    """The authorizer's answer is in neither format; API Gateway answers 500."""


def identity_values(
    authorizer: Authorizer,
    request: HttpRequest,
    query: dict[str, str],
    context: dict[str, str],
) -> list[str] | None:
    """The identity sources' values in order, or None when one is missing or empty (401)."""
    values: list[str] = []
    for source in authorizer.identity_sources:
        value: str | None
        if source.startswith("$request.header."):
            value = request.header(source.removeprefix("$request.header."))
        elif source.startswith("$request.querystring."):
            value = query.get(source.removeprefix("$request.querystring."))
        elif source.startswith("$context."):
            value = context.get(source.removeprefix("$context."))
        else:  # $stageVariables: the emulator's $default stage has none
            value = None
        if not value:
            return None
        values.append(value)
    return values


def read_authorizer_answer(authorizer: Authorizer, answer: Any, route_arn: str) -> Decision:
    """Read a successful invocation's payload as API Gateway reads it."""
    if not isinstance(answer, dict):
        raise AuthorizerAnswerError(f"answer is a {type(answer).__name__}, not an object")
    context = answer.get("context") or {}
    if not isinstance(context, dict):
        raise AuthorizerAnswerError("context is not an object")
    if authorizer.simple_responses:
        allowed = answer.get("isAuthorized")
        if not isinstance(allowed, bool):
            raise AuthorizerAnswerError("isAuthorized is missing or not a boolean")
        return Decision(allowed, context)
    document = answer.get("policyDocument")
    if not isinstance(document, dict) or not isinstance(answer.get("principalId"), str):
        raise AuthorizerAnswerError("an IAM policy answer needs principalId and policyDocument")
    return Decision(_policy_allows(document, route_arn), context)


def _policy_allows(document: dict[str, Any], route_arn: str) -> bool:
    statements = document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        if not isinstance(statement, dict):
            raise AuthorizerAnswerError("a policy statement is not an object")
        if not _matches(statement.get("Action"), "execute-api:Invoke"):
            continue
        if not _matches(statement.get("Resource"), route_arn):
            continue
        effect = str(statement.get("Effect", "")).lower()
        if effect == "deny":
            return False
        allowed = allowed or effect == "allow"
    return allowed


def _matches(patterns: Any, value: str) -> bool:
    items = patterns if isinstance(patterns, list) else [patterns]
    return any(
        isinstance(item, str) and fnmatch.fnmatchcase(value, item.replace("[", "[[]"))
        for item in items
    )


class AuthorizerCache:
    """Decisions by (authorizer, identity values), each kept for its authorizer's TTL."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, tuple[str, ...]], tuple[float, Decision]] = {}

    def get(self, authorizer: Authorizer, values: list[str]) -> Decision | None:
        key = (authorizer.name, tuple(values))
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, authorizer: Authorizer, values: list[str], decision: Decision) -> None:
        if authorizer.ttl_seconds <= 0 or not authorizer.identity_sources:
            return
        if len(self._entries) > 10_000:  # bounded: drop what has expired, then the oldest half
            now = self._clock()
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            for stale in list(self._entries)[: len(self._entries) // 2]:
                del self._entries[stale]
        expires = self._clock() + authorizer.ttl_seconds
        self._entries[(authorizer.name, tuple(values))] = (expires, decision)
