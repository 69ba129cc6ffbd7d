"""What moto's API Gateway Management API received, read back as the messages a client got."""

from __future__ import annotations

import json
from typing import Any

from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends

__all__ = ["clear_posted", "posted"]

ACCOUNT, REGION = "123456789012", "us-east-1"


def _connections() -> Any:
    return apigatewaymanagementapi_backends[ACCOUNT][REGION].connections


def posted(connection_id: str) -> list[dict[str, Any]]:
    """Messages posted to one connection, in order (moto appends every post to one buffer)."""
    connections = _connections()
    if connection_id not in connections:
        return []
    text = connections[connection_id].data.decode()
    decoder, messages, at = json.JSONDecoder(), [], 0
    while at < len(text):
        message, at = decoder.raw_decode(text, at)
        messages.append(message)
    return messages


def clear_posted() -> None:
    """Forget every connection's posts (moto's backend lives as long as the process)."""
    _connections().clear()
