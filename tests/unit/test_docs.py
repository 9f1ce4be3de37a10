"""The tables of docs/protocol.md and docs/widget-comm.md agree with the constants of the code."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
import typing
from pathlib import Path

import pytest

from llmsock_widget import errors
from llmsock_widget.core import events, session
from llmsock_widget.models import openai_chunks
from llmsock_widget.server import commlink, connection, websocket
from llmsock_widget.server.thread import ServerThread
from llmsock_widget.tools import execution
from llmsock_widget.wire import protocol

REPO = Path(__file__).resolve().parents[2]
PROTOCOL_MD = REPO / "docs" / "protocol.md"
WIDGET_COMM_MD = REPO / "docs" / "widget-comm.md"
PACKAGE = REPO / "llmsock_widget"

# Codes the package uses that never reach a client of the protocol, and why.
NOT_ON_THE_WIRE = {
    "server_start": "ServerStartError is raised to the Python caller of ServerThread.start()",
    "notebook_error": "NotebookError is raised by the offline .ipynb reader and the CLI",
    "session_not_found": "raised by the offline .ipynb reader and the CLI",
    "aborted": "a tool record's code in the history (sections 10.1 and 13), not an error code",
}
# The Python client receives codes and raises its own exceptions; it sends none.
NOT_SCANNED = ("client",)


# -- reading the document ----------------------------------------------------------------------


def section(text: str, number: str) -> str:
    """Return section ``number`` ("10", "10.1") of ``text``, without its subsections."""
    level = "##" if "." not in number else "###"
    start = re.search(rf"^{level} {re.escape(number)}\.? .*$", text, re.MULTILINE)
    assert start is not None, f"the document has no section {number}"
    end = re.compile(r"^#{2,3} ", re.MULTILINE).search(text, start.end())
    return text[start.end() : end.start() if end else len(text)]


def table_rows(text: str) -> list[list[str]]:
    """Return the body rows of every Markdown table in ``text``, as lists of cells."""
    rows: list[list[str]] = []
    header_seen = False
    for line in text.splitlines():
        if not line.startswith("|"):
            header_seen = False
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if all(re.fullmatch(r":?-+:?", cell) for cell in cells):
            continue
        if header_seen:
            rows.append(cells)
        header_seen = True
    return rows


def names_in(cell: str) -> list[str]:
    """Return the `backticked` names of a table cell."""
    return re.findall(r"`([^`]+)`", cell)


def first_column(text: str) -> set[str]:
    """Return every backticked name in the first column of the tables of ``text``."""
    return {name for row in table_rows(text) for name in names_in(row[0])}


def difference(documented: set[str], in_code: set[str]) -> str:
    """Describe what the code has that the document lacks, and the other way round."""
    return (
        f"in the code but not documented: {sorted(in_code - documented, key=str)}; "
        f"documented but not in the code: {sorted(documented - in_code, key=str)}"
    )


@pytest.fixture(scope="module")
def doc() -> str:
    return PROTOCOL_MD.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def comm_doc() -> str:
    return WIDGET_COMM_MD.read_text(encoding="utf-8")


# -- what the code declares --------------------------------------------------------------------


def declared_error_codes() -> set[str]:
    """Return every error code the server can send: errors, diagnostics, the edge's and the model's."""
    classes = {
        cls.code
        for cls in (*vars(errors).values(), session.InvalidTransition)
        if isinstance(cls, type) and issubclass(cls, errors.LlmsockError)
    }
    found = (
        classes | set(events.DIAGNOSTIC_CODES) | set(connection.ERROR_CODES) | set(openai_chunks.ERROR_CODES)
    )
    return found - set(NOT_ON_THE_WIRE)


def close_codes(module: object) -> set[int]:
    """Return the values of a module's ``CLOSE_*`` constants."""
    return {value for name, value in vars(module).items() if name.startswith("CLOSE_")}


def literal_codes(path: Path) -> set[str]:
    """Return the error codes a module writes as literals: ``code=``, ``{"code": ...}``, diagnose(), notes."""
    found: set[str] = set()

    def text(node: ast.AST | None) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "code":
                    text(keyword.value)
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in ("diagnose", "_fail") and len(node.args) >= 2:
                text(node.args[1])
            owner = node.func.value if isinstance(node.func, ast.Attribute) else None
            if name == "append" and isinstance(owner, ast.Name) and owner.id == "notes" and node.args:
                note = node.args[0]  # the hub's load notes: (code, message), told as diagnostics
                if isinstance(note, ast.Tuple) and note.elts:
                    text(note.elts[0])
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "code":
                    text(value)
        elif isinstance(node, ast.ClassDef):
            for statement in node.body:
                if isinstance(statement, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "code" for t in statement.targets
                ):
                    text(statement.value)
    return found


# -- the checks --------------------------------------------------------------------------------


def test_every_code_written_in_the_package_is_declared() -> None:
    """A new error code written anywhere in the server is caught until it is declared (and so documented)."""
    declared = declared_error_codes() | set(execution.ERROR_CODES) | set(NOT_ON_THE_WIRE)
    paths = [p for p in sorted(PACKAGE.rglob("*.py")) if p.relative_to(PACKAGE).parts[0] not in NOT_SCANNED]
    stray = {f"{p.relative_to(PACKAGE)}: {code}" for p in paths for code in literal_codes(p) - declared}
    assert not stray, f"error codes written in the code but declared nowhere: {sorted(stray)}"


def test_error_code_table_matches_the_code(doc: str) -> None:
    """Section 10 lists exactly the error codes the server can send."""
    documented = first_column(section(doc, "10"))
    in_code = declared_error_codes()
    assert documented == in_code, difference(documented, in_code)


def test_openai_failure_table_matches_the_adapter(doc: str) -> None:
    """Section 10's table of the OpenAI-compatible model's failures lists exactly the adapter's codes."""
    tables = section(doc, "10").split("Failures of the OpenAI-compatible model", 1)
    assert len(tables) == 2, "section 10 lost its table of the OpenAI-compatible model's failures"
    documented = first_column(tables[1])
    in_code = set(openai_chunks.ERROR_CODES)
    assert documented == in_code, difference(documented, in_code)


def test_tool_outcome_table_matches_the_code(doc: str) -> None:
    """Section 10.1 lists exactly the codes a failed tool result can carry."""
    documented = first_column(section(doc, "10.1"))
    in_code = set(execution.ERROR_CODES)
    assert documented == in_code, difference(documented, in_code)


def test_close_code_table_matches_the_code(doc: str) -> None:
    """Section 12 lists exactly the WebSocket close codes the server declares."""
    rows = table_rows(section(doc, "12"))
    documented = {int(row[0]) for row in rows if row[0].isdigit()}
    in_code = close_codes(websocket)
    assert documented == in_code, difference({str(c) for c in documented}, {str(c) for c in in_code})


def test_comm_close_codes_are_declared(comm_doc: str) -> None:
    """Every close code of a comm link (widget-comm.md, 2) is declared, and the comm's own are listed."""
    rows = table_rows(section(comm_doc, "2"))
    documented = {int(row[0]) for row in rows if row[0].isdigit()}
    assert close_codes(commlink) <= documented, difference({str(c) for c in documented}, {"1013"})
    undeclared = documented - close_codes(websocket) - close_codes(commlink)
    assert not undeclared, f"comm close codes documented but declared nowhere: {sorted(undeclared)}"


def test_comm_version_is_the_one_the_view_sends(comm_doc: str) -> None:
    """docs/widget-comm.md is titled with the contract version the view puts in its hello."""
    sent = re.search(r'WIDGET_PROTOCOL = "([^"]+)"', (REPO / "js" / "src" / "protocol.js").read_text("utf-8"))
    assert sent is not None, "js/src/protocol.js lost WIDGET_PROTOCOL"
    title = comm_doc.splitlines()[0]
    assert title.startswith("# ") and title.endswith(f", version `{sent.group(1)}`"), title


def test_control_actions_match_the_code(doc: str) -> None:
    """Section 7.1 names the control actions the decoder accepts, in the code's order."""
    sentence = re.search(r"\*\*`control`\*\* — `data\.type` MUST be a string, one of ([^(]*)\(", doc)
    assert sentence is not None, "section 7.1 lost its list of control actions"
    documented = tuple(names_in(sentence.group(1)))
    assert documented == protocol.CONTROL_ACTIONS, (
        f"documented {documented}, decoded {protocol.CONTROL_ACTIONS}"
    )


def test_client_message_types_match_the_code(doc: str) -> None:
    """Section 7.1 describes exactly the client message types the decoder accepts."""
    documented = set(re.findall(r"^\*\*`(\w+)`\*\* — ", section(doc, "7.1"), re.MULTILINE))
    in_code = set(protocol.CLIENT_TYPES)
    assert documented == in_code, difference(documented, in_code)


def test_subprotocol_table_matches_the_code(doc: str) -> None:
    """Section 3's table names exactly the dialect subprotocols the server selects."""
    documented = {name for name in first_column(section(doc, "3")) if name.startswith("llmsock.")}
    in_code = {name for name, _ in protocol.SUBPROTOCOL_DIALECTS} | {protocol.SUBPROTOCOL_AUTO}
    assert documented == in_code, difference(documented, in_code)
    assert f"`{protocol.SUBPROTOCOL_TOKEN_PREFIX}" in section(doc, "2"), (
        "section 2 must say token subprotocols are refused"
    )


def test_mapping_table_covers_every_event(doc: str) -> None:
    """Section 8 maps every event and reply class to its frames, and names no other."""
    documented = {name for name in first_column(section(doc, "8"))}
    in_code = {cls.__name__ for cls in typing.get_args(events.Event)}
    assert documented == in_code, difference(documented, in_code)


def test_status_fields_match_the_server(doc: str) -> None:
    """Section 1.3 describes exactly the fields /status answers, and its example shows them all."""
    documented = first_column(section(doc, "1.3"))
    in_code = set(ServerThread().status())
    assert documented == in_code, difference(documented, in_code)
    example = re.search(r"```json\n(.*?)```", section(doc, "1.3"), re.DOTALL)
    assert example is not None, "section 1.3 lost its example"
    shown = set(json.loads(example.group(1)))
    assert shown == in_code, "section 1.3's example: " + difference(shown, in_code)


# -- limits ------------------------------------------------------------------------------------

_UNITS = {"MiB": 1024 * 1024, "KiB": 1024}
_NUMBER = re.compile(r"(\d[\d,]*(?:\.\d+)?)(?:\s*(MiB|KiB)\b)?")


def _numbers(cell: str) -> list[float]:
    return [float(n.replace(",", "")) * _UNITS.get(unit, 1) for n, unit in _NUMBER.findall(cell)]


def limit_rows(doc: str) -> list[tuple[str, str, str]]:
    """Return (what, default, option) for each row of section 12's table of limits."""
    return [
        (row[0], row[1], row[2])
        for row in table_rows(section(doc, "12"))
        if len(row) == 3 and not row[0].isdigit()
    ]


def test_limit_defaults_match_server_thread(doc: str) -> None:
    """Each limit of section 12 set by a ServerThread option shows that option's default."""
    defaults = {p.name: p.default for p in inspect.signature(ServerThread).parameters.values()}
    wrong: list[str] = []
    checked = 0
    for what, default, option in limit_rows(doc):
        names = [n for n in names_in(option) if re.fullmatch(r"[a-z_]+", n) and n not in ("timeout",)]
        if not names or option.startswith("fixed") or not default[:1].isdigit():
            continue  # fixed limits are checked below; derived ones ("as many as ...") have no number
        unknown = [n for n in names if n not in defaults]
        wrong += [f"{what}: no ServerThread option {n!r}" for n in unknown]
        numbers = _numbers(default)[: len(names)]
        if len(numbers) < len(names):
            wrong.append(f"{what}: {len(names)} options but {len(numbers)} numbers in {default!r}")
        for name, number in zip(names, numbers, strict=False):
            checked += 1
            if name in defaults and float(defaults[name]) != number:
                wrong.append(
                    f"{what}: documented {number:g}, ServerThread's {name} defaults to {defaults[name]!r}"
                )
    assert checked >= 10, "section 12's table of limits was not found or lost its options"
    assert not wrong, "; ".join(wrong)


def test_fixed_limits_match_their_constants(doc: str) -> None:
    """Each fixed limit of section 12 that names a constant shows that constant's value."""
    wrong: list[str] = []
    checked = 0
    for what, default, option in limit_rows(doc):
        constants = [n for n in names_in(option) if re.fullmatch(r"[a-z_.]+\.[A-Z_]+", n)]
        numbers = _numbers(default)[: len(constants)]
        if len(numbers) < len(constants):
            wrong.append(f"{what}: {len(constants)} constants but {len(numbers)} numbers in {default!r}")
        for dotted, number in zip(constants, numbers, strict=False):
            module, _, name = dotted.rpartition(".")
            value = getattr(importlib.import_module(f"llmsock_widget.{module}"), name)
            checked += 1
            if float(value) != number:
                wrong.append(f"{what}: documented {number:g}, {dotted} is {value!r}")
    assert checked >= 6, "section 12's fixed limits lost the names of their constants"
    assert not wrong, "; ".join(wrong)
