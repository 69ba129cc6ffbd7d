"""RoomStore against a real Redis: records, rooms, expiry, idempotent close, pruning, outages."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from devstack.services import Service
from gateway.redis_client import close_client
from gateway.rooms import CONNECTION_TTL_SECONDS, RoomStore, StoreUnavailable
from tests.support.redis_cluster import RedisClusterNodes


@pytest.fixture
def store(redis_url: str) -> Iterator[RoomStore]:
    client = redis.Redis.from_url(redis_url)
    yield RoomStore(client)
    client.close()


def test_open_records_user_projects_and_two_hour_expiry(
    store: RoomStore, redis_client: redis.Redis
) -> None:
    store.open("c-1", user_id="u-1", projects=["p-2", "p-1", "p-1"], connected_at=1_700_000_000_000)

    record = store.get("c-1")
    assert record is not None
    assert record.user_id == "u-1"
    assert record.projects == {"p-1", "p-2"}
    assert record.connected_at == 1_700_000_000_000
    assert record.rooms == frozenset()
    ttl = redis_client.ttl("ws:conn:{c-1}")
    assert CONNECTION_TTL_SECONDS - 5 <= ttl <= CONNECTION_TTL_SECONDS


def test_get_unknown_connection_returns_none(store: RoomStore) -> None:
    assert store.get("never-opened") is None


def test_join_adds_member_notes_room_in_record_and_sets_room_expiry(
    store: RoomStore, redis_client: redis.Redis
) -> None:
    store.open("c-1", user_id="u-1", projects=["p-1"], connected_at=1)

    store.join("c-1", "p-1")

    assert store.members("p-1") == ["c-1"]
    record = store.get("c-1")
    assert record is not None
    assert record.rooms == {"p-1"}
    assert redis_client.ttl("ws:room:{p-1}") > CONNECTION_TTL_SECONDS - 5


def test_join_without_record_still_bounds_record_lifetime(
    store: RoomStore, redis_client: redis.Redis
) -> None:
    # GIVEN a connection whose $connect record is missing (Redis flushed, say)
    # WHEN it joins a room THEN the record it creates still expires
    store.join("c-orphan", "p-1")

    assert 0 < redis_client.ttl("ws:conn:{c-orphan}") <= CONNECTION_TTL_SECONDS


def test_join_does_not_extend_existing_record_expiry(
    store: RoomStore, redis_client: redis.Redis
) -> None:
    store.open("c-1", user_id="u-1", projects=["p-1"], connected_at=1)
    redis_client.expire("ws:conn:{c-1}", 100)

    store.join("c-1", "p-1")

    assert redis_client.ttl("ws:conn:{c-1}") <= 100


def test_leave_removes_one_room_and_reports_membership(store: RoomStore) -> None:
    store.open("c-1", user_id="u-1", projects=["p-1", "p-2"], connected_at=1)
    store.join("c-1", "p-1")
    store.join("c-1", "p-2")

    assert store.leave("c-1", "p-1") is True
    assert store.leave("c-1", "p-1") is False

    assert store.members("p-1") == []
    assert store.members("p-2") == ["c-1"]
    record = store.get("c-1")
    assert record is not None
    assert record.rooms == {"p-2"}


def test_close_leaves_every_room_and_deletes_record(store: RoomStore) -> None:
    store.open("c-1", user_id="u-1", projects=["p-1", "p-2"], connected_at=1)
    store.open("c-2", user_id="u-2", projects=["p-1"], connected_at=1)
    for project in ("p-1", "p-2"):
        store.join("c-1", project)
    store.join("c-2", "p-1")

    assert store.close("c-1") == {"p-1", "p-2"}

    assert store.get("c-1") is None
    assert store.members("p-1") == ["c-2"]
    assert store.members("p-2") == []


def test_close_twice_or_without_record_changes_nothing(store: RoomStore) -> None:
    store.open("c-2", user_id="u-2", projects=["p-1"], connected_at=1)
    store.join("c-2", "p-1")

    assert store.close("c-1") == frozenset()
    store.close("c-2")
    assert store.close("c-2") == frozenset()

    assert store.members("p-1") == []


def test_prune_removes_member_whose_record_already_expired(
    store: RoomStore, redis_client: redis.Redis
) -> None:
    store.open("c-1", user_id="u-1", projects=["p-1"], connected_at=1)
    store.join("c-1", "p-1")
    redis_client.delete("ws:conn:{c-1}")

    assert store.prune("c-1", "p-1") == {"p-1"}

    assert store.members("p-1") == []


def test_keys_carry_hash_tags_so_each_key_maps_to_one_cluster_slot(store: RoomStore) -> None:
    assert store.connection_key("abc=") == "ws:conn:{abc=}"
    assert store.room_key("p-1") == "ws:room:{p-1}"


def test_store_operations_raise_store_unavailable_when_redis_is_down(
    redis_factory: Callable[..., Service],
) -> None:
    service = redis_factory()
    client = redis.Redis.from_url(
        f"redis://{service.address}/0", socket_timeout=0.5, socket_connect_timeout=0.5
    )
    store = RoomStore(client)
    service.kill()

    with pytest.raises(StoreUnavailable) as caught:
        store.join("c-1", "p-1")
    assert isinstance(caught.value.__cause__, redis.RedisError)
    with pytest.raises(StoreUnavailable):
        store.members("p-1")
    client.close()


def test_store_round_trip_on_a_real_redis_cluster(redis_cluster: RedisClusterNodes) -> None:
    # Record and rooms sit in different slots; every command touches one key, so cluster mode
    # (ElastiCache) needs no CROSSSLOT-free tricks.
    client = RedisCluster.from_url(redis_cluster.url)
    store = RoomStore(client, prefix="ws-test:")
    slots = {
        client.keyslot(store.connection_key("c-1")),
        client.keyslot(store.room_key("p-1")),
        client.keyslot(store.room_key("p-2")),
    }
    assert len(slots) > 1

    store.open("c-1", user_id="u-1", projects=["p-1", "p-2"], connected_at=1)
    store.join("c-1", "p-1")
    store.join("c-1", "p-2")
    assert store.members("p-2") == ["c-1"]
    assert store.leave("c-1", "p-2") is True
    assert store.prune("c-1", "p-1") == {"p-1"}

    assert store.get("c-1") is None
    assert store.members("p-1") == []
    close_client(client)
