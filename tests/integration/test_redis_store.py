"""RedisStore on a real redis-server: snapshots, revision compare-and-set, TTL, servers, failures."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import replace
from typing import Any

import pytest
from redis.crc import key_slot

from llmsock_widget.core import snapshot
from llmsock_widget.core.session import InteractionState, Message, new_state
from llmsock_widget.errors import CorruptSnapshot, StoreConflict, StoreError
from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import CLOSE_UNAVAILABLE, ServerThread
from llmsock_widget.stores.redis import RedisStore
from tests.conftest import TIMEOUT
from tests.redisserver import RedisServer

from .conftest import Client, MakeServer, is_turn_end, open_client


def _state(session_id: str = "abc", *, revision: int = 1, text: str = "hello") -> InteractionState:
    messages = (
        Message(id="t1:u", role="user", text=text, turn_id="t1", ts=1001),
        Message(id="t1:a", role="assistant", text="hi there", turn_id="t1", ts=1002),
    )
    return replace(
        new_state(session_id, ts=1000, model="builtin"), revision=revision, seq=4, messages=messages
    )


@pytest.fixture
def store(redis_server: RedisServer, redis_prefix: str) -> RedisStore:
    return RedisStore(redis_server.url, prefix=redis_prefix)


def _ours(redis_server: RedisServer) -> int:
    """Return how many connections llmsock's stores hold open on the server."""
    return sum(1 for c in redis_server.client().client_list() if c.get("name") == "llmsock")


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:  # bound, never listening: a connection there is refused
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the store itself --------------------------------------------------------------------------


def test_a_saved_state_loads_back_and_is_deleted(store: RedisStore, run: Any) -> None:
    """save, load, list and delete: what was saved comes back equal, for plain and user ids."""
    user_id = {"sessionId": "abc", "userId": "ann"}

    async def scenario() -> tuple[Any, ...]:
        missing = await store.load("abc")
        assert await store.save("abc", _state()) is True
        assert await store.save(user_id, _state(text="ann's")) is True
        loaded, theirs = await store.load("abc"), await store.load(user_id)
        listed = await store.keys()
        deleted, again = await store.delete("abc"), await store.delete("abc")
        return missing, loaded, theirs, listed, deleted, again, await store.load("abc")

    missing, loaded, theirs, listed, deleted, again, gone = run(scenario())
    assert missing is None and gone is None
    assert loaded == _state() and theirs == _state(text="ann's")
    assert listed == ["abc"]  # plain ids only, as JsonFileStore.keys
    assert (deleted, again) == (True, False)


def test_keys_carry_the_session_as_a_hash_tag(
    store: RedisStore, redis_server: RedisServer, redis_prefix: str, run: Any
) -> None:
    """Every key of a session is ``<prefix>:{<session>}:...``: one Redis Cluster slot per session."""
    run(store.save("team", _state("team")))
    keys = sorted(k.decode() for k in redis_server.client().keys(f"{redis_prefix}:*"))
    assert keys == [f"{redis_prefix}:{{team}}:snapshot"]
    assert store.key_of("team") == keys[0]
    assert key_slot(keys[0].encode()) == key_slot(f"{redis_prefix}:{{team}}:anything-else".encode())


def test_two_stores_racing_on_one_revision_one_wins_the_other_conflicts(
    redis_server: RedisServer, redis_prefix: str, run: Any
) -> None:
    """Two servers' stores save revision 2 of one session at once: exactly one is stored."""
    a = RedisStore(redis_server.url, prefix=redis_prefix)
    b = RedisStore(redis_server.url, prefix=redis_prefix)

    async def scenario() -> tuple[list[Any], InteractionState | None]:
        await a.save("race", _state("race", revision=1))
        outcomes = []
        for round_ in range(20):  # many rounds, so both orders of arrival are exercised
            revision = round_ + 2
            outcomes += await asyncio.gather(
                a.save("race", _state("race", revision=revision, text=f"a{round_}")),
                b.save("race", _state("race", revision=revision, text=f"b{round_}")),
                return_exceptions=True,
            )
        return outcomes, await a.load("race")

    outcomes, stored = run(scenario())
    for pair in zip(outcomes[::2], outcomes[1::2], strict=True):
        assert sorted(type(o).__name__ for o in pair) == ["StoreConflict", "bool"], pair
        conflict = next(o for o in pair if isinstance(o, StoreConflict))
        assert "is not newer than stored" in conflict.message
    assert stored is not None and stored.revision == 21
    winner = "a" if outcomes[-2] is True else "b"
    assert stored.messages[0].text == f"{winner}19"


def test_a_stale_save_is_refused_and_a_repeated_one_is_not(store: RedisStore, run: Any) -> None:
    """An older revision is a StoreConflict; the same save sent twice (a lost reply) is stored once."""

    async def scenario() -> tuple[bool, InteractionState | None]:
        await store.save("s", _state("s", revision=3))
        with pytest.raises(StoreConflict, match="revision 2 is not newer than stored 3"):
            await store.save("s", _state("s", revision=2))
        with pytest.raises(StoreConflict):  # same revision, other content: another writer's
            await store.save("s", _state("s", revision=3, text="other"))
        repeated = await store.save("s", _state("s", revision=3))
        return repeated, await store.load("s")

    repeated, stored = run(scenario())
    assert repeated is True and stored == _state("s", revision=3)


def test_a_ttl_is_set_and_refreshed_by_each_save(
    redis_server: RedisServer, redis_prefix: str, run: Any
) -> None:
    """ttl=60: the snapshot expires 60 s after its last save; without a ttl it never expires."""
    client = redis_server.client()
    with_ttl = RedisStore(redis_server.url, prefix=redis_prefix, ttl=60)
    key = with_ttl.key_of("t")
    run(with_ttl.save("t", _state("t", revision=1)))
    first = client.pttl(key)
    client.pexpire(key, 5000)  # as if 55 s went by
    run(with_ttl.save("t", _state("t", revision=2)))
    refreshed = client.pttl(key)
    run(RedisStore(redis_server.url, prefix=redis_prefix).save("t", _state("t", revision=3)))
    assert 55_000 < first <= 60_000
    assert 55_000 < refreshed <= 60_000
    assert client.pttl(key) == -1  # a store without a ttl keeps it for good


def test_a_corrupt_snapshot_is_moved_aside_and_the_session_starts_again(
    store: RedisStore, redis_server: RedisServer, run: Any
) -> None:
    """A snapshot that cannot be decoded is renamed to ``...:corrupt:<ms>``; a new save then succeeds."""
    client = redis_server.client()
    client.hset(store.key_of("bad"), mapping={"revision": "7", "snapshot": '{"schema": 1, "sessi'})

    async def scenario() -> CorruptSnapshot:
        with pytest.raises(CorruptSnapshot) as info:
            await store.load("bad")
        await store.save("bad", _state("bad", revision=1))
        return info.value

    error = run(scenario())
    assert error.moved_to is not None and error.moved_to.startswith(f"{store.prefix}:{{bad}}:corrupt:")
    assert client.hget(error.moved_to, "snapshot") == b'{"schema": 1, "sessi'
    assert json.loads(client.hget(store.key_of("bad"), "snapshot"))["revision"] == 1


def test_a_key_holding_something_else_is_a_store_error_and_stays(
    store: RedisStore, redis_server: RedisServer, run: Any
) -> None:
    """A plain string at a session's key is never overwritten: saving says why."""
    client = redis_server.client()
    client.set(store.key_of("other"), "not ours")
    with pytest.raises(StoreError, match="could not save session other: WRONGTYPE"):
        run(store.save("other", _state("other")))
    assert client.get(store.key_of("other")) == b"not ours"


# -- servers on Redis ---------------------------------------------------------------------------


async def _turn(client: Client, text: str) -> None:
    await client.send(text)
    await client.recv_until(is_turn_end)


async def _history(client: Client) -> list[str]:
    await client.send({"type": "control", "id": "h", "data": {"type": "get_history"}})
    reply = (await client.recv_until(lambda m: m.get("name") == "interaction.control"))[-1]
    return [m["text"] for m in reply["data"]["event"]["data"]["messages"]]


def _server(make_server: MakeServer, store: RedisStore) -> ServerThread:
    return make_server(model=BuiltinModel(tokens_per_second=None), store=store)


def test_a_chat_outlives_a_server_restart(
    make_server: MakeServer, redis_server: RedisServer, redis_prefix: str, run: Any
) -> None:
    """A server on Redis stops; a new one (a new store object too) shows the same chat."""
    first = _server(make_server, RedisStore(redis_server.url, prefix=redis_prefix))

    async def talk() -> None:
        client = await open_client(first, session="kept", dialect="envelope")
        await client.recv()
        await _turn(client, "remember the llama")
        await client.ws.close()

    run(talk())
    assert _ours(redis_server) >= 1
    first.stop()
    assert _ours(redis_server) == 0  # stopping the server closed its store's connections
    second = _server(make_server, RedisStore(redis_server.url, prefix=redis_prefix))

    async def look() -> list[str]:
        client = await open_client(second, session="kept", dialect="envelope")
        await client.recv()
        texts = await _history(client)
        await client.ws.close()
        return texts

    texts = run(look())
    assert texts[0] == "remember the llama" and len(texts) == 2


def test_two_servers_on_one_redis_see_each_others_saved_history(
    make_server: MakeServer, redis_server: RedisServer, redis_prefix: str, run: Any
) -> None:
    """A turn saved by server A is in the history server B loads, and B's turn is in A's next load."""
    a = _server(make_server, RedisStore(redis_server.url, prefix=redis_prefix))
    b = _server(make_server, RedisStore(redis_server.url, prefix=redis_prefix))

    async def visit(server: ServerThread, text: str) -> list[str]:
        client = await open_client(server, session="team", dialect="envelope")
        await client.recv()
        await _turn(client, text)
        texts = await _history(client)
        await client.ws.close()
        await client.ws.wait_closed()
        # The session leaves the server once nobody watches it: the next visit loads it from Redis.
        await _until_on(server, lambda: "team" not in server.hub.sessions)
        return texts

    async def scenario() -> tuple[list[str], list[str]]:
        seen_by_b = await visit(b, "bravo") if await visit(a, "alpha") else []
        return seen_by_b, await visit(a, "alpha again")

    seen_by_b, seen_by_a = run(scenario())
    assert [t for t in seen_by_b if t in ("alpha", "bravo")] == ["alpha", "bravo"]
    assert [t for t in seen_by_a if t in ("alpha", "bravo", "alpha again")] == [
        "alpha",
        "bravo",
        "alpha again",
    ]


async def _until_on(server: ServerThread, condition: Any) -> None:
    """Wait until ``condition()`` holds, checked on the server's loop (its state's thread), bounded."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wrap_future(server.submit(asyncio.wait_for(poll(), TIMEOUT)))


# -- Redis unreachable, wrong password, bad URLs ------------------------------------------------


def test_redis_down_at_start_refuses_the_session_with_the_url_but_not_the_password(
    make_server: MakeServer, run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens at the URL: the chat is closed 1011 naming the URL, never its password."""
    port = _closed_port()
    store = RedisStore(f"redis://:sesame-123@127.0.0.1:{port}/0", timeout=TIMEOUT / 4)
    server = _server(make_server, store)

    async def scenario() -> tuple[int | None, str | None]:
        client = await open_client(server, session="down")
        await client.ws.wait_closed()
        return client.ws.close_code, client.ws.close_reason

    with caplog.at_level(logging.DEBUG):
        code, reason = run(scenario())
        with pytest.raises(StoreError) as info:
            store.ping_sync()
    shown = f"redis://:***@127.0.0.1:{port}/0"
    assert code == CLOSE_UNAVAILABLE
    assert reason == f"store_error: Redis at {shown} is unavailable: connection refused"
    assert info.value.message == f"Redis at {shown} is unavailable: connection refused"
    assert "sesame-123" not in caplog.text and shown in caplog.text


def test_a_wrong_password_is_said_and_never_echoed(
    redis_server: RedisServer, make_server: MakeServer, run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong password: 'authentication failed', in the error, the close reason and the logs, without it."""
    wrong = "not-the-password-42"
    store = RedisStore(redis_server.url_with(wrong))
    server = _server(make_server, store)

    async def scenario() -> tuple[str | None, StoreError]:
        client = await open_client(server, session="locked")
        await client.ws.wait_closed()
        with pytest.raises(StoreError) as info:
            await store.save("locked", _state("locked"))
        return client.ws.close_reason, info.value

    with caplog.at_level(logging.DEBUG):
        reason, error = run(scenario())
        with pytest.raises(StoreError) as pinged:
            store.ping_sync()
    for said in (reason or "", error.message, pinged.value.message, caplog.text, repr(store)):
        assert wrong not in said and redis_server.password not in said
    assert "authentication failed" in error.message and "redis://:***@127.0.0.1:" in error.message
    assert reason is not None and "authentication failed" in reason


def test_a_store_whose_redis_restarts_says_so_then_works_again(
    tmp_path_factory: pytest.TempPathFactory, run: Any
) -> None:
    """Redis stops: a save is a StoreError naming the URL; once it is back the same store saves again."""
    own = RedisServer(tmp_path_factory.mktemp("redis-restart"))  # its own: restarting it disturbs no test
    own.start()
    try:
        store = RedisStore(own.url, timeout=TIMEOUT / 4)

        async def scenario() -> StoreError:
            await store.save("r", _state("r", revision=1))
            own.stop()
            with pytest.raises(StoreError) as info:
                await store.save("r", _state("r", revision=2))
            own.start()  # empty again: nothing was saved to disk
            await store.save("r", _state("r", revision=3))
            return info.value

        error = run(scenario())
        assert (
            error.message
            == f"Redis at redis://:***@127.0.0.1:{own.port}/0 is unavailable: connection refused"
        )
        assert own.client().hget("llmsock:{r}:snapshot", "revision") == b"3"
    finally:
        own.stop()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw-secret@host:notaport", "redis://:***@host:notaport"),
        ("http://x", "http://x"),
        ("redis://user:pw-secret@:6379/0", "redis://user:***@:6379/0"),
        ("redis://:pw-secret@host:6379/zero", "redis://:***@host:6379/zero"),
        ("pw-secret@host", "host"),
    ],
)
def test_a_bad_url_is_a_value_error_without_the_password(url: str, shown: str) -> None:
    with pytest.raises(ValueError) as info:
        RedisStore(url)
    assert "pw-secret" not in str(info.value)
    assert shown in str(info.value)


# -- the command line -----------------------------------------------------------------------------


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "llmsock_widget", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def test_serve_with_redis_down_exits_2_naming_the_url_without_the_password() -> None:
    port = _closed_port()
    proc = _serve("--store", f"redis://:sesame-9@127.0.0.1:{port}/0")
    out, err = proc.communicate(timeout=TIMEOUT * 3)
    assert proc.returncode == 2 and out == ""
    assert err.strip().splitlines()[-1] == (
        f"llmsock: Redis at redis://:***@127.0.0.1:{port}/0 is unavailable: connection refused"
    )
    assert "sesame-9" not in err


def test_serve_keeps_sessions_in_the_redis_of_llmsock_redis_url(
    redis_server: RedisServer, redis_prefix: str, run: Any
) -> None:
    """``serve --store redis`` takes the URL from LLMSOCK_REDIS_URL: no password on the command line."""
    proc = _serve("--store", "redis", env={"LLMSOCK_REDIS_URL": redis_server.url})
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())

        async def talk() -> None:
            from websockets.asyncio.client import connect

            headers = {"Authorization": f"Bearer {info['token']}"}
            async with connect(f"{info['url']}?session=cli", additional_headers=headers) as ws:
                client = Client(ws)
                await client.recv()
                await _turn(client, "from the command line")

        run(talk())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=TIMEOUT)
    stored = redis_server.client().hget("llmsock:{cli}:snapshot", "snapshot")
    redis_server.client().delete("llmsock:{cli}:snapshot")
    assert stored is not None and snapshot.loads(stored).messages[0].text == "from the command line"
    assert redis_server.password not in err


def test_leaving_redis_copies_every_chat_it_holds(
    make_server: MakeServer, redis_server: RedisServer, redis_prefix: str, run: Any
) -> None:
    """set_store away from Redis copies the chats Redis holds, not only the open ones."""
    from llmsock_widget.stores.memory import MemoryStore

    redis_store = RedisStore(redis_server.url, prefix=redis_prefix)
    server = _server(make_server, redis_store)

    async def fill() -> None:
        for name in ("one", "two"):
            assert await redis_store.save(name, _state(name))

    server.submit(fill()).result(TIMEOUT)
    memory = MemoryStore()
    assert server.set_store(memory) == 2
    assert sorted(memory.keys()) == ["one", "two"] and memory.load("one") == _state("one")
