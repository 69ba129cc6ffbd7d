"""One Redis client per warm function, standalone or cluster, created on first use.

Environment variables read:

- ``REDIS_URL``: ``redis://host:port/0`` locally, ``rediss://...`` for ElastiCache (TLS).
- ``REDIS_CLUSTER``: ``true`` for a cluster-mode endpoint (ElastiCache Serverless is one).
- ``REDIS_SOCKET_TIMEOUT_SECONDS``: connect and read timeout, default 0.25 s. A request never
  waits longer than this on Redis; callers decide what an unreachable Redis means for them.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from gateway.config import env_bool, env_float, env_str

__all__ = ["RedisLike", "close_client", "get_redis", "reset_redis"]

RedisLike = redis.Redis | RedisCluster

_lock = threading.Lock()
_client: RedisLike | None = None


def _create(url: str, cluster: bool, timeout: float) -> RedisLike:
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "decode_responses": False,
        "health_check_interval": 30,
        # redis-py retries by default (RedisCluster: 10 times with backoff, plus 0.25 s sleeps on
        # CLUSTERDOWN), which turns an outage into seconds of waiting per request. No retries:
        # each caller's failure policy decides within the socket timeout.
        "retry": Retry(NoBackoff(), 0),
    }
    if cluster:
        return RedisCluster.from_url(url, **options)
    # A standalone client retries nothing on its own: the caller's failure policy decides.
    return redis.Redis.from_url(url, retry_on_timeout=False, **options)


def get_redis(url: str | None = None, cluster: bool | None = None) -> RedisLike:
    """Return the process's Redis client, creating it from the environment on first call."""
    global _client
    if _client is not None:
        return _client
    with _lock:
        if _client is None:
            resolved = env_str("REDIS_URL", "redis://127.0.0.1:6379/0", url)
            assert resolved is not None
            _client = _create(
                resolved,
                env_bool("REDIS_CLUSTER", False, cluster),
                env_float("REDIS_SOCKET_TIMEOUT_SECONDS", 0.25),
            )
        return _client


def close_client(client: RedisLike) -> None:
    """Close ``client`` and every socket it holds, a cluster client's node connections included.

    ``RedisCluster.close()`` closes each node's client, but those were built on connection pools
    handed to them, which a client never disconnects; their sockets stay open until garbage
    collection finds them, and Python warns about each one then.
    """
    if isinstance(client, RedisCluster):
        for node in client.get_nodes():  # type: ignore[no-untyped-call]
            if node.redis_connection is not None:
                node.redis_connection.connection_pool.disconnect()
    client.close()


def reset_redis() -> None:
    """Forget the process's client (tests, and the emulator's reload), closing its connections."""
    global _client
    with _lock:
        if _client is not None:
            close_client(_client)
        _client = None
