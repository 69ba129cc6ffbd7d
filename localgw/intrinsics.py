"""CloudFormation intrinsic functions, evaluated locally against fake physical ids.

The emulator never deploys anything, so a ``Ref`` to a resource or an ``Fn::GetAtt`` has no real
answer. :class:`Resolver` gives each resource a stable fake one (a Lambda function's name is its
logical id, as ``sam local`` names it; an API's id is ten lower-case characters derived from its
logical id), so that environment variables built from them read like the deployed ones.

Supported: ``Ref``, ``Fn::Sub`` (both forms, ``${!Literal}`` escapes), ``Fn::GetAtt``, ``Fn::If``
with the template's Conditions, ``Fn::Equals``, ``Fn::And``, ``Fn::Or``, ``Fn::Not``, ``Condition``,
``Fn::Join``, ``Fn::Select``, ``Fn::Split``, ``Fn::FindInMap``, ``Fn::Base64``, ``Fn::GetAZs``,
``Fn::ImportValue`` (a placeholder), and ``AWS::NoValue`` (the key disappears). An attribute the
resolver cannot know becomes the placeholder ``<Logical.Attribute>`` and is logged once.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["NO_VALUE", "IntrinsicError", "Resolver", "fake_api_id"]

logger = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"


class IntrinsicError(ValueError):
    """An intrinsic function is malformed or names something the template does not define."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def fake_api_id(logical_id: str) -> str:
    """Return a stable API id for ``logical_id``: ten lower-case alphanumerics, as AWS ids look."""
    digest = hashlib.sha256(logical_id.encode()).digest()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[byte % len(alphabet)] for byte in digest[:10])


class Resolver:
    """Evaluate intrinsics in template values.

    ``parameters`` holds every parameter's value (lists for ``CommaDelimitedList``), ``pseudo`` the
    ``AWS::*`` pseudo parameters, ``resources`` the template's resources (for types and fake ids),
    ``conditions`` the raw Conditions section, ``mappings`` the Mappings section. ``attributes``
    overrides ``Fn::GetAtt`` answers by ``"Logical.Attribute"`` (the emulator puts its local API
    endpoints there).
    """

    def __init__(
        self,
        *,
        parameters: Mapping[str, Any],
        pseudo: Mapping[str, Any],
        resources: Mapping[str, Any],
        conditions: Mapping[str, Any] | None = None,
        mappings: Mapping[str, Any] | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        self.parameters = dict(parameters)
        self.pseudo = dict(pseudo)
        self.resources = resources
        self.raw_conditions = dict(conditions or {})
        self.mappings = dict(mappings or {})
        self.attributes = dict(attributes or {})
        self._conditions: dict[str, bool] = {}
        self._warned: set[str] = set()
        self._functions: dict[str, Callable[[Any], Any]] = {
            "Fn::Sub": self._sub,
            "Fn::GetAtt": self._get_att,
            "Fn::If": self._if,
            "Fn::Equals": self._equals,
            "Fn::And": lambda args: all(self._bool(arg) for arg in self._list(args, "Fn::And")),
            "Fn::Or": lambda args: any(self._bool(arg) for arg in self._list(args, "Fn::Or")),
            "Fn::Not": lambda args: not self._bool(self._list(args, "Fn::Not")[0]),
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": lambda args: base64.b64encode(str(self.resolve(args)).encode()).decode(),
            "Fn::GetAZs": lambda args: [f"{self.pseudo['AWS::Region']}{s}" for s in "abc"],
            "Fn::ImportValue": lambda args: f"<ImportValue {self.resolve(args)}>",
        }

    # --- public -----------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """Return ``value`` with every intrinsic evaluated; ``AWS::NoValue`` entries are dropped."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, args),) = value.items()
            if key == "Ref":
                return self._ref(args)
            if key == "Condition" and isinstance(args, str):
                return self.condition(args)
            if key in self._functions:
                return self._functions[key](args)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def condition(self, name: str) -> bool:
        """Evaluate the Condition ``name`` (memoised)."""
        if name not in self._conditions:
            if name not in self.raw_conditions:
                raise IntrinsicError(f"unknown condition {name!r}")
            self._conditions[name] = self._bool(self.raw_conditions[name])
        return self._conditions[name]

    def physical_id(self, logical_id: str) -> str:  # noqa: PLR0911 - one answer per type
        """What ``Ref`` answers for a resource: a stable fake id shaped like the real one."""
        resource_type = str(self.resources.get(logical_id, {}).get("Type", ""))
        properties = self.resources.get(logical_id, {}).get("Properties", {}) or {}
        region, account = self.pseudo["AWS::Region"], self.pseudo["AWS::AccountId"]
        if resource_type in {"AWS::Lambda::Function", "AWS::Serverless::Function"}:
            return str(self.resolve(properties.get("FunctionName", logical_id)))
        if resource_type in {"AWS::ApiGatewayV2::Api", "AWS::Serverless::HttpApi"}:
            return fake_api_id(logical_id)
        if resource_type == "AWS::ApiGatewayV2::Stage":
            return str(self.resolve(properties.get("StageName", logical_id)))
        if resource_type == "AWS::SecretsManager::Secret":
            return f"arn:aws:secretsmanager:{region}:{account}:secret:{logical_id}-local"
        if resource_type in {"AWS::Lambda::LayerVersion", "AWS::Serverless::LayerVersion"}:
            return f"arn:aws:lambda:{region}:{account}:layer:{logical_id}:1"
        if resource_type == "AWS::SSM::Parameter":
            return str(self.resolve(properties.get("Name", logical_id)))
        return logical_id

    # --- functions --------------------------------------------------------------------------------

    def _ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise IntrinsicError(f"Ref takes a name, got {name!r}")
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.resources:
            return self.physical_id(name)
        raise IntrinsicError(f"Ref to {name!r}, which is neither a parameter nor a resource")

    def _get_att(self, args: Any) -> Any:
        if isinstance(args, str):
            args = args.split(".", 1)
        logical_id, attribute = str(args[0]), str(self.resolve(args[1]))
        key = f"{logical_id}.{attribute}"
        if key in self.attributes:
            return self.attributes[key]
        if logical_id not in self.resources:
            raise IntrinsicError(f"Fn::GetAtt on {logical_id!r}, which is not a resource")
        resource_type = str(self.resources[logical_id].get("Type", ""))
        region, account = self.pseudo["AWS::Region"], self.pseudo["AWS::AccountId"]
        if attribute == "Arn" and resource_type.startswith(
            ("AWS::Lambda::Function", "AWS::Serverless::Function")
        ):
            return f"arn:aws:lambda:{region}:{account}:function:{self.physical_id(logical_id)}"
        if attribute == "ApiEndpoint":
            return f"https://{fake_api_id(logical_id)}.execute-api.{region}.amazonaws.com"
        if attribute in {"ApiId", "Id"}:
            return self.physical_id(logical_id)
        if attribute == "Arn":
            service = resource_type.split("::")[1].lower() if "::" in resource_type else "unknown"
            return f"arn:aws:{service}:{region}:{account}:{logical_id}"
        if key not in self._warned:
            self._warned.add(key)
            logger.info("Fn::GetAtt %s has no local value; using a placeholder", key)
        return f"<{key}>"

    def _sub(self, args: Any) -> str:
        if isinstance(args, list):
            text, variables = args[0], {k: self.resolve(v) for k, v in args[1].items()}
        else:
            text, variables = args, {}
        if not isinstance(text, str):
            raise IntrinsicError(f"Fn::Sub takes a string, got {text!r}")

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                return str(self._get_att(name.split(".", 1)))
            return str(self._ref(name))

        return _SUB_VARIABLE.sub(replace, text)

    def _if(self, args: Any) -> Any:
        name, when_true, when_false = self._list(args, "Fn::If", 3)
        return self.resolve(when_true if self.condition(str(name)) else when_false)

    def _equals(self, args: Any) -> bool:
        left, right = (self.resolve(arg) for arg in self._list(args, "Fn::Equals", 2))
        return str(left) == str(right)

    def _join(self, args: Any) -> str:
        delimiter, items = self._list(args, "Fn::Join", 2)
        resolved = self.resolve(items)
        return str(delimiter).join(str(item) for item in resolved)

    def _select(self, args: Any) -> Any:
        index, items = self._list(args, "Fn::Select", 2)
        resolved = self.resolve(items)
        try:
            return resolved[int(self.resolve(index))]
        except (IndexError, TypeError, ValueError) as exc:
            raise IntrinsicError(f"Fn::Select {index!r} of {resolved!r}: {exc}") from exc

    def _split(self, args: Any) -> list[str]:
        delimiter, text = self._list(args, "Fn::Split", 2)
        return str(self.resolve(text)).split(str(delimiter))

    def _find_in_map(self, args: Any) -> Any:
        name, top, second = (self.resolve(arg) for arg in self._list(args, "Fn::FindInMap", 3))
        try:
            return self.mappings[name][top][second]
        except KeyError as exc:
            raise IntrinsicError(f"Fn::FindInMap: no {name}/{top}/{second}") from exc

    # --- helpers ----------------------------------------------------------------------------------

    def _bool(self, value: Any) -> bool:
        resolved = self.resolve(value)
        if isinstance(resolved, bool):
            return resolved
        return str(resolved).lower() == "true"

    @staticmethod
    def _list(args: Any, name: str, length: int | None = None) -> list[Any]:
        if not isinstance(args, list) or (length is not None and len(args) != length):
            raise IntrinsicError(f"{name} takes a list of {length or 'some'} items, got {args!r}")
        return args
