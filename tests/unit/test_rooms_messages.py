"""Client messages to the room routes: size, JSON, projectId, and the token's projects."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gateway.rooms import InvalidMessage
from gateway.rooms.messages import allowed_projects, help_body, parse_message, project_id_of


def test_parse_message_returns_object() -> None:
    assert parse_message('{"action": "subscribe", "projectId": "p-1"}') == {
        "action": "subscribe",
        "projectId": "p-1",
    }


def test_parse_message_refuses_body_over_limit_before_parsing() -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_message("{" * 200, max_bytes=100)

    assert caught.value.code == "payload_too_large"
    assert "100 bytes" in caught.value.message


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "invalid_json"),
        ("", "invalid_json"),
        (None, "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('"subscribe"', "invalid_message"),
    ],
)
def test_parse_message_refuses_bodies_that_are_not_json_objects(
    body: str | None, code: str
) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_message(body)

    assert caught.value.code == code


def test_parse_message_decodes_base64_binary_frames() -> None:
    body = base64.b64encode(b'{"action": "unsubscribe", "projectId": "p-2"}').decode()

    assert parse_message(body, base64_encoded=True)["projectId"] == "p-2"


def test_parse_message_refuses_invalid_base64() -> None:
    with pytest.raises(InvalidMessage, match="base64"):
        parse_message("%%%", base64_encoded=True)


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"action": "subscribe"}, "projectId is required"),
        ({"projectId": 7}, "must be a string"),
        ({"projectId": None}, "must be a string"),
        ({"projectId": ""}, "1 to 128"),
        ({"projectId": "p" * 129}, "1 to 128"),
        ({"projectId": "p-{1}"}, "not allowed"),
        ({"projectId": "p-1\n"}, "not allowed"),
    ],
)
def test_project_id_of_refuses_missing_or_malformed_ids(message: dict[str, Any], text: str) -> None:
    with pytest.raises(InvalidMessage, match=text) as caught:
        project_id_of(message)

    assert caught.value.code == "invalid_message"


@pytest.mark.parametrize(
    ("authorizer", "projects"),
    [
        ({"projects": "p-1,p-2"}, {"p-1", "p-2"}),
        ({"projects": " p-1 , ,p-2,"}, {"p-1", "p-2"}),
        ({"projects": ""}, set()),
        ({"projects": ["p-3", 4]}, {"p-3"}),
        ({"projects": 12}, set()),
        ({}, set()),
        (None, set()),
    ],
)
def test_allowed_projects_reads_comma_joined_claim(
    authorizer: dict[str, Any] | None, projects: set[str]
) -> None:
    assert allowed_projects(authorizer) == projects


def test_help_body_lists_actions_and_example() -> None:
    body = help_body("unknown_action", "unknown action 'chat'")

    assert body["actions"] == ["subscribe", "unsubscribe"]
    assert body["example"]["action"] == "subscribe"
    assert body["type"] == "error"
