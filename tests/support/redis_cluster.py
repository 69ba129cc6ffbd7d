"""A real Redis Cluster of three masters on loopback, for tests that need cluster semantics.

Each node is a ``redis-server --cluster-enabled yes`` started by ``devstack.services.start_redis``
on a free port, with its cluster bus on another free port (``cluster-port``, Redis 7), so nothing
assumes the usual port + 10000. ``redis-cli --cluster create`` assigns the 16384 slots; the
cluster is handed over only once every node reports ``cluster_state:ok``.

Environment variables read: ``REDIS_CLI_BIN`` (default: ``redis-cli`` on ``PATH``), and
``REDIS_SERVER_BIN`` through ``start_redis``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis

from devstack.services import Service, ServiceError, free_port, start_redis

__all__ = ["RedisClusterNodes", "start_redis_cluster"]


@dataclass
class RedisClusterNodes:
    """The running nodes of a test cluster."""

    nodes: list[Service] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A URL for ``RedisCluster.from_url``: any one node is enough to discover the rest."""
        return f"redis://{self.nodes[0].address}"


def _redis_cli() -> str:
    found = os.environ.get("REDIS_CLI_BIN") or shutil.which("redis-cli")
    if not found:
        raise ServiceError("redis-cli not found: install it or set REDIS_CLI_BIN")
    return found


def _wait_until_ok(nodes: list[Service], masters: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(nodes)
    while pending:
        node = pending[0]
        client = redis.Redis(host=node.host, port=node.port, socket_timeout=2)
        try:
            info = client.cluster("INFO")
        finally:
            client.close()
        if info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == masters:
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise ServiceError(f"cluster not ready after {timeout}s: {info}")
        time.sleep(0.1)


@contextmanager
def start_redis_cluster(masters: int = 3, *, timeout: float = 30.0) -> Iterator[RedisClusterNodes]:
    """Start ``masters`` nodes, join them into one cluster without replicas, and wait for it.

    Used as ``with start_redis_cluster() as cluster:``; every node is stopped on leaving.
    """
    cluster = RedisClusterNodes()
    try:
        for _ in range(masters):
            extra = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-port", str(free_port()),
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
            cluster.nodes.append(start_redis(extra=extra))

        create = [_redis_cli(), "--cluster", "create"]
        create += [node.address for node in cluster.nodes]
        create += ["--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise ServiceError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")
        _wait_until_ok(cluster.nodes, masters, timeout)
        yield cluster
    finally:
        for node in cluster.nodes:
            node.stop()
