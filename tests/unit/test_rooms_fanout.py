"""The Broadcaster's own rules, with a scripted client: backoff bounds, settings, and a recipient
whose send fails in a way the Management API client does not name. The HTTP behaviour (410, 429,
500, pool bound) is tested over real sockets in tests/integration/test_realtime.py, the client's
own in tests/unit/test_rooms_sender.py."""

from __future__ import annotations

import threading

import pytest

from gateway.rooms import Broadcaster
from gateway.rooms.sender import ManagementApiError
from gateway.upstream.errors import UpstreamUnavailable


class ScriptedClient:
    """Answers posts from a script: per connection id, a list of outcomes."""

    def __init__(self, script: dict[str, list[Exception | None]]) -> None:
        self.script = script
        self.posted: list[str] = []
        self.closed = False
        self._lock = threading.Lock()

    def post(self, connection_id: str, data: bytes) -> None:
        with self._lock:
            outcomes = self.script.get(connection_id, [])
            outcome = outcomes.pop(0) if outcomes else None
            if outcome is None:
                self.posted.append(connection_id)
        if outcome is not None:
            raise outcome

    def close(self) -> None:
        self.closed = True


def _throttled() -> ManagementApiError:
    return ManagementApiError(429, "LimitExceededException", "Rate exceeded")


def test_backoff_sleeps_stay_under_doubling_ceilings_and_attempts_are_bounded() -> None:
    sleeps: list[float] = []
    client = ScriptedClient({"c-1": [_throttled() for _ in range(10)]})
    broadcaster = Broadcaster(
        client, concurrency=1, max_attempts=4, base_delay=0.05, max_delay=0.15, sleep=sleeps.append
    )

    result = broadcaster.send(b"{}", ["c-1"])

    assert (result.delivered, result.failed, result.retries) == (0, 1, 3)
    assert len(sleeps) == 3
    for sleep, ceiling in zip(sleeps, [0.05, 0.1, 0.15], strict=True):
        assert 0 <= sleep <= ceiling


def test_throttled_then_accepted_send_is_delivered_with_its_retries_counted() -> None:
    client = ScriptedClient({"c-1": [_throttled(), _throttled()]})
    broadcaster = Broadcaster(client, concurrency=2, sleep=lambda _: None)

    result = broadcaster.send(b"{}", ["c-1", "c-2"])

    assert (result.delivered, result.failed, result.retries) == (2, 0, 2)
    broadcaster.close()


def test_unexpected_error_for_one_recipient_is_logged_with_traceback_and_others_delivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = ScriptedClient({"c-2": [RuntimeError("boom")]})
    broadcaster = Broadcaster(client, concurrency=3)

    result = broadcaster.send(b"{}", ["c-1", "c-2", "c-3"])
    broadcaster.close()

    assert (result.delivered, result.failed) == (2, 1)
    assert sorted(client.posted) == ["c-1", "c-3"]
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "c-2" in record.getMessage()
    assert record.exc_info is not None


def test_empty_room_sends_nothing() -> None:
    client = ScriptedClient({})

    result = Broadcaster(client).send(b"{}", [])

    assert (result.delivered, result.failed, result.gone) == (0, 0, [])
    assert client.posted == []


@pytest.mark.parametrize(
    "error",
    [
        ManagementApiError(429, "429"),
        ManagementApiError(400, "TooManyRequestsException"),
        ManagementApiError(400, "ThrottlingException"),
    ],
    ids=["bare-429", "too-many-requests", "throttling"],
)
def test_every_throttling_answer_is_retried(error: ManagementApiError) -> None:
    client = ScriptedClient({"c-1": [error]})

    result = Broadcaster(client, concurrency=1, sleep=lambda _: None).send(b"{}", ["c-1"])

    assert (result.delivered, result.failed, result.retries) == (1, 0, 1)


@pytest.mark.parametrize(
    "error",
    [ManagementApiError(410, "GoneException"), ManagementApiError(410, "410")],
    ids=["named", "status-only"],
)
def test_gone_answer_is_reported_gone_and_not_retried(error: ManagementApiError) -> None:
    client = ScriptedClient({"c-1": [error, error]})

    result = Broadcaster(client, concurrency=1, sleep=lambda _: None).send(b"{}", ["c-1", "c-2"])

    assert (result.delivered, result.failed, result.retries, result.gone) == (1, 0, 0, ["c-1"])


def test_no_answer_for_one_recipient_is_logged_and_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = ScriptedClient({"c-1": [UpstreamUnavailable("connection reset"), None]})

    result = Broadcaster(client, concurrency=1, sleep=lambda _: None).send(b"{}", ["c-1", "c-2"])

    assert (result.delivered, result.failed, result.retries) == (1, 1, 0)
    assert client.posted == ["c-2"]
    (record,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "c-1" in record.getMessage()
    assert "connection reset" in record.getMessage()


def test_close_stops_the_pool_and_closes_the_client() -> None:
    client = ScriptedClient({})
    broadcaster = Broadcaster(client, concurrency=2)
    broadcaster.send(b"{}", ["c-1", "c-2"])

    broadcaster.close()

    assert client.closed
    assert broadcaster._pool is None


@pytest.mark.parametrize("settings", [{"concurrency": 0}, {"max_attempts": 0}])
def test_broadcaster_refuses_settings_below_one(settings: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Broadcaster(ScriptedClient({}), **settings)
