"""The local SyncroBoard stack: Redis, a Kafka broker, the demo services and the emulator.

:class:`DevStack` starts, in order: Redis (``REDIS_URL`` if set, else a ``redis-server`` of its
own on a free port), a Kafka-protocol broker (``KAFKA_BOOTSTRAP_SERVERS`` if set, else the bundled
Tansu), the demo services (``python -m demo`` on free ports), and the emulator serving the
project's ``template.yaml``, its parameters pointing at the demo services and its functions'
environment set for local use (``REDIS_URL``, ``REDIS_CLUSTER=false``, the ``JWT_*`` settings
read from the environment instead of Secrets Manager, the JWKS of the demo Auth service).
:meth:`DevStack.close` stops exactly what :meth:`DevStack.start` started, in reverse order; a
Redis or broker named by the environment is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from demo.board.server import BoardServer
from devstack.services import LOOPBACK, Service, free_port, start_kafka, start_redis, wait_for_port
from localgw.app import Emulator
from localgw.runtime import OutputSink, load_env_vars
from localgw.template import load_template
from localgw.websocket import WebSocketSettings
from localgw.websocket_stack import RealtimeSettings, RealtimeStack

__all__ = ["DevStack", "StackSettings"]

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
AUDIENCE = "syncroboard"


@dataclass
class StackSettings:
    """What the stack runs; ``None`` for Redis or Kafka means: read the variable, else start one."""

    host: str = LOOPBACK
    http_port: int = 3000
    template: Path = ROOT / "template.yaml"
    frontend_origin: str = "http://127.0.0.1:5173"
    ws_port: int = 3001
    board_port: int | None = 5173  # the board page; 0 for a free port (then the origin follows)
    redis_url: str | None = None
    kafka_bootstrap: str | None = None
    env_vars: Path | None = None
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    concurrency: int = 10
    prewarm: int = 1
    watch_interval: float | None = 0.5
    output: OutputSink | None = None
    log_dir: Path | None = None

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, **kwargs: object
    ) -> StackSettings:
        environ = os.environ if environ is None else environ
        settings = cls(**kwargs)  # type: ignore[arg-type]
        settings.redis_url = settings.redis_url or environ.get("REDIS_URL") or None
        settings.kafka_bootstrap = (
            settings.kafka_bootstrap or environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
        )
        return settings


@dataclass
class DemoServices:
    process: subprocess.Popen[bytes]
    auth_url: str
    tickets_url: str
    assignments_url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class DevStack:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.redis: Service | None = None
        self.kafka: Service | None = None
        self.demo: DemoServices | None = None
        self.emulator: Emulator | None = None
        self.realtime: RealtimeStack | None = None
        self.board: BoardServer | None = None
        self.redis_url = ""
        self.kafka_bootstrap = ""
        self._logs: tempfile.TemporaryDirectory[str] | None = None

    @property
    def log_dir(self) -> Path:
        if self.settings.log_dir is not None:
            return self.settings.log_dir
        if self._logs is None:
            self._logs = tempfile.TemporaryDirectory(prefix="syncroboard-devstack-")
        return Path(self._logs.name)

    # --- backing services -----------------------------------------------------------------------

    def start_backing_services(self) -> None:
        """Redis, the broker and the demo services; blocking, each waited for until it listens."""
        if self.settings.redis_url:
            self.redis_url = self.settings.redis_url
        else:
            self.redis = start_redis(log=self.log_dir / "redis.log")
            self.redis_url = f"redis://{self.redis.address}/0"
        if self.settings.kafka_bootstrap:
            self.kafka_bootstrap = self.settings.kafka_bootstrap
        else:
            self.kafka = start_kafka(log=self.log_dir / "kafka.log")
            self.kafka_bootstrap = self.kafka.address
        self.demo = self._start_demo()

    def _start_demo(self) -> DemoServices:
        ports = [free_port() for _ in range(3)]
        auth_url = f"http://{LOOPBACK}:{ports[0]}"
        argv = [
            sys.executable, "-m", "demo",
            "--auth-port", str(ports[0]),
            "--tickets-port", str(ports[1]),
            "--assignments-port", str(ports[2]),
            "--issuer", f"{auth_url}/auth",
            "--audience", AUDIENCE,
            "--kafka", self.kafka_bootstrap,
        ]  # fmt: skip
        log = open(self.log_dir / "demo.log", "ab")  # noqa: SIM115 - the child owns the handle
        process = subprocess.Popen(
            argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        demo = DemoServices(
            process, auth_url, f"http://{LOOPBACK}:{ports[1]}", f"http://{LOOPBACK}:{ports[2]}"
        )
        try:
            for port in ports:
                wait_for_port(LOOPBACK, port, timeout=20)
        except Exception:
            demo.stop()
            raise
        return demo

    # --- the emulator ---------------------------------------------------------------------------

    def local_environment(self) -> dict[str, str]:
        """What every function gets on top of the template's environment, for a local run."""
        assert self.demo is not None
        return {
            "REDIS_URL": self.redis_url,
            "REDIS_CLUSTER": "false",
            "JWT_SETTINGS_SECRET_ARN": "",
            "JWT_SETTINGS_PARAMETER": "",
            "JWT_JWKS_URL": f"{self.demo.auth_url}/auth/.well-known/jwks.json",
            "JWT_ISSUER": f"{self.demo.auth_url}/auth",
            "JWT_AUDIENCE": AUDIENCE,
            "JWT_ALGORITHMS": "RS256",
        }

    def parameter_overrides(self) -> dict[str, str]:
        assert self.demo is not None
        return {
            "AuthServiceUrl": self.demo.auth_url,
            "TicketServiceUrl": self.demo.tickets_url,
            "AssignmentServiceUrl": self.demo.assignments_url,
            "JwtIssuer": f"{self.demo.auth_url}/auth",
            "JwtAudience": AUDIENCE,
            "JwtAlgorithms": "RS256",
            "JwtJwksUrl": f"{self.demo.auth_url}/auth/.well-known/jwks.json",
            "FrontendOrigin": self.settings.frontend_origin,
            "KafkaSource": "self-managed",
            "KafkaBootstrapServers": self.kafka_bootstrap,
            "VpcId": "vpc-local",
            "SubnetIds": "subnet-local-a,subnet-local-b",
            **self.settings.parameter_overrides,
        }

    def build_emulator(self) -> Emulator:
        model = load_template(self.settings.template, overrides=self.parameter_overrides())
        # Before the runtime exists: it rewrites WS_MANAGEMENT_ENDPOINT to the local @connections.
        self.realtime = RealtimeStack(
            model,
            RealtimeSettings(
                websocket=WebSocketSettings(host=self.settings.host, port=self.settings.ws_port),
                kafka_bootstrap_servers=self.kafka_bootstrap,
            ),
        )
        overrides = load_env_vars(self.settings.env_vars)
        overrides["Parameters"] = {**self.local_environment(), **overrides.get("Parameters", {})}
        emulator = Emulator(
            model,
            host=self.settings.host,
            port=self.settings.http_port,
            env_overrides=overrides,
            concurrency=self.settings.concurrency,
            prewarm=self.settings.prewarm,
            watch_interval=self.settings.watch_interval,
            output=self.settings.output,
        )
        emulator.add_service(self.realtime)
        return emulator

    # --- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.start_backing_services)
            self.board = self._bind_board()
            self.emulator = self.build_emulator()
            await self.emulator.start()
            if self.board is not None:
                self.board.configure(api_url=self.emulator.http_url, ws_url=self.ws_url)
                self.board.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop what :meth:`start` started, newest first; a failure to stop one spares the rest."""
        if self.board is not None:
            await asyncio.to_thread(self.board.stop)
            self.board = None
        if self.emulator is not None:
            with contextlib.suppress(Exception):
                await self.emulator.close()
            self.emulator = None
        for stop in (self.demo, self.kafka, self.redis):
            if stop is not None:
                try:
                    await asyncio.to_thread(stop.stop)
                except Exception:
                    logger.exception("could not stop %r", stop)
        self.demo = self.kafka = self.redis = None
        if self._logs is not None:
            self._logs.cleanup()
            self._logs = None

    def _bind_board(self) -> BoardServer | None:
        """Bind the board page's port first: with port 0, its origin is the CORS origin."""
        if self.settings.board_port is None:
            return None
        board = BoardServer(self.settings.host, self.settings.board_port)
        if self.settings.board_port == 0:
            self.settings.frontend_origin = board.url
        return board

    @property
    def ws_url(self) -> str:
        """The WebSocket API's URL with its stage, as a browser connects to it."""
        assert self.realtime is not None
        assert self.realtime.servers
        server = self.realtime.servers[0]
        return f"{server.url}/{server.api.stage}"

    def _realtime_urls(self) -> list[str]:
        lines = []
        if self.realtime is not None and self.realtime.servers:
            lines.append(f"  WebSocket API       {self.ws_url}")
        if self.board is not None:
            lines.append(f"  board page          {self.board.url}")
        return lines

    def summary(self) -> str:
        """The URLs and the route table, as ``make run`` prints them."""
        from localgw.cli import format_route_table

        assert self.emulator is not None
        assert self.demo is not None
        own = " (started here)"
        lines = [
            "SyncroBoard dev stack",
            f"  HTTP API            {self.emulator.http_url}",
            *self._realtime_urls(),
            f"  demo Auth           {self.demo.auth_url}",
            f"  demo Tickets        {self.demo.tickets_url}",
            f"  demo Assignments    {self.demo.assignments_url}",
            f"  Redis               {self.redis_url}{own if self.redis else ''}",
            f"  Kafka               {self.kafka_bootstrap}{own if self.kafka else ''}",
            f"  frontend origin     {self.settings.frontend_origin}",
            f"  service logs        {self.log_dir}",
            "",
            format_route_table(self.emulator.route_table()),
            "",
            *(self.realtime.describe() if self.realtime else []),
            "",
            "Ctrl-C stops everything listed as started here.",
        ]
        return "\n".join(lines)
