"""``python -m localgw``: options, clear errors, the route table, and a clean stop on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from localgw.cli import format_route_table, main
from tests.emulator.harness import APP_TEMPLATE

ROOT = Path(__file__).resolve().parents[2]


def test_cli_route_table_aligns_columns() -> None:
    table = format_route_table(
        [("GET", "/a/{id}", "Fn", "Auth"), ("ANY", "$default", "Other", "-")]
    )
    assert table.splitlines() == [
        "METHOD  PATH      FUNCTION  AUTHORIZER",
        "GET     /a/{id}   Fn        Auth",
        "ANY     $default  Other     -",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--template", "/nonexistent/template.yaml"], "cannot read"),
        (["--template", str(APP_TEMPLATE), "--parameter-overrides", "Flavor=spicy"], "Flavor"),
        (["--template", str(APP_TEMPLATE), "--parameter-overrides", "junk"], "Key=Value"),
        (["--template", str(APP_TEMPLATE), "--api", "NoSuchApi"], "NoSuchApi"),
        (
            ["--template", str(APP_TEMPLATE), "--function-concurrency", "EchoFunction"],
            "LOGICAL_ID=N",
        ),
        (["--template", str(APP_TEMPLATE), "--function-concurrency", "Nope=2"], "Nope"),
    ],
)
def test_cli_reports_bad_input_clearly_with_exit_code_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--port", "0"]) == 2
    assert message in capsys.readouterr().err


def test_cli_serves_then_stops_its_workers_on_sigint() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "localgw", "-t", str(APP_TEMPLATE), "--port", "0", "--no-reload"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = ""
        deadline = time.monotonic() + 30
        while not url and time.monotonic() < deadline:
            line = process.stdout.readline()
            if line.startswith("HTTP API: "):
                url = line.removeprefix("HTTP API: ").strip()
        assert url, "the emulator never printed its URL"
        with urllib.request.urlopen(f"{url}/public/exact", timeout=10) as response:
            worker_pid = json.loads(response.read())["pid"]
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    for _ in range(50):
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"worker {worker_pid} outlived the emulator")


def test_cli_function_concurrency_limits_one_function_and_keeps_default_for_others() -> None:
    from localgw.cli import build_emulator, build_parser

    args = build_parser().parse_args(
        ["-t", str(APP_TEMPLATE), "--concurrency", "4", "--function-concurrency", "AuthFunction=1"]
    )
    pools = build_emulator(args).runtime.pools
    assert pools["AuthFunction"].concurrency == 1
    assert pools["EchoFunction"].concurrency == 4
