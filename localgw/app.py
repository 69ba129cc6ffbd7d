"""The emulator as one object: a template's functions, its HTTP API, and any added services.

::

    emulator = Emulator.from_template("template.yaml", port=3000, env_vars="env.json")
    await emulator.start()          # workers warm, HTTP API listening
    emulator.http_url               # "http://127.0.0.1:3000"
    emulator.route_table()          # [(method, path, function, authorizer), ...]
    await emulator.close()          # stops the servers and every worker it started

Other transports (the WebSocket API, the Kafka event source mapping) plug in with
:meth:`Emulator.add_service`: any object with ``async start(emulator)`` and ``async close()``;
they reach the functions through ``emulator.runtime`` and the template through
``emulator.model``. Services start after the functions and the HTTP API, and stop before them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from localgw.http_server import HttpServer, serve_http
from localgw.httpapi import HttpApiService
from localgw.runtime import OutputSink, Runtime, load_env_vars
from localgw.template import HttpApiSpec, TemplateModel, load_template

__all__ = ["Emulator", "EmulatorError", "Service", "loop_factory"]

logger = logging.getLogger(__name__)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (and ``LOCALGW_LOOP`` is not ``asyncio``).

    The emulator spends most of its own time in the event loop (a socket read, two pipe writes
    and reads, a socket write per request); uvloop runs that part about twice as fast.
    """
    if os.environ.get("LOCALGW_LOOP", "").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


class EmulatorError(RuntimeError):
    """The emulator cannot serve what it was given (no HTTP API to serve, an unknown API)."""


class Service(Protocol):
    async def start(self, emulator: Emulator) -> None: ...

    async def close(self) -> None: ...


class Emulator:
    def __init__(
        self,
        model: TemplateModel,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        api: str | None = None,
        env_overrides: Mapping[str, Mapping[str, str]] | None = None,
        concurrency: int | Mapping[str, int] = 10,
        prewarm: int = 1,
        watch_interval: float | None = 0.5,
        output: OutputSink | None = None,
    ) -> None:
        self.model = model
        self.host = host
        self.port = port
        self.api = self._pick_api(api)
        self.runtime = Runtime(
            model.functions,
            env_overrides=env_overrides,
            concurrency=concurrency,
            prewarm=prewarm,
            region=model.region,
            output=output,
            watch_interval=watch_interval,
        )
        self.services: list[Service] = []
        self.http: HttpServer | None = None
        self.http_service: HttpApiService | None = None

    @classmethod
    def from_template(
        cls,
        template: str | Path,
        *,
        config_env: str = "default",
        config_file: str | Path | None = None,
        parameter_overrides: Mapping[str, str] | None = None,
        env_vars: str | Path | None = None,
        region: str | None = None,
        **kwargs: Any,
    ) -> Emulator:
        model = load_template(
            template,
            config_env=config_env,
            config_file=config_file,
            overrides=parameter_overrides,
            region=region,
        )
        return cls(model, env_overrides=load_env_vars(env_vars), **kwargs)

    def _pick_api(self, name: str | None) -> HttpApiSpec | None:
        if name is None:
            return self.model.http_apis[0] if self.model.http_apis else None
        for api in self.model.http_apis:
            if api.logical_id == name:
                return api
        known = [api.logical_id for api in self.model.http_apis]
        raise EmulatorError(f"no HTTP API {name!r} in the template (it has {known})")

    def add_service(self, service: Service) -> None:
        self.services.append(service)

    @property
    def http_url(self) -> str:
        if self.http is None:
            raise EmulatorError("the HTTP API is not listening")
        return f"http://{self.host}:{self.http.port}"

    def route_table(self) -> list[tuple[str, str, str, str]]:
        """(method, path, function, authorizer or "-") for every route, sorted by path."""
        if self.api is None:
            return []
        rows = [
            (route.method, route.path, route.function_id, route.authorizer or "-")
            for route in self.api.routes
        ]
        return sorted(rows, key=lambda row: (row[1], row[0]))

    async def start(self) -> None:
        await self.runtime.start()
        if self.api is not None:
            self.http_service = HttpApiService(
                self.api,
                self.runtime,
                function_timeouts={k: f.timeout for k, f in self.model.functions.items()},
                region=self.model.region,
                account_id=self.model.account_id,
            )
            self.http = await serve_http(self.http_service, self.host, self.port)
            logger.info("HTTP API %s on %s", self.api.logical_id, self.http_url)
        else:
            logger.warning("the template has no HTTP API; only the functions are served")
        for service in self.services:
            await service.start(self)

    async def close(self) -> None:
        for service in reversed(self.services):
            try:
                await service.close()
            except Exception:
                logger.exception("service %r failed to stop", service)
        if self.http is not None:
            await self.http.close()
        await self.runtime.close()
