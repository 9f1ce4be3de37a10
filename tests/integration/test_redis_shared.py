"""One session open on two servers that share a real Redis: live events, hand-over, one runner.

Each server has its own RedisStore on the same Redis and prefix, as two kernels (or a kernel and
``serve``) would. Clients are plain WebSocket clients on each server. Every test that does not
restart Redis runs twice: on one redis-server, and on a Redis Cluster of three (where each
session's keys live on the node of its slot, and each shared session has a reader of its own).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from llmsock_widget.core import snapshot
from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread
from llmsock_widget.stores.redis import RedisStore
from tests.conftest import TIMEOUT
from tests.redisserver import RedisCluster, RedisServer

from .conftest import Client, MakeServer, assert_no_event_lost, is_model, is_turn_end

SESSION = "team"


@dataclass(frozen=True)
class Remote:
    """``python -m llmsock_widget serve`` in a process of its own, on the tests' Redis."""

    proc: subprocess.Popen[str]
    url: str
    token: str
    prefix: str


Redis = RedisServer | RedisCluster


@pytest.fixture(scope="module", params=["redis", "cluster"])
def shared_redis(request: pytest.FixtureRequest) -> Redis:
    """The Redis the module's servers share: one redis-server, or a Redis Cluster of three."""
    redis: Redis = request.getfixturevalue("redis_server" if request.param == "redis" else "redis_cluster")
    return redis


@pytest.fixture(scope="module")
def remote(shared_redis: Redis) -> Iterator[Remote]:
    """A ``serve`` process for the module's tests (each uses sessions of its own), lease 1 s."""
    server = _start_remote(shared_redis, f"t{secrets.token_hex(6)}")
    try:
        yield server
    finally:
        server.proc.terminate()
        _, err = server.proc.communicate(timeout=TIMEOUT)
        assert shared_redis.password not in err


@pytest.fixture
def pair(shared_redis: Redis, remote: Remote, make_server: MakeServer) -> tuple[Remote, ServerThread]:
    """Two servers on one Redis and prefix: ``serve`` in its own process, and one here (lease 1 s)."""
    here = make_server(
        model=BuiltinModel(tokens_per_second=400),
        store=RedisStore(shared_redis.url, prefix=remote.prefix),
        lease=1.0,
    )
    return remote, here


def _start_remote(redis_server: Redis, prefix: str) -> Remote:
    """Start ``serve`` with the Redis URL in its environment (no password on the command line);
    return it once it printed its address."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmsock_widget",
            "serve",
            "--store",
            "redis",
            "--redis-prefix",
            prefix,
            "--lease",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "LLMSOCK_REDIS_URL": redis_server.url},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise AssertionError(f"serve did not start: {proc.communicate(timeout=TIMEOUT)[1]}")
    info = json.loads(line)
    return Remote(proc, info["url"], info["token"], prefix)


def _prompt(text: str, request: str) -> dict[str, Any]:
    return {"type": "user_message", "id": request, "data": {"text": text}}


def _model_events(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["data"]["event"] for m in messages if m.get("name") == "interaction.model"]


def _seqs(messages: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """Each session event's (sequence, type): deltas that waited together come as one, with the last's."""
    return [
        (m["data"]["meta"]["sequence"], m["data"]["event"].get("type", m["name"]))
        for m in messages
        if "sequence" in m.get("data", {}).get("meta", {})
    ]


def _shown(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """What a view shows: the answer's text, and every model event but the deltas that built it."""
    events = _model_events(messages)
    text = "".join(e.get("text", "") for e in events if e["type"] == "delta")
    return text, [e for e in events if e["type"] != "delta"]


async def _open(server: ServerThread | Remote, session: str = SESSION, resume: str | None = None) -> Client:
    """Connect an envelope client to ``session`` on ``server``; return it once its ready came."""
    query = f"?session={session}" + (f"&resume={resume}" if resume else "")
    ws = await connect(
        server.url + query,
        additional_headers={"Authorization": f"Bearer {server.token}"},
        subprotocols=["llmsock.envelope.v1"],  # type: ignore[list-item]
        open_timeout=TIMEOUT,
    )
    client = Client(ws)
    client.ready = (await client.recv())["data"]["event"]  # type: ignore[attr-defined]
    return client


def test_a_turn_on_one_server_streams_into_a_client_of_the_other(pair: Any, run: Any) -> None:
    """A turn started on A streams into B's client in order, nothing lost or twice; B's next
    prompt streams into A's client."""
    a, b = pair

    async def scenario() -> tuple[list[dict[str, Any]], ...]:
        on_a, on_b = await _open(a, "live"), await _open(b, "live")
        await on_a.send(_prompt("/slow 400 /long 60", "u1"))
        seen_a = await on_a.recv_until(is_turn_end)
        seen_b = await on_b.recv_until(is_turn_end)
        await on_b.send(_prompt("from b", "u2"))
        next_a = await on_a.recv_until(is_turn_end)
        next_b = await on_b.recv_until(is_turn_end)
        for client in (on_a, on_b):
            await client.ws.close()
        return seen_a, seen_b, next_a, next_b

    seen_a, seen_b, next_a, next_b = run(scenario())
    assert _shown(seen_b) == _shown(seen_a)  # the same answer and events, in the same order
    assert _shown(seen_a)[0] == _model_events(seen_a)[-1]["text"]
    assert len(_shown(seen_a)[0]) > 200
    for seen in (seen_a + next_a, seen_b + next_b):
        assert_no_event_lost(_seqs(seen))
    assert _model_events(next_a)[-1]["text"] == _model_events(next_b)[-1]["text"]
    assert "from b" in _model_events(next_a)[-1]["text"]


def test_stop_from_the_other_server_stops_the_turn(pair: Any, run: Any) -> None:
    a, b = pair

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        on_a, on_b = await _open(a, "stop"), await _open(b, "stop")
        await on_a.send(_prompt("/long 5000", "u1"))
        await on_b.recv_until(is_model("delta"))
        await on_b.send({"type": "control", "id": "stop", "data": {"type": "abort"}})
        end_b = (await on_b.recv_until(is_turn_end))[-1]["data"]["event"]
        end_a = (await on_a.recv_until(is_turn_end))[-1]["data"]["event"]
        for client in (on_a, on_b):
            await client.ws.close()
        return end_a, end_b

    end_a, end_b = run(scenario())
    assert (end_a["type"], end_a["finishReason"]) == ("end", "aborted")
    assert end_a == end_b


def test_prompts_sent_at_once_from_both_servers_run_one_after_the_other(
    pair: Any, shared_redis: Redis, run: Any
) -> None:
    """Each server's client sends two prompts at once: four turns, one at a time, none lost.

    They run in the order the runner got them (the commands stream's order): the turns do not
    overlap, each client's prompts keep their order, and both views see the same transcript.
    """
    a, b = pair

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        on_a, on_b = await _open(a, "both"), await _open(b, "both")
        await asyncio.gather(
            on_a.send(_prompt("/slow 400 /long 30 a1", "a1")),
            on_b.send(_prompt("/slow 400 /long 30 b1", "b1")),
            on_a.send(_prompt("a2", "a2")),
            on_b.send(_prompt("b2", "b2")),
        )
        seen: list[list[dict[str, Any]]] = []
        for client in (on_a, on_b):
            messages: list[dict[str, Any]] = []
            while sum(1 for e in _model_events(messages) if e["type"] in ("end", "error")) < 4:
                messages += await client.recv_until(is_turn_end)
            seen.append(messages)
        history = await _history(on_b)
        for client in (on_a, on_b):
            await client.ws.close()
        return seen[0], seen[1], history

    seen_a, seen_b, history = run(scenario())
    for seen in (seen_a, seen_b):
        kinds = [e["type"] for e in _model_events(seen) if e["type"] in ("start", "end", "error")]
        assert kinds == ["start", "end"] * 4, kinds  # never two turns at once
        assert_no_event_lost(_seqs(seen))
    assert _shown(seen_a) == _shown(seen_b)
    # The session ran on both servers in turn: each took over the other's revision, so no save
    # was refused, and Redis holds the whole transcript.
    codes = {m["data"]["event"]["code"] for m in seen_a + seen_b if m.get("name") == "interaction.diagnostic"}
    assert not codes & {"store_conflict", "store_error"}, codes
    stored = snapshot.loads(shared_redis.client().hget(f"{a.prefix}:{{both}}:snapshot", "snapshot"))
    assert [m.text for m in stored.messages if m.role == "user"] == [
        m["text"] for m in history if m["role"] == "user"
    ]
    prompts = [m["text"] for m in history if m["role"] == "user"]
    assert sorted(prompts) == sorted(["/slow 400 /long 30 a1", "/slow 400 /long 30 b1", "a2", "b2"])
    assert prompts.index("/slow 400 /long 30 a1") < prompts.index("a2")
    assert prompts.index("/slow 400 /long 30 b1") < prompts.index("b2")


def _is_diagnostic(code: str) -> Any:
    return lambda m: m.get("name") == "interaction.diagnostic" and m["data"]["event"]["code"] == code


async def _history(client: Client) -> list[dict[str, Any]]:
    await client.send({"type": "control", "id": "h", "data": {"type": "get_history"}})
    messages = await client.recv_until(lambda m: m.get("name") == "interaction.control")
    return messages[-1]["data"]["event"]["data"]["messages"]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drop_after=st.integers(min_value=1, max_value=120), drop_from_a=st.booleans())
def test_a_client_dropped_from_one_server_resumes_on_the_other_exactly(
    pair: Any, run: Any, drop_after: int, drop_from_a: bool
) -> None:
    """Drop a client of one server after any number of deltas; it resumes on the other from its
    last sequence: the missed events follow, with no gap and no duplicate, and the text is the
    whole answer."""
    a, b = pair
    first_server, other = (a, b) if drop_from_a else (b, a)
    session = f"resume-{secrets.token_hex(4)}"

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], int]:
        watcher = await _open(other, session)  # the other server has the session open too
        first = await _open(first_server, session)
        await first.send(_prompt("/slow 400 /long 150", "u1"))
        seen: list[dict[str, Any]] = []
        while sum(1 for e in _model_events(seen) if e["type"] == "delta") < drop_after:
            seen.append(await first.recv())
            if is_turn_end(seen[-1]):
                break
        first.ws.transport.abort()
        last = max(s for s, _ in _seqs(seen))
        again = await _open(other, session, resume=f"{first.ready['epoch']}:{last}")  # type: ignore[attr-defined]
        if not is_turn_end(seen[-1]):
            seen += await again.recv_until(is_turn_end)
        await again.ws.close()
        watcher.ws.transport.abort()  # it read nothing: a close handshake would wait behind its backlog
        return first.ready, again.ready, seen, last  # type: ignore[attr-defined]

    ready, resumed, seen, last = run(scenario())
    assert resumed["resumed"] is True and resumed["epoch"] == ready["epoch"]
    assert resumed["replayed"] == resumed["sequence"] - last
    assert_no_event_lost(_seqs(seen))
    assert _shown(seen)[0] == _model_events(seen)[-1]["text"]


def test_a_server_killed_mid_turn_is_taken_over_and_the_chat_goes_on(
    shared_redis: Redis, redis_prefix: str, make_server: MakeServer, run: Any
) -> None:
    """``serve`` runs a long answer; kill -9 it. The other server takes the session over within
    the lease (1 s here): the cut answer ends marked aborted, and the next prompt is answered."""
    doomed = _start_remote(shared_redis, redis_prefix)
    proc = doomed.proc
    try:
        b = make_server(store=RedisStore(shared_redis.url, prefix=redis_prefix), lease=1.0)

        async def scenario() -> tuple[str, dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
            on_a, on_b = await _open(doomed), await _open(b)
            await on_a.send(_prompt("/long 5000", "u1"))
            before = await on_b.recv_until(is_model("delta"))
            before += [await on_b.recv() for _ in range(5)]
            proc.kill()  # SIGKILL: no goodbye, its lease stays until it expires
            proc.wait(TIMEOUT)
            rest = await on_b.recv_until(is_turn_end)
            await on_b.send(_prompt("still there?", "u2"))
            answered = (await on_b.recv_until(is_turn_end))[-1]["data"]["event"]
            history = await _history(on_b)
            await on_b.ws.close()
            on_a.ws.transport.abort()
            return _shown(before + rest)[0], rest[-1]["data"]["event"], answered, history

        streamed, cut, answered, history = run(scenario())
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=TIMEOUT)
    assert (cut["type"], cut["finishReason"]) == ("end", "aborted")
    assert cut["text"] == streamed and streamed  # what was streamed before the kill is kept
    assert answered["type"] == "end" and "still there?" in answered["text"]
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert shared_redis.password not in err


def test_redis_restarted_mid_answer_loses_and_repeats_nothing(
    tmp_path: Path, make_server: MakeServer, run: Any
) -> None:
    """redis-server restarts (without its data) while A streams an answer that B's client shows.

    A keeps the events Redis could not take, adds again those Redis lost, and says so (a
    ``sharing_unavailable`` diagnostic, then ``sharing_restored``); B's reader reconnects. B's
    client gets every event once, in order, and the whole answer.
    """
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        a, b = (
            make_server(
                model=BuiltinModel(tokens_per_second=200), store=RedisStore(redis.url, prefix="p"), lease=1.0
            )
            for _ in range(2)
        )

        async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            on_a, on_b = await _open(a, "restart"), await _open(b, "restart")
            await on_a.send(_prompt("/long 400", "u1"))
            seen_b = [await on_b.recv() for _ in range(30)]
            await asyncio.to_thread(redis.stop)
            await asyncio.to_thread(redis.start)
            seen_b += await on_b.recv_until(is_turn_end)
            seen_a = await on_a.recv_until(is_turn_end)
            for client in (on_a, on_b):
                await client.ws.close()
            return seen_a, seen_b

        seen_a, seen_b = run(scenario())
    finally:
        redis.stop()
    assert_no_event_lost(_seqs(seen_b))
    assert _shown(seen_b)[0] == _model_events(seen_b)[-1]["text"] == _model_events(seen_a)[-1]["text"]
    codes = [m["data"]["event"]["code"] for m in seen_a if m.get("name") == "interaction.diagnostic"]
    assert "sharing_restored" in codes, codes  # after sharing_unavailable if Redis was away long enough


def test_a_prompt_queued_on_a_server_that_dies_is_answered_by_the_next(
    shared_redis: Redis, redis_prefix: str, make_server: MakeServer, run: Any
) -> None:
    """B's client asks while ``serve`` (A) runs a long answer, so A queues the prompt; kill -9 A.
    B takes the session over: the cut answer ends aborted, then the queued prompt is answered."""
    doomed = _start_remote(shared_redis, redis_prefix)
    proc = doomed.proc
    try:
        b = make_server(store=RedisStore(shared_redis.url, prefix=redis_prefix), lease=1.0)

        async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            on_a, on_b = await _open(doomed, "queued"), await _open(b, "queued")
            await on_a.send(_prompt("/long 5000", "u1"))
            seen = await on_b.recv_until(is_model("delta"))
            await on_b.send(_prompt("waiting behind it", "u2"))
            seen += await on_b.recv_until(_is_diagnostic("queued"))  # A took it and queued it
            proc.kill()
            proc.wait(TIMEOUT)
            seen += await on_b.recv_until(is_turn_end)  # the cut answer
            seen += await on_b.recv_until(is_turn_end)  # the queued prompt's
            history = await _history(on_b)
            await on_b.ws.close()
            on_a.ws.transport.abort()
            return seen, history

        seen, history = run(scenario())
    finally:
        proc.kill()
        proc.communicate(timeout=TIMEOUT)
    ends = [e for e in _model_events(seen) if e["type"] in ("end", "error")]
    assert [(e["type"], e.get("finishReason")) for e in ends] == [("end", "aborted"), ("end", "stop")]
    assert "waiting behind it" in ends[1]["text"]
    assert [m["text"] for m in history if m["role"] == "user"] == ["/long 5000", "waiting behind it"]


def test_a_prompt_sent_while_redis_is_down_is_refused_then_works_once_it_is_back(
    tmp_path: Path, make_server: MakeServer, run: Any
) -> None:
    """Redis stops; a prompt from either server's client cannot be handed on: within the store's
    timeout it is refused with ``sharing_unavailable`` (the URL shown without its password), never
    left waiting in silence. Once Redis is back, the same prompt is answered in both views."""
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        a, b = (
            make_server(store=RedisStore(redis.url, prefix="p", timeout=1.0), lease=1.0) for _ in range(2)
        )

        async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
            on_a, on_b = await _open(a, "away"), await _open(b, "away")
            await asyncio.to_thread(redis.stop)
            refused = []
            for client, request in ((on_b, "u1"), (on_a, "u2")):
                await client.send(_prompt("while redis is away", request))
                refused.append((await client.recv_until(_refusal_of(request)))[-1])
            await asyncio.to_thread(redis.start)
            await on_b.send(_prompt("and now?", "u3"))
            seen_b = await on_b.recv_until(is_turn_end)
            seen_a = await on_a.recv_until(is_turn_end)
            for client in (on_a, on_b):
                await client.ws.close()
            return refused, seen_a, seen_b

        refused, seen_a, seen_b = run(scenario())
    finally:
        redis.stop()
    for reply, request in zip(refused, ("u1", "u2"), strict=True):
        error = reply["data"]["event"]
        assert (error["code"], error["requestId"]) == ("sharing_unavailable", request), error
        assert "the prompt was not sent" in error["message"] and redis.password not in error["message"]
    assert _model_events(seen_b)[-1]["text"] == _model_events(seen_a)[-1]["text"]
    assert "and now?" in _model_events(seen_b)[-1]["text"]


def _refusal_of(request: str) -> Any:
    return lambda m: m.get("name") == "interaction.error" and m["data"]["event"].get("requestId") == request


class _Link:
    """A TCP path to Redis through this process, on a loopback port of its own, that can be cut
    (its connections closed and its port refusing) and restored: one server's own network
    trouble, while the other servers still reach Redis."""

    def __init__(self, redis: RedisServer) -> None:
        self.target = redis.port
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = redis.url.replace(f":{redis.port}/", f":{self.port}/")
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._writers |= {writer, up_writer}

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.transport.abort()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))


def test_a_server_cut_off_from_redis_tells_its_views_then_catches_up(
    redis_server: RedisServer, redis_prefix: str, make_server: MakeServer, run: Any
) -> None:
    """B's own link to Redis is cut while A streams an answer: within B's store timeout, B's view
    gets a ``sharing_unavailable`` error reply (no password in it); once the link is back, the
    view gets every event it missed, in order, and the whole answer."""
    link = _Link(redis_server)
    a = make_server(
        model=BuiltinModel(tokens_per_second=100), store=RedisStore(redis_server.url, prefix=redis_prefix)
    )
    b = make_server(store=RedisStore(link.url, prefix=redis_prefix, timeout=1.0), lease=1.0)

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        await link.restore()
        on_a, on_b = await _open(a, "cut"), await _open(b, "cut")
        await on_a.send(_prompt("/long 300", "u1"))
        seen_b = await on_b.recv_until(is_model("delta"))
        await link.cut()
        seen_b += await on_b.recv_until(lambda m: m.get("name") == "interaction.error")
        await link.restore()
        seen_b += await on_b.recv_until(is_turn_end)
        seen_a = await on_a.recv_until(is_turn_end)
        for client in (on_a, on_b):
            await client.ws.close()
        await link.cut()
        return seen_a, seen_b

    seen_a, seen_b = run(scenario())
    [told] = [m["data"]["event"] for m in seen_b if m.get("name") == "interaction.error"]
    assert told["code"] == "sharing_unavailable" and "no new events" in told["message"], told
    assert redis_server.password not in told["message"]
    assert_no_event_lost(_seqs(seen_b))
    assert _shown(seen_b)[0] == _model_events(seen_b)[-1]["text"] == _model_events(seen_a)[-1]["text"]
