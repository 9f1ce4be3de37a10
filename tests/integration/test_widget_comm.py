"""The chat widget's side of its comm: hello/connect, comm links, snapshots for the notebook.

The widget runs here outside a kernel (ipywidgets gives it a comm that goes nowhere); what it
would send to its views is recorded from its ``send``.  The server is this process's real one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import traitlets

from llmsock_widget.core import snapshot
from llmsock_widget.core.session import Message, new_state
from llmsock_widget.notebook import kernel
from llmsock_widget.notebook.widget import MAX_LINKS, ChatWidget
from tests.conftest import TIMEOUT


class Recorder:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.changed = threading.Condition()

    def __call__(self, content: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        with self.changed:
            self.sent.append(json.loads(json.dumps(content)))
            self.changed.notify_all()

    def wait_for(self, predicate: Any) -> dict[str, Any]:
        with self.changed:
            assert self.changed.wait_for(lambda: any(predicate(m) for m in self.sent), TIMEOUT), self.sent[
                -3:
            ]
            return next(m for m in self.sent if predicate(m))


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh kernel runtime, working in a temporary directory, the notebook store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMSOCK_STORE", "notebook")
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    kernel.runtime.reset()
    kernel.get_server(model="builtin:0")
    try:
        yield tmp_path
    finally:
        kernel.runtime.reset()


def make_widget(session: str = "default") -> tuple[ChatWidget, Recorder]:
    widget = ChatWidget(session=session)
    recorder = Recorder()
    widget.send = recorder  # type: ignore[method-assign]
    return widget, recorder


def say(widget: ChatWidget, content: dict[str, Any]) -> None:
    widget._on_message(widget, content, [])


def test_hello_is_answered_with_the_address_and_allows_the_page(kernel_env: Path) -> None:
    widget, views = make_widget()
    say(widget, {"kind": "hello", "origin": "https://hub.example.org", "plugin": False, "snapshots": {}})
    connect = views.wait_for(lambda m: m["kind"] == "connect")
    server = kernel.current_server()
    assert server is not None
    assert connect["url"] == server.url and connect["token"] == server.token
    assert connect["transport"] == "auto" and "no notebook plugin" in connect["store"]
    assert connect["model"] == server.model.name == "builtin"  # named in the chat's header
    assert connect["models"] == ["builtin"]  # the header's model picker
    guard = server.guard
    views.sent.clear()
    # The page's origin and Host are allowed (asynchronously, on the server's loop).
    done = threading.Event()
    server.call_soon(done.set)
    assert done.wait(TIMEOUT)
    assert "https://hub.example.org" in guard.allowed_origins
    assert "hub.example.org" in guard.hosts()
    # ... and by the next server of this kernel too.
    kernel.stop_server()
    again = kernel.get_server()
    assert "https://hub.example.org" in again.guard.allowed_origins


def test_a_bad_origin_is_not_allowed(kernel_env: Path) -> None:
    widget, views = make_widget()
    say(widget, {"kind": "hello", "origin": "null"})
    views.wait_for(lambda m: m["kind"] == "connect")
    server = kernel.current_server()
    assert server is not None and "null" not in server.guard.allowed_origins


def test_a_comm_link_streams_and_takes_commands(kernel_env: Path) -> None:
    widget, views = make_widget("talk")
    say(widget, {"kind": "link", "link": "v1", "session": "talk", "resume": None})
    views.wait_for(lambda m: m["kind"] == "linked")
    say(widget, {"kind": "send", "link": "v1", "frame": "/echo over the comm"})

    def ended(message: dict[str, Any]) -> bool:
        return message["kind"] == "frames" and any('"type":"end"' in f for f in message["frames"])

    views.wait_for(ended)
    frames = [json.loads(f) for m in views.sent if m["kind"] == "frames" for f in m["frames"]]
    end = next(f["data"]["event"] for f in frames if f["data"]["event"].get("type") == "end")
    assert end["text"] == "over the comm"


def test_a_widget_keeps_a_bounded_number_of_links_and_closes_them_with_itself(kernel_env: Path) -> None:
    widget, views = make_widget()
    for i in range(MAX_LINKS + 1):
        say(widget, {"kind": "link", "link": f"v{i}", "session": "default"})
    views.wait_for(lambda m: m["kind"] == "unlinked" and m["link"] == "v0")
    first = next(m for m in views.sent if m["kind"] == "unlinked")
    assert first["link"] == "v0" and first["code"] == 1001
    assert len(widget._links) == MAX_LINKS
    widget.close()
    views.wait_for(lambda m: m["kind"] == "unlinked" and m["link"] == f"v{MAX_LINKS}")
    closed = {m["link"] for m in views.sent if m["kind"] == "unlinked"}
    assert closed == {f"v{i}" for i in range(MAX_LINKS + 1)}


def test_a_view_with_the_plugin_gets_snapshots_and_restores_the_notebooks_chat(kernel_env: Path) -> None:
    state = new_state("kept", ts=1000, model="builtin")
    from dataclasses import replace

    earlier = replace(
        state,
        seq=4,
        revision=2,
        messages=(
            Message(id="t1:u", role="user", text="remember Oslo", turn_id="t1", ts=1000),
            Message(id="t1:a", role="assistant", text="Oslo noted.", turn_id="t1", ts=1001),
        ),
    )
    widget, views = make_widget("kept")
    say(
        widget,
        {
            "kind": "hello",
            "origin": "http://127.0.0.1:8888",
            "plugin": True,
            "snapshots": {"kept": snapshot.encode(earlier)},
        },
    )
    connect = views.wait_for(lambda m: m["kind"] == "connect")
    assert connect["restored"] == {"kept": "kept"}
    assert "notebook metadata" in connect["store"]
    say(widget, {"kind": "link", "link": "v1", "session": "kept"})
    views.wait_for(lambda m: m["kind"] == "linked")
    say(widget, {"kind": "send", "link": "v1", "frame": "where?"})
    saved = views.wait_for(lambda m: m["kind"] == "snapshot" and len(m["snapshot"]["messages"]) == 4)
    texts = [m["text"] for m in saved["snapshot"]["messages"]]
    assert texts[0] == "remember Oslo" and 'earlier you asked "remember Oslo"' in texts[3]
    server = kernel.current_server()
    assert server is not None and server.token not in json.dumps(saved)
    assert not (kernel_env / ".llmsock").exists(), "with the plugin, no files"


def test_a_vscode_webview_origin_is_allowed_exactly_and_adds_no_host(kernel_env: Path) -> None:
    widget, views = make_widget()
    origin = "vscode-webview://1q2w3e4r5t6y7u8i9o0p"
    say(widget, {"kind": "hello", "origin": origin, "plugin": False})
    views.wait_for(lambda m: m["kind"] == "connect")
    server = kernel.current_server()
    assert server is not None
    done = threading.Event()
    server.call_soon(done.set)
    assert done.wait(TIMEOUT)
    assert origin in server.guard.allowed_origins
    assert "vscode-webview://1q2w3e4r5t6y7u8i9o0p.evil" not in server.guard.allowed_origins
    assert server.guard.extra_hosts == set(), "a webview's requests come from the machine itself"


def test_a_widget_model_must_be_set_up_in_the_kernel(kernel_env: Path) -> None:
    """ChatWidget(model=...) names a model of %llmsock model; another name says which there are."""
    assert ChatWidget(model="builtin").model == "builtin"
    with pytest.raises(
        traitlets.TraitError, match=r"model 'openai:nope' is not set up in this kernel \(set up: builtin\)"
    ):
        ChatWidget(model="openai:nope")
    widget = ChatWidget(system="Be terse.", temperature=0.2, max_tokens=300)
    assert (
        repr(widget) == "ChatWidget(session='default', system='Be terse.', temperature=0.2, max_tokens=300)"
    )
    with pytest.raises(traitlets.TraitError):
        widget.model = "nope"
    assert widget.model is None


def test_a_widget_takes_the_settings_the_notebook_kept_for_its_session(kernel_env: Path) -> None:
    """After a restart, ChatWidget() takes the snapshot's settings where it has none (Python sees them)."""
    widget, views = make_widget()
    widget.temperature = 1.0  # set here: kept
    kept = {"system": "Be terse.", "temperature": 0.3, "maxTokens": 50, "model": "openai:not-set-up"}
    hello = {"kind": "hello", "origin": "http://localhost:8888", "plugin": True}
    say(widget, hello | {"snapshots": {"default": {"schema": 1, "settings": kept}}})
    views.wait_for(lambda m: m["kind"] == "connect")
    assert (widget.system, widget.temperature, widget.max_tokens) == ("Be terse.", 1.0, 50)
    assert widget.model is None, "a model this kernel has not set up is left out"
    other, views = make_widget("other")
    say(other, hello | {"snapshots": {"default": {"schema": 1, "settings": kept}}})
    views.wait_for(lambda m: m["kind"] == "connect")
    assert other.system is None, "another session's settings are not taken"
