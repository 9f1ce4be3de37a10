"""Real JupyterLab / Notebook 7 servers driven by Playwright and Debian's chromium.

Fixtures:
    jupyter     one server per front end for the whole session (parametrized "lab", "notebook")
    browser     one headless chromium for the whole session
    page        a fresh browser context per test; a full-page screenshot if the test fails;
                the test's kernels are shut down afterwards
    open_notebook(cells) -> Notebook    writes <test>.ipynb, opens it, waits for an idle kernel
    screenshot(locator, moment="")      saves test-artifacts/browser/<frontend>-<test>[-moment].png

Artifacts (server logs, screenshots, browser console logs) go to test-artifacts/browser/.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.conftest import TIMEOUT, TIMEOUT_FACTOR

from .jupyter_process import FRONTENDS, REMOTE_HOST, JupyterServer
from .notebook import Notebook

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
    f"--host-resolver-rules=MAP {REMOTE_HOST} 127.0.0.1",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
VIEWPORT = {"width": 1280, "height": 1000}
# A chat view's time for a rung to answer (LLMSOCK_CONNECT_TIMEOUT, 4 s by default) scales with the
# other waits: on a loaded machine a view must not give up a working rung and fall back to the comm.
CONNECT_TIMEOUT = 4.0 * TIMEOUT_FACTOR


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip the browser tests, saying why, where Debian's chromium is missing."""
    if CHROMIUM.exists():
        return
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"no chromium at {CHROMIUM}"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    """Keep each phase's report on the item, so fixtures can tell a failed test at teardown."""
    report: pytest.TestReport = yield
    setattr(item, f"report_{report.when}", report)
    return report


def artifact_name(item: pytest.Item, frontend: str) -> str:
    """Return ``<frontend>-<test function>``, the stem of this test's artifacts."""
    name = getattr(item, "originalname", None) or item.name
    return f"{frontend}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}"


@pytest.fixture(scope="session", params=FRONTENDS)
def jupyter(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[JupyterServer]:
    """A running ``jupyter lab`` or ``jupyter notebook`` on 127.0.0.1 (log in test-artifacts/browser/)."""
    frontend = request.param
    base = tmp_path_factory.mktemp(f"jupyter-{frontend}")
    server = JupyterServer(
        frontend=frontend,
        root_dir=base / "root",
        home=base / "home",
        log_path=ARTIFACTS / f"jupyter-{frontend}.log",
        extra_env={"LLMSOCK_CONNECT_TIMEOUT": f"{CONNECT_TIMEOUT:g}"},
    )
    server.start(timeout=TIMEOUT * 6)
    try:
        yield server
    finally:
        server.stop(timeout=TIMEOUT)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, launched once for the session."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        expect.set_options(timeout=TIMEOUT * 1000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser, jupyter: JupyterServer) -> Iterator[Page]:
    """A page in a fresh context; on failure a full-page screenshot; afterwards no kernel left."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stem = artifact_name(request.node, jupyter.frontend)
    (ARTIFACTS / f"{stem}-failure.png").unlink(missing_ok=True)  # from an earlier run
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT * 1000)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"[{message.type}] {message.text}"))
    page.on("pageerror", lambda error: console.append(f"[pageerror] {error}"))
    try:
        yield page
    finally:
        failed = any(
            getattr(request.node, f"report_{when}", None) is not None
            and getattr(request.node, f"report_{when}").failed
            for when in ("setup", "call")
        )
        if failed:
            try:
                page.screenshot(path=str(ARTIFACTS / f"{stem}-failure.png"), full_page=True)
            except Exception as exc:  # a dead page must not hide the test's own failure
                console.append(f"[harness] no failure screenshot: {exc}")
        (ARTIFACTS / f"{stem}-console.log").write_text("\n".join(console) + "\n", encoding="utf-8")
        context.close()
        jupyter.shutdown_kernels()


@pytest.fixture
def open_notebook(
    request: pytest.FixtureRequest, page: Page, jupyter: JupyterServer
) -> Callable[[list[str]], Notebook]:
    """Return ``open(cells) -> Notebook``: this test's notebook, open, its kernel idle."""
    name = f"{request.node.originalname}.ipynb"

    def open_(cells: list[str]) -> Notebook:
        return Notebook.open(page, jupyter, name, cells)

    return open_


@pytest.fixture
def screenshot(request: pytest.FixtureRequest, jupyter: JupyterServer) -> Callable[..., Path]:
    """Return ``shoot(locator, moment="")``: save the element's screenshot under test-artifacts."""
    stem = artifact_name(request.node, jupyter.frontend)

    def shoot(locator: Locator, moment: str = "") -> Path:
        path = ARTIFACTS / (f"{stem}-{moment}.png" if moment else f"{stem}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        locator.screenshot(path=str(path))
        return path

    return shoot
