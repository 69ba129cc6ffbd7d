"""Fixtures shared by the unit tests of the proxy and the board."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from gateway.upstream import ConnectionPool

Parts = Callable[[], tuple[redis.Redis, ConnectionPool]]


@pytest.fixture
def gateway_parts(redis_url: str) -> Iterator[Parts]:
    """A Redis client (0.25 s timeout, as deployed) and a connection pool per gateway object a
    test builds, so that no two objects share state by accident; all are closed after the test."""
    made: list[tuple[redis.Redis, ConnectionPool]] = []

    def parts() -> tuple[redis.Redis, ConnectionPool]:
        made.append((redis.Redis.from_url(redis_url, socket_timeout=0.25), ConnectionPool()))
        return made[-1]

    yield parts
    for client, pool in made:
        pool.close()
        client.close()
