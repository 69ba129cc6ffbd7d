"""One warm Lambda worker: imports a handler once, then answers invocations over a pipe.

Started by :mod:`localgw.runtime` as ``python -I -u _worker.py`` (``-I`` keeps this file's folder
off ``sys.path``, so the emulator's own modules cannot shadow a function's). Standard library
only, plus orjson when the interpreter has it.

Protocol, every message a 4-byte big-endian length and a UTF-8 JSON document:

- parent -> worker, first: ``{"handler", "paths", "function_name", "memory_mb", "arn"}``;
- worker -> parent: ``{"ready": true}`` or ``{"ready": false, "error": {...}}`` (then it exits);
- parent -> worker: ``{"event", "request_id", "deadline_ms"}``;
- worker -> parent: ``{"result": ...}`` or ``{"error": {"kind", "errorType", "errorMessage",
  "stackTrace"}}``.

The pipe the parent reads answers from is the process's original stdout; the function's own
``print`` output and logs go to stderr, which the parent shows with the function's name.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import sys
import time
import traceback
from typing import Any, BinaryIO

_HEADER = struct.Struct(">I")
# Lambda refuses a synchronous invocation's response over 6 MB (its quotas page: 6,291,556 bytes).
MAX_RESPONSE_BYTES = 6_291_556

try:  # the emulator's environment may have orjson; the worker then speaks JSON faster
    import orjson as _orjson
except ImportError:
    _orjson = None  # type: ignore[assignment]


class LambdaContext:
    """The context object Lambda's Python runtime passes to a handler."""

    def __init__(self, setup: dict[str, Any], request_id: str, deadline_ms: int) -> None:
        name = str(setup["function_name"])
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = str(setup.get("arn", ""))
        self.memory_limit_in_mb = int(setup.get("memory_mb", 128))
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "localgw")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _read(stream: BinaryIO) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (length,) = _HEADER.unpack(header)
    # An unbuffered pipe read returns what the pipe holds (64 KB at most), not ``length`` bytes.
    data = bytearray()
    while len(data) < length:
        chunk = stream.read(length - len(data))
        if not chunk:
            return None
        data += chunk
    return _orjson.loads(data) if _orjson is not None else json.loads(data)


def _encode(message: Any) -> bytes:
    if _orjson is not None:
        try:
            data: bytes = _orjson.dumps(message, option=_orjson.OPT_NON_STR_KEYS)
        except TypeError:
            pass  # an int past 64 bits, say: the stdlib encodes it as Lambda's runtime would
        else:
            return data
    return json.dumps(message, separators=(",", ":")).encode()


def _write(stream: BinaryIO, message: Any) -> None:
    data = _encode(message)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _error(kind: str, exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "kind": kind,
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def _load_handler(setup: dict[str, Any]) -> Any:
    for path in reversed(setup["paths"]):
        sys.path.insert(0, path)
    module_name, _, function_name = str(setup["handler"]).replace("/", ".").rpartition(".")
    if not module_name:
        raise ValueError(f"handler {setup['handler']!r} is not module.function")
    module = importlib.import_module(module_name)
    return getattr(module, function_name)


def main() -> None:
    ipc_in = os.fdopen(os.dup(0), "rb", buffering=0)
    ipc_out = os.fdopen(os.dup(1), "wb")
    # The handler's prints must not corrupt the answers: stdout now goes where stderr goes.
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    setup = _read(ipc_in)
    if setup is None:
        return
    try:
        handler = _load_handler(setup)
    except Exception as exc:
        _write(ipc_out, {"ready": False, "error": _error("init", exc, "Runtime.ImportModuleError")})
        return
    _write(ipc_out, {"ready": True})
    while (request := _read(ipc_in)) is not None:
        context = LambdaContext(setup, request["request_id"], int(request["deadline_ms"]))
        try:
            result = handler(request["event"], context)
        except Exception as exc:
            traceback.print_exception(exc, file=sys.stderr)
            _write(ipc_out, {"error": _error("unhandled", exc)})
            continue
        try:
            answer = _encode({"result": result})
        except (TypeError, ValueError) as exc:
            _write(ipc_out, {"error": _error("bad-response", exc, "Runtime.MarshalError")})
            continue
        if len(answer) > MAX_RESPONSE_BYTES:
            too_large = ValueError(
                f"Response payload size ({len(answer)} bytes) exceeded maximum allowed payload "
                f"size ({MAX_RESPONSE_BYTES} bytes)."
            )
            _write(
                ipc_out,
                {"error": _error("bad-response", too_large, "Function.ResponseSizeTooLarge")},
            )
            continue
        ipc_out.write(_HEADER.pack(len(answer)) + answer)
        ipc_out.flush()


if __name__ == "__main__":
    main()
