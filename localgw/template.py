"""A SAM template, loaded and resolved into what the emulator serves.

:func:`load_template` reads the template (YAML with CloudFormation's short tags, or JSON), picks
the parameter values, translates it with ``aws-sam-translator`` into plain CloudFormation and
evaluates the intrinsics a local run needs. The answer is a :class:`TemplateModel`:

- ``model.functions``: :class:`FunctionSpec` by logical id (code folder, handler, runtime,
  timeout, memory, resolved environment, layers' folders);
- ``model.http_apis``: :class:`HttpApiSpec` for each HTTP API in the order of the file (routes,
  authorizers, CORS), read from the OpenAPI body SAM generates or from raw
  ``AWS::ApiGatewayV2::Route`` resources;
- ``model.resources``: every translated resource whose Condition holds, intrinsics resolved (a
  WebSocket API, its routes, the event source mappings...); ``model.raw_resources`` unresolved;
- ``model.resolver``: the :class:`~localgw.intrinsics.Resolver`, for anything else.

Parameter values, the later winning: the template's ``Default``; the chosen ``samconfig.toml``
environment (``global``, then ``deploy``, then ``local_start_api`` sections'
``parameter_overrides``); environment variables ``LOCALGW_PARAM_<ParameterName>``; the
``overrides`` argument (the command line's ``--parameter-overrides``). Values are checked against
``AllowedValues`` and ``AllowedPattern`` as CloudFormation does.

Local code locations: SAM's translator accepts only S3 locations, so each ``CodeUri`` and
``ContentUri`` that names a folder is swapped for ``s3://localgw-local/<n>`` before translating and
mapped back after. ``InlineCode`` functions and image functions are not served (logged).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from localgw.intrinsics import ACCOUNT_ID, IntrinsicError, Resolver, fake_api_id

__all__ = [
    "Authorizer",
    "Cors",
    "FunctionSpec",
    "HttpApiSpec",
    "Route",
    "TemplateError",
    "TemplateModel",
    "load_template",
    "parse_parameter_overrides",
]

logger = logging.getLogger(__name__)

PARAM_ENV_PREFIX = "LOCALGW_PARAM_"
LOCAL_BUCKET = "localgw-local"
DEFAULT_TIMEOUT_SECONDS = 3.0
DEFAULT_MEMORY_MB = 128
MAX_INTEGRATION_TIMEOUT_MS = 30_000


class TemplateError(ValueError):
    """The template, a parameter or ``samconfig.toml`` cannot be used; the message says why."""


# --- the model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function as the emulator runs it."""

    logical_id: str
    function_name: str
    code_dir: Path
    handler: str
    runtime: str
    timeout: float
    memory_mb: int
    environment: dict[str, str]
    layer_dirs: tuple[Path, ...] = ()
    arn: str = ""
    architectures: tuple[str, ...] = ("x86_64",)

    def with_environment(self, overrides: Mapping[str, str]) -> FunctionSpec:
        """A copy whose environment has ``overrides`` laid over it."""
        return replace(self, environment={**self.environment, **overrides})


@dataclass(frozen=True)
class Authorizer:
    """A Lambda REQUEST authorizer of an HTTP API."""

    name: str
    function_id: str
    identity_sources: tuple[str, ...]
    ttl_seconds: int = 0
    payload_format_version: str = "2.0"
    simple_responses: bool = False


@dataclass(frozen=True)
class Cors:
    """An HTTP API's CorsConfiguration (names as in ``AWS::ApiGatewayV2::Api``)."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False


@dataclass(frozen=True)
class Route:
    """A route: ``method`` is upper case or ``ANY``; ``path`` is ``$default`` for the catch-all."""

    method: str
    path: str
    function_id: str
    authorizer: str | None = None
    payload_format_version: str = "2.0"
    timeout_ms: int = MAX_INTEGRATION_TIMEOUT_MS

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


@dataclass(frozen=True)
class HttpApiSpec:
    logical_id: str
    api_id: str
    routes: tuple[Route, ...]
    authorizers: dict[str, Authorizer] = field(default_factory=dict)
    cors: Cors | None = None
    stage: str = "$default"


@dataclass
class TemplateModel:
    path: Path
    parameters: dict[str, Any]
    region: str
    account_id: str
    raw_resources: dict[str, Any]
    resources: dict[str, Any]
    functions: dict[str, FunctionSpec]
    http_apis: list[HttpApiSpec]
    resolver: Resolver
    conditions: dict[str, bool] = field(default_factory=dict)

    def function_for_arn(self, value: Any) -> str | None:
        """The logical id of the function an ARN, integration URI or ``Ref`` names, if any."""
        text = str(value)
        for logical_id, spec in self.functions.items():
            if spec.arn and spec.arn in text:
                return logical_id
        return None

    def replace_in_environments(self, old: str, new: str) -> None:
        """Replace ``old`` by ``new`` in every function's environment values (endpoint rewrites)."""
        for logical_id, spec in self.functions.items():
            env = {key: value.replace(old, new) for key, value in spec.environment.items()}
            self.functions[logical_id] = replace(spec, environment=env)


# --- loading --------------------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that knows CloudFormation's short tags and keeps dates as strings."""


_CfnLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in {"Ref", "Condition"}:
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def read_template(path: Path) -> dict[str, Any]:
    """Parse ``path`` (YAML or JSON) into a dict with long-form intrinsics."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources section")
    return document


def parse_parameter_overrides(value: str | list[str] | None) -> dict[str, str]:
    """Parse ``Key=Value Key2="a b"`` (or a list of ``Key=Value``) as SAM CLI does."""
    if not value:
        return {}
    items = value if isinstance(value, list) else shlex.split(value)
    result: dict[str, str] = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise TemplateError(f"parameter override {item!r} is not Key=Value")
        if key.startswith("ParameterKey,"):
            raise TemplateError("use Key=Value, not ParameterKey=...,ParameterValue=...")
        result[key] = val
    return result


def read_samconfig(path: Path, environment: str) -> dict[str, str]:
    """Parameter overrides of ``environment`` in ``samconfig.toml``; {} when the file is absent."""
    if not path.is_file():
        return {}
    try:
        with open(path, "rb") as handle:
            config = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TemplateError(f"cannot read {path}: {exc}") from exc
    if environment not in config:
        if environment != "default":
            raise TemplateError(f"{path} has no environment {environment!r}")
        return {}
    result: dict[str, str] = {}
    for command in ("global", "deploy", "local_start_api"):
        section = config[environment].get(command, {}).get("parameters", {})
        result.update(parse_parameter_overrides(section.get("parameter_overrides")))
    return result


def _parameter_values(
    template: dict[str, Any],
    samconfig: dict[str, str],
    overrides: Mapping[str, str],
    environ: Mapping[str, str],
) -> dict[str, Any]:
    declared: dict[str, Any] = template.get("Parameters") or {}
    values: dict[str, Any] = {}
    from_env = {
        key[len(PARAM_ENV_PREFIX) :]: value
        for key, value in environ.items()
        if key.startswith(PARAM_ENV_PREFIX)
    }
    for source_name, source in (("--parameter-overrides", overrides), ("environment", from_env)):
        unknown = set(source) - set(declared)
        if unknown:
            raise TemplateError(f"{source_name} names unknown parameters: {sorted(unknown)}")
    for name, definition in declared.items():
        value: Any = definition.get("Default")
        for layer in (samconfig, from_env, overrides):
            if name in layer:
                value = layer[name]
        if value is None:
            raise TemplateError(f"parameter {name} has no Default and no value was given")
        values[name] = _check_parameter(name, definition, value)
    return values


def _check_parameter(name: str, definition: Mapping[str, Any], value: Any) -> Any:
    kind = str(definition.get("Type", "String"))
    text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
    allowed = definition.get("AllowedValues")
    if allowed is not None and text not in [str(item) for item in allowed]:
        raise TemplateError(f"parameter {name}={text!r} is not one of {allowed}")
    pattern = definition.get("AllowedPattern")
    if pattern is not None and kind == "String" and re.fullmatch(str(pattern), text) is None:
        raise TemplateError(f"parameter {name}={text!r} does not match {pattern!r}")
    if kind == "String":
        for key, fits in (("MinLength", len(text).__ge__), ("MaxLength", len(text).__le__)):
            if key in definition and not fits(int(definition[key])):
                raise TemplateError(f"parameter {name}={text!r} breaks {key} {definition[key]}")
    if kind == "Number":
        try:
            number = float(text)
        except ValueError as exc:
            raise TemplateError(f"parameter {name}={text!r} is not a number") from exc
        for key, fits in (("MinValue", number.__ge__), ("MaxValue", number.__le__)):
            if key in definition and not fits(float(definition[key])):
                raise TemplateError(f"parameter {name}={text} breaks {key} {definition[key]}")
    if kind == "CommaDelimitedList" or kind.startswith("List<"):
        return [item.strip() for item in text.split(",")] if text else []
    return text


# --- translation ----------------------------------------------------------------------------------


def _localise_code_uris(template: dict[str, Any], base: Path) -> dict[str, Path]:
    """Swap local CodeUri/ContentUri folders for placeholder S3 locations; return the map back."""
    locations: dict[str, Path] = {}

    def swap(properties: dict[str, Any], key: str) -> None:
        value = properties.get(key)
        if isinstance(value, str) and not value.startswith("s3://"):
            token = str(len(locations))
            locations[token] = (base / value).resolve()
            properties[key] = f"s3://{LOCAL_BUCKET}/{token}"

    function_globals = (template.get("Globals") or {}).get("Function") or {}
    swap(function_globals, "CodeUri")
    for resource in template["Resources"].values():
        if not isinstance(resource, dict):
            continue
        properties = resource.get("Properties")
        if not isinstance(properties, dict):
            continue
        if resource.get("Type") == "AWS::Serverless::Function":
            swap(properties, "CodeUri")
        elif resource.get("Type") == "AWS::Serverless::LayerVersion":
            swap(properties, "ContentUri")
    return locations


def _translate(template: dict[str, Any], parameters: dict[str, Any], region: str) -> dict[str, Any]:
    transform = template.get("Transform")
    transforms = transform if isinstance(transform, list) else [transform]
    if not any(isinstance(item, str) and item.startswith("AWS::Serverless") for item in transforms):
        return template
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    translator = Translator({}, Parser(), boto_session=boto3.session.Session(region_name=region))
    values = {**parameters, "AWS::AccountId": ACCOUNT_ID, "AWS::StackName": "localgw"}
    try:
        translated: dict[str, Any] = translator.translate(
            template, values, get_managed_policy_map=dict
        )
    except InvalidDocumentException as exc:
        causes = "; ".join(str(cause) for cause in exc.causes)
        raise TemplateError(f"SAM translation failed: {causes}") from exc
    return translated


def load_template(
    path: str | Path,
    *,
    config_env: str = "default",
    config_file: str | Path | None = None,
    overrides: Mapping[str, str] | None = None,
    region: str | None = None,
    environ: Mapping[str, str] | None = None,
    attributes: Mapping[str, str] | None = None,
) -> TemplateModel:
    """Load, translate and resolve the template at ``path``.

    ``config_file`` defaults to ``samconfig.toml`` beside the template; ``region`` to
    ``AWS_REGION``, ``AWS_DEFAULT_REGION``, then ``us-east-1``; ``environ`` (default
    ``os.environ``) supplies ``LOCALGW_PARAM_*`` values; ``attributes`` overrides ``Fn::GetAtt``
    answers by ``"Logical.Attribute"``.
    """
    path = Path(path).resolve()
    environ = os.environ if environ is None else environ
    region = region or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    template = read_template(path)
    samconfig_path = Path(config_file) if config_file else path.parent / "samconfig.toml"
    samconfig = read_samconfig(samconfig_path, config_env)
    parameters = _parameter_values(template, samconfig, overrides or {}, environ)

    locations = _localise_code_uris(template, path.parent)
    translated = _translate(template, parameters, region)
    raw_resources: dict[str, Any] = translated.get("Resources") or {}
    pseudo = {
        "AWS::Region": region,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": "aws",
        "AWS::StackName": "localgw",
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/localgw/local",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::NotificationARNs": [],
    }
    resolver = Resolver(
        parameters=parameters,
        pseudo=pseudo,
        resources=raw_resources,
        conditions=translated.get("Conditions"),
        mappings=translated.get("Mappings"),
        attributes=attributes,
    )
    try:
        conditions = {name: resolver.condition(name) for name in resolver.raw_conditions}
    except IntrinsicError as exc:
        raise TemplateError(f"{path}: {exc}") from exc
    resources = _resolve_resources(raw_resources, resolver, path)
    functions = _functions(resources, locations, resolver)
    http_apis = _http_apis(resources, raw_resources, functions, resolver)
    return TemplateModel(
        path=path,
        parameters=parameters,
        region=region,
        account_id=ACCOUNT_ID,
        raw_resources=raw_resources,
        resources=resources,
        functions=functions,
        http_apis=http_apis,
        resolver=resolver,
        conditions=conditions,
    )


def _resolve_resources(
    raw_resources: Mapping[str, Any], resolver: Resolver, path: Path
) -> dict[str, Any]:
    """Resolve every resource whose Condition holds.

    A resource the emulator does not run (a VPC endpoint, an alarm) may use intrinsics it cannot
    evaluate locally; it is kept unresolved, with a warning. A function's must resolve.
    """
    resources: dict[str, Any] = {}
    for logical_id, resource in raw_resources.items():
        try:
            if not _condition_holds(resolver, resource):
                continue
            resources[logical_id] = resolver.resolve(resource)
        except IntrinsicError as exc:
            if resource.get("Type") in {"AWS::Lambda::Function", "AWS::Lambda::LayerVersion"}:
                raise TemplateError(f"{path}: {logical_id}: {exc}") from exc
            logger.warning("%s: kept unresolved: %s", logical_id, exc)
            resources[logical_id] = resource
    return resources


def _condition_holds(resolver: Resolver, resource: Any) -> bool:
    if not isinstance(resource, dict) or "Condition" not in resource:
        return True
    return resolver.condition(str(resource["Condition"]))


# --- functions ------------------------------------------------------------------------------------


def _local_dir(content: Any, locations: Mapping[str, Path]) -> Path | None:
    if isinstance(content, dict) and content.get("S3Bucket") == LOCAL_BUCKET:
        return locations.get(str(content.get("S3Key")))
    return None


def _functions(
    resources: Mapping[str, Any], locations: Mapping[str, Path], resolver: Resolver
) -> dict[str, FunctionSpec]:
    layers_by_arn = {
        resolver.physical_id(logical_id): _local_dir(
            resource["Properties"].get("Content"), locations
        )
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::Lambda::LayerVersion"
    }
    functions: dict[str, FunctionSpec] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        props = resource.get("Properties") or {}
        code_dir = _local_dir(props.get("Code"), locations)
        if code_dir is None or props.get("PackageType") == "Image" or "Handler" not in props:
            logger.warning("function %s has no local code folder; it is not served", logical_id)
            continue
        layer_dirs = []
        for layer in props.get("Layers") or []:
            layer_dir = layers_by_arn.get(str(layer))
            if layer_dir is None:
                logger.warning("function %s: layer %s is not local; skipped", logical_id, layer)
            else:
                layer_dirs.append(layer_dir)
        variables = (props.get("Environment") or {}).get("Variables") or {}
        name = str(props.get("FunctionName") or logical_id)
        functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            function_name=name,
            code_dir=code_dir,
            handler=str(props["Handler"]),
            runtime=str(props.get("Runtime", "")),
            timeout=float(props.get("Timeout", DEFAULT_TIMEOUT_SECONDS)),
            memory_mb=int(props.get("MemorySize", DEFAULT_MEMORY_MB)),
            environment={key: _env_string(value) for key, value in variables.items()},
            layer_dirs=tuple(layer_dirs),
            arn=f"arn:aws:lambda:{resolver.pseudo['AWS::Region']}:{ACCOUNT_ID}:function:{name}",
            architectures=tuple(props.get("Architectures") or ("x86_64",)),
        )
    return functions


def _env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


# --- HTTP APIs ------------------------------------------------------------------------------------


def _http_apis(
    resources: Mapping[str, Any],
    raw_resources: Mapping[str, Any],
    functions: Mapping[str, FunctionSpec],
    resolver: Resolver,
) -> list[HttpApiSpec]:
    def function_id(uri: Any) -> str | None:
        text = str(uri)
        for logical_id, spec in functions.items():
            if f"function:{spec.function_name}/" in text or text.endswith(
                f"function:{spec.function_name}"
            ):
                return logical_id
        return None

    apis: list[HttpApiSpec] = []
    for logical_id in raw_resources:  # the file's order: the first HTTP API is the main one
        resource = resources.get(logical_id)
        if resource is None or resource.get("Type") != "AWS::ApiGatewayV2::Api":
            continue
        props = resource.get("Properties") or {}
        body = props.get("Body")
        if isinstance(body, dict):
            apis.append(_api_from_openapi(logical_id, body, function_id))
        elif props.get("ProtocolType") == "HTTP":
            apis.append(_api_from_resources(logical_id, props, resources, function_id))
    return apis


def _api_from_openapi(logical_id: str, body: Mapping[str, Any], function_id: Any) -> HttpApiSpec:
    schemes = (body.get("components") or {}).get("securitySchemes") or {}
    authorizers: dict[str, Authorizer] = {}
    for name, scheme in schemes.items():
        config = scheme.get("x-amazon-apigateway-authorizer") or {}
        if config.get("type") != "request":
            logger.warning("authorizer %s of type %r is not emulated", name, config.get("type"))
            continue
        target = function_id(config.get("authorizerUri"))
        if target is None:
            logger.warning("authorizer %s: its function is not local; skipped", name)
            continue
        sources = config.get("identitySource") or []
        authorizers[name] = Authorizer(
            name=name,
            function_id=target,
            identity_sources=tuple(
                sources if isinstance(sources, list) else str(sources).split(",")
            ),
            ttl_seconds=int(config.get("authorizerResultTtlInSeconds", 0) or 0),
            payload_format_version=str(config.get("authorizerPayloadFormatVersion", "2.0")),
            simple_responses=bool(config.get("enableSimpleResponses", False)),
        )
    default_security = body.get("security") or []
    routes: list[Route] = []
    for path, operations in (body.get("paths") or {}).items():
        for method, operation in operations.items():
            integration = operation.get("x-amazon-apigateway-integration") or {}
            target = function_id(integration.get("uri"))
            if target is None:
                logger.warning("route %s %s: no local function integration; skipped", method, path)
                continue
            authorizer = _security_authorizer(operation.get("security", default_security))
            http_method = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
            version = str(integration.get("payloadFormatVersion", "2.0"))
            if version != "2.0":
                logger.warning(
                    "route %s %s asks for payload format %s; it gets 2.0 events (1.0 is not "
                    "emulated)", http_method, path, version,
                )  # fmt: skip
            if authorizer is not None and authorizer not in authorizers:
                logger.warning(
                    "route %s %s is served WITHOUT its authorizer %s (not emulated)",
                    http_method, path, authorizer,
                )  # fmt: skip
            routes.append(
                Route(
                    method=http_method,
                    path=str(path),
                    function_id=target,
                    authorizer=authorizer if authorizer in authorizers else None,
                    payload_format_version=str(integration.get("payloadFormatVersion", "2.0")),
                    timeout_ms=int(integration.get("timeoutInMillis", MAX_INTEGRATION_TIMEOUT_MS)),
                )
            )
    cors = body.get("x-amazon-apigateway-cors")
    return HttpApiSpec(
        logical_id=logical_id,
        api_id=fake_api_id(logical_id),
        routes=tuple(routes),
        authorizers=authorizers,
        cors=_cors(cors, camel=True) if isinstance(cors, dict) else None,
    )


def _security_authorizer(security: Any) -> str | None:
    for requirement in security or []:
        for name in requirement:
            if name != "NONE":
                return str(name)
    return None


def _api_from_resources(
    logical_id: str, props: Mapping[str, Any], resources: Mapping[str, Any], function_id: Any
) -> HttpApiSpec:
    api_id = fake_api_id(logical_id)

    def belongs(resource: Mapping[str, Any]) -> bool:
        return str((resource.get("Properties") or {}).get("ApiId")) == api_id

    # A route's Target reads "integrations/<Ref>", and Ref of an integration is its logical id.
    integrations = {
        key: res["Properties"]
        for key, res in resources.items()
        if res.get("Type") == "AWS::ApiGatewayV2::Integration" and belongs(res)
    }
    authorizers: dict[str, Authorizer] = {}
    for key, res in resources.items():
        if res.get("Type") != "AWS::ApiGatewayV2::Authorizer" or not belongs(res):
            continue
        a = res["Properties"]
        target = function_id(a.get("AuthorizerUri"))
        if a.get("AuthorizerType") != "REQUEST" or target is None:
            logger.warning("authorizer %s is not a local Lambda REQUEST authorizer; skipped", key)
            continue
        authorizers[key] = Authorizer(
            name=key,
            function_id=target,
            identity_sources=tuple(a.get("IdentitySource") or ()),
            ttl_seconds=int(a.get("AuthorizerResultTtlInSeconds", 0) or 0),
            payload_format_version=str(a.get("AuthorizerPayloadFormatVersion", "2.0")),
            simple_responses=bool(a.get("EnableSimpleResponses", False)),
        )
    routes: list[Route] = []
    for key, res in resources.items():
        if res.get("Type") != "AWS::ApiGatewayV2::Route" or not belongs(res):
            continue
        r = res["Properties"]
        target_ref = str(r.get("Target", "")).removeprefix("integrations/")
        integration = integrations.get(target_ref) or {}
        target = function_id(integration.get("IntegrationUri"))
        if target is None:
            logger.warning("route %s has no local function integration; skipped", key)
            continue
        route_key = str(r["RouteKey"])
        method, _, path = route_key.partition(" ")
        authorizer_id = str(r.get("AuthorizerId", ""))
        if authorizer_id and authorizer_id not in authorizers:
            logger.warning("route %s is served WITHOUT its authorizer (not emulated)", route_key)
        routes.append(
            Route(
                method="ANY" if route_key == "$default" else method,
                path="$default" if route_key == "$default" else path,
                function_id=target,
                authorizer=authorizer_id if authorizer_id in authorizers else None,
                payload_format_version=str(integration.get("PayloadFormatVersion", "2.0")),
                timeout_ms=int(integration.get("TimeoutInMillis", MAX_INTEGRATION_TIMEOUT_MS)),
            )
        )
    cors = props.get("CorsConfiguration")
    return HttpApiSpec(
        logical_id=logical_id,
        api_id=api_id,
        routes=tuple(routes),
        authorizers=authorizers,
        cors=_cors(cors, camel=False) if isinstance(cors, dict) else None,
    )


def _cors(config: Mapping[str, Any], *, camel: bool) -> Cors:
    def get(name: str) -> Any:
        key = name[0].lower() + name[1:] if camel else name
        return config.get(key)

    def strings(name: str) -> tuple[str, ...]:
        return tuple(str(item) for item in get(name) or ())

    max_age = get("MaxAge")
    return Cors(
        allow_origins=strings("AllowOrigins"),
        allow_methods=tuple(item.upper() for item in strings("AllowMethods")),
        allow_headers=tuple(item.lower() for item in strings("AllowHeaders")),
        expose_headers=strings("ExposeHeaders"),
        max_age=int(max_age) if max_age is not None else None,
        allow_credentials=str(get("AllowCredentials")).lower() == "true",
    )
