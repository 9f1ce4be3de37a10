"""The kernel tools over a plain namespace: what the model reads, masked and capped, and what it may run."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from typing import Any

import pytest

from llmsock_widget.notebook import kerneltools
from llmsock_widget.notebook.kerneltools import KernelTools
from llmsock_widget.notebook.runcode import MAX_OUTPUT_CHARS, execute
from llmsock_widget.tools import ToolRegistry, call_tool

SECRET = "sk-live-0123456789abcdefghij"

CELL = (
    "def load(path):\n"
    f"    token = {SECRET!r}\n"
    "    return path.upper()\n"
    "\n"
    "class Model:\n"
    "    '''A model.'''\n"
    "\n"
    "    def fit(self, rows):\n"
    "        return len(rows)\n"
    "\n"
    "    @staticmethod\n"
    "    def make():\n"
    "        return Model()\n"
)


def namespace() -> dict[str, Any]:
    """A namespace as a notebook leaves it: variables, a secret, IPython's names, a module, a cell's code."""
    ns: dict[str, Any] = {
        "rows": [3, 1, 2],
        "api_key": SECRET,
        "config": {"name": "run-1", "password": "hunter2"},
        "_hidden": 1,
        "__builtins__": __builtins__,
        "In": ["", "rows = [3, 1, 2]", f"api_key = {SECRET!r}", CELL],
        "Out": {},
        "exit": object(),
        "get_ipython": lambda: None,
        "json": json,
    }
    code = compile(CELL, "<cell-3>", "exec")
    import linecache

    linecache.cache["<cell-3>"] = (len(CELL), None, CELL.splitlines(keepends=True), "<cell-3>")
    exec(code, ns)
    return ns


@pytest.fixture
def ns() -> dict[str, Any]:
    return namespace()


@pytest.fixture
def tools(ns: dict[str, Any]) -> KernelTools:
    return KernelTools(lambda: ns)


def test_list_variables_lists_the_users_names_only(tools: KernelTools) -> None:
    listing = tools.list_variables()
    names = [v["name"] for v in listing["variables"]]
    # Sorted as the @name completions are (any case); no _-names, modules, In/Out...
    assert names == ["api_key", "config", "load", "Model", "rows"]
    by_name = {v["name"]: v for v in listing["variables"]}
    assert by_name["rows"] == {"name": "rows", "kind": "list", "summary": "list, len 3: [3, 1, 2]"}
    assert by_name["api_key"]["summary"] == "<masked: the name looks secret>"
    assert "hunter2" not in json.dumps(listing) and SECRET not in json.dumps(listing)
    assert "more" not in listing


def test_list_variables_hides_ipythons_own_values_but_not_the_users() -> None:
    mine = object()
    ns = {"x": 1, "quiet": mine, "names": [1]}
    tools = KernelTools(lambda: ns, hidden=lambda: {"quiet": mine, "names": None})
    assert [v["name"] for v in tools.list_variables()["variables"]] == ["names", "x"]


def test_list_variables_is_capped_and_one_line_each() -> None:
    ns: dict[str, Any] = {f"v{i:04}": "word " * 1000 for i in range(kerneltools.MAX_VARIABLES + 7)}
    listing = KernelTools(lambda: ns).list_variables()
    assert len(listing["variables"]) == kerneltools.MAX_VARIABLES and listing["more"] == 7
    for variable in listing["variables"]:
        assert "\n" not in variable["summary"] and len(variable["summary"]) <= kerneltools.LINE_CHARS


def test_list_variables_never_ends_a_line_on_a_label_without_its_text(ns: dict[str, Any]) -> None:
    """A function without a docstring reads ``function load(path)``, not ``... source:``."""
    exec('def documented(path):\n    """Read the rows at path."""\n    return path\n', ns)
    ns["note"] = "source:\nsee the cell above"
    by_name = {v["name"]: v["summary"] for v in KernelTools(lambda: ns).list_variables()["variables"]}
    assert by_name["load"] == "function load(path)"
    assert by_name["documented"] == "function documented(path): doc: Read the rows at path."
    assert by_name["note"] == "str, 26 chars: source:"  # a text's own words are kept, colon and all


def test_describe_variable_is_the_summary_masked(tools: KernelTools) -> None:
    assert tools.describe_variable("rows") == "rows: list, len 3\n[3, 1, 2]"
    assert tools.describe_variable("api_key") == "<masked: the name looks secret>"
    described = tools.describe_variable("config")
    assert "'password': <masked>" in described and "hunter2" not in described


def test_unknown_names_say_what_exists(tools: KernelTools) -> None:
    with pytest.raises(NameError, match=r"^no variable 'rowz' in the notebook; list_variables lists them$"):
        tools.describe_variable("rowz")
    with pytest.raises(NameError, match=r"^'Model' has no attribute 'predict'$"):
        tools.get_source("Model.predict")
    with pytest.raises(NameError, match="not a name or a dotted attribute path"):
        tools.describe_variable("rows[0]")
    with pytest.raises(
        TypeError, match=r"^'rows' is a list, not a function, class or module: describe_variable"
    ):
        tools.get_source("rows")


def test_get_source_of_a_cells_function_is_masked(tools: KernelTools) -> None:
    found = tools.get_source("load")
    assert found["name"] == "load" and found["line"] == 1 and found["file"] == "<cell-3>"
    assert found["source"].startswith("def load(path):\n")
    assert SECRET not in found["source"] and 'token = "<masked>"' in found["source"].replace("'", '"')


def test_get_source_follows_attribute_paths_without_running_them(
    tools: KernelTools, ns: dict[str, Any]
) -> None:
    assert tools.get_source("Model")["source"].startswith("class Model:\n")  # a class of a cell
    assert tools.get_source("Model.fit")["source"].lstrip().startswith("def fit(self, rows):")
    assert tools.get_source("Model.make")["source"].lstrip().startswith("@staticmethod")
    assert "def dumps(" in tools.get_source("json.dumps")["source"]

    class Lazy:
        ran = False

        def __getattr__(self, name: str) -> Any:
            Lazy.ran = True
            return len

    ns["lazy"] = Lazy()
    with pytest.raises(NameError):
        tools.get_source("lazy.anything")
    assert not Lazy.ran  # the user's __getattr__ never ran


def test_get_source_unwraps_decorators_and_caps_big_sources(ns: dict[str, Any]) -> None:
    def inner() -> None:
        pass

    ns["wrapped"] = functools.wraps(inner)(lambda: None)
    tools = KernelTools(lambda: ns)
    assert "def inner() -> None:" in tools.get_source("wrapped")["source"]
    ns["sys"] = sys
    with pytest.raises(ValueError, match=r"^no source for 'sys': it is built in"):
        tools.get_source("sys")
    big = tools.get_source("json")  # a module: its whole file, capped
    ns["typing_mod"] = __import__("typing")
    capped = tools.get_source("typing_mod")["source"]
    assert len(capped) < kerneltools.MAX_SOURCE_CHARS + 60 and "…[cut: " in capped
    assert big["file"].endswith("json/__init__.py")


def test_read_cell_counts_from_the_end_and_masks(tools: KernelTools) -> None:
    assert tools.read_cell(1) == {"index": 1, "source": "rows = [3, 1, 2]"}
    assert tools.read_cell(-1)["index"] == 3 and tools.read_cell(-1)["source"].startswith("def load(path):")
    second = tools.read_cell(-2)
    assert second["index"] == 2 and SECRET not in second["source"] and "<masked" in second["source"]
    for index in (0, 4, -4):
        with pytest.raises(IndexError, match=r"the cells executed are In\[1\] to In\[3\] \(or -1 to -3\)$"):
            tools.read_cell(index)
    with pytest.raises(IndexError, match=r"^no cell has been executed yet$"):
        KernelTools(dict).read_cell(-1)


def test_execute_runs_like_a_cell() -> None:
    ns: dict[str, Any] = {"base": 10}
    ran = execute("import sys\nx = base + 1\nprint('out', x)\nprint('err', file=sys.stderr)\nx * 2", ns)
    assert (ran.value, ran.has_value, ran.stdout, ran.stderr) == (22, True, "out 11\n", "err\n")
    assert ns["x"] == 11
    assert not execute("y = 1", ns).has_value and not execute("print('hi')", ns).has_value
    with pytest.raises(ZeroDivisionError):
        execute("z = 5\nw = 1 / 0\nq = 1", ns)
    assert ns["z"] == 5 and "w" not in ns and "q" not in ns  # kept up to the error, as in a cell
    with pytest.raises(SyntaxError):
        execute("v = (", ns)
    assert "v" not in ns


def test_execute_masks_and_caps_what_it_prints() -> None:
    ran = execute(f"print('key is', {SECRET!r})\nprint('x' * {MAX_OUTPUT_CHARS * 3})", {})
    assert SECRET not in ran.stdout and "<masked secret>" in ran.stdout
    assert len(ran.stdout) < MAX_OUTPUT_CHARS + 100 and "characters cut]" in ran.stdout


def test_code_defined_by_run_code_has_source() -> None:
    ns: dict[str, Any] = {}
    execute("def twice(n):\n    return 2 * n\n", ns)
    assert KernelTools(lambda: ns).get_source("twice")["source"] == "def twice(n):\n    return 2 * n\n"


def test_run_code_without_a_value_returns_its_output(tools: KernelTools, ns: dict[str, Any]) -> None:
    assert tools.run_code("total = sum(rows)\nprint(total)") == {"stdout": "6\n", "stderr": ""}
    assert ns["total"] == 6


def outcome(registry: ToolRegistry, name: str, arguments: dict[str, Any]) -> Any:
    return asyncio.run(call_tool(registry, name, json.dumps(arguments), timeout=10))


def test_the_tools_as_the_model_calls_them(ns: dict[str, Any]) -> None:
    registry = ToolRegistry()
    tools = KernelTools(lambda: ns)
    for fn, options in tools.registrations():
        registry.register(fn, **options)
    assert registry.names() == ["list_variables", "describe_variable", "get_source", "read_cell", "run_code"]
    assert [registry.get(n).approval for n in registry.names()] == [False, False, False, False, True]  # type: ignore[union-attr]
    assert registry.get("run_code").timeout == kerneltools.RUN_CODE_TIMEOUT  # type: ignore[union-attr]
    schema = {s["function"]["name"]: s["function"] for s in registry.schemas()}
    assert schema["read_cell"]["parameters"]["required"] == ["index"]
    assert schema["describe_variable"]["description"].startswith("Describe a variable of the user's notebook")

    described = outcome(registry, "describe_variable", {"name": "rows"})
    assert described.ok and described.result == "rows: list, len 3\n[3, 1, 2]"
    unknown = outcome(registry, "describe_variable", {"name": "nope"})
    assert unknown.error == {
        "code": "tool_error",
        "message": "NameError: no variable 'nope' in the notebook; list_variables lists them",
    }
    failed = outcome(registry, "run_code", {"code": "half = 1\n1 / 0"})
    assert failed.error == {"code": "tool_error", "message": "ZeroDivisionError: division by zero"}
    assert ns["half"] == 1


class FakeEvents:
    """IPython's EventManager, as far as the gate uses it."""

    def __init__(self) -> None:
        self.callbacks: dict[str, list[Any]] = {"pre_run_cell": [], "post_run_cell": []}

    def register(self, event: str, fn: Any) -> None:
        self.callbacks[event].append(fn)

    def unregister(self, event: str, fn: Any) -> None:
        self.callbacks[event].remove(fn)


class FakeShell:
    def __init__(self) -> None:
        self.user_ns: dict[str, Any] = {"x": 1}
        self.user_ns_hidden: dict[str, Any] = {}
        self.events = FakeEvents()


@pytest.fixture
def shell() -> Any:
    kerneltools.uninstall()
    yield FakeShell()
    kerneltools.uninstall()


def test_install_leaves_the_users_tool_of_the_same_name(
    shell: FakeShell, caplog: pytest.LogCaptureFixture
) -> None:
    registry = ToolRegistry()

    def read_cell(index: int) -> str:
        """Mine."""
        return "mine"

    registry.register(read_cell)
    with caplog.at_level("INFO", logger="llmsock.tools"):
        added = kerneltools.install(registry, shell)
    assert added == ["list_variables", "describe_variable", "get_source", "run_code"]
    assert registry.get("read_cell").fn is read_cell  # type: ignore[union-attr]
    assert "the tool 'read_cell' is yours; the built-in kernel tool of that name is not added" in caplog.text
    assert kerneltools.install(registry, shell) == []  # again: nothing new, nothing doubled
    assert (
        len(shell.events.callbacks["pre_run_cell"]) == 1 and len(shell.events.callbacks["post_run_cell"]) == 1
    )

    kerneltools.uninstall()
    assert registry.names() == ["read_cell"] and registry.get("read_cell").fn is read_cell  # type: ignore[union-attr]
    assert shell.events.callbacks == {"pre_run_cell": [], "post_run_cell": []}


def test_install_without_a_shell_does_nothing() -> None:
    registry = ToolRegistry()
    assert kerneltools.install(registry, None) == [] and registry.names() == []


def test_run_code_hands_the_user_the_object_and_the_model_its_summary(ns: dict[str, Any]) -> None:
    registry = ToolRegistry()
    for fn, options in KernelTools(lambda: ns).registrations():
        registry.register(fn, **options)
    ran = outcome(
        registry, "run_code", {"code": "import collections\nprint('made')\ncollections.Counter(rows)"}
    )
    assert ran.ok and ran.value == {3: 1, 1: 1, 2: 1} and type(ran.value).__name__ == "Counter"
    assert ran.result["stdout"] == "made\n" and ran.result["stderr"] == ""
    assert ran.result["summary"].startswith("result: collections.Counter")
    plain = outcome(registry, "run_code", {"code": "sorted(rows)"})
    assert plain.result["summary"] == "result: list, len 3\n[1, 2, 3]" and plain.value == [1, 2, 3]


def test_a_cell_that_asks_a_chat_lets_run_code_in(shell: FakeShell) -> None:
    with kerneltools.cell_waits_for_chat():  # nothing installed: nothing to do
        pass
    kerneltools.install(ToolRegistry(), shell)
    gate = kerneltools.current_gate()
    assert gate is not None
    gate.cell_starts(None)
    with kerneltools.cell_waits_for_chat():
        assert not gate.cell_running  # ask() waits for the answer: run_code may run meanwhile
    assert gate.cell_running
