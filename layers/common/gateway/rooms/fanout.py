"""Sending one message to every connection of a room through the API Gateway Management API.

Sends run concurrently on a bounded thread pool that lives as long as the warm function, as does
the Management API client (:class:`~gateway.rooms.sender.ManagementApi`: its keep-alive
connection pool is sized to the thread pool so that no send waits for a socket). Each recipient
ends one of three ways:

- delivered;
- gone: API Gateway answered 410 ``GoneException``, the connection no longer exists;
- failed: any other error, logged as a warning for that recipient; the others go on.

Throttling (429, ``LimitExceededException``, ``TooManyRequestsException``,
``ThrottlingException``) is retried here with capped exponential backoff and full jitter, a bounded
number of times; the client itself never retries, so the two never multiply.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from gateway.rooms.sender import DEFAULT_TIMEOUT, ManagementApi, ManagementApiError
from gateway.upstream.errors import UpstreamError

__all__ = [
    "DEFAULT_CONCURRENCY",
    "Broadcaster",
    "FanoutResult",
    "ManagementClient",
    "management_client",
]

logger = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 32

_THROTTLE_CODES = frozenset(
    {"LimitExceededException", "TooManyRequestsException", "ThrottlingException", "429"}
)


class ManagementClient(Protocol):
    """The one Management API call a broadcast makes, and closing the client's connections.

    ``post`` returns once API Gateway accepted the message; it raises
    :class:`~gateway.rooms.sender.ManagementApiError` for an error answer and an
    :class:`~gateway.upstream.errors.UpstreamError` when no answer came.
    """

    def post(self, connection_id: str, data: bytes) -> None: ...

    def close(self) -> None: ...


class _Outcome(enum.Enum):
    DELIVERED = "delivered"
    GONE = "gone"
    FAILED = "failed"


@dataclass
class FanoutResult:
    """What became of one message sent to a room."""

    delivered: int = 0
    failed: int = 0
    retries: int = 0
    gone: list[str] = field(default_factory=list)


class Broadcaster:
    """Posts a message to many connections at once, ``concurrency`` at a time."""

    def __init__(
        self,
        client: ManagementClient,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_attempts: int = 4,
        base_delay: float = 0.05,
        max_delay: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._client = client
        self._concurrency = concurrency
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def concurrency(self) -> int:
        return self._concurrency

    def send(self, data: bytes, connection_ids: Sequence[str]) -> FanoutResult:
        """Post ``data`` to every connection; returns once each one is delivered, gone or failed."""
        result = FanoutResult()
        outcomes: list[tuple[_Outcome, int]] = [(_Outcome.FAILED, 0)] * len(connection_ids)
        pending = enumerate(connection_ids)
        taking = threading.Lock()

        def work() -> None:
            # Each worker takes the next recipient until none is left: one task per worker, not
            # one future per recipient, so a large room costs no more hand-offs than a small one.
            while True:
                with taking:
                    item = next(pending, None)
                if item is None:
                    return
                outcomes[item[0]] = self._post(data, item[1])

        workers = min(self._concurrency, len(connection_ids))
        helpers = [self._executor().submit(work) for _ in range(workers - 1)] if workers > 1 else []
        work()  # the calling thread is one of the workers
        for helper in helpers:
            helper.result()
        for cid, (outcome, retries) in zip(connection_ids, outcomes, strict=True):
            result.retries += retries
            if outcome is _Outcome.DELIVERED:
                result.delivered += 1
            elif outcome is _Outcome.GONE:
                result.gone.append(cid)
            else:
                result.failed += 1
        return result

    def close(self) -> None:
        """Stop the thread pool and close the client's connections (tests, a settings change)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        self._client.close()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                # The calling thread is a worker too: the pool holds the others.
                helpers = max(1, self._concurrency - 1)
                self._pool = ThreadPoolExecutor(helpers, thread_name_prefix="broadcast")
            return self._pool

    def _post(self, data: bytes, connection_id: str) -> tuple[_Outcome, int]:
        attempt = 0
        while True:
            attempt += 1
            try:
                self._client.post(connection_id, data)
            except ManagementApiError as exc:
                code, status = exc.code, exc.status
                if code == "GoneException" or status == 410:
                    logger.debug("connection %s is gone", connection_id)
                    return _Outcome.GONE, attempt - 1
                throttled = code in _THROTTLE_CODES or status == 429
                if throttled and attempt < self._max_attempts:
                    self._sleep(self._backoff(attempt))
                    continue
                logger.warning(
                    "send to connection %s failed after %d attempt(s): %s %s",
                    connection_id,
                    attempt,
                    status,
                    code,
                )
                return _Outcome.FAILED, attempt - 1
            except UpstreamError as exc:
                logger.warning("send to connection %s failed: %s", connection_id, exc)
                return _Outcome.FAILED, attempt - 1
            except Exception:
                # Neither an answer nor a network failure: a bug. One recipient's failure
                # still must not stop the others, so it is logged with its traceback and counted.
                logger.exception("send to connection %s failed unexpectedly", connection_id)
                return _Outcome.FAILED, attempt - 1
            return _Outcome.DELIVERED, attempt - 1

    def _backoff(self, attempt: int) -> float:
        # Full jitter (AWS Architecture Blog, "Exponential Backoff and Jitter"): concurrent senders
        # throttled together do not come back together.
        ceiling = min(self._max_delay, self._base_delay * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret


def management_client(
    endpoint_url: str,
    *,
    pool_size: int = DEFAULT_CONCURRENCY,
    region: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> ManagementApi:
    """The Management API client for ``endpoint_url``, keeping ``pool_size`` connections.

    ``endpoint_url`` is ``https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`` on AWS
    (the region is taken from it, else from ``AWS_REGION``), a moto server or the local
    emulator's ``@connections`` address elsewhere. Each post is bounded by ``timeout`` seconds
    in all. Without credentials (the local emulator) requests go unsigned, with a warning.
    """
    return ManagementApi(endpoint_url, pool_size=pool_size, region=region, timeout=timeout)
