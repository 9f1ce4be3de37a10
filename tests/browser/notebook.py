"""Drive one open notebook in JupyterLab or Notebook 7: kernel readiness, running cells, saving.

Both front ends share JupyterLab's notebook widgets, so the selectors are the same:
``.jp-Notebook`` holds ``.jp-Cell`` elements, each with an ``.jp-InputPrompt`` (``[ ]:``,
``[*]:``, ``[3]:``), an ``.jp-InputArea-editor`` and an ``.jp-OutputArea``; the notebook's
toolbar has the execution indicator (``data-status`` = the kernel's status) and the
kernel-name button ("No Kernel" until a kernel is attached). The menu bar is the same too: Run All
and Restart Kernel are chosen there, by command id, as a user does.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.conftest import TIMEOUT

from .jupyter_process import JupyterServer

_RUNNING_PROMPT = re.compile(r"^\s*\[\*\]:\s*$")
_ERROR_OUTPUT = re.compile(r"^(Traceback|\w*(Error|Exception)\b|KeyboardInterrupt)", re.MULTILINE)

# "dialog" while a kernel chooser is up, "ready" once a kernel is attached and idle, else false.
_KERNEL_STATE = """() => {
    const dialog = document.querySelector('.jp-Dialog');
    if (dialog) return 'dialog';
    const indicator = document.querySelector('.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator');
    const name = document.querySelector('.jp-NotebookPanel-toolbar .jp-Toolbar-kernelName');
    const attached = name !== null && !/no kernel/i.test(name.textContent);
    return attached && indicator !== null && indicator.dataset.status === 'idle' ? 'ready' : false;
}"""


# Remember each code cell's prompt that shows "[*]" (queued or running) from now on: a cell that
# ran shows "[n]" before and after Run All (a saved notebook keeps its counts), so "it ran" is
# "it showed [*] since".
_WATCH_RUNS = """() => {
    const ran = new WeakSet();
    window.__llmsockRan = ran;
    const mark = () => {
        for (const prompt of document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))
            if (prompt.textContent.includes('[*]')) ran.add(prompt);
    };
    new MutationObserver(mark).observe(
        document.querySelector('.jp-Notebook'), {subtree: true, childList: true, characterData: true});
    mark();
}"""
# Watch one cell's prompt for "[*]" (a run of it started) from now on; _CELL_RAN: it has ended.
_WATCH_CELL = """(index) => {
    const prompt = document.querySelectorAll('.jp-Notebook .jp-Cell')[index].querySelector('.jp-InputPrompt');
    const watch = {prompt, ran: false};
    window.__llmsockCell = watch;
    const observer = new MutationObserver(() => {
        if (prompt.textContent.includes('[*]')) { watch.ran = true; observer.disconnect(); }
    });
    observer.observe(prompt, {subtree: true, childList: true, characterData: true});
}"""
_CELL_RAN = """(before) => {
    const {prompt, ran} = window.__llmsockCell;
    const text = prompt.textContent.trim();
    return (ran || text !== before.trim()) && /^\\[\\d+\\]:$/.test(text);
}"""
# Run All has ended: every code cell has shown "[*]" since the watch began, and none shows it now
# (each shows its number, or "[ ]" if an error above stopped the run before it).
_RUN_ENDED = """() => {
    const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
    return prompts.length > 0 && prompts.every(
        (prompt) => window.__llmsockRan.has(prompt) && !prompt.textContent.includes('[*]'));
}"""
# Record every status the toolbar's execution indicator takes from now on.
_WATCH_STATUS = """() => {
    const seen = [];
    window.__llmsockStatuses = seen;
    const indicator = document.querySelector('.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator');
    new MutationObserver(() => seen.push(indicator.dataset.status)).observe(
        indicator, {attributes: true, attributeFilter: ['data-status']});
}"""
_RESTARTED = """() => {
    const indicator = document.querySelector('.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator');
    return window.__llmsockStatuses.includes('restarting') && indicator.dataset.status === 'idle';
}"""
_CODE_PROMPTS = ".jp-Notebook .jp-CodeCell .jp-InputPrompt"
# An output a reader sees as an error: a traceback or anything on stderr (both front ends render
# an error output with the stderr mime type).
_ERROR_OUTPUTS = ", ".join(
    f".jp-Notebook .jp-OutputArea-output{mime}"
    for mime in ('[data-mime-type*="error"]', '[data-mime-type="application/vnd.jupyter.stderr"]')
)


def write_notebook(path: Path, cells: list[str]) -> None:
    """Write a notebook of code ``cells`` for the installed python3 kernel."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(notebook, path)


class Notebook:
    """A notebook opened in ``page``; cells are addressed by their 0-based index."""

    def __init__(self, page: Page, server: JupyterServer, path: Path) -> None:
        self.page = page
        self.server = server
        self.path = path

    @classmethod
    def open(
        cls, page: Page, server: JupyterServer, name: str, cells: list[str] | None, host: str = "127.0.0.1"
    ) -> Notebook:
        """Write notebook ``name`` into the server's root dir (unless ``cells`` is None: reopen
        the file as it is), open it from ``host`` and wait for an idle kernel."""
        path = server.root_dir / name
        if cells is not None:
            write_notebook(path, cells)
        else:
            cells = nbformat.read(path, as_version=4).cells
        notebook = cls(page, server, path)
        url = server.notebook_url(name, host)
        # "reset": JupyterLab must not reopen the notebooks of earlier tests from its workspace.
        page.goto(url.replace("?", "?reset&", 1) if server.frontend == "lab" else url)
        expect(page.locator(".jp-Notebook .jp-Cell")).to_have_count(len(cells), timeout=TIMEOUT * 3000)
        notebook.wait_for_kernel_ready()
        return notebook

    # -- the kernel ------------------------------------------------------------------------------

    def wait_for_kernel_ready(self) -> None:
        """Wait until a kernel is attached and idle, accepting the "Select Kernel" dialog if it shows."""
        timeout = TIMEOUT * 3000
        state = self.page.wait_for_function(_KERNEL_STATE, timeout=timeout).json_value()
        if state == "dialog":
            self.page.locator(".jp-Dialog").get_by_role("button", name="Select").click()
            expect(self.page.locator(".jp-Dialog")).to_have_count(0)
            self.page.wait_for_function(f"() => ({_KERNEL_STATE})() === 'ready'", timeout=timeout)

    @property
    def kernel_status(self) -> Locator:
        """The toolbar's execution indicator; its ``data-status`` is the kernel's status."""
        return self.page.locator(".jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator")

    def interrupt_kernel(self) -> None:
        """Interrupt the kernel with the notebook toolbar's button."""
        self.page.locator('.jp-NotebookPanel-toolbar [data-command="notebook:interrupt-kernel"]').click()

    # -- cells -----------------------------------------------------------------------------------

    def cell(self, index: int) -> Locator:
        """The cell at ``index``."""
        return self.page.locator(".jp-Notebook .jp-Cell").nth(index)

    def prompt(self, index: int) -> Locator:
        """The execution prompt of cell ``index``: ``[ ]:``, ``[*]:`` or ``[n]:``."""
        return self.cell(index).locator(".jp-InputPrompt")

    def output(self, index: int) -> Locator:
        """The output area of cell ``index``."""
        return self.cell(index).locator(".jp-OutputArea")

    def run_cell(self, index: int, *, wait: bool = True, timeout: float = TIMEOUT) -> None:
        """Run cell ``index`` (focus its editor, Ctrl+Enter).

        With ``wait``, wait until it has finished and fail with its traceback if it raised;
        otherwise wait only until it is queued or running.
        """
        before = self.prompt(index).inner_text()
        # Focus the cell's editor itself, as a click into it does, but without the click's
        # coordinates: a chat above that grows as it restores its history moves the cell between
        # the scroll and the click, and the click lands in the chat. Ctrl+Enter goes where the
        # focus is, so press it only once the editor has it.
        editor = self.cell(index).locator(".jp-InputArea-editor .cm-content")
        editor.scroll_into_view_if_needed()
        editor.focus()
        expect(editor).to_be_focused()
        self.page.evaluate(_WATCH_CELL, index)
        self.page.keyboard.press("Control+Enter")
        if not wait:
            expect(self.prompt(index)).to_have_text(_RUNNING_PROMPT)
            return
        # Ended: the prompt showed "[*]" (or changed) and shows a number now. After a kernel
        # restart the new count may equal the old one ([1] again), and a short cell can go from
        # [1] through [*] back to [1] between two polls of the page, so the page watches.
        self.page.wait_for_function(_CELL_RAN, arg=before, timeout=timeout * 1000)
        self.check_no_error(index)

    def run_cells(self, *indices: int) -> None:
        """Run the cells at ``indices`` one after the other, each to its end."""
        for index in indices:
            self.run_cell(index)

    def check_no_error(self, index: int) -> None:
        """Fail with the traceback if cell ``index`` shows an error output."""
        # Both front ends render error outputs with the stderr mime type: look for the traceback.
        stderr = self.output(index).locator('[data-mime-type="application/vnd.jupyter.stderr"]')
        for text in stderr.all_inner_texts():
            if _ERROR_OUTPUT.search(text):
                raise AssertionError(f"cell {index} raised:\n{text}")

    # -- the front end's own commands ------------------------------------------------------------

    def choose_menu(self, menu: str, command: str) -> None:
        """Open ``menu`` of the menu bar and choose the item of ``command`` (both front ends share
        JupyterLab's menus, e.g. "Run" / ``runmenu:run-all``)."""
        self.page.get_by_role("menuitem", name=menu, exact=True).click()
        self.page.locator(f'.lm-Menu-item[data-command="{command}"]').click()

    def run_all(self, timeout: float = TIMEOUT * 6) -> list[str]:
        """Run > Run All Cells; wait until the run has ended and the kernel is idle.

        Returns the code cells' prompts: ``[n]:`` for each cell that ran, ``[ ]:`` for a cell an
        error above kept from running.
        """
        self.page.evaluate(_WATCH_RUNS)
        self.choose_menu("Run", "runmenu:run-all")
        self.page.wait_for_function(_RUN_ENDED, timeout=timeout * 1000)
        expect(self.kernel_status).to_have_attribute("data-status", "idle", timeout=timeout * 1000)
        return [" ".join(text.split()) for text in self.page.locator(_CODE_PROMPTS).all_inner_texts()]

    def restart_kernel_from_menu(self) -> None:
        """Kernel > Restart Kernel..., confirm, and wait until the new kernel is idle."""
        self.page.evaluate(_WATCH_STATUS)
        self.choose_menu("Kernel", "kernelmenu:restart")
        dialog = self.page.locator(".jp-Dialog")
        expect(dialog).to_contain_text("Restart Kernel?")
        dialog.locator("button.jp-mod-accept").click()
        expect(dialog).to_have_count(0)
        self.page.wait_for_function(_RESTARTED, timeout=TIMEOUT * 3000)

    def error_outputs(self) -> list[str]:
        """Return the text of every error or stderr output of the notebook (none: an empty list)."""
        return self.page.locator(_ERROR_OUTPUTS).all_inner_texts()

    # -- saving ----------------------------------------------------------------------------------

    def save(self) -> str:
        """Save with Ctrl+S; wait for the server to accept the file; return its text on disk."""
        # Focus the notebook (command mode): shortcuts are suppressed inside the chat's textarea.
        # A key press that lands while the front end is busy (a save in flight, focus moving)
        # can be lost: press again, a bounded number of times.
        for attempt in range(3):
            self.prompt(0).click()
            try:
                with self.page.expect_response(
                    lambda response: response.request.method == "PUT" and "/api/contents/" in response.url,
                    timeout=TIMEOUT * 500,
                ) as saved:
                    self.page.keyboard.press("Control+s")
            except PlaywrightTimeoutError:
                if attempt == 2:
                    raise
                continue
            assert saved.value.ok, f"saving failed: HTTP {saved.value.status}"
            return self.path.read_text(encoding="utf-8")
        raise AssertionError("unreachable")
