"""The SSE route, server start/stop, persistence across servers, and the command line."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llmsock_widget.errors import ServerStartError
from llmsock_widget.models import BuiltinModel
from llmsock_widget.server.thread import ServerThread, start_server
from llmsock_widget.stores import JsonFileStore
from tests.conftest import TIMEOUT

from .conftest import MakeServer, is_turn_end, open_client


def sse_request(
    server: ServerThread, method: str, body: str | None = None, session: str | None = None
) -> tuple[int, list[tuple[str, dict]]]:
    """Make an SSE request; return the status and the (event name, data) pairs until the stream ends."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    path = "/sse" + (f"?session={session}" if session else "")
    conn.request(method, path, body=body, headers={"Authorization": f"Bearer {server.token}"})
    response = conn.getresponse()
    raw = response.read().decode()
    conn.close()
    events: list[tuple[str, dict]] = []
    if response.status != 200:
        return response.status, events
    for block in raw.split("\n\n"):
        if not block.strip():
            continue
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return response.status, events


def test_sse_post_streams_one_turn(server: ServerThread) -> None:
    """POST /sse with a prompt streams seed-002 style `event:`/`data:` blocks until the turn ends."""
    status, events = sse_request(server, "POST", "Hello over SSE", session="sse-1")
    assert status == 200
    names = [name for name, _ in events]
    assert names[0] == "interaction.session" and "interaction.user" in names
    model = [data["event"] for name, data in events if name == "interaction.model"]
    assert model[0]["type"] == "start" and model[-1]["type"] == "end"
    assert "".join(m["text"] for m in model if m["type"] == "delta") == model[-1]["text"]
    assert "Hello over SSE" in model[-1]["text"]


def test_sse_get_follows_a_session_turn_started_over_websocket(server: ServerThread, run) -> None:
    """GET /sse on a session receives the events of a turn another client starts."""
    received: list[tuple[str, dict]] = []
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    conn.request("GET", "/sse?session=watched", headers={"Authorization": f"Bearer {server.token}"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    ready = threading.Event()
    ended = threading.Event()

    def follow() -> None:
        block = ""
        while not ended.is_set():
            line = response.readline().decode()
            if not line:
                return
            if line == "\n":
                fields = dict(item.split(": ", 1) for item in block.strip().split("\n"))
                received.append((fields["event"], json.loads(fields["data"])))
                if fields["event"] == "interaction.session":
                    ready.set()
                if (
                    fields["event"] == "interaction.model"
                    and json.loads(fields["data"])["event"]["type"] == "end"
                ):
                    ended.set()
                block = ""
            else:
                block += line

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    assert ready.wait(TIMEOUT)

    async def scenario() -> None:
        client = await open_client(server, session="watched")
        await client.recv()
        await client.send("seen by the SSE follower")
        await client.recv_until(is_turn_end)
        await client.ws.close()

    run(scenario())
    assert ended.wait(TIMEOUT)
    conn.close()
    thread.join(TIMEOUT)
    text = [
        d["event"]["text"] for n, d in received if n == "interaction.model" and d["event"]["type"] == "end"
    ]
    assert "seen by the SSE follower" in text[0]


def test_sse_bad_prompt_is_400(server: ServerThread) -> None:
    """An empty prompt POSTed to /sse is a 400 with an error code."""
    status, _ = sse_request(server, "POST", "   ")
    assert status == 400


def test_start_stop_frees_port_and_stop_is_idempotent() -> None:
    """stop() frees the port (it can be bound again) and a second stop() does nothing."""
    server = start_server()
    port = server.port
    assert server.running and port > 0
    assert server.url == f"ws://127.0.0.1:{port}/ws"
    server.stop()
    server.stop()
    assert not server.running
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
    assert not any(t.name == "llmsock-server" and t.is_alive() for t in threading.enumerate())


def test_port_in_use_is_a_clear_error_with_no_thread_left() -> None:
    """Starting on a port already in use raises ServerStartError and leaves no server thread."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        before = {t.ident for t in threading.enumerate()}
        with pytest.raises(ServerStartError, match=str(port)):
            ServerThread(port=port).start()
        after = {t.ident for t in threading.enumerate() if t.is_alive()}
    assert after <= before


def test_stop_during_a_stream_closes_clients_with_1001(run, make_server: MakeServer) -> None:
    """Stopping the server mid-answer closes connections with 1001 (going away) and returns."""
    server = make_server(model=BuiltinModel(tokens_per_second=None))

    async def scenario() -> int | None:
        client = await open_client(server)
        await client.recv()
        await client.send("/hold 2")
        await client.recv_until(
            lambda m: m["name"] == "interaction.model" and m["data"]["event"]["type"] == "delta"
        )
        await __import__("asyncio").to_thread(server.stop)
        await client.ws.wait_closed()
        return client.ws.close_code

    assert run(scenario()) == 1001


def test_json_store_keeps_sessions_across_servers(tmp_path: Path, run, make_server: MakeServer) -> None:
    """A new server on the same store directory continues a session: history, sequence and context."""
    first = make_server(model=BuiltinModel(tokens_per_second=None), store=JsonFileStore(tmp_path))

    async def chat(server: ServerThread, text: str) -> tuple[dict, list[dict]]:
        client = await open_client(server, session="kept")
        ready = await client.recv()
        await client.send(text)
        events = await client.recv_until(is_turn_end)
        await client.ws.close()
        return ready, events

    _, events = run(chat(first, "the password hint is octopus"))
    first.stop()
    assert (tmp_path / "kept.json").exists()
    last_seq = events[-1]["data"]["meta"]["sequence"]
    second = make_server(model=BuiltinModel(tokens_per_second=None), store=JsonFileStore(tmp_path))
    ready, events = run(chat(second, "what was the hint?"))
    assert ready["data"]["event"]["created"] is False
    assert ready["data"]["event"]["sequence"] > last_seq
    assert "octopus" in events[-1]["data"]["event"]["text"]


def test_corrupt_snapshot_is_reported_and_session_starts_fresh(
    tmp_path: Path, run, make_server: MakeServer
) -> None:
    """A corrupt session file is moved aside, reported as a diagnostic, and the session works."""
    (tmp_path / "broken.json").write_text('{"schema": 1, "sessionId": ')
    server = make_server(model=BuiltinModel(tokens_per_second=None), store=JsonFileStore(tmp_path))

    async def scenario() -> tuple[dict, list[dict]]:
        client = await open_client(server, session="broken")
        ready = await client.recv()
        await client.send("hello again")
        events = await client.recv_until(is_turn_end)
        await client.ws.close()
        return ready, events

    ready, events = run(scenario())
    assert ready["data"]["event"]["created"] is True
    assert events[-1]["data"]["event"]["type"] == "end"
    assert any(p.name.startswith("broken.json.corrupt") for p in tmp_path.iterdir())


@pytest.mark.parametrize("store", [["--store-dir", "{dir}"], ["--store", "file:{dir}"]])
def test_cli_serve_prints_json_line_and_stops_on_sigterm(tmp_path: Path, store: list[str]) -> None:
    """`python -m llmsock_widget serve` prints url/token/sse as one JSON line and exits 0 on SIGTERM."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    store_args = [arg.format(dir=tmp_path) for arg in store]
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmsock_widget", "serve", *store_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        info = json.loads(line)
        assert info["url"].startswith("ws://127.0.0.1:") and info["url"].endswith("/ws")
        assert info["sse"].endswith("/sse") and len(info["token"]) >= 40
        port = int(info["url"].rsplit(":", 1)[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
        conn.request("GET", "/status", headers={"Authorization": f"Bearer {info['token']}"})
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0
        stderr = proc.stderr.read()  # type: ignore[union-attr]
        assert info["token"] not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_unknown_store_exits_2() -> None:
    """`serve --store` with an unknown kind says which ones exist and exits 2."""
    result = subprocess.run(
        [sys.executable, "-m", "llmsock_widget", "serve", "--store", "sqlite:x"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 2
    assert "use memory or file:<directory>" in result.stderr and result.stdout == ""


def test_cli_port_in_use_exits_2() -> None:
    """`serve --port` on a busy port prints a clear error and exits 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "llmsock_widget", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    assert result.returncode == 2
    assert "cannot listen" in result.stderr and result.stdout == ""


def test_sse_post_of_a_ping_answers_and_ends(server: ServerThread) -> None:
    """POST /sse with a ping (not a prompt) answers the pong and ends the stream."""
    status, events = sse_request(server, "POST", json.dumps({"type": "ping", "id": "p"}), session="sse-ping")
    assert status == 200
    assert [name for name, _ in events] == ["interaction.session", "interaction.control"]
    assert events[-1][1]["event"]["type"] == "pong"


def test_sse_post_body_not_utf8_is_400(server: ServerThread) -> None:
    """A POST body that is not UTF-8 is a 400, not a server error."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    conn.request("POST", "/sse", body=b"\xff\xfe", headers={"Authorization": f"Bearer {server.token}"})
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 400 and body["error"]["code"] == "invalid_message"
