"""The llmsock-notebook front-end extension (js/labextension) in JupyterLab 4 and Notebook 7.

The chat widget talks to it with two DOM events; here a plain <div> placed in a cell's output area
stands in for the widget, and the saved .ipynb on disk shows what the extension wrote.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page

from .jupyter_process import JupyterServer
from .notebook import Notebook, write_notebook

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]

# window.llmsockProbe: dispatch the widget's events from inside the first cell's output area (or,
# with outside=true, from an element in no notebook) and report whether the extension acknowledged.
_PROBE = """() => {
    const inside = document.createElement('div');
    document.querySelector('.jp-NotebookPanel .jp-Cell .jp-OutputArea').appendChild(inside);
    const outside = document.createElement('div');
    document.body.appendChild(outside);
    const fire = (outside_, type, detail) => {
        const event = new CustomEvent(type, {bubbles: true, composed: true, cancelable: true, detail});
        return {acked: !(outside_ ? outside : inside).dispatchEvent(event), detail: event.detail};
    };
    window.llmsockProbe = {
        save: ({session, snapshot, version = 1, outside = false}) =>
            fire(outside, 'llmsock:snapshot', {version, session, snapshot}).acked,
        restore: ({outside = false} = {}) => {
            const {acked, detail} = fire(outside, 'llmsock:restore-request',
                                         {version: 1, sessions: null, notebook: null});
            return {acked, sessions: detail.sessions, notebook: detail.notebook};
        },
    };
}"""


def save(page: Page, session: Any, snapshot: Any, **options: Any) -> bool:
    """Dispatch ``llmsock:snapshot``; return whether the extension acknowledged it."""
    event = {"session": session, "snapshot": snapshot, **options}
    return bool(page.evaluate("(event) => window.llmsockProbe.save(event)", event))


def restore(page: Page, **options: Any) -> dict[str, Any]:
    """Dispatch ``llmsock:restore-request``; return ``{acked, sessions, notebook}``."""
    result: dict[str, Any] = page.evaluate("(options) => window.llmsockProbe.restore(options)", options)
    return result


def saved_metadata(notebook: Notebook) -> dict[str, Any]:
    """Save with Ctrl+S and return the metadata of the file on disk."""
    metadata: dict[str, Any] = json.loads(notebook.save())["metadata"]
    return metadata


def test_snapshots_round_trip_through_the_notebook_metadata(
    open_notebook: OpenNotebook, jupyter: JupyterServer
) -> None:
    """Snapshots land in metadata.llmsock of the saved file; restore returns copies of them."""
    notebook = open_notebook(["print('the chat widget would be here')"])
    notebook.run_cell(0)
    page = notebook.page
    page.evaluate(_PROBE)

    assert restore(page) == {"acked": True, "sessions": {}, "notebook": notebook.path.name}

    first = {"turns": [{"role": "user", "text": "hé ✓"}], "n": 1}
    assert save(page, "s-1", first)
    assert save(page, "s_2", {"turns": []})
    metadata = saved_metadata(notebook)
    assert metadata["llmsock"] == {"version": 1, "sessions": {"s-1": first, "s_2": {"turns": []}}}
    assert "llmsock" not in json.dumps(metadata.get("widgets", {}))

    if jupyter.frontend == "lab":  # Notebook 7 shows no dirty mark; the extension is the same code
        # The same value again (keys in another order) is acknowledged but leaves the notebook clean.
        dirty_tab = page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")
        dirty_tab.wait_for(state="detached")
        assert save(page, "s-1", {"n": 1, "turns": [{"text": "hé ✓", "role": "user"}]})
        page.wait_for_timeout(500)  # a change would mark the tab at once
        assert dirty_tab.count() == 0
        assert save(page, "s-1", first | {"n": 2})
        dirty_tab.wait_for(state="attached")
        assert save(page, "s-1", first)

    # Deep copies both ways: changing what was sent or what came back changes nothing stored.
    assert page.evaluate("""() => {
        const snapshot = {turns: [1]};
        window.llmsockProbe.save({session: 'copy', snapshot});
        snapshot.turns.push(2);
        window.llmsockProbe.restore().sessions.copy.turns.push(3);
        return window.llmsockProbe.restore().sessions.copy;
    }""") == {"turns": [1]}

    # Not acknowledged, and nothing written: malformed events, and events from outside any notebook.
    assert not save(page, "no spaces", {"x": 1})
    assert not save(page, "x" * 129, {"x": 1})
    assert not save(page, "ok", [1, 2])
    assert not save(page, "ok", "text")
    assert not save(page, "ok", {"x": 1}, version=2)
    assert not save(page, "outside", {"x": 1}, outside=True)
    assert restore(page, outside=True) == {"acked": False, "sessions": None, "notebook": None}

    # A null snapshot removes its session; the last one removes the key.
    assert save(page, "copy", None)
    assert save(page, "s_2", None)
    assert saved_metadata(notebook)["llmsock"] == {"version": 1, "sessions": {"s-1": first}}
    assert save(page, "s-1", None)
    assert "llmsock" not in saved_metadata(notebook)
    assert restore(page)["sessions"] == {}


def test_file_browser_page_loads_the_extension_without_errors(page: Page, jupyter: JupyterServer) -> None:
    """The file browser (no notebook tracker in Notebook 7) loads the extension; it reports no error."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(f"{error}\n{error.stack}"))
    route = "lab?reset&" if jupyter.frontend == "lab" else "tree?"
    with page.expect_response(
        lambda response: "/lab/extensions/llmsock-notebook/static/remoteEntry." in response.url
    ) as entry:
        page.goto(f"{jupyter.base_url}/{route}token={jupyter.token}")
    assert entry.value.ok
    page.locator(".jp-DirListing").first.wait_for()
    page.wait_for_timeout(1000)  # plugins activate after the first paint
    assert [error for error in errors if "llmsock" in error] == []


def test_odd_session_entries_are_never_restored_and_survive_other_saves(
    page: Page, jupyter: JupyterServer
) -> None:
    """B14: `__proto__`, malformed ids or non-object entries are not restored; saving keeps them."""
    name = "odd_sessions.ipynb"
    path = jupyter.root_dir / name
    write_notebook(path, ["print('the chat widget would be here')"])
    document = json.loads(path.read_text(encoding="utf-8"))
    odd = {
        "__proto__": {"polluted": True, "turns": ["x"]},
        "constructor": {"turns": []},
        "bad id!": {"n": [1, {"k": None}]},
        "s-1": {"turns": [{"role": "user", "text": "kept"}]},
    }
    document["metadata"]["llmsock"] = {"version": 1, "sessions": odd}
    path.write_text(json.dumps(document), encoding="utf-8")
    notebook = Notebook.open(page, jupyter, name, None)
    notebook.run_cell(0)
    page.evaluate(_PROBE)
    # What the notebook model itself makes of these entries, before the extension writes anything.
    held = saved_metadata(notebook)["llmsock"]["sessions"]

    # Only a session id mapped to an object is offered; no prototype of plain objects changes.
    assert restore(page)["sessions"] == {"s-1": odd["s-1"], "constructor": odd["constructor"]}
    assert page.evaluate("() => ({}).polluted === undefined && ({}).turns === undefined")

    # Saving another session writes every other entry back as it was.
    assert save(page, "s-2", {"turns": []})
    assert saved_metadata(notebook)["llmsock"]["sessions"] == held | {"s-2": {"turns": []}}
    assert save(page, "s-1", None)
    expected = {key: value for key, value in held.items() if key != "s-1"} | {"s-2": {"turns": []}}
    assert saved_metadata(notebook)["llmsock"]["sessions"] == expected

    # A session named "__proto__" is refused (the widget then keeps that chat in a file).
    assert not save(page, "__proto__", {"x": 1})
    assert saved_metadata(notebook)["llmsock"]["sessions"] == expected
    assert restore(page)["sessions"] == {"constructor": odd["constructor"], "s-2": {"turns": []}}
