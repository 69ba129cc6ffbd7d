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
    "REGION",
    "TEMPLATE",
    "TEST_PARAMETERS",
    "TemplateTranslationError",
    "function_environment",
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
