"""Logging and metrics shared by the handlers: Powertools' structured Logger and EMF Metrics.

Level policy (all handlers follow it):

- ERROR, with the traceback: a crash, a bug, a request answered 500.
- WARNING: a degraded path: breaker open, a fallback served, Redis unreachable, a poison record
  skipped, a broadcast recipient skipped.
- INFO: one line per request or record batch; a connection opened or closed.
- DEBUG: internals (cache hits, retries).

Environment variables read: ``POWERTOOLS_SERVICE_NAME``, ``POWERTOOLS_METRICS_NAMESPACE``,
``LOG_LEVEL`` (Powertools reads them itself).
"""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools import Logger, Metrics

__all__ = ["get_logger", "get_metrics"]


@cache
def get_logger(service: str | None = None) -> Logger:
    """The function's JSON logger; one per service name, so child modules share its keys."""
    return Logger(service=service)


@cache
def get_metrics(namespace: str | None = None) -> Metrics:
    """The function's EMF metrics; flushed by ``@metrics.log_metrics`` on the handler."""
    return Metrics(namespace=namespace or "SyncroBoard/Gateway")
