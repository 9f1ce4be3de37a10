"""A chat whose store folder holds a planted link or a foreign file goes on and is told (B6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmsock_widget.models import BuiltinModel
from llmsock_widget.stores import JsonFileStore

from .conftest import Client, MakeServer, is_turn_end, open_client


def _chat(store: JsonFileStore, run: Any, make_server: MakeServer) -> Client:
    """Take one turn in session ``default`` on a server using ``store``; return the client."""
    server = make_server(model=BuiltinModel(tokens_per_second=None), store=store)

    async def scenario() -> Client:
        client = await open_client(server, session="default")
        await client.recv()
        await client.send("hello")
        await client.recv_until(is_turn_end)
        await client.send({"type": "ping", "id": "after"})
        await client.recv_until(lambda m: m.get("name") == "interaction.control")
        await client.ws.close()
        return client

    return run(scenario())  # type: ignore[no-any-return]


def _notes(client: Client) -> list[dict[str, Any]]:
    return [m["data"]["event"] for m in client.seen if m.get("name") == "interaction.diagnostic"]


def test_a_planted_llmsock_link_is_reported_and_the_chat_goes_on(
    tmp_path: Path, run: Any, make_server: MakeServer
) -> None:
    """With `.llmsock` a symlink out of the notebook's folder, the answer still streams, the chat is told
    the session was not saved because of the link, and nothing appears outside."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    try:
        (project / ".llmsock").symlink_to(outside, target_is_directory=True)
    except (OSError, NotImplementedError):
        pytest.skip("cannot create symlinks here")
    client = _chat(JsonFileStore(project / ".llmsock" / "analysis"), run, make_server)
    ends = [m for m in client.seen if is_turn_end(m)]
    assert ends and ends[-1]["data"]["event"]["type"] == "end"
    errors = [n for n in _notes(client) if n["code"] == "store_error"]
    assert errors and "session not saved" in errors[0]["message"] and "symlink" in errors[0]["message"]
    assert list(outside.iterdir()) == []


def test_a_foreign_file_is_left_alone_and_the_chat_is_told(
    tmp_path: Path, run: Any, make_server: MakeServer
) -> None:
    """An unrelated `default.json` in the store folder is never renamed or overwritten; the chat says why."""
    foreign = tmp_path / "default.json"
    foreign.write_bytes(b"not a chat\n")
    client = _chat(JsonFileStore(tmp_path), run, make_server)
    notes = _notes(client)
    assert any(n["code"] == "corrupt_snapshot" and "left in place" in n["message"] for n in notes)
    assert any("not saved" in n["message"] and "not an llmsock snapshot" in n["message"] for n in notes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default.json"]
    assert foreign.read_bytes() == b"not a chat\n"
