"""``make run`` (``python -m devstack``): the whole gateway on this machine until Ctrl-C.

Environment variables read: ``REDIS_URL`` and ``KAFKA_BOOTSTRAP_SERVERS`` (use these instead of
starting a Redis or a broker), plus the emulator's own ``LOCALGW_PARAM_*``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from devstack.services import ServiceError
from devstack.stack import DevStack, StackSettings
from localgw.app import EmulatorError, loop_factory
from localgw.runtime import RuntimeError_
from localgw.template import TemplateError, parse_parameter_overrides


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address of the HTTP API")
    parser.add_argument("--port", type=int, default=3000, help="HTTP API port (0: a free one)")
    parser.add_argument("--ws-port", type=int, default=3001, help="WebSocket API port (0: free)")
    parser.add_argument(
        "--board-port", type=int, default=5173, help="board page port (0: free; -1: no page)"
    )
    parser.add_argument("--template", type=Path, default=StackSettings.template)
    parser.add_argument("--env-vars", type=Path, help="extra environment, as sam local's JSON")
    parser.add_argument("--parameter-overrides", default="", help='"Key=Value ..." on top')
    parser.add_argument("--log-level", default="INFO")
    return parser


async def _run(stack: DevStack) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stack.start()
        print(stack.summary(), flush=True)
        await stop.wait()
        print("stopping...", flush=True)
    finally:
        await stack.close()


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = StackSettings.from_environment(
        host=args.host,
        http_port=args.port,
        ws_port=args.ws_port,
        board_port=None if args.board_port < 0 else args.board_port,
        template=args.template,
        env_vars=args.env_vars,
        parameter_overrides=parse_parameter_overrides(args.parameter_overrides),
    )
    try:
        asyncio.run(_run(DevStack(settings)), loop_factory=loop_factory())
    except (TemplateError, EmulatorError, RuntimeError_, ServiceError) as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
