"""Settings read from the environment, the way every component of the layer reads them.

An explicit argument wins, then the environment variable, then the default, so that tests and
the emulator can configure a component without touching ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["ConfigError", "env_bool", "env_float", "env_int", "env_list", "env_str"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting is present but cannot be read; the message names the variable."""


def env_str(name: str, default: str | None = None, value: str | None = None) -> str | None:
    """Return ``value`` if given, else the variable ``name``, else ``default``."""
    if value is not None:
        return value
    return os.environ.get(name, default)


def env_int(name: str, default: int, value: int | None = None) -> int:
    """Return ``value`` if given, else the variable ``name`` as an integer, else ``default``.

    A blank variable counts as unset; anything else that is not an integer is a
    :class:`ConfigError`.
    """
    if value is not None:
        return value
    return _env_number(name, default, int, "an integer")


def env_float(name: str, default: float, value: float | None = None) -> float:
    """Return ``value`` if given, else the variable ``name`` as a number, else ``default``.

    A blank variable counts as unset; anything else that is not a number is a
    :class:`ConfigError`.
    """
    if value is not None:
        return value
    return _env_number(name, default, float, "a number")


def _env_number[N: (int, float)](name: str, default: N, parse: Callable[[str], N], what: str) -> N:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from exc


def env_bool(name: str, default: bool, value: bool | None = None) -> bool:
    """Return ``value`` if given, else the variable ``name`` read as a boolean, else ``default``.

    ``1``, ``true``, ``yes``, ``on`` are true; ``0``, ``false``, ``no``, ``off`` and blank are
    false (any case); anything else is a :class:`ConfigError`.
    """
    if value is not None:
        return value
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def env_list(name: str, default: list[str], value: list[str] | None = None) -> list[str]:
    """Return ``value`` if given, else the variable ``name`` split on commas, else ``default``.

    Items are stripped and blank items dropped.
    """
    if value is not None:
        return value
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]
