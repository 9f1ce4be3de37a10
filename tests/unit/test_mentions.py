"""The kernel's side of ``@name`` mentions: which names a view is offered, and what it gets for one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llmsock_widget.notebook import mentions

ROOT = Path(__file__).resolve().parents[2]


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


# -- mentions of a prompt sent from Python ------------------------------------------------------

PROMPTS = [
    "what is in @df and @api_key?",
    "mail me@example.org about @@x and a.@b",
    "@df, @df and @rows_2; @_private @2nd",
    "code: `@not_me` and\n```python\n@dataclass\nclass A: ...\n```\nbut @yes",
    "an open fence ```@never",
    "unicode @données and @年 too",
    "@" + "n" * 130,
]


def test_python_finds_the_mentions_the_widget_finds() -> None:
    """The names ``mentioned_names`` finds are those of the widget's own ``mentionedNames``
    (js/src/attachments.js), run by node on the same prompts."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("this test needs node (the widget's code runs in it)")
    module = (ROOT / "js" / "src" / "attachments.js").as_uri()
    script = (
        f"import {{ mentionedNames }} from {json.dumps(module)};\n"
        "import { readFileSync } from 'node:fs';\n"
        "const prompts = JSON.parse(readFileSync(0, 'utf8'));\n"
        "process.stdout.write(JSON.stringify(prompts.map((p) => mentionedNames(p))));\n"
    )
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        input=json.dumps(PROMPTS),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    widget = json.loads(done.stdout)
    assert [mentions.mentioned_names(p) for p in PROMPTS] == widget
    assert widget[0] == ["df", "api_key"] and widget[3] == ["yes"]


def test_a_prompts_attachments_are_its_variables_summaries_masked_and_capped() -> None:
    ipython = shell(
        df=[1, 2, 3],
        api_key="sk-live-0123456789abcdefghij",
        big="x" * 20_000,
        **{f"v{n}": n for n in range(10)},
    )
    found = mentions.attachments("@df @api_key @everyone @big", ipython)
    assert [a["name"] for a in found] == ["df", "api_key", "big"]  # @everyone is plain text
    assert found[0]["text"] == mentions.describe("df", ipython.user_ns)["text"]
    assert "sk-live" not in found[1]["text"] and "masked" in found[1]["text"]
    assert len(found[2]["text"]) <= mentions.MAX_ATTACHMENT_CHARS
    many = mentions.attachments(" ".join(f"@v{n}" for n in range(10)), ipython)
    assert [a["name"] for a in many] == [f"v{n}" for n in range(8)]
    assert mentions.attachments("no mention here", ipython) == []
