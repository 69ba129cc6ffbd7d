"""The Kafka event source mapping on a real Kafka-protocol broker (Tansu): batches, commits after
success, retries after failure, and a broker restart that loses nothing.

The restart test runs Tansu on its S3 storage engine, backed by moto's S3 server, because Tansu's
memory storage forgets every record and offset when it stops (PostgreSQL and SQLite engines are
not compiled into the bundled binary).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from devstack.services import Service, free_port
from localgw.kafka_esm import KafkaMapping, MappingRunner, RetryPolicy, kafka_mappings
from localgw.runtime import Runtime
from localgw.template import load_template
from localgw.websocket import WebSocketSettings
from localgw.websocket_api import InvocationError
from localgw.websocket_stack import RealtimeSettings, RealtimeStack
from tests.emulator.ws_harness import WS_APP, LoopThread
from tests.support.polling import wait_for as poll

# kafka-python 3.0 leaves a socket unclosed when a connection attempt fails (the broker restart
# makes some); each test collects garbage at its end, so that the ResourceWarning lands on the
# test that caused it, where these filters apply, and not on some later test or the session's end.
pytestmark = [
    pytest.mark.kafka,
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(autouse=True)
def collect_leaked_sockets() -> Iterator[None]:
    yield
    time.sleep(0.2)  # kafka-python's I/O thread finishes closing
    gc.collect()


FAST_CONSUMER = {"reconnect_backoff_max_ms": 500, "retry_backoff_ms": 100}


class RecordingFunction:
    """Stands in for a function: records each batch, fails while ``failures`` > 0, and waits
    while ``gate`` is cleared."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.failures = 0
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    async def __call__(self, function: str, event: dict[str, Any]) -> Any:
        with self.lock:
            self.calls.append(event)
        await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 30)
        with self.lock:
            if self.failures > 0:
                self.failures -= 1
                raise InvocationError("failing on purpose")
        return {"ok": True}

    def values(self, index: int | None = None) -> list[str]:
        calls = self.calls if index is None else [self.calls[index]]
        return [
            base64.b64decode(record["value"]).decode()
            for event in calls
            for records in event["records"].values()
            for record in records
        ]


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.stop()


def produce(bootstrap: str, topic: str, values: list[str]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, **FAST_CONSUMER)
    for value in values:
        producer.send(topic, key=b"p-1", value=value.encode())
    producer.flush()
    producer.close()


def committed(bootstrap: str, group: str, topic: str) -> int | None:
    """The group's committed offset on partition 0, read by a consumer that joins nothing."""
    reader = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **FAST_CONSUMER
    )
    try:
        offset = reader.committed(TopicPartition(topic, 0))
    finally:
        reader.close(autocommit=False)
    return None if offset is None or offset < 0 else int(offset)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """The shared poll with this module's longer bound: a consumer group takes seconds to join."""
    return poll(condition, what, timeout)


def mapping(topic: str, **overrides: Any) -> KafkaMapping:
    settings: dict[str, Any] = {
        "logical_id": "TestMapping",
        "function": "BatchFunction",
        "topics": (topic,),
        "consumer_group_id": f"group-{uuid.uuid4().hex[:8]}",
        "starting_position": "TRIM_HORIZON",
        "batch_size": 3,
        "batching_window": 0.5,
    }
    settings.update(overrides)
    return KafkaMapping(**settings)


def runner(
    spec: KafkaMapping, function: RecordingFunction, loop: LoopThread, bootstrap: str
) -> MappingRunner:
    return MappingRunner(
        spec,
        function,
        loop.loop,
        bootstrap_servers=bootstrap,
        retry=RetryPolicy(base=0.1, ceiling=0.5),
        consumer_options=FAST_CONSUMER,
    )


def test_kafka_mapping_reads_template_mapping_with_its_settings() -> None:
    model = load_template(WS_APP, overrides={"KafkaBootstrapServers": "b1:9092,b2:9092"})
    names = {spec.function_name: logical for logical, spec in model.functions.items()}

    (found,) = kafka_mappings(model.resources, names)

    assert found.function == "BatchFunction"
    assert found.topics == ("esm.test",)
    assert found.consumer_group_id == "esm-test-group"
    assert found.starting_position == "TRIM_HORIZON"
    assert (found.batch_size, found.batching_window) == (3, 1.0)
    assert found.bootstrap_servers == ("b1:9092", "b2:9092")
    assert found.event_source == "SelfManagedKafka"


def test_kafka_mapping_batches_at_most_batch_size_records_in_order(
    kafka_bootstrap: str, loop: LoopThread
) -> None:
    topic = f"esm-{uuid.uuid4().hex[:8]}"
    produce(kafka_bootstrap, topic, [f"r{i}" for i in range(7)])
    function = RecordingFunction()
    poller = runner(mapping(topic), function, loop, kafka_bootstrap)
    poller.start()
    try:
        wait_for(lambda: len(function.values()) >= 7, "seven records delivered")
    finally:
        poller.stop()

    assert [len(function.values(i)) for i in range(len(function.calls))] == [3, 3, 1]
    assert function.values() == [f"r{i}" for i in range(7)]
    event = function.calls[0]
    assert event["eventSource"] == "SelfManagedKafka"
    assert event["bootstrapServers"] == kafka_bootstrap
    assert list(event["records"]) == [f"{topic}-0"]


def test_kafka_mapping_commits_offsets_only_after_the_function_succeeds(
    kafka_bootstrap: str, loop: LoopThread
) -> None:
    topic = f"esm-{uuid.uuid4().hex[:8]}"
    spec = mapping(topic)
    produce(kafka_bootstrap, topic, ["a", "b", "c"])
    function = RecordingFunction()
    function.gate.clear()
    poller = runner(spec, function, loop, kafka_bootstrap)
    poller.start()
    try:
        wait_for(lambda: function.calls, "the function invoked")
        in_flight = committed(kafka_bootstrap, spec.consumer_group_id, topic)
        function.gate.set()
        after = wait_for(
            lambda: committed(kafka_bootstrap, spec.consumer_group_id, topic), "a commit"
        )
    finally:
        function.gate.set()
        poller.stop()

    assert in_flight is None
    assert after == 3


def test_kafka_mapping_retries_a_failed_batch_until_it_succeeds_then_commits(
    kafka_bootstrap: str, loop: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"esm-{uuid.uuid4().hex[:8]}"
    spec = mapping(topic)
    produce(kafka_bootstrap, topic, ["x", "y"])
    function = RecordingFunction()
    function.failures = 2
    poller = runner(spec, function, loop, kafka_bootstrap)
    poller.start()
    try:
        wait_for(lambda: committed(kafka_bootstrap, spec.consumer_group_id, topic) == 2, "a commit")
    finally:
        poller.stop()

    assert len(function.calls) == 3
    assert function.values(0) == function.values(1) == function.values(2) == ["x", "y"]
    failures = [r for r in caplog.records if "failed on 2 records" in r.getMessage()]
    assert [r.levelname for r in failures] == ["WARNING", "WARNING"]


def test_kafka_mapping_invokes_the_template_function_through_the_runtime(
    kafka_bootstrap: str, loop: LoopThread, tmp_path: Path
) -> None:
    topic = f"esm-{uuid.uuid4().hex[:8]}"
    log, failures = tmp_path / "batches.jsonl", tmp_path / "failures"
    failures.write_text("1")
    model = load_template(WS_APP, overrides={"KafkaTopic": topic, "BatchSize": "10"}, environ={})
    settings = RealtimeSettings(
        websocket=WebSocketSettings(port=0),
        kafka_bootstrap_servers=kafka_bootstrap,
        retry=RetryPolicy(base=0.1, ceiling=0.5),
        consumer_options=tuple(FAST_CONSUMER.items()),
    )
    env = {"BATCH_LOG": str(log), "BATCH_FAILURES": str(failures)}
    runtime = Runtime(model.functions, env_overrides={"BatchFunction": env}, watch_interval=None)
    stack = RealtimeStack(model, settings)
    produce(kafka_bootstrap, topic, ["one", "two"])
    loop.run(runtime.start())
    loop.run(stack.start(runtime))
    try:
        lines = wait_for(
            lambda: (
                [json.loads(x) for x in log.read_text().splitlines()]
                if log.exists() and log.read_text().count("\n") >= 2
                else None
            ),
            "a failed and a successful invocation",
        )
    finally:
        loop.run(stack.close())
        loop.run(runtime.close())

    assert [line["ok"] for line in lines[:2]] == [False, True]
    assert [value for _, _, value in lines[1]["records"]] == ["one", "two"]
    assert lines[1]["eventSource"] == "SelfManagedKafka"


def close_refused_sockets() -> None:
    """Close the sockets kafka-python 3.0 opened to the stopped broker and never closed.

    A connection attempt that the stopped broker refused leaves its socket unclosed and still
    referenced inside kafka-python until the interpreter exits, where it would raise a
    ResourceWarning at the end of the whole test session. They are the only TCP sockets of this
    process that are open, not listening, and were never connected.
    """
    gc.collect()
    for thing in gc.get_objects():
        if type(thing) is not socket.socket or thing.fileno() < 0:  # weak proxies: skipped
            continue
        if thing.family != socket.AF_INET or thing.type != socket.SOCK_STREAM:
            continue
        with contextlib.suppress(OSError):
            if thing.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                continue
            if thing.getsockname()[0] == "0.0.0.0":
                thing.close()


@pytest.fixture
def s3_storage(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3 bucket on moto's server, and the environment Tansu's S3 engine reads."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **credentials)
    s3.create_bucket(Bucket="tansu")
    for name, value in {
        "AWS_ENDPOINT": endpoint,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(name, value)
    yield "s3://tansu/"
    server.stop()


@pytest.mark.slow
def test_kafka_mapping_loses_nothing_across_a_broker_restart(
    kafka_factory: Callable[..., Service], s3_storage: str, loop: LoopThread
) -> None:
    broker = kafka_factory(storage=s3_storage)
    bootstrap = broker.address
    topic = f"esm-{uuid.uuid4().hex[:8]}"
    spec = mapping(topic, batch_size=10, batching_window=0.2)
    function = RecordingFunction()
    poller = runner(spec, function, loop, bootstrap)
    produce(bootstrap, topic, ["a", "b", "c"])
    poller.start()
    try:
        wait_for(lambda: committed(bootstrap, spec.consumer_group_id, topic) == 3, "first commit")

        # A record in flight (invoked, not committed) when the broker goes down.
        function.gate.clear()
        produce(bootstrap, topic, ["d"])
        wait_for(lambda: "d" in function.values(), "d invoked")
        broker.stop()
        broker = kafka_factory(port=broker.port, storage=s3_storage)
        function.gate.set()

        produce(bootstrap, topic, ["e"])
        wait_for(lambda: "e" in function.values(), "e delivered after the restart", timeout=60)
        wait_for(
            lambda: committed(bootstrap, spec.consumer_group_id, topic) == 5,
            "everything committed",
            timeout=60,
        )
    finally:
        function.gate.set()
        poller.stop()
        close_refused_sockets()

    delivered = function.values()
    assert set(delivered) == {"a", "b", "c", "d", "e"}
    assert [delivered.count(v) for v in "abce"] == [1, 1, 1, 1]
