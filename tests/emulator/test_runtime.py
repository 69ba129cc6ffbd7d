"""Warm worker pools: isolation, environment, context, failures, concurrency, output, reload."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from localgw.runtime import FunctionPool, Runtime, RuntimeError_, load_env_vars
from localgw.template import load_template
from tests.emulator.harness import APP, APP_TEMPLATE, app_emulator, running


def _functions(template: Path = APP_TEMPLATE) -> dict[str, Any]:
    return load_template(template, environ={}).functions


def _body(payload: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(payload["body"])
    return result


def test_functions_are_isolated_each_with_its_own_value_of_one_variable() -> None:
    with running(app_emulator()) as gateway:
        _, echo = gateway.json("GET", "/public/exact")
        _, other = gateway.json("GET", "/other")
    assert echo["env"]["SHARED"] == "echo"
    assert other["env"]["SHARED"] == "other"
    assert echo["env"]["GLOBAL_VAR"] == other["env"]["GLOBAL_VAR"] == "from-globals"
    assert echo["pid"] != other["pid"]


def test_worker_environment_holds_lambda_variables_and_not_the_emulators(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EMULATOR_ONLY", "leak")
    spec = _functions()["EchoFunction"]

    async def scenario() -> dict[str, Any]:
        pool = FunctionPool(spec, watch_interval=None)
        await pool.start()
        try:
            result = await pool.invoke({})
        finally:
            await pool.close()
        assert result.ok, result
        return _body(result.payload)

    body = asyncio.run(scenario())
    assert body["env"]["EMULATOR_ONLY"] is None
    assert body["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "EchoFunction"
    assert body["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert body["layer"] == "from-layer"
    context = body["context"]
    assert context["function_name"] == "EchoFunction"
    assert context["memory_limit_in_mb"] == 256
    assert 2000 < context["remaining_ms"] <= 3000
    assert len(context["aws_request_id"]) == 36


def test_env_vars_file_overrides_for_all_and_for_one_function(tmp_path: Path) -> None:
    path = tmp_path / "env.json"
    path.write_text(
        json.dumps({"Parameters": {"EXTRA": "all", "SHARED": "p"}, "OtherFunction": {"SHARED": 7}})
    )
    overrides = load_env_vars(path)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        runtime = Runtime(_functions(), env_overrides=overrides, watch_interval=None, prewarm=0)
        await runtime.start()
        try:
            echo = await runtime.invoke("EchoFunction", {})
            other = await runtime.invoke("OtherFunction", {})
        finally:
            await runtime.close()
        return _body(echo.payload)["env"], _body(other.payload)["env"]

    echo, other = asyncio.run(scenario())
    assert (echo["EXTRA"], echo["SHARED"]) == ("all", "p")
    assert (other["EXTRA"], other["SHARED"]) == ("all", "7")


def test_env_vars_file_that_is_not_an_object_of_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "env.json"
    path.write_text('{"Parameters": "x"}')
    with pytest.raises(RuntimeError_, match="object of objects"):
        load_env_vars(path)


def test_pool_replaces_worker_that_crashed_or_timed_out() -> None:
    spec = _functions()["BehaveFunction"]

    async def scenario() -> list[str | None]:
        pool = FunctionPool(spec, concurrency=1, watch_interval=None)
        await pool.start()
        outcomes = []
        try:
            for mode in ("exit", "object", "sleep", "object", "crash", "object"):
                result = await pool.invoke({"pathParameters": {"mode": mode}}, timeout=0.5)
                outcomes.append(result.error)
        finally:
            await pool.close()
        return outcomes

    assert asyncio.run(scenario()) == ["crash", None, "timeout", None, "unhandled", None]


def test_pool_runs_at_most_concurrency_invocations_at_once() -> None:
    spec = _functions()["EchoFunction"]

    async def scenario() -> set[int]:
        pool = FunctionPool(spec, concurrency=2, prewarm=0, watch_interval=None)
        await pool.start()
        try:
            results = await asyncio.gather(*(pool.invoke({}) for _ in range(12)))
        finally:
            await pool.close()
        return {_body(result.payload)["pid"] for result in results}

    assert len(asyncio.run(scenario())) == 2


def test_pool_shows_worker_output_with_function_name() -> None:
    spec = _functions()["BehaveFunction"]
    lines: list[tuple[str, str]] = []

    async def scenario() -> None:
        pool = FunctionPool(
            spec, watch_interval=None, output=lambda n, line: lines.append((n, line))
        )
        await pool.start()
        try:
            await pool.invoke({"pathParameters": {"mode": "print"}})
            await asyncio.sleep(0.2)
        finally:
            await pool.close()

    asyncio.run(scenario())
    assert ("BehaveFunction", "printed by the handler") in lines


def test_pool_reports_init_error_when_handler_cannot_be_imported(tmp_path: Path) -> None:
    spec = _functions()["EchoFunction"]
    broken = spec.__class__(**{**spec.__dict__, "handler": "missing_module.handler"})

    async def scenario() -> Any:
        pool = FunctionPool(broken, watch_interval=None, prewarm=0)
        await pool.start()
        try:
            return await pool.invoke({})
        finally:
            await pool.close()

    result = asyncio.run(scenario())
    assert (result.error, result.error_type) == ("init", "Runtime.ImportModuleError")
    assert "missing_module" in result.error_message


def test_pool_reloads_workers_when_function_or_layer_code_changes(tmp_path: Path) -> None:
    shutil.copytree(APP, tmp_path / "app")
    template = tmp_path / "app" / "template.yaml"
    code = tmp_path / "app" / "functions" / "echo" / "echo.py"
    layer = tmp_path / "app" / "layer" / "python" / "shared_helpers.py"
    spec = load_template(template, environ={}).functions["EchoFunction"]

    async def wait_for(pool: FunctionPool, predicate: Any) -> dict[str, Any]:
        for _ in range(100):
            body = _body((await pool.invoke({})).payload)
            if predicate(body):
                return body
            await asyncio.sleep(0.1)
        raise AssertionError("the change never showed")

    async def scenario() -> None:
        pool = FunctionPool(spec, watch_interval=0.1)
        await pool.start()
        try:
            first = _body((await pool.invoke({})).payload)
            code.write_text(code.read_text().replace('"pid": os.getpid()', '"pid": -1'))
            changed = await wait_for(pool, lambda body: body["pid"] == -1)
            assert changed["layer"] == first["layer"] == "from-layer"
            layer.write_text('LAYER_MARK = "layer-v2"\n')
            await wait_for(pool, lambda body: body["layer"] == "layer-v2")
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_runtime_refuses_unknown_function() -> None:
    runtime = Runtime({}, watch_interval=None)
    with pytest.raises(RuntimeError_, match="no local function"):
        runtime.pool("Nope")


def test_pool_refuses_response_over_lambdas_6_mb_limit() -> None:
    spec = _functions()["BehaveFunction"]

    async def scenario() -> Any:
        pool = FunctionPool(spec, watch_interval=None)
        await pool.start()
        try:
            return await pool.invoke({"pathParameters": {"mode": "huge"}})
        finally:
            await pool.close()

    result = asyncio.run(scenario())
    assert (result.error, result.error_type) == ("bad-response", "Function.ResponseSizeTooLarge")


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_pool_timeout_also_kills_processes_the_handler_started(tmp_path: Path) -> None:
    spec = _functions()["BehaveFunction"]
    pidfile = tmp_path / "child.pid"
    event = {
        "pathParameters": {"mode": "spawn-and-sleep"},
        "queryStringParameters": {"pidfile": str(pidfile)},
    }

    async def scenario() -> Any:
        pool = FunctionPool(spec, watch_interval=None)
        await pool.start()
        try:
            return await pool.invoke(event, timeout=1.0)
        finally:
            await pool.close()

    assert asyncio.run(scenario()).error == "timeout"
    child = int(pidfile.read_text())
    for _ in range(50):
        if not _running(child):
            return
        time.sleep(0.1)
    raise AssertionError(f"the handler's child {child} outlived its timed-out worker")
