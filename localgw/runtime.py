"""Warm worker processes that run a function's handler, one pool per function.

API (asyncio)::

    pool = FunctionPool(spec, concurrency=4, env_overrides={"X": "1"})
    await pool.start()                       # pre-starts ``prewarm`` workers, watches the code
    result = await pool.invoke(event)        # -> InvokeResult; never raises for a function failure
    result.ok, result.payload                # the handler's JSON-able answer
    result.error        # None, "unhandled", "crash", "timeout", "bad-response" or "init";
                        # result.error_type and result.error_message say more
    await pool.close()

    runtime = Runtime(model.functions, env_overrides=load_env_vars("env.json"))
    await runtime.start(); await runtime.invoke("LogicalId", event); await runtime.close()

Each worker is a ``python -I -u localgw/_worker.py`` child that imports the handler once and then
answers length-prefixed JSON messages on its stdin/stdout pipes (see :mod:`localgw._worker`), so
no process is spawned per request. A worker sees only its own environment: a few variables of the
emulator's (``PATH``, ``HOME``, locale, AWS credentials and profile), the function's resolved
Environment, the ``--env-vars`` overrides, and the ``AWS_LAMBDA_*`` variables Lambda sets; its code
folder and layers (``<layer>/python``, and the layer folder itself for an unbuilt source layer) lead
``sys.path``. ``AWS_SAM_LOCAL=true`` is set as ``sam local`` sets it. When the emulator's
environment holds no AWS credentials, workers get dummy ones so that SDK clients pointed at local
endpoints can sign requests.

A worker that outlives its timeout is killed and replaced; one that dies mid-request is replaced;
``concurrency`` bounds how many invocations of a function run at once (the rest wait their turn).
Every line a worker writes is passed to ``output`` (default: stderr) prefixed ``[FunctionName]``.
The pool polls the modification times of the code folder and layer folders every
``watch_interval`` seconds; on a change, idle workers are replaced at once and busy ones after
their current invocation, so the next request runs the new code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import struct
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from localgw.template import FunctionSpec

try:
    import orjson as _orjson
except ImportError:  # optional: the stdlib's json does the same, more slowly
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "ErrorKind",
    "FunctionPool",
    "InvokeResult",
    "Runtime",
    "RuntimeError_",
    "load_env_vars",
    "worker_environment",
]

logger = logging.getLogger(__name__)

ErrorKind = Literal["unhandled", "crash", "timeout", "bad-response", "init"]
OutputSink = Callable[[str, str], None]

_HEADER = struct.Struct(">I")


def _encode(message: Any) -> bytes:
    """JSON bytes of ``message``: orjson when installed (a few times faster), else the stdlib."""
    if _orjson is not None:
        try:
            data: bytes = _orjson.dumps(message, option=_orjson.OPT_NON_STR_KEYS)
        except TypeError:
            pass  # what orjson refuses (an int past 64 bits) the stdlib may still encode
        else:
            return data
    return json.dumps(message, separators=(",", ":")).encode()


def _decode(data: bytes | bytearray) -> Any:
    return _orjson.loads(data) if _orjson is not None else json.loads(data)


_WORKER_SCRIPT = str(Path(__file__).resolve().parent / "_worker.py")
_PASS_THROUGH = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)
_INIT_TIMEOUT_SECONDS = 10.0
_MAX_WATCHED_FILES = 5000
_MAX_LINE = 64 * 1024


class RuntimeError_(Exception):
    """The runtime was asked for something it cannot do (unknown function, closed pool)."""


@dataclass(frozen=True)
class InvokeResult:
    """The outcome of one invocation; ``payload`` is set when ``error`` is None."""

    request_id: str
    payload: Any = None
    error: ErrorKind | None = None
    error_type: str = ""
    error_message: str = ""
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def _default_output(function_name: str, line: str) -> None:
    sys.stderr.write(f"[{function_name}] {line}\n")


def load_env_vars(path: str | Path | None) -> dict[str, dict[str, str]]:
    """Read a ``sam local --env-vars`` JSON file: ``{"Parameters": {...}, "<LogicalId>": {...}}``.

    ``Parameters`` applies to every function, a logical id's (or function name's) entry to that
    function only. Values become strings. Unlike ``sam local``, a variable that the template does
    not declare is added too, so local-only settings need no template change.
    """
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        raise RuntimeError_(f"cannot read --env-vars file {path}: {exc}") from exc
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        raise RuntimeError_(f"{path}: expected an object of objects, as sam local's --env-vars")
    return {
        key: {name: _env_string(value) for name, value in values.items()}
        for key, values in document.items()
    }


def _env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def python_paths(spec: FunctionSpec) -> list[str]:
    """Folders a worker puts first on ``sys.path``: code, then each layer as Lambda mounts it."""
    paths = [str(spec.code_dir)]
    for layer in spec.layer_dirs:
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        for candidate in (layer / "python" / "lib" / version / "site-packages", layer / "python"):
            if candidate.is_dir():
                paths.append(str(candidate))
        paths.append(str(layer))
    return paths


def worker_environment(
    spec: FunctionSpec, overrides: Mapping[str, str], region: str, parent: Mapping[str, str]
) -> dict[str, str]:
    """The whole environment of a worker of ``spec`` (see the module docstring for the layers)."""
    env = {key: parent[key] for key in _PASS_THROUGH if key in parent}
    if "AWS_ACCESS_KEY_ID" not in env and "AWS_PROFILE" not in env:
        env.update(AWS_ACCESS_KEY_ID="localgw", AWS_SECRET_ACCESS_KEY="localgw")  # noqa: S106
    env.update(spec.environment)
    env.update(overrides)
    env.update(
        AWS_LAMBDA_FUNCTION_NAME=spec.function_name,
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(spec.memory_mb),
        AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{spec.function_name}",
        AWS_LAMBDA_LOG_STREAM_NAME=f"localgw/{uuid.uuid4().hex}",
        AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
        AWS_EXECUTION_ENV=f"AWS_Lambda_{spec.runtime or 'python3.12'}",
        AWS_REGION=env.get("AWS_REGION", region),
        AWS_DEFAULT_REGION=env.get("AWS_DEFAULT_REGION", region),
        AWS_SAM_LOCAL="true",
        LAMBDA_TASK_ROOT=str(spec.code_dir),
        LAMBDA_RUNTIME_DIR=str(Path(_WORKER_SCRIPT).parent),
        PYTHONPATH=os.pathsep.join(python_paths(spec)),
        TZ=":UTC",
        _HANDLER=spec.handler,
    )
    return env


class _Worker(asyncio.SubprocessProtocol):
    """One child process: framed answers arrive on its stdout, its output lines on stderr.

    Reading both pipes in this protocol, rather than through stream readers and a task per pipe,
    saves the emulator a task switch and two buffer copies on every invocation.
    """

    def __init__(self, name: str, output: OutputSink, generation: int) -> None:
        self.name = name
        self.output = output
        self.generation = generation
        self.transport: asyncio.SubprocessTransport | None = None
        self.returncode: int | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self._answers = bytearray()
        self._lines = bytearray()
        self._pending: deque[Any] = deque()
        self._waiter: asyncio.Future[Any] | None = None
        self._answers_closed = False
        self._exited = asyncio.get_running_loop().create_future()
        self._closed = asyncio.get_running_loop().create_future()

    # --- protocol callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.SubprocessTransport, transport)
        self._stdin = cast(asyncio.WriteTransport, self.transport.get_pipe_transport(0))

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            self._answers += data
            self._deliver()
            return
        self._lines += data
        while (end := self._lines.find(b"\n")) >= 0 or len(self._lines) > _MAX_LINE:
            cut = end if end >= 0 else _MAX_LINE
            line = bytes(self._lines[:cut])
            del self._lines[: cut + 1 if end >= 0 else cut]
            self.output(self.name, line.decode(errors="replace"))

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            # Only the worker holds this pipe (its copy of stdout is not inherited), so its end
            # means the worker is gone, and every answer it wrote has been read by now.
            self._answers_closed = True
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(ConnectionError("the worker closed its answer pipe"))
        elif fd == 2 and self._lines:
            self.output(self.name, self._lines.decode(errors="replace"))
            self._lines.clear()

    def process_exited(self) -> None:
        assert self.transport is not None
        self.returncode = self.transport.get_returncode()
        if not self._exited.done():
            self._exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        # The process has exited and every pipe transport has finished closing.
        if not self._closed.done():
            self._closed.set_result(None)

    def _deliver(self) -> None:
        while len(self._answers) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._answers)
            if len(self._answers) < _HEADER.size + length:
                return
            message = _decode(self._answers[_HEADER.size : _HEADER.size + length])
            del self._answers[: _HEADER.size + length]
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(message)
            else:
                self._pending.append(message)

    # --- what the pool uses --------------------------------------------------------------------

    def send(self, message: Any) -> None:
        data = _encode(message)
        if self._stdin is None or self._stdin.is_closing() or not self.alive():
            raise ConnectionError("the worker is gone")
        self._stdin.write(_HEADER.pack(len(data)) + data)

    async def receive(self) -> Any:
        if self._pending:
            return self._pending.popleft()
        if self._answers_closed:
            raise ConnectionError("the worker closed its answer pipe")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def alive(self) -> bool:
        return self.returncode is None and not self._answers_closed

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._exited), timeout)

    async def kill(self) -> None:
        """Kill the worker and whatever its handler started (the worker leads its own session)."""
        if self.transport is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.transport.get_pid(), signal.SIGKILL)
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.transport.kill()
        await self.wait(5.0)
        self.transport.close()
        # Closing a pipe transport finishes in a loop callback; wait for it, so that a loop
        # stopped right after a pool's close() leaves no pipe open for the garbage collector.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._closed), 1.0)


class FunctionPool:
    """Warm workers of one function; see the module docstring."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        concurrency: int = 10,
        prewarm: int = 1,
        env_overrides: Mapping[str, str] | None = None,
        region: str = "us-east-1",
        output: OutputSink | None = None,
        watch_interval: float | None = 0.5,
        python: str = sys.executable,
        parent_env: Mapping[str, str] | None = None,
    ) -> None:
        if concurrency < 1:
            raise RuntimeError_(f"{spec.logical_id}: concurrency must be at least 1")
        self.spec = spec
        self.concurrency = concurrency
        self.prewarm = min(prewarm, concurrency)
        self.env = worker_environment(
            spec, env_overrides or {}, region, os.environ if parent_env is None else parent_env
        )
        self.output = output or _default_output
        self.watch_interval = watch_interval
        self.python = python
        self.generation = 0
        self.spawned = 0
        self._idle: deque[_Worker] = deque()
        self._busy: set[_Worker] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watch_task: asyncio.Task[None] | None = None
        self._signature: int | None = None
        self._closed = False

    # --- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Pre-start ``prewarm`` workers and begin watching the code (if ``watch_interval``)."""
        if self.watch_interval:
            self._signature = await asyncio.to_thread(self._code_signature)
            self._watch_task = asyncio.create_task(self._watch())
        await self._fill_idle()

    async def close(self) -> None:
        """Kill every worker (idle and busy) and stop watching."""
        self._closed = True
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        for task in list(self._tasks):
            task.cancel()
        workers = [*self._idle, *self._busy]
        self._idle.clear()
        await asyncio.gather(*(worker.kill() for worker in workers), return_exceptions=True)

    async def reload(self, reason: str = "reload requested") -> None:
        """Replace every worker: idle ones now, busy ones when their invocation ends."""
        self.generation += 1
        logger.info("%s: %s; workers restart", self.spec.logical_id, reason)
        stale = list(self._idle)
        self._idle.clear()
        await asyncio.gather(*(worker.kill() for worker in stale), return_exceptions=True)
        await self._fill_idle()

    @property
    def idle_workers(self) -> int:
        return len(self._idle)

    # --- invoking ---------------------------------------------------------------------------------

    async def invoke(self, event: Any, timeout: float | None = None) -> InvokeResult:
        """Run the handler on ``event`` within ``timeout`` seconds (default: the function's)."""
        if self._closed:
            raise RuntimeError_(f"{self.spec.logical_id}: the pool is closed")
        timeout = self.spec.timeout if timeout is None else timeout
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        async with self._slots:
            worker, failure = await self._acquire()
            if worker is None:
                return self._result(request_id, started, failure)
            self._busy.add(worker)
            try:
                answer = await self._exchange(worker, event, request_id, timeout)
            finally:
                self._busy.discard(worker)
        if answer.get("kind") in {"timeout", "crash"}:
            await worker.kill()
            self._spawn_in_background()
        elif worker.generation != self.generation or self._closed:
            await worker.kill()
        else:
            self._idle.append(worker)
        return self._result(request_id, started, answer)

    async def _exchange(
        self, worker: _Worker, event: Any, request_id: str, timeout: float
    ) -> dict[str, Any]:
        deadline_ms = int((time.time() + timeout) * 1000)
        try:
            async with asyncio.timeout(timeout):
                worker.send({"event": event, "request_id": request_id, "deadline_ms": deadline_ms})
                message: dict[str, Any] = await worker.receive()
        except TimeoutError:
            logger.warning(
                "%s: request %s timed out after %.2f s; worker killed",
                self.spec.logical_id,
                request_id,
                timeout,
            )
            return {
                "kind": "timeout",
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"Task timed out after {timeout:.2f} seconds",
            }
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError) as exc:
            await worker.wait(1.0)
            code = worker.returncode
            logger.error(  # noqa: TRY400 - the traceback is the worker's, shown with its output
                "%s: worker died during request %s (exit %s)",
                self.spec.logical_id,
                request_id,
                code,
            )
            return {
                "kind": "crash",
                "errorType": "Runtime.ExitError",
                "errorMessage": f"worker exited ({code}): {exc!r}",
            }
        except (TypeError, ValueError) as exc:
            return {
                "kind": "bad-response",
                "errorType": "Runtime.MarshalError",
                "errorMessage": f"event is not JSON-serialisable: {exc}",
            }
        if "error" in message:
            error: dict[str, Any] = message["error"]
            return error
        return {"result": message.get("result")}

    def _result(self, request_id: str, started: float, answer: dict[str, Any]) -> InvokeResult:
        duration = (time.perf_counter() - started) * 1000
        if "result" in answer:
            return InvokeResult(request_id, payload=answer["result"], duration_ms=duration)
        return InvokeResult(
            request_id,
            error=answer.get("kind", "unhandled"),
            error_type=str(answer.get("errorType", "")),
            error_message=str(answer.get("errorMessage", "")),
            duration_ms=duration,
        )

    async def _acquire(self) -> tuple[_Worker | None, dict[str, Any]]:
        while self._idle:
            worker = self._idle.popleft()
            if worker.alive() and worker.generation == self.generation:
                return worker, {}
            await worker.kill()
        return await self._spawn()

    # --- workers ----------------------------------------------------------------------------------

    async def _spawn(self) -> tuple[_Worker | None, dict[str, Any]]:
        """Start a worker and wait for its handler to import; (None, error) when it cannot."""
        loop = asyncio.get_running_loop()
        _, worker = await loop.subprocess_exec(
            lambda: _Worker(self.spec.function_name, self.output, self.generation),
            self.python, "-I", "-u", _WORKER_SCRIPT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=str(self.spec.code_dir),
            start_new_session=True,  # Ctrl-C reaches the emulator, which stops its workers itself
        )  # fmt: skip
        self.spawned += 1
        setup = {
            "handler": self.spec.handler,
            "paths": python_paths(self.spec),
            "function_name": self.spec.function_name,
            "memory_mb": self.spec.memory_mb,
            "arn": self.spec.arn,
        }
        try:
            async with asyncio.timeout(max(_INIT_TIMEOUT_SECONDS, self.spec.timeout)):
                worker.send(setup)
                ready = await worker.receive()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            await worker.kill()
            logger.error(  # noqa: TRY400 - the exception's repr says it all
                "%s: worker failed to start: %r",
                self.spec.logical_id,
                exc,
            )
            return None, {
                "kind": "init",
                "errorType": "Runtime.Unknown",
                "errorMessage": f"worker did not start: {exc!r}",
            }
        if not ready.get("ready"):
            await worker.kill()
            error: dict[str, Any] = ready.get("error") or {}
            logger.error(
                "%s: init failed: %s: %s",
                self.spec.logical_id,
                error.get("errorType"),
                error.get("errorMessage"),
            )
            return None, error
        return worker, {}

    async def _fill_idle(self) -> None:
        missing = self.prewarm - len(self._idle) - len(self._busy)
        results = await asyncio.gather(*(self._spawn() for _ in range(max(0, missing))))
        for worker, _ in results:
            if worker is None:
                continue
            if self._closed or worker.generation != self.generation:
                await worker.kill()
            else:
                self._idle.append(worker)

    def _spawn_in_background(self) -> None:
        if self._closed:
            return
        task = asyncio.create_task(self._fill_idle())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- reload on change -------------------------------------------------------------------------

    def _code_signature(self) -> int:
        """A hash of every watched file's path, size and mtime: any edit, addition or removal."""
        entries: list[tuple[str, int, int]] = []
        for root in (self.spec.code_dir, *self.spec.layer_dirs):
            for path in _walk(root):
                if len(entries) >= _MAX_WATCHED_FILES:
                    break
                with contextlib.suppress(OSError):
                    stat = path.stat()
                    entries.append((str(path), stat.st_size, stat.st_mtime_ns))
        return hash(tuple(entries))

    async def _watch(self) -> None:
        assert self.watch_interval
        while True:
            await asyncio.sleep(self.watch_interval)
            signature = await asyncio.to_thread(self._code_signature)
            if signature != self._signature:
                self._signature = signature
                await self.reload("code changed")


def _walk(root: Path) -> Iterable[Path]:
    """Files under ``root``, skipping caches and hidden folders (they change without an edit)."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path))
        else:
            yield Path(entry.path)


class Runtime:
    """The pools of every function of a template, started and stopped together."""

    def __init__(
        self,
        functions: Mapping[str, FunctionSpec],
        *,
        env_overrides: Mapping[str, Mapping[str, str]] | None = None,
        concurrency: int | Mapping[str, int] = 10,
        prewarm: int = 1,
        region: str = "us-east-1",
        output: OutputSink | None = None,
        watch_interval: float | None = 0.5,
    ) -> None:
        overrides = env_overrides or {}
        if not isinstance(concurrency, int):
            unknown = set(concurrency) - set(functions) - {"*"}
            if unknown:
                raise RuntimeError_(f"concurrency given for unknown functions: {sorted(unknown)}")
        self.pools: dict[str, FunctionPool] = {}
        for logical_id, spec in functions.items():
            env = {
                **overrides.get("Parameters", {}),
                **overrides.get(spec.function_name, {}),
                **overrides.get(logical_id, {}),
            }
            limit = (
                concurrency
                if isinstance(concurrency, int)
                else concurrency.get(logical_id, concurrency.get("*", 10))
            )
            self.pools[logical_id] = FunctionPool(
                spec,
                concurrency=limit,
                prewarm=prewarm,
                env_overrides=env,
                region=region,
                output=output,
                watch_interval=watch_interval,
            )

    def pool(self, logical_id: str) -> FunctionPool:
        try:
            return self.pools[logical_id]
        except KeyError as exc:
            raise RuntimeError_(f"no local function {logical_id!r}") from exc

    async def invoke(
        self, logical_id: str, event: Any, timeout: float | None = None
    ) -> InvokeResult:
        return await self.pool(logical_id).invoke(event, timeout)

    async def start(self) -> None:
        await asyncio.gather(*(pool.start() for pool in self.pools.values()))

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()))
