"""The emulator's command line: read the options, start, print the routes, run until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from localgw.app import Emulator, EmulatorError
from localgw.runtime import RuntimeError_
from localgw.template import TemplateError, parse_parameter_overrides

__all__ = ["build_parser", "format_route_table", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m localgw",
        description="Serve a SAM template's HTTP API on this machine, without Docker.",
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
    parser.add_argument("--prewarm", type=int, default=1, help="workers started per function")
    parser.add_argument("--no-reload", action="store_true", help="do not watch code for changes")
    parser.add_argument("--log-level", default="INFO", help="the emulator's own log level")
    return parser


def format_route_table(rows: Sequence[tuple[str, str, str, str]]) -> str:
    header = ("METHOD", "PATH", "FUNCTION", "AUTHORIZER")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    )


def build_emulator(args: argparse.Namespace) -> Emulator:
    return Emulator.from_template(
        args.template,
        config_env=args.config_env,
        config_file=args.config_file,
        parameter_overrides=parse_parameter_overrides(args.parameter_overrides),
        env_vars=args.env_vars,
        region=args.region,
        host=args.host,
        port=args.port,
        api=args.api,
        concurrency=args.concurrency,
        prewarm=args.prewarm,
        watch_interval=None if args.no_reload else 0.5,
    )


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
        asyncio.run(run(emulator))
    except (TemplateError, EmulatorError, RuntimeError_) as exc:
        print(f"localgw: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"localgw: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
