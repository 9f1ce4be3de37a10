"""The kernel's settings: one reader of LLMSOCK_* variables, the values it reads, the runtime's store."""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from llmsock_widget.notebook import kernel
from llmsock_widget.notebook.settings import TRANSPORTS, Settings
from llmsock_widget.stores import JsonFileStore, MemoryStore

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "llmsock_widget"
READER = PACKAGE / "notebook" / "settings.py"
CONFIGURATION_MD = REPO / "docs" / "configuration.md"

# LLMSOCK_* variables of the table that Settings does not read, and why.
NOT_READ_BY_SETTINGS = {
    "LLMSOCK_TOKEN": "the CLI's default *name* for --token-env; it reads the variable that option names",
    "LLMSOCK_TEST_TIMEOUT_FACTOR": "read by the test suite only (tests/conftest.py)",
}


# -- finding environment reads in source --------------------------------------------------------


def _is_environ(node: ast.expr) -> bool:
    """Say whether ``node`` is ``environ``, ``os.environ`` or ``<anything>.environ``."""
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return name == "environ"


def _read_key(node: ast.AST) -> ast.expr | None:
    """Return the key expression if ``node`` reads the environment, else None."""
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("getenv", "getenvb"):
            return node.args[0]
        if isinstance(func, ast.Attribute) and func.attr in ("get", "pop") and _is_environ(func.value):
            return node.args[0]
    if isinstance(node, ast.Subscript) and _is_environ(node.value):
        return node.slice
    if isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
        return node.left
    return None


def llmsock_reads(source: str) -> list[str]:
    """Return the ``LLMSOCK_*`` names that ``source`` reads from the environment by a literal."""
    found = []
    for node in ast.walk(ast.parse(source)):
        key = _read_key(node)
        if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.startswith("LLMSOCK_"):
            found.append(key.value)
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os\nos.environ.get('LLMSOCK_STORE', 'x')", ["LLMSOCK_STORE"]),
        ("import os\nos.environ['LLMSOCK_STORE']", ["LLMSOCK_STORE"]),
        ("import os\nos.getenv('LLMSOCK_STORE')", ["LLMSOCK_STORE"]),
        (
            "from os import environ, getenv\nenviron.get('LLMSOCK_A')\ngetenv('LLMSOCK_B')",
            ["LLMSOCK_A", "LLMSOCK_B"],
        ),
        ("import os\n'LLMSOCK_STORE' in os.environ", ["LLMSOCK_STORE"]),
        ("def f():\n    return __import__('os').environ.get('LLMSOCK_X')", ["LLMSOCK_X"]),
        ("import os\nos.environ.get('OPENAI_API_KEY')", []),
        ("p.add_argument('--token-env', default='LLMSOCK_TOKEN')", []),
        ("import os\nos.environ.get(name)", []),
    ],
    ids=["get", "subscript", "getenv", "from-import", "in", "nested", "other", "not-a-read", "not-a-literal"],
)
def test_environ_read_finder(source: str, expected: list[str]) -> None:
    """The finder sees every way of reading an LLMSOCK_* variable, and nothing else."""
    assert sorted(llmsock_reads(source)) == sorted(expected)


def test_only_settings_reads_llmsock_variables() -> None:
    """No module but notebook/settings.py reads an LLMSOCK_* environment variable."""
    readers = {
        str(path.relative_to(REPO)): names
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != READER and (names := llmsock_reads(path.read_text(encoding="utf-8")))
    }
    assert not readers, f"read LLMSOCK_* variables through notebook/settings.py instead: {readers}"


# -- the variables Settings reads are the ones the documentation lists -----------------------------


class Recording(Mapping[str, str]):
    """An environment that remembers which variables were looked up."""

    def __init__(self, values: dict[str, str]) -> None:
        self._known = values
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self._known[key]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("Settings must look up the variables it reads, not walk the environment")

    def __len__(self) -> int:
        return len(self._known)


def _environment_table() -> list[list[str]]:
    """Return the rows of the table of docs/configuration.md, section 6, as lists of cells."""
    text = CONFIGURATION_MD.read_text(encoding="utf-8")
    start = re.search(r"^## 6\. Environment variables$", text, re.MULTILINE)
    assert start is not None, "docs/configuration.md has no section 6, Environment variables"
    end = re.compile(r"^## ", re.MULTILINE).search(text, start.end())
    body = text[start.end() : end.start() if end else len(text)]
    lines = [line for line in body.splitlines() if line.startswith("|")][2:]  # no header, no rule
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]


def _variables(cell: str) -> set[str]:
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", cell))


def test_settings_reads_exactly_the_variables_the_docs_say_the_kernel_reads() -> None:
    """The variables Settings looks up are the table's rows read by the kernel (configuration.md, 6)."""
    environ = Recording({})
    Settings.from_environ(environ)
    rows = _environment_table()
    by_the_kernel = {name for row in rows if row[1].startswith("the kernel") for name in _variables(row[0])}
    assert environ.asked == by_the_kernel


def test_every_documented_llmsock_variable_is_read_by_settings_or_explained() -> None:
    """Each LLMSOCK_* variable of the table is one Settings reads, or one it does not read on purpose."""
    environ = Recording({})
    Settings.from_environ(environ)
    documented = {name for row in _environment_table() for name in _variables(row[0])}
    ours = {name for name in documented if name.startswith("LLMSOCK_")}
    assert ours - environ.asked == set(NOT_READ_BY_SETTINGS)


# -- what Settings makes of the environment ------------------------------------------------------


def test_an_empty_environment_gives_the_defaults() -> None:
    """With no variable set: the notebook store, the auto transport, no proxy template, no notebook."""
    settings = Settings.from_environ({})
    assert settings == Settings(store="notebook", transport="auto", proxy_url=None, jupyter_notebook=None)
    assert settings.transport_warning is None


@pytest.mark.parametrize(("raw", "expected"), [(" Comm ", "comm"), ("PROXY", "proxy"), ("", "auto")])
def test_a_transport_is_read_trimmed_and_in_lower_case(raw: str, expected: str) -> None:
    """LLMSOCK_TRANSPORT is trimmed and compared in lower case; an empty value is auto."""
    settings = Settings.from_environ({"LLMSOCK_TRANSPORT": raw})
    assert settings.transport == expected and settings.transport_warning is None


def test_a_transport_that_names_none_is_auto_with_a_warning() -> None:
    """An unknown LLMSOCK_TRANSPORT is read as auto, and the warning names the value and the choices."""
    settings = Settings.from_environ({"LLMSOCK_TRANSPORT": " WebSocket"})
    assert settings.transport == "auto"
    assert settings.transport_warning == (
        "llmsock: LLMSOCK_TRANSPORT='websocket' is not one of auto, proxy, direct, comm; using auto"
    )


def test_the_proxy_template_is_filled_from_the_environment() -> None:
    """{NAME} comes from the environment; {port}, {base_url} and unset names stay for the browser."""
    environ = {
        "LLMSOCK_PROXY_URL": "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/ws?{UNSET_NAME}{base_url}",
        "JUPYTERHUB_SERVICE_PREFIX": "/user/ann/",
    }
    assert Settings.from_environ(environ).proxy_url == "/user/ann/proxy/{port}/ws?{UNSET_NAME}{base_url}"
    assert Settings.from_environ({"LLMSOCK_PROXY_URL": ""}).proxy_url is None


def test_the_connect_timeout_is_four_seconds_unless_set() -> None:
    """LLMSOCK_CONNECT_TIMEOUT gives each rung's time to answer in seconds; a view gets milliseconds."""
    assert Settings.from_environ({}).connect_timeout_ms == 4000
    for raw, ms in [("12", 12000), (" 0.5 ", 500), ("36.0004", 36000), ("", 4000)]:
        settings = Settings.from_environ({"LLMSOCK_CONNECT_TIMEOUT": raw})
        assert (settings.connect_timeout_ms, settings.connect_timeout_warning) == (ms, None), raw


@pytest.mark.parametrize("raw", ["0", "-3", "soon", "nan", "inf", "4s"])
def test_a_connect_timeout_that_is_no_positive_number_is_the_default_with_a_warning(raw: str) -> None:
    """A value that is not a positive, finite number of seconds is read as 4, and the warning says so."""
    settings = Settings.from_environ({"LLMSOCK_CONNECT_TIMEOUT": raw})
    assert settings.connect_timeout_ms == 4000
    assert settings.connect_timeout_warning == (
        f"llmsock: LLMSOCK_CONNECT_TIMEOUT={raw!r} is not a positive number of seconds; using 4"
    )


def test_settings_are_keyword_only_and_check_the_transport() -> None:
    """Settings take keywords only, cannot change, and refuse a transport or timeout out of range."""
    with pytest.raises(TypeError):
        Settings("memory")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="transport must be one of"):
        Settings(transport="websocket")
    with pytest.raises(ValueError, match="connect_timeout must be a positive number"):
        Settings(connect_timeout=0)
    settings = Settings(transport=TRANSPORTS[-1])
    with pytest.raises(AttributeError):
        settings.store = "memory"  # type: ignore[misc]


# -- the kernel reads them when it did before ------------------------------------------------------


class Lines(logging.Handler):
    """A handler that keeps the messages it is given."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def llmsock_log() -> Iterator[list[str]]:
    """The warnings of the ``llmsock`` logger (which stops propagating once a kernel server ran)."""
    handler = Lines()
    logger = logging.getLogger("llmsock")
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def test_the_kernel_warns_of_a_bad_transport_each_time_it_reads_it(
    monkeypatch: pytest.MonkeyPatch, llmsock_log: list[str]
) -> None:
    """forced_transport() reads LLMSOCK_TRANSPORT on every call and logs a bad value every time."""
    monkeypatch.setenv("LLMSOCK_TRANSPORT", "comm")
    assert kernel.forced_transport() == "comm"
    monkeypatch.setenv("LLMSOCK_TRANSPORT", "pigeon")
    assert kernel.forced_transport() == "auto"
    assert kernel.forced_transport() == "auto"
    warning = "llmsock: LLMSOCK_TRANSPORT='pigeon' is not one of auto, proxy, direct, comm; using auto"
    assert llmsock_log == [warning, warning]


def test_the_proxy_template_follows_the_environment_at_each_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """proxy_url_template() reads LLMSOCK_PROXY_URL (and the names it uses) on every call."""
    monkeypatch.delenv("LLMSOCK_PROXY_URL", raising=False)
    assert kernel.proxy_url_template() is None
    monkeypatch.setenv("LLMSOCK_PROXY_URL", "{PREFIX_FOR_TEST}proxy/{port}/ws")
    monkeypatch.setenv("PREFIX_FOR_TEST", "/hub/")
    assert kernel.proxy_url_template() == "/hub/proxy/{port}/ws"


def test_a_runtime_makes_its_store_once_from_llmsock_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel reads LLMSOCK_STORE when its store is first needed; later changes do not move it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMSOCK_STORE", "memory")
    runtime = kernel.KernelRuntime()
    store = runtime.kernel_store()
    assert isinstance(store, MemoryStore)
    monkeypatch.setenv("LLMSOCK_STORE", f"file:{tmp_path / 'chats'}")
    assert runtime.kernel_store() is store


def test_reset_gives_a_runtime_that_has_run_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After reset() the runtime has no server and no store, and reads LLMSOCK_STORE again."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMSOCK_STORE", "memory")
    runtime = kernel.KernelRuntime()
    runtime.kernel_store()
    monkeypatch.setenv("LLMSOCK_STORE", f"file:{tmp_path / 'chats'}")
    runtime.reset()
    store = runtime.kernel_store()
    assert isinstance(store, JsonFileStore) and store.directory == tmp_path / "chats"
    assert runtime.current_server() is None
