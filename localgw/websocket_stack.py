"""The real-time half of a template, served beside the HTTP API: every WEBSOCKET API with its
``@connections`` endpoint, and every Kafka event source mapping.

Order matters, and :class:`RealtimeStack` keeps it:

1. Made from the model before the emulator's runtime is: it binds the WebSocket servers' sockets
   (the first API on ``port``, 3001 by default; any further API on a free port) and rewrites each
   function's environment so that the API's execute-api URL
   (``https://{apiId}.execute-api.{region}.amazonaws.com``, as a
   ``WS_MANAGEMENT_ENDPOINT: !Sub ...`` resolves) becomes the local one. Worker processes made
   from ``model.functions`` afterwards see the local endpoint.
2. :meth:`RealtimeStack.start` (the emulator's service hook) takes the runtime, starts serving,
   and starts one poller per Kafka mapping on the local broker.
3. :meth:`RealtimeStack.close` stops the pollers, then closes every connection (each runs
   ``$disconnect``) and the servers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from localgw.kafka_esm import MappingRunner, RetryPolicy, kafka_mappings_from_model
from localgw.websocket import WebSocketServer, WebSocketSettings
from localgw.websocket_api import Invoker, runtime_invoker, websocket_apis_from_model

if TYPE_CHECKING:
    from localgw.template import TemplateModel

__all__ = ["RealtimeSettings", "RealtimeStack"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RealtimeSettings:
    """Settings of the real-time half; ``kafka_bootstrap_servers`` None leaves mappings off."""

    websocket: WebSocketSettings = field(default_factory=WebSocketSettings)
    kafka_bootstrap_servers: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    consumer_options: tuple[tuple[str, Any], ...] = ()


class RealtimeStack:
    """WebSocket APIs and Kafka mappings of one template; a service of :class:`Emulator`."""

    def __init__(self, model: TemplateModel, settings: RealtimeSettings | None = None) -> None:
        self.model = model
        self.settings = settings or RealtimeSettings()
        self.servers: list[WebSocketServer] = []
        self.mappings: list[MappingRunner] = []
        self._invoke: Invoker | None = None
        first = self.settings.websocket
        for index, api in enumerate(websocket_apis_from_model(model)):
            settings_ = first if index == 0 else replace(first, port=0)
            server = WebSocketServer(api, self._call, settings_)
            server.bind()
            self.servers.append(server)
            local = f"http://{settings_.host}:{server.port}"
            model.replace_in_environments(f"https://{api.domain_name}", local)

    async def _call(self, function: str, event: dict[str, Any]) -> Any:
        assert self._invoke is not None, "the stack is not started"
        return await self._invoke(function, event)

    async def start(self, host: Any) -> None:
        """Serve, invoking functions through ``host.runtime`` (the emulator), a
        :class:`~localgw.runtime.Runtime`, or any :data:`Invoker`."""
        runtime = getattr(host, "runtime", host)
        self._invoke = runtime_invoker(runtime) if hasattr(runtime, "pools") else runtime
        for server in self.servers:
            await server.start()
        self.start_mappings()

    def start_mappings(self) -> None:
        """Start a poller per Kafka mapping, if there is a broker to read from."""
        mappings = [m for m in kafka_mappings_from_model(self.model) if m.enabled]
        if mappings and not self.settings.kafka_bootstrap_servers:
            log.warning(
                "%d Kafka event source mapping(s) not started: no local broker given",
                len(mappings),
            )
            return
        # kafka-python narrates every connection at INFO; unless told otherwise, keep to problems.
        library_log = logging.getLogger("kafka")
        if library_log.level == logging.NOTSET:
            library_log.setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        for mapping in mappings:
            runner = MappingRunner(
                mapping,
                self._call,
                loop,
                bootstrap_servers=self.settings.kafka_bootstrap_servers,
                retry=self.settings.retry,
                consumer_options=dict(self.settings.consumer_options),
            )
            runner.start()
            self.mappings.append(runner)

    def describe(self) -> list[str]:
        """Lines for the emulator's start-up table."""
        lines = []
        for server in self.servers:
            lines.append(
                f"WebSocket {server.api.logical_id}: {server.url}  "
                f"(@connections: {server.management_url})"
            )
            for key, route in server.api.routes.items():
                auth = f" [authorizer {route.authorizer.function}]" if route.authorizer else ""
                lines.append(f"  {key:<14} {route.function}{auth}")
        for runner in self.mappings:
            m = runner.mapping
            lines.append(
                f"Kafka {','.join(m.topics)} -> {m.function} (group "
                f"{m.consumer_group_id}, batch {m.batch_size}, on {runner.bootstrap})"
            )
        return lines

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, r.stop) for r in self.mappings))
        for server in self.servers:
            await server.close()
