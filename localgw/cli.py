"""The emulator's command line: read the options, start, print the routes, run until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from localgw.app import Emulator, EmulatorError, loop_factory
from localgw.runtime import RuntimeError_, load_env_vars
from localgw.template import TemplateError, load_template, parse_parameter_overrides
from localgw.websocket import WebSocketSettings
from localgw.websocket_stack import RealtimeSettings, RealtimeStack

__all__ = ["build_parser", "format_route_table", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m localgw",
        description="Serve a SAM template's HTTP API, WebSocket APIs and Kafka event source "
        "mappings on this machine, without Docker.",
    )
    parser.add_argument("--template", "-t", default="template.yaml", help="the SAM template")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", "-p", type=int, default=3000, help="HTTP API port (0: free)")
    parser.add_argument("--api", help="logical id of the HTTP API to serve (default: the first)")
    parser.add_argument("--config-env", default="default", help="samconfig.toml environment")
    parser.add_argument("--config-file", help="samconfig.toml path (default: beside the template)")
    parser.add_argument(
        "--parameter-overrides",
        default="",
        help='template parameters, "Key=Value Key2=Value2" (after samconfig and LOCALGW_PARAM_*)',
    )
    parser.add_argument("--env-vars", "-n", help="JSON of environment overrides, as sam local's")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION, else us-east-1)")
    parser.add_argument("--concurrency", type=int, default=10, help="workers per function, at most")
    parser.add_argument(
        "--function-concurrency",
        action="append",
        default=[],
        metavar="LOGICAL_ID=N",
        help="a limit for one function (repeatable); others keep --concurrency",
    )
    parser.add_argument("--prewarm", type=int, default=1, help="workers started per function")
    parser.add_argument("--no-reload", action="store_true", help="do not watch code for changes")
    parser.add_argument("--log-level", default="INFO", help="the emulator's own log level")
    parser.add_argument(
        "--ws-port", type=int, default=3001, help="WebSocket API and @connections port (0: free)"
    )
    parser.add_argument(
        "--ws-idle-timeout", type=float, default=600.0, help="seconds before an idle socket closes"
    )
    parser.add_argument(
        "--ws-max-duration", type=float, default=7200.0, help="seconds a socket may stay open"
    )
    parser.add_argument(
        "--kafka-bootstrap-servers",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
        help="broker for the Kafka event source mappings (default: KAFKA_BOOTSTRAP_SERVERS; "
        "none: the mappings do not run)",
    )
    return parser


def format_route_table(rows: Sequence[tuple[str, str, str, str]]) -> str:
    header = ("METHOD", "PATH", "FUNCTION", "AUTHORIZER")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


def concurrency_limits(args: argparse.Namespace) -> int | dict[str, int]:
    """``--concurrency``, or limits by logical id (``"*"``: all others) if some are named."""
    if not args.function_concurrency:
        return int(args.concurrency)
    limits: dict[str, int] = {"*": int(args.concurrency)}
    for item in args.function_concurrency:
        name, _, value = item.partition("=")
        if not name or not value.isdigit() or int(value) < 1:
            raise EmulatorError(f"--function-concurrency {item!r} is not LOGICAL_ID=N (N >= 1)")
        limits[name] = int(value)
    return limits


def build_emulator(args: argparse.Namespace) -> Emulator:
    limits = concurrency_limits(args)
    model = load_template(
        args.template,
        config_env=args.config_env,
        config_file=args.config_file,
        overrides=parse_parameter_overrides(args.parameter_overrides),
        region=args.region,
    )
    # Made before the emulator's runtime: it points the functions at the local @connections.
    realtime = RealtimeStack(
        model,
        RealtimeSettings(
            websocket=WebSocketSettings(
                host=args.host,
                port=args.ws_port,
                idle_timeout=args.ws_idle_timeout,
                max_duration=args.ws_max_duration,
            ),
            kafka_bootstrap_servers=args.kafka_bootstrap_servers,
        ),
    )
    emulator = Emulator(
        model,
        env_overrides=load_env_vars(args.env_vars),
        host=args.host,
        port=args.port,
        api=args.api,
        concurrency=limits,
        prewarm=args.prewarm,
        watch_interval=None if args.no_reload else 0.5,
    )
    emulator.add_service(realtime)
    return emulator


async def run(emulator: Emulator) -> None:
    """Start ``emulator``, print its routes, and serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await emulator.start()
        print(format_route_table(emulator.route_table()), flush=True)
        if emulator.http is not None:
            print(f"\nHTTP API: {emulator.http_url}", flush=True)
        for service in emulator.services:
            if isinstance(service, RealtimeStack):
                print("\n" + "\n".join(service.describe()), flush=True)
        await stop.wait()
    finally:
        await emulator.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        emulator = build_emulator(args)
        asyncio.run(run(emulator), loop_factory=loop_factory())
    except (TemplateError, EmulatorError, RuntimeError_) as exc:
        print(f"localgw: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"localgw: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
