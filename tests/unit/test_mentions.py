"""The kernel's side of ``@name`` mentions: which names a view is offered, and what it gets for one."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace
from typing import Any

from llmsock_widget.notebook import mentions


def shell(**names: Any) -> SimpleNamespace:
    """An IPython shell as mentions reads it: a namespace, and the names IPython hides."""
    own = {"In": [], "Out": {}, "exit": object()}
    return SimpleNamespace(user_ns={**own, **names}, user_ns_hidden=dict(own))


def complete(prefix: str, ipython: SimpleNamespace) -> Any:
    return mentions.answer({"type": "complete", "prefix": prefix, "id": "r1"}, ipython)


def test_completions_list_the_users_names_with_their_kinds_sorted_without_modules_or_private_names() -> None:
    ipython = shell(data=[1, 2], Dog=type("Dog", (), {}), df2={"a": 1}, _private=1, os=os, dump=print, d=3.5)
    reply = complete("d", ipython)
    assert reply == {
        "type": "completions",
        "id": "r1",
        "names": [
            {"name": "d", "kind": "float"},
            {"name": "data", "kind": "list"},
            {"name": "df2", "kind": "dict"},
            {"name": "Dog", "kind": "class"},
            {"name": "dump", "kind": "function"},
        ],
    }
    everything = [entry["name"] for entry in complete("", ipython)["names"]]
    assert "os" not in everything and "_private" not in everything
    assert "In" not in everything and "exit" not in everything  # IPython's own
    ipython.user_ns["exit"] = 3  # a value of the user's: offered
    assert complete("ex", ipython)["names"] == [{"name": "exit", "kind": "int"}]


def test_completions_are_at_most_fifty_and_a_plain_object_shows_its_type() -> None:
    class Point:
        pass

    ipython = shell(p=Point(), **{f"n{i:03}": i for i in range(80)})
    assert len(complete("n", ipython)["names"]) == mentions.MAX_COMPLETIONS == 50
    assert complete("p", ipython)["names"] == [{"name": "p", "kind": "Point"}]


def test_describe_gives_the_summary_and_masks_a_secret_looking_name() -> None:
    ipython = shell(rows=[3, 1, 2], api_key="sk-live-0123456789abcdefghij")
    reply = mentions.answer({"type": "describe", "name": "rows", "id": "r2"}, ipython)
    assert reply == {
        "type": "description",
        "id": "r2",
        "name": "rows",
        "ok": True,
        "text": "rows: list, len 3\n[3, 1, 2]",
    }
    masked = mentions.answer({"type": "describe", "name": "api_key", "id": "r3"}, ipython)
    assert masked is not None and masked["ok"] is True
    assert "sk-live" not in masked["text"] and "masked" in masked["text"]


def test_describe_refuses_an_unknown_or_hidden_name_and_a_bad_request() -> None:
    ipython = shell(rows=[1])
    for name in ("nothing", "In", "rows.append", ""):
        reply = mentions.answer({"type": "describe", "name": name, "id": "r4"}, ipython)
        assert reply is not None and reply["ok"] is False and reply["type"] == "description", name
        assert "text" not in reply and reply["message"]
    assert mentions.answer({"type": "describe", "name": 3, "id": ["x"]}, ipython) == {
        "type": "description",
        "id": None,
        "name": "",
        "ok": False,
        "message": "no name to describe",
    }
    assert mentions.answer({"type": "explain"}, ipython) is None
    assert mentions.answer({"type": "complete", "prefix": 5}, None) == {
        "type": "completions",
        "id": None,
        "names": [],
    }


def test_the_namespace_is_read_from_a_copy_while_another_thread_changes_it() -> None:
    ipython = shell(df=[1])
    stop = threading.Event()

    def churn() -> None:  # a cell that keeps adding and removing names
        i = 0
        while not stop.is_set():
            ipython.user_ns[f"v{i % 500}"] = i
            ipython.user_ns.pop(f"v{(i + 250) % 500}", None)
            i += 1

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(200):
            names = complete("", ipython)["names"]
            assert {"name": "df", "kind": "list"} in names
    finally:
        stop.set()
        worker.join()
