"""RedisStore on a real Redis Cluster (three redis-server primaries): the same store, any node's URL.

Shared sessions on the cluster are covered by test_redis_shared.py (each of its tests runs on
the cluster too); here: snapshots spread over the nodes, compare-and-set across two stores,
listing every node's sessions, and the errors a user gets for a URL of the wrong kind.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from redis.crc import key_slot

from llmsock_widget.core.session import InteractionState, Message, new_state
from llmsock_widget.errors import StoreConflict, StoreError
from llmsock_widget.stores.redis import RedisStore
from tests.redisserver import RedisCluster, RedisServer

SESSIONS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")


def _state(session_id: str, *, revision: int = 1, text: str = "hello") -> InteractionState:
    messages = (Message(id="t1:u", role="user", text=text, turn_id="t1", ts=1001),)
    state = new_state(session_id, ts=1000, model="builtin")
    return replace(state, revision=revision, seq=2, messages=messages)


def _nodes_holding(cluster: RedisCluster, store: RedisStore, sessions: tuple[str, ...]) -> set[int]:
    """Return the ports of the nodes whose slots hold the sessions' snapshots."""
    client = cluster.client()
    try:
        return {client.get_node_from_key(store.key_of(s)).port for s in sessions}
    finally:
        client.close()


def test_sessions_on_every_node_save_load_list_and_delete(
    redis_cluster: RedisCluster, redis_prefix: str, run: Any
) -> None:
    store = RedisStore(redis_cluster.url, prefix=redis_prefix)
    assert store.cluster
    assert len(_nodes_holding(redis_cluster, store, SESSIONS)) == 3  # the test spans the cluster

    async def scenario() -> tuple[list[str], list[InteractionState | None], bool, list[str]]:
        for number, session in enumerate(SESSIONS):
            await store.save(session, _state(session, text=f"hello {number}"))
        listed = await store.keys()
        loaded = [await store.load(session) for session in SESSIONS]
        deleted = await store.delete("bravo")
        after = await store.keys()
        await store.aclose()
        return listed, loaded, deleted, after

    listed, loaded, deleted, after = run(scenario())
    assert listed == sorted(SESSIONS)
    assert [s.messages[0].text if s else None for s in loaded] == [f"hello {n}" for n in range(len(SESSIONS))]
    assert deleted and after == sorted(set(SESSIONS) - {"bravo"})


def test_two_stores_on_different_nodes_never_overwrite_each_other(
    redis_cluster: RedisCluster, redis_prefix: str, run: Any
) -> None:
    """Each store's URL names another node; the session's slot decides where both write."""
    first = RedisStore(redis_cluster.url, prefix=redis_prefix)
    second_url = redis_cluster.url.replace(str(redis_cluster.nodes[0].port), str(redis_cluster.nodes[2].port))
    second = RedisStore(second_url, prefix=redis_prefix)

    async def scenario() -> tuple[Any, InteractionState | None]:
        await first.save("race", _state("race", revision=1))
        outcomes = await asyncio.gather(
            first.save("race", _state("race", revision=2, text="from first")),
            second.save("race", _state("race", revision=2, text="from second")),
            return_exceptions=True,
        )
        stored = await second.load("race")
        await first.aclose()
        await second.aclose()
        return outcomes, stored

    outcomes, stored = run(scenario())
    assert sorted(type(o).__name__ for o in outcomes) == ["StoreConflict", "bool"]
    winner = "from first" if outcomes[0] is True else "from second"
    assert isinstance(outcomes[1 if outcomes[0] is True else 0], StoreConflict)
    assert stored is not None and stored.messages[0].text == winner


def test_a_plain_url_to_a_cluster_node_says_to_use_redis_cluster(
    redis_cluster: RedisCluster, redis_prefix: str, run: Any
) -> None:
    """A ``redis://`` URL reaches one node; a session whose slot is elsewhere gets a clear error."""
    plain = RedisStore(redis_cluster.nodes[0].url, prefix=redis_prefix)
    elsewhere = next(
        s for s in SESSIONS if key_slot(plain.key_of(s).encode()) >= 16_384 // 3
    )  # the first node holds the first third of the slots

    async def scenario() -> StoreError:
        with pytest.raises(StoreError) as caught:
            await plain.load(elsewhere)
        await plain.aclose()
        return caught.value

    error = run(scenario())
    assert "redis+cluster://" in error.message and "MOVED" in error.message
    assert redis_cluster.password not in error.message


def test_a_cluster_url_to_a_plain_redis_says_it_is_not_a_cluster(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url.replace("redis://", "redis+cluster://"))
    with pytest.raises(StoreError) as caught:
        store.ping_sync()
    assert "not a Redis Cluster" in caught.value.message
    assert redis_server.password not in caught.value.message


def test_a_wrong_password_on_a_cluster_is_said_and_never_echoed(
    redis_cluster: RedisCluster, run: Any
) -> None:
    wrong = "not-" + redis_cluster.password
    store = RedisStore(redis_cluster.url.replace(redis_cluster.password, wrong))
    with pytest.raises(StoreError) as caught:
        store.ping_sync()
    assert "authentication failed" in caught.value.message and wrong not in caught.value.message

    async def scenario() -> StoreError:
        with pytest.raises(StoreError) as caught:
            await store.load("alpha")
        return caught.value

    error = run(scenario())
    assert "authentication failed" in error.message and wrong not in error.message


def test_a_cluster_url_with_a_database_other_than_0_is_refused() -> None:
    with pytest.raises(ValueError, match="only database 0"):
        RedisStore("redis+cluster://:secret@127.0.0.1:7000/1")
