"""Read ``template.yaml`` and translate it to plain CloudFormation with aws-sam-translator.

The translation is the one CloudFormation's ``AWS::Serverless-2016-10-31`` transform performs, run
in-process with no AWS call: the managed policy map comes from the copy bundled with the
translator. Tests read the wiring from the result, and ``scripts/check_template.sh`` runs this
module to hand cfn-lint the translated template::

    python -m tests.support.template --output translated.json [--parameter Key=Value ...]

``TEST_PARAMETERS`` gives every parameter without a default a value of the right shape, so that
the translation and the Conditions behave as in a real deployment.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"

__all__ = [
    "ACCOUNT_ID",
    "CODE_BUCKET",
    "NO_VALUE",
    "REGION",
    "TEMPLATE",
    "TEST_PARAMETERS",
    "TemplateTranslationError",
    "condition_holds",
    "evaluate",
    "function_environment",
    "parameter_values",
    "parse_template",
    "resources_of_type",
    "translate",
    "translated",
]

TEST_PARAMETERS: dict[str, Any] = {
    "AuthServiceUrl": "https://auth.test.syncroboard.example",
    "TicketServiceUrl": "https://tickets.test.syncroboard.example",
    "AssignmentServiceUrl": "https://assignments.test.syncroboard.example",
    "JwtIssuer": "https://auth.test.syncroboard.example",
    "JwtAudience": "syncroboard",
    "VpcId": "vpc-0123456789abcdef0",
    "SubnetIds": ["subnet-0123456789abcdef1", "subnet-0123456789abcdef2"],
    "KafkaBootstrapServers": "kafka-1.test.syncroboard.example:9092",
}


class TemplateTranslationError(RuntimeError):
    """aws-sam-translator refused the template; the message lists every cause it gave."""


CODE_BUCKET = "syncroboard-local-code"


class _CfnLoader(yaml.SafeLoader):
    """A SafeLoader reading CloudFormation short forms (``!Ref``, ``!Sub``...) as long forms."""


def _construct_intrinsic(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    value: Any
    if tag_suffix == "GetAtt" and isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node).split(".", 1)
    elif isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def parse_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The SAM template at ``path`` as a dict, intrinsics in their long form."""
    with path.open(encoding="utf-8") as handle:
        document = yaml.load(handle, Loader=_CfnLoader)
    if not isinstance(document, dict):
        raise TemplateTranslationError(f"{path} is not a YAML mapping")
    return document


def _package_code_locations(template: dict[str, Any]) -> None:
    """Point each local ``CodeUri``/``ContentUri`` at ``s3://CODE_BUCKET/<the same path>``.

    The transform only accepts S3 locations, which ``sam package`` uploads to; keeping the path as
    the key lets a test see which folder a function's code comes from.
    """
    sections = [((template.get("Globals") or {}).get("Function") or {}, "CodeUri")]
    for resource in template.get("Resources", {}).values():
        kind = resource.get("Type")
        if kind == "AWS::Serverless::Function":
            sections.append((resource.get("Properties", {}), "CodeUri"))
        elif kind == "AWS::Serverless::LayerVersion":
            sections.append((resource.get("Properties", {}), "ContentUri"))
    for properties, key in sections:
        location = properties.get(key)
        if isinstance(location, str) and not location.startswith("s3://"):
            properties[key] = f"s3://{CODE_BUCKET}/{location.strip('/')}"


def translate(
    path: Path = TEMPLATE,
    parameters: Mapping[str, Any] | None = None,
    region: str = REGION,
) -> dict[str, Any]:
    """Translate the SAM template at ``path`` into CloudFormation, as the SAM transform would.

    ``parameters`` are merged over ``TEST_PARAMETERS``; the template's defaults fill the rest.
    """
    import boto3
    from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    values: dict[str, Any] = {
        **TEST_PARAMETERS,
        **(parameters or {}),
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::StackName": "syncroboard-gateway-test",
    }
    policies = get_bundled_managed_policy_map("aws") or {}
    template = parse_template(path)
    _package_code_locations(template)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    try:
        result: dict[str, Any] = translator.translate(
            template, values, get_managed_policy_map=lambda: policies
        )
    except InvalidDocumentException as exc:
        causes = "; ".join(cause.message for cause in exc.causes)
        raise TemplateTranslationError(f"{path}: {causes}") from exc
    return result


@cache
def _translated_default() -> dict[str, Any]:
    return translate()


def translated() -> dict[str, Any]:
    """The project's template translated with ``TEST_PARAMETERS``; a fresh copy on each call."""
    return copy.deepcopy(_translated_default())


def resources_of_type(
    template: Mapping[str, Any], kind: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(logical id, resource)`` for every resource of CloudFormation type ``kind``."""
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") == kind:
            yield logical_id, resource


def function_environment(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """The environment variables of the translated function ``logical_id`` (Globals merged)."""
    properties = template["Resources"][logical_id]["Properties"]
    variables: dict[str, Any] = properties.get("Environment", {}).get("Variables", {})
    return variables


def parameter_values(
    template: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Each parameter's value: its default, then ``TEST_PARAMETERS``, then ``overrides``.

    Pseudo parameters are included (``AWS::Region``...), so the result can feed :func:`evaluate`.
    """
    values: dict[str, Any] = {
        name: spec["Default"]
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }
    values.update(TEST_PARAMETERS)
    values.update(overrides or {})
    values.update({"AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws"})
    return values


class _NoValue:
    """``AWS::NoValue``: the property or list item it stands for is left out."""


NO_VALUE = _NoValue()


def evaluate(value: Any, template: Mapping[str, Any], parameters: Mapping[str, Any]) -> Any:
    """Evaluate the intrinsics in ``value`` as CloudFormation would, for a test to read.

    Parameters and pseudo parameters become their values; what only exists once deployed stays a
    readable placeholder: ``Ref`` to a resource is ``${LogicalId}``, ``Fn::GetAtt`` is
    ``${LogicalId.Attribute}``. So a source ARN reads
    ``arn:aws:execute-api:us-east-1:123456789012:${WebSocketApi}/dev/*``.
    """
    if isinstance(value, list):
        items = [evaluate(item, template, parameters) for item in value]
        return [item for item in items if item is not NO_VALUE]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref" or name.startswith("Fn::") or name == "Condition":
            return _intrinsic(name, argument, template, parameters)
    result = {key: evaluate(item, template, parameters) for key, item in value.items()}
    return {key: item for key, item in result.items() if item is not NO_VALUE}


def condition_holds(name: str, template: Mapping[str, Any], parameters: Mapping[str, Any]) -> bool:
    """Whether the template's condition ``name`` is true for ``parameters``."""
    return bool(evaluate(template["Conditions"][name], template, parameters))


def _intrinsic(
    name: str, argument: Any, template: Mapping[str, Any], parameters: Mapping[str, Any]
) -> Any:
    if name == "Ref":
        if argument == "AWS::NoValue":
            return NO_VALUE
        if argument in parameters:
            return parameters[argument]
        return "${" + argument + "}"
    if name == "Condition":
        return condition_holds(argument, template, parameters)
    if name == "Fn::GetAtt":
        target = argument if isinstance(argument, str) else ".".join(argument)
        return "${" + target + "}"
    if name == "Fn::If":
        condition, when_true, when_false = argument
        chosen = when_true if condition_holds(condition, template, parameters) else when_false
        return evaluate(chosen, template, parameters)
    if name == "Fn::Sub":
        return _substitute(argument, template, parameters)
    args = evaluate(argument, template, parameters)
    if name == "Fn::Equals":
        return str(args[0]) == str(args[1])
    if name == "Fn::Not":
        return not args[0]
    if name == "Fn::And":
        return all(args)
    if name == "Fn::Or":
        return any(args)
    if name == "Fn::Split":
        return str(args[1]).split(args[0])
    if name == "Fn::Select":
        return args[1][int(args[0])]
    if name == "Fn::Join":
        return str(args[0]).join(str(item) for item in args[1])
    raise TemplateTranslationError(f"no evaluation for {name}")


def _substitute(argument: Any, template: Mapping[str, Any], parameters: Mapping[str, Any]) -> str:
    text, variables = (argument, {}) if isinstance(argument, str) else argument
    local = {key: evaluate(item, template, parameters) for key, item in variables.items()}

    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in local:
            return str(local[key])
        if "." in key:
            return "${" + key + "}"
        return str(_intrinsic("Ref", key, template, parameters))

    return re.sub(r"\$\{([^}!][^}]*)\}", replace, text)


def _parse_parameter(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not Key=Value")
    if key in TEST_PARAMETERS and isinstance(TEST_PARAMETERS[key], list):
        return key, [item for item in value.split(",") if item]
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--output", type=Path, help="write here instead of standard output")
    parser.add_argument("--parameter", type=_parse_parameter, action="append", default=[])
    parser.add_argument("--region", default=REGION)
    args = parser.parse_args(argv)

    try:
        result = translate(args.template, dict(args.parameter), args.region)
    except TemplateTranslationError as exc:
        print(f"translation failed: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=2, sort_keys=False) + "\n"
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
