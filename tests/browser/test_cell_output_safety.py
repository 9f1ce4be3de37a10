"""A hostile model's answer shown by ``%%llmsock`` runs nothing, now or when the notebook is reopened.

Real JupyterLab 4 and Notebook 7 in Debian's chromium; the model is an OpenAI-compatible server on
loopback (tests/fakeopenai.py) answering with the texts that once turned into live HTML in
JupyterLab (an ``<img onerror>`` and a ``<script>`` smuggled past a Markdown escaper).  The saved
notebook is signed as trusted, so a live payload would also fire on every reopen: the test saves,
shuts the kernel down, reopens the file without running a cell, and looks again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.fakeopenai import FakeOpenAI, text

from .jupyter_process import JupyterServer
from .notebook import Notebook

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]
Screenshot = Callable[..., Path]

# Each sets a flag on the page if it runs, and opens a dialog, which the test counts.
FIRE = "window.top.__llmsock_fired=(window.top.__llmsock_fired||0)+1;alert(1)"
PAYLOADS = [
    f'```\nx\n```~\n<img src=x onerror="{FIRE}">\n```',
    f'~~~\nx\n~~~`\n<img src=x onerror="{FIRE}">\n~~~',
    f'- a\n  ```\n<img src=x onerror="{FIRE}">\n  ```',
    f"1. a\n   ```\n<script>{FIRE}</script>\n   ```",
    "[a [b] c](javascript:alert(1)) [`]`](javascript:alert(1)) [x][r]\n\n[r]:\n  javascript:alert(1)",
    "$\\href{javascript:alert(1)}{click}$ and \u202egnp.exe",
]
# What each answer shows as text.
SHOWN = ["onerror", "onerror", "onerror", "<script>", "[r]:", "⟨U+202E⟩gnp.exe"]
SETUP = (
    "import os\n"
    "os.environ['HOSTILE_KEY'] = 'sk-test'\n"
    "%load_ext llmsock\n"
    "%llmsock model openai:hostile --base-url {base_url} --api-key-env HOSTILE_KEY"
)


@pytest.fixture
def hostile_model() -> Iterator[FakeOpenAI]:
    """An OpenAI-compatible server on loopback that answers each prompt with the next payload."""
    with FakeOpenAI() as server:
        server.enqueue(*(text([payload[:7], payload[7:]]) for payload in PAYLOADS))
        yield server


def watch(page: Page) -> list[str]:
    """Count every dialog the page opens (a payload that ran calls alert)."""
    dialogs: list[str] = []

    def seen(dialog: object) -> None:
        dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]

    page.on("dialog", seen)
    return dialogs


def assert_inert(page: Page, notebook: Notebook, dialogs: list[str]) -> None:
    """No payload ran, none is a live element, and each is shown to the user as text."""
    for index, shown in enumerate(SHOWN, start=1):
        expect(notebook.output(index)).to_contain_text(shown)
    outputs = page.locator(".jp-Notebook .jp-OutputArea-output")
    assert outputs.locator("img, script, iframe, object, embed").count() == 0
    hrefs = outputs.locator("a[href]").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert not [h for h in hrefs if not h.startswith(("http://", "https://", "mailto:", "#"))], hrefs
    assert page.evaluate("() => window.__llmsock_fired || 0") == 0
    assert dialogs == []


def test_hostile_answers_run_nothing_in_the_cell_or_after_reopening(
    open_notebook: OpenNotebook,
    page: Page,
    jupyter: JupyterServer,
    hostile_model: FakeOpenAI,
    screenshot: Screenshot,
) -> None:
    """Every payload shows as text; after save and reopen (no cell run) still nothing fires."""
    dialogs = watch(page)
    cells = [SETUP.format(base_url=hostile_model.base_url)] + [
        f"%%llmsock\nanswer {n}" for n in range(len(PAYLOADS))
    ]
    notebook = open_notebook(cells)
    notebook.run_cells(*range(len(cells)))
    assert_inert(page, notebook, dialogs)
    screenshot(page.locator(".jp-Notebook"), "ran")

    saved = json.loads(notebook.save())
    for cell in saved["cells"][1:]:
        kinds = {kind for output in cell["outputs"] for kind in output.get("data", {})}
        assert kinds == {"text/html", "text/plain"}, kinds
    jupyter.shutdown_kernels()
    page.goto("about:blank")

    again = Notebook.open(page, jupyter, notebook.path.name, None)
    assert_inert(page, again, dialogs)
    screenshot(page.locator(".jp-Notebook"), "reopened")
