"""Loading a SAM template: parameters and their precedence, Conditions, intrinsics, the model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from localgw.template import TemplateError, load_template, parse_parameter_overrides
from tests.emulator.harness import APP, APP_TEMPLATE

ROOT = Path(__file__).resolve().parents[2]


def _app_copy(tmp_path: Path, samconfig: str = "") -> Path:
    target = tmp_path / "app"
    shutil.copytree(APP, target)
    if samconfig:
        (target / "samconfig.toml").write_text(samconfig)
    return target / "template.yaml"


def test_template_model_resolves_globals_sub_ref_and_conditions() -> None:
    model = load_template(APP_TEMPLATE, environ={})
    echo = model.functions["EchoFunction"]
    assert echo.environment == {
        "GLOBAL_VAR": "from-globals",
        "SHARED": "echo",
        "GREETING": "hello, world",
        "API_ID": model.http_apis[0].api_id,
        "FLAVOR": "fancy-no",
    }
    assert (echo.handler, echo.runtime, echo.timeout, echo.memory_mb) == (
        "echo.handler", "python3.12", 3.0, 256,
    )  # fmt: skip
    assert echo.code_dir == APP / "functions" / "echo"
    assert echo.layer_dirs == (APP / "layer",)
    assert model.functions["BehaveFunction"].timeout == 1.0
    assert model.conditions == {"IsFancy": False}


def test_template_http_api_model_has_routes_authorizers_and_cors() -> None:
    api = load_template(APP_TEMPLATE, environ={}).http_apis[0]
    keys = {(r.route_key, r.function_id, r.authorizer) for r in api.routes}
    assert ("GET /items/{id}", "EchoFunction", "SimpleAuth") in keys
    assert ("POST /items", "EchoFunction", None) in keys
    assert ("GET /policy", "EchoFunction", "PolicyAuth") in keys
    assert ("$default", "EchoFunction", None) in keys
    simple, policy = api.authorizers["SimpleAuth"], api.authorizers["PolicyAuth"]
    assert simple.identity_sources == ("$request.header.Authorization",)
    assert (simple.ttl_seconds, simple.simple_responses) == (300, True)
    assert policy.identity_sources == ("$request.header.X-Token", "$request.querystring.tenant")
    assert (policy.ttl_seconds, policy.simple_responses) == (0, False)
    assert api.cors is not None
    assert api.cors.allow_origins == ("http://127.0.0.1:5173",)


def test_template_parameters_later_source_wins(tmp_path: Path) -> None:
    template = _app_copy(
        tmp_path,
        "[default.deploy.parameters]\n"
        'parameter_overrides = "Greeting=from-samconfig Flavor=fancy"\n'
        '[other.deploy.parameters]\nparameter_overrides = ["Greeting=from-other-env"]\n',
    )
    env = load_template(template, environ={}).functions["EchoFunction"].environment
    assert (env["GREETING"], env["FLAVOR"]) == ("from-samconfig, world", "fancy-yes")
    env = (
        load_template(template, config_env="other", environ={})
        .functions["EchoFunction"]
        .environment
    )
    assert env["GREETING"] == "from-other-env, world"
    environ = {"LOCALGW_PARAM_Greeting": "from-env"}
    model = load_template(template, environ=environ)
    assert model.functions["EchoFunction"].environment["GREETING"] == "from-env, world"
    model = load_template(template, environ=environ, overrides={"Greeting": "from-cli"})
    assert model.functions["EchoFunction"].environment["GREETING"] == "from-cli, world"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"Flavor": "spicy"}, "is not one of"),
        ({"FrontendOrigin": "*"}, "does not match"),
        ({"AuthTtl": "soon"}, "is not a number"),
        ({"AuthTtl": "-1"}, "breaks MinValue 0"),
        ({"Greeting": ""}, "breaks MinLength 1"),
        ({"Nope": "1"}, "unknown parameters"),
    ],
)
def test_template_refuses_bad_parameter_values_clearly(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(TemplateError, match=message):
        load_template(APP_TEMPLATE, overrides=overrides, environ={})


def test_template_refuses_unknown_samconfig_environment(tmp_path: Path) -> None:
    template = _app_copy(tmp_path, '[default.deploy.parameters]\nparameter_overrides = ""\n')
    with pytest.raises(TemplateError, match="no environment 'staging'"):
        load_template(template, config_env="staging", environ={})


def test_template_refuses_file_without_resources(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text("AWSTemplateFormatVersion: 2010-09-09\n")
    with pytest.raises(TemplateError, match="no Resources"):
        load_template(path, environ={})


def test_parse_parameter_overrides_reads_quoted_values_and_refuses_junk() -> None:
    assert parse_parameter_overrides('A=1 B="two words" C=') == {
        "A": "1",
        "B": "two words",
        "C": "",
    }
    assert parse_parameter_overrides(["A=x=y"]) == {"A": "x=y"}
    with pytest.raises(TemplateError):
        parse_parameter_overrides("novalue")


def test_template_of_this_project_serves_its_documented_routes() -> None:
    overrides = {
        "AuthServiceUrl": "http://127.0.0.1:1",
        "TicketServiceUrl": "http://127.0.0.1:2",
        "AssignmentServiceUrl": "http://127.0.0.1:3",
        "JwtIssuer": "issuer",
        "JwtAudience": "audience",
    }
    model = load_template(ROOT / "template.yaml", overrides=overrides, environ={})
    api = model.http_apis[0]
    routes = {(r.route_key, r.function_id, r.authorizer is not None) for r in api.routes}
    assert {
        ("POST /auth/login", "AuthProxyFunction", False),
        ("GET /projects/{projectId}/board", "BoardFunction", True),
        ("ANY /tickets/{proxy+}", "TicketsProxyFunction", True),
    } <= routes
    assert model.functions["BoardFunction"].handler == "board.handler"
    assert model.functions["BoardFunction"].environment["TICKETS_URL"] == "http://127.0.0.1:2"
    assert any(r["Type"] == "AWS::Lambda::EventSourceMapping" for r in model.resources.values())
