"""notebook.notebookfile: chats kept in a notebook's metadata, and the ``sessions`` CLI."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from llmsock_widget.__main__ import main
from llmsock_widget.core import snapshot
from llmsock_widget.core.session import InteractionState, Message, ToolRecord, new_state
from llmsock_widget.errors import ClientError, InvalidSessionId, SnapshotVersionError
from llmsock_widget.notebook import notebookfile
from llmsock_widget.notebook.notebookfile import NotebookError, SessionNotFound

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "notebooks"
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


# -- builders ---------------------------------------------------------------------------------


def analysis_state() -> InteractionState:
    """Return a session with a tool call and reasoning, an aborted answer and a failed one."""
    calc = ToolRecord(
        id="call_1",
        name="calculator",
        arguments='{"expression": "2 + 2"}',
        status="complete",
        result={"value": 4},
    )
    clock = ToolRecord(
        id="call_2",
        name="clock",
        arguments="{}",
        status="error",
        error={"code": "aborted", "message": "the turn ended before the tool finished"},
    )
    messages = (
        Message(id="m1", role="user", text="What is 2 + 2?", turn_id="t1", ts=T0 + 1_000),
        Message(
            id="t1:a",
            role="assistant",
            text="2 + 2 = 4.",
            turn_id="t1",
            ts=T0 + 2_000,
            usage={"inputTokens": 12, "outputTokens": 6},
            reasoning="The user asks for a sum.\nUse the calculator.",
            tools=(calc,),
        ),
        Message(id="m2", role="user", text="Write a long poem about ünïcode 😀", turn_id="t2", ts=T0 + 3_000),
        Message(id="t2:a", role="assistant", text="Roses are", turn_id="t2", ts=T0 + 4_000, status="aborted"),
        Message(id="m3", role="user", text="What time is it?", turn_id="t3", ts=T0 + 5_000),
        Message(
            id="t3:a",
            role="assistant",
            text="",
            turn_id="t3",
            ts=T0 + 6_000,
            status="error",
            error={"code": "model_error", "message": "upstream 502"},
            tools=(clock,),
        ),
    )
    base = new_state("analysis-1", ts=T0, model="gpt-test")
    return dataclasses.replace(base, seq=30, revision=7, messages=messages, updated_at=T0 + 7_000)


def notes_state() -> InteractionState:
    """Return a short session with one complete turn of the builtin model."""
    messages = (
        Message(id="msg_1", role="user", text="/echo Hi there", turn_id="t-a", ts=T0 + 10_000),
        Message(id="t-a:a", role="assistant", text="Hi there", turn_id="t-a", ts=T0 + 10_500),
    )
    base = new_state("notes-2", ts=T0 + 9_000, model="builtin")
    return dataclasses.replace(base, seq=6, revision=2, messages=messages, updated_at=T0 + 11_000)


def plain_notebook() -> Any:
    """Return a notebook with code, output, markdown and metadata of its own, and no llmsock block."""
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("print('hello')\n1 + 1", id="cell-code", execution_count=1)
    code.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="hello\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1),
    ]
    nb.cells = [code, nbformat.v4.new_markdown_cell("# Notes\n\nSome *text*.", id="cell-md")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    return nb


def notebook_with(sessions: dict[str, Any] | None, *, block: Any = None) -> Any:
    """Return the plain notebook with an llmsock block holding ``sessions`` (or ``block`` as it is)."""
    nb = plain_notebook()
    if block is not None:
        nb.metadata["llmsock"] = block
    elif sessions is not None:
        nb.metadata["llmsock"] = {"version": 1, "sessions": sessions}
    return nb


def future_snapshot() -> dict[str, Any]:
    """Return a snapshot from a newer llmsock (schema 2, with a field schema 1 does not know)."""
    data = snapshot.encode(new_state("future-1", ts=T0, model="m"))
    return {**data, "schema": 2, "branches": [{"id": "b1"}]}


def broken_snapshot() -> dict[str, Any]:
    """Return a schema-1 snapshot with a negative seq (corrupt)."""
    return {**snapshot.encode(new_state("broken-1", ts=T0)), "seq": -1}


STORED = {
    "two_sessions.ipynb": lambda: notebook_with(
        {"analysis-1": snapshot.encode(analysis_state()), "notes-2": snapshot.encode(notes_state())}
    ),
    "no_llmsock.ipynb": lambda: notebook_with(None),
    "malformed_llmsock.ipynb": lambda: notebook_with(None, block={"version": 1, "sessions": []}),
    "newer_schema.ipynb": lambda: notebook_with(
        {"future-1": future_snapshot(), "notes-2": snapshot.encode(notes_state())}
    ),
    "corrupt_session.ipynb": lambda: notebook_with(
        {"broken-1": broken_snapshot(), "notes-2": snapshot.encode(notes_state())}
    ),
}
# Not stored: ruff lints every .ipynb in the tree and would fail on it.
NOT_JSON = b'{"cells": [ this is not JSON\n'


def regenerate_fixtures(directory: Path = FIXTURES) -> None:
    """Write the stored fixture notebooks (run by hand after changing a builder)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, build in STORED.items():
        nbformat.write(build(), directory / name)


@pytest.fixture
def nb_dir(tmp_path: Path) -> Path:
    """Return a directory holding copies of the stored fixture notebooks, and not_json.ipynb."""
    for source in FIXTURES.glob("*.ipynb"):
        shutil.copy(source, tmp_path / source.name)
    (tmp_path / "not_json.ipynb").write_bytes(NOT_JSON)
    return tmp_path


def read_nb(path: Path) -> dict[str, Any]:
    """Return the notebook as nbformat reads it, as plain dicts."""
    return json.loads(json.dumps(nbformat.read(path, as_version=4)))


def without_llmsock(nb: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of a notebook dict without its llmsock block."""
    out = copy.deepcopy(nb)
    out["metadata"].pop("llmsock", None)
    return out


def fingerprint(path: Path) -> tuple[bytes, int]:
    """Return the bytes and the mtime (ns) of a file."""
    return path.read_bytes(), path.stat().st_mtime_ns


# -- fixtures on disk -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STORED))
def test_stored_fixtures_match_their_builders(name: str) -> None:
    """Each stored fixture notebook is what its builder makes (regenerate_fixtures rewrites them)."""
    assert read_nb(FIXTURES / name) == json.loads(json.dumps(STORED[name]()))


# -- reading ----------------------------------------------------------------------------------


def test_read_two_sessions(nb_dir: Path) -> None:
    """Both sessions are read back equal to the states that were encoded."""
    found = notebookfile.read_sessions(nb_dir / "two_sessions.ipynb")
    assert found.sessions == {"analysis-1": analysis_state(), "notes-2": notes_state()}
    assert found.problems == []


def test_read_without_llmsock_metadata(nb_dir: Path) -> None:
    """A notebook without the llmsock key has no sessions and no problems."""
    found = notebookfile.read_sessions(nb_dir / "no_llmsock.ipynb")
    assert found.sessions == {} and found.problems == []


def test_read_malformed_block_fixture(nb_dir: Path) -> None:
    """A sessions list instead of an object is a NotebookError naming the problem."""
    with pytest.raises(NotebookError, match=r"metadata\.llmsock\.sessions is not an object") as info:
        notebookfile.read_sessions(nb_dir / "malformed_llmsock.ipynb")
    assert isinstance(info.value, ClientError) and info.value.code == "notebook_error"
    assert info.value.path == str(nb_dir / "malformed_llmsock.ipynb")


@pytest.mark.parametrize(
    ("block", "match"),
    [
        ([], r"metadata\.llmsock is not an object"),
        (None, r"metadata\.llmsock is not an object"),
        ({"sessions": {}}, r"no valid version"),
        ({"version": "1", "sessions": {}}, r"no valid version"),
        ({"version": 2, "sessions": {}}, r"version 2: it needs a newer llmsock"),
        ({"version": 1}, r"sessions is not an object"),
    ],
    ids=["list", "null", "no version", "string version", "newer version", "no sessions"],
)
def test_read_malformed_blocks(tmp_path: Path, block: Any, match: str) -> None:
    """Each kind of malformed llmsock block is a NotebookError that says what is wrong."""
    nb = plain_notebook()
    nb.metadata["llmsock"] = block
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(NotebookError, match=match):
        notebookfile.read_sessions(path)


def test_read_not_json(nb_dir: Path) -> None:
    """A file that is not JSON is a NotebookError saying so."""
    with pytest.raises(NotebookError, match="not valid JSON"):
        notebookfile.read_sessions(nb_dir / "not_json.ipynb")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"hello": 1}, "no 'nbformat' version"),
        (
            {
                "nbformat": 4,
                "nbformat_minor": 5,
                "metadata": {},
                "cells": [{"cell_type": "nope", "metadata": {}, "source": ""}],
            },
            "at cells/0",
        ),
        (
            {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code"}]},
            "field is missing",
        ),
        ({"nbformat": 4, "nbformat_minor": 5, "metadata": [], "cells": []}, "metadata is not an object"),
        ({"nbformat": 99, "cells": []}, "nbformat 99"),
    ],
    ids=["not a notebook", "bad cell", "cell without metadata", "bad metadata", "unknown major"],
)
def test_read_invalid_notebook(tmp_path: Path, content: Any, match: str) -> None:
    """JSON that is not a valid notebook is a NotebookError, not a traceback from nbformat."""
    path = tmp_path / "bad.ipynb"
    path.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(NotebookError, match=match):
        notebookfile.read_sessions(path)


def test_read_missing_file(tmp_path: Path) -> None:
    """A missing file is a NotebookError that names it."""
    with pytest.raises(NotebookError, match="cannot read it"):
        notebookfile.read_sessions(tmp_path / "nope.ipynb")


def test_read_newer_schema_session_is_listed_as_a_problem(nb_dir: Path) -> None:
    """A session from a newer llmsock is skipped and reported, the good one is read."""
    found = notebookfile.read_sessions(nb_dir / "newer_schema.ipynb")
    assert list(found.sessions) == ["notes-2"]
    assert len(found.problems) == 1
    assert "'future-1'" in found.problems[0] and "needs a newer llmsock" in found.problems[0]
    assert set(found.unreadable) == {"future-1"}


def test_read_corrupt_session_is_skipped_with_a_problem(nb_dir: Path) -> None:
    """A corrupt snapshot is skipped with a problem naming it, the good one is read."""
    found = notebookfile.read_sessions(nb_dir / "corrupt_session.ipynb")
    assert list(found.sessions) == ["notes-2"]
    assert len(found.problems) == 1 and "'broken-1'" in found.problems[0]
    assert "seq must be a non-negative integer" in found.problems[0]


def test_read_session_under_the_wrong_key_or_a_bad_id(tmp_path: Path) -> None:
    """A snapshot stored under another id, or under an id that is not valid, is a problem."""
    path = tmp_path / "nb.ipynb"
    good = snapshot.encode(notes_state())
    nbformat.write(notebook_with({"other": good, "bad id\n": good, "notes-2": good}), path)
    found = notebookfile.read_sessions(path)
    assert list(found.sessions) == ["notes-2"]
    assert any("'other'" in p and "for session 'notes-2'" in p for p in found.problems)
    assert any("not a valid session id" in p for p in found.problems)


def test_list_sessions(nb_dir: Path) -> None:
    """list_sessions gives one summary per session, ordered by id."""
    rows = notebookfile.list_sessions(nb_dir / "two_sessions.ipynb")
    assert rows == [
        {
            "id": "analysis-1",
            "messages": 6,
            "turns": 3,
            "updated": "2023-11-14T22:13:27Z",
            "model": "gpt-test",
            "last_status": "error",
            "bytes": len(snapshot.dumps(analysis_state()).encode("utf-8")),
        },
        {
            "id": "notes-2",
            "messages": 2,
            "turns": 1,
            "updated": "2023-11-14T22:13:31Z",
            "model": "builtin",
            "last_status": "complete",
            "bytes": len(snapshot.dumps(notes_state()).encode("utf-8")),
        },
    ]


def test_summary_counts_the_answer_being_streamed() -> None:
    """A session saved mid-answer counts the current message and reports it as streaming."""
    user = Message(id="m1", role="user", text="hi", turn_id="t1", ts=1)
    current = Message(id="t1:a", role="assistant", text="h", turn_id="t1", ts=2, status="streaming")
    state = dataclasses.replace(
        new_state("s"), phase="streaming", turn_id="t1", messages=(user,), current=current
    )
    row = notebookfile.summarize(state)
    assert (row["messages"], row["turns"], row["last_status"]) == (2, 1, "streaming")
    assert notebookfile.summarize(new_state("empty"))["last_status"] is None


# -- export -----------------------------------------------------------------------------------


def test_export_markdown(nb_dir: Path) -> None:
    """The Markdown transcript holds prompts, answers, markers, reasoning and tool calls."""
    text = notebookfile.export_session(nb_dir / "two_sessions.ipynb", "analysis-1", format="markdown")
    assert text.startswith("# llmsock session `analysis-1`\n")
    for expected in (
        "**User** · 2023-11-14T22:13:21Z\n\nWhat is 2 + 2?",
        "**Assistant** · 2023-11-14T22:13:22Z",
        "2 + 2 = 4.",
        "Write a long poem about ünïcode 😀",
        "**Assistant** (stopped) · 2023-11-14T22:13:24Z\n\nRoses are",
        "**Assistant** (error: model_error: upstream 502)",
        "> *Reasoning*\n>\n> The user asks for a sum.\n> Use the calculator.",
        "Tool call `calculator` (complete)",
        '```json\n{\n  "expression": "2 + 2"\n}\n```',
        'Result:\n\n```json\n{\n  "value": 4\n}\n```',
        "Tool call `clock` (error: aborted: the turn ended before the tool finished)",
        "*(no text)*",
    ):
        assert expected in text, expected


def test_export_markdown_is_the_default_format(nb_dir: Path) -> None:
    """export_session gives Markdown unless told otherwise."""
    path = nb_dir / "two_sessions.ipynb"
    assert notebookfile.export_session(path, "notes-2") == notebookfile.markdown(notes_state())


def test_markdown_fences_outlast_backticks_in_the_content() -> None:
    """A tool result holding a code fence cannot close the fence around it."""
    record = ToolRecord(id="c", name="x`y", arguments="not json", status="complete", result="```\nhi")
    answer = Message(id="t:a", role="assistant", text="ok", turn_id="t", ts=0, tools=(record,))
    text = notebookfile.markdown(dataclasses.replace(new_state("s"), messages=(answer,)))
    assert "Tool call ``x`y``" in text
    assert "```text\nnot json\n```" in text
    assert '````json\n"```\\nhi"\n````' in text


def test_markdown_shows_what_a_mention_sent_and_how_a_call_was_approved() -> None:
    """A prompt's attachments follow it, fenced; a tool call says the user's decision."""
    prompt = Message(
        id="t:u", role="user", text="look at @df", turn_id="t", ts=0, attachments=(("df", "df: 3 rows\n```"),)
    )
    denied = ToolRecord(
        id="c",
        name="run_code",
        arguments='{"code": "del df"}',
        status="error",
        error={"code": "denied", "message": "the user denied this call"},
        approval="denied",
    )
    answer = Message(id="t:a", role="assistant", text="ok", turn_id="t", ts=0, tools=(denied,))
    text = notebookfile.markdown(dataclasses.replace(new_state("s"), messages=(prompt, answer)))
    assert "look at @df\n\nAttached `@df`:\n\n````text\ndf: 3 rows\n```\n````" in text
    assert "Tool call `run_code` (error: denied: the user denied this call, denied by the user)" in text


def test_export_json(nb_dir: Path) -> None:
    """The JSON export is the pretty-printed snapshot, which decodes to the same state."""
    text = notebookfile.export_session(nb_dir / "two_sessions.ipynb", "analysis-1", format="json")
    assert "\n  " in text and text.endswith("\n")
    assert json.loads(text) == snapshot.encode(analysis_state())
    assert snapshot.loads(text) == analysis_state()


def test_export_unknown_session(nb_dir: Path) -> None:
    """Exporting an id the notebook does not hold raises SessionNotFound."""
    with pytest.raises(SessionNotFound, match="no session 'nope'"):
        notebookfile.export_session(nb_dir / "two_sessions.ipynb", "nope")


def test_export_unreadable_session(nb_dir: Path) -> None:
    """Exporting a session from a newer llmsock says so instead of pretending it is missing."""
    with pytest.raises(NotebookError, match="needs a newer llmsock"):
        notebookfile.export_session(nb_dir / "newer_schema.ipynb", "future-1")


def test_export_unknown_format(nb_dir: Path) -> None:
    """An unknown format is a ValueError."""
    with pytest.raises(ValueError, match="unknown export format"):
        notebookfile.export_session(nb_dir / "two_sessions.ipynb", "notes-2", format="html")  # type: ignore[arg-type]


# -- remove and write -------------------------------------------------------------------------


def test_remove_one_session(nb_dir: Path) -> None:
    """Removing one session keeps the other and leaves the rest of the notebook as it was."""
    path = nb_dir / "two_sessions.ipynb"
    before = read_nb(path)
    assert notebookfile.remove_session(path, "analysis-1") is True
    after = read_nb(path)
    assert list(after["metadata"]["llmsock"]["sessions"]) == ["notes-2"]
    assert (
        after["metadata"]["llmsock"]["sessions"]["notes-2"]
        == before["metadata"]["llmsock"]["sessions"]["notes-2"]
    )
    assert without_llmsock(after) == without_llmsock(before)
    assert after["cells"][0]["outputs"] == before["cells"][0]["outputs"]


def test_remove_the_last_session_removes_the_key(nb_dir: Path) -> None:
    """When no session is left, metadata.llmsock is gone, and other metadata stays."""
    path = nb_dir / "two_sessions.ipynb"
    before = read_nb(path)
    assert notebookfile.remove_session(path, "analysis-1")
    assert notebookfile.remove_session(path, "notes-2")
    after = read_nb(path)
    assert "llmsock" not in after["metadata"] and "widgets" in after["metadata"]
    assert after == without_llmsock(before)


def test_remove_all(nb_dir: Path) -> None:
    """remove_all counts the sessions and gives back exactly the notebook without them."""
    path = nb_dir / "two_sessions.ipynb"
    assert notebookfile.remove_all(path) == 2
    assert path.read_bytes() == nbformat.writes(plain_notebook()).encode("utf-8") + b"\n"


def test_remove_all_counts_unreadable_sessions(nb_dir: Path) -> None:
    """remove_all also removes sessions that could not be read."""
    path = nb_dir / "newer_schema.ipynb"
    assert notebookfile.remove_all(path) == 2
    assert "llmsock" not in read_nb(path)["metadata"]


def test_remove_keeps_sessions_it_cannot_read_untouched(nb_dir: Path) -> None:
    """Rewriting keeps a newer-schema snapshot exactly as it was stored."""
    path = nb_dir / "newer_schema.ipynb"
    assert notebookfile.remove_session(path, "notes-2")
    assert read_nb(path)["metadata"]["llmsock"] == {"version": 1, "sessions": {"future-1": future_snapshot()}}


def test_remove_a_corrupt_session(nb_dir: Path) -> None:
    """A corrupt session can be removed by its id."""
    path = nb_dir / "corrupt_session.ipynb"
    assert notebookfile.remove_session(path, "broken-1")
    found = notebookfile.read_sessions(path)
    assert list(found.sessions) == ["notes-2"] and found.problems == []


@pytest.mark.parametrize("name", ["two_sessions.ipynb", "no_llmsock.ipynb"])
def test_remove_nothing_leaves_the_file_untouched(nb_dir: Path, name: str) -> None:
    """Removing an unknown id (or all of nothing) does not write the file."""
    path = nb_dir / name
    before = fingerprint(path)
    assert notebookfile.remove_session(path, "nope") is False
    if name == "no_llmsock.ipynb":
        assert notebookfile.remove_all(path) == 0
    assert fingerprint(path) == before


@pytest.mark.parametrize("name", ["malformed_llmsock.ipynb", "not_json.ipynb"])
def test_bad_notebooks_are_never_written(nb_dir: Path, name: str) -> None:
    """remove_session, remove_all and write_session raise on a bad notebook and leave it as it was."""
    path = nb_dir / name
    before = fingerprint(path)
    names = sorted(p.name for p in nb_dir.iterdir())
    with pytest.raises(NotebookError):
        notebookfile.remove_session(path, "notes-2")
    with pytest.raises(NotebookError):
        notebookfile.remove_all(path)
    with pytest.raises(NotebookError):
        notebookfile.write_session(path, notes_state())
    assert fingerprint(path) == before
    assert sorted(p.name for p in nb_dir.iterdir()) == names


def test_invalid_notebook_is_never_written(tmp_path: Path) -> None:
    """A notebook that nbformat finds invalid is refused before anything is written."""
    nb = json.loads(json.dumps(notebook_with({"notes-2": snapshot.encode(notes_state())})))
    nb["cells"][0]["outputs"][0]["output_type"] = "bogus"
    path = tmp_path / "invalid.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    before = fingerprint(path)
    with pytest.raises(NotebookError, match="not a valid notebook: at cells/0/outputs/0"):
        notebookfile.remove_all(path)
    assert fingerprint(path) == before


def test_write_session_into_a_notebook_without_llmsock(nb_dir: Path) -> None:
    """write_session adds the block, and the session reads back; the rest is unchanged."""
    path = nb_dir / "no_llmsock.ipynb"
    before = read_nb(path)
    notebookfile.write_session(path, analysis_state())
    after = read_nb(path)
    assert after["metadata"]["llmsock"] == {
        "version": 1,
        "sessions": {"analysis-1": snapshot.encode(analysis_state())},
    }
    assert without_llmsock(after) == before
    assert notebookfile.read_sessions(path).sessions == {"analysis-1": analysis_state()}


def test_write_session_replaces_and_keeps_others(nb_dir: Path) -> None:
    """Writing a session with an existing id replaces it; other sessions and block fields stay."""
    path = nb_dir / "two_sessions.ipynb"
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["metadata"]["llmsock"]["writer"] = "lab-plugin"  # a field a later version may add
    path.write_text(json.dumps(raw), encoding="utf-8")
    newer = dataclasses.replace(notes_state(), revision=3, model="other")
    notebookfile.write_session(path, newer)
    assert notebookfile.read_sessions(path).sessions == {"analysis-1": analysis_state(), "notes-2": newer}
    assert read_nb(path)["metadata"]["llmsock"]["writer"] == "lab-plugin"


def test_write_session_refuses_to_overwrite_a_newer_snapshot(nb_dir: Path) -> None:
    """A session saved by a newer llmsock is not overwritten, and the file is untouched."""
    path = nb_dir / "newer_schema.ipynb"
    before = fingerprint(path)
    with pytest.raises(SnapshotVersionError, match="newer llmsock"):
        notebookfile.write_session(path, new_state("future-1"))
    assert fingerprint(path) == before


def test_write_session_refuses_a_bad_id(nb_dir: Path) -> None:
    """A state whose id is not a valid session id is refused."""
    with pytest.raises(InvalidSessionId):
        notebookfile.write_session(nb_dir / "no_llmsock.ipynb", new_state("../etc"))


def test_rewrite_leaves_no_temp_file_and_keeps_the_mode(nb_dir: Path) -> None:
    """The atomic rewrite leaves only the notebook in the directory, with its mode."""
    path = nb_dir / "two_sessions.ipynb"
    path.chmod(0o640)
    names = sorted(p.name for p in nb_dir.iterdir())
    assert notebookfile.remove_session(path, "notes-2")
    assert sorted(p.name for p in nb_dir.iterdir()) == names
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    notebookfile.write_session(path, notes_state())
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_failed_rewrite_removes_its_temp_file(nb_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the final rename fails, the notebook is as it was and no temp file is left."""
    path = nb_dir / "two_sessions.ipynb"
    before = fingerprint(path)
    names = sorted(p.name for p in nb_dir.iterdir())

    def fail(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(notebookfile.os, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        notebookfile.remove_all(path)
    assert fingerprint(path) == before
    assert sorted(p.name for p in nb_dir.iterdir()) == names


def test_rewrite_refuses_a_notebook_changed_meanwhile(nb_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook saved by someone else between our read and our write is not overwritten."""
    path = nb_dir / "two_sessions.ipynb"
    real_load = notebookfile._load

    def load_then_someone_saves(p: Any) -> Any:
        result = real_load(p)
        with open(path, "ab") as file:
            file.write(b"\n")
        return result

    monkeypatch.setattr(notebookfile, "_load", load_then_someone_saves)
    with pytest.raises(NotebookError, match="changed while"):
        notebookfile.remove_all(path)
    assert read_nb(path)["metadata"]["llmsock"]["sessions"].keys() == {"analysis-1", "notes-2"}
    assert len(list(nb_dir.glob(".*.tmp"))) == 0


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_rewrite_through_a_symlink_keeps_the_link(nb_dir: Path) -> None:
    """Rewriting a notebook reached by a symlink writes the target and keeps the link."""
    link = nb_dir / "link.ipynb"
    link.symlink_to(nb_dir / "two_sessions.ipynb")
    assert notebookfile.remove_all(link) == 2
    assert link.is_symlink()
    assert "llmsock" not in read_nb(nb_dir / "two_sessions.ipynb")["metadata"]


# -- command line -----------------------------------------------------------------------------


# Each subcommand runs once in a real process (``python -m``); variations run in-process, since
# starting Python with nbformat costs seconds.


def run_cli(*args: str | Path) -> tuple[int, str, str]:
    """Run ``python -m llmsock_widget sessions ...``; return its status, stdout and stderr (no traceback)."""
    done = subprocess.run(
        [sys.executable, "-m", "llmsock_widget", "sessions", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr
    return done.returncode, done.stdout, done.stderr


def call_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run the ``sessions`` command in this process; return its status, stdout and stderr."""
    try:
        code: Any = main(["sessions", *map(str, args)])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_list_table(nb_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``list`` prints a table with one row per session; it is the default action."""
    code, out, err = run_cli(nb_dir / "two_sessions.ipynb", "list")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "MESSAGES", "TURNS", "UPDATED", "MODEL", "LAST_STATUS", "BYTES"]
    assert lines[1].split()[:6] == ["analysis-1", "6", "3", "2023-11-14T22:13:27Z", "gpt-test", "error"]
    assert lines[2].split()[0] == "notes-2" and len(lines) == 3
    assert call_cli(capsys, nb_dir / "two_sessions.ipynb") == (0, out, "")


def test_cli_list_json_and_warnings(nb_dir: Path) -> None:
    """``list --json`` prints the summaries; unreadable sessions are warnings on stderr."""
    code, out, err = run_cli(nb_dir / "newer_schema.ipynb", "list", "--json")
    assert code == 0
    assert json.loads(out) == notebookfile.list_sessions(nb_dir / "newer_schema.ipynb")
    assert err.startswith("llmsock: warning: ") and "'future-1' needs a newer llmsock" in err


def test_cli_list_without_sessions(nb_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``list`` on a notebook without sessions says so and succeeds."""
    code, out, _ = call_cli(capsys, nb_dir / "no_llmsock.ipynb", "list")
    assert code == 0 and "no llmsock sessions" in out


def test_cli_show(nb_dir: Path) -> None:
    """``show ID`` prints the Markdown transcript."""
    code, out, err = run_cli(nb_dir / "two_sessions.ipynb", "show", "analysis-1")
    assert (code, err) == (0, "")
    assert out == notebookfile.markdown(analysis_state())
    assert "(stopped)" in out and "calculator" in out and "Write a long poem about ünïcode 😀" in out


def test_cli_export_json_to_a_file(nb_dir: Path) -> None:
    """``export ID --format json -o FILE`` writes the snapshot to FILE and nothing to stdout."""
    out_file = nb_dir / "out.json"
    code, out, err = run_cli(
        nb_dir / "two_sessions.ipynb", "export", "notes-2", "--format", "json", "-o", out_file
    )
    assert (code, out, err) == (0, "", "")
    assert snapshot.loads(out_file.read_text(encoding="utf-8")) == notes_state()


def test_cli_export_markdown_to_stdout(nb_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``export ID`` prints Markdown by default."""
    code, out, _ = call_cli(capsys, nb_dir / "two_sessions.ipynb", "export", "analysis-1")
    assert code == 0 and out == notebookfile.markdown(analysis_state())


def test_cli_export_refuses_to_overwrite_the_notebook(
    nb_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-o`` naming the notebook itself is a usage error and the notebook is untouched."""
    path = nb_dir / "two_sessions.ipynb"
    before = fingerprint(path)
    code, _, err = call_cli(capsys, path, "export", "notes-2", "-o", path)
    assert code == 2 and "the notebook itself" in err
    assert fingerprint(path) == before


def test_cli_unknown_session_exits_1(nb_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """show/export/remove of an unknown id exit 1 with one line on stderr."""
    path = nb_dir / "two_sessions.ipynb"
    before = fingerprint(path)
    expected = (1, "", f"llmsock: {path}: no session 'nope'\n")
    assert run_cli(path, "export", "nope") == expected
    assert call_cli(capsys, path, "show", "nope") == expected
    assert call_cli(capsys, path, "remove", "nope") == expected
    assert fingerprint(path) == before


def test_cli_remove_one(nb_dir: Path) -> None:
    """``remove ID`` removes that session and reports it."""
    path = nb_dir / "two_sessions.ipynb"
    code, out, _ = run_cli(path, "remove", "notes-2")
    assert code == 0 and "removed session notes-2" in out
    assert list(notebookfile.read_sessions(path).sessions) == ["analysis-1"]


def test_cli_remove_all(nb_dir: Path) -> None:
    """``remove --all`` removes every session and the key."""
    path = nb_dir / "two_sessions.ipynb"
    code, out, _ = run_cli(path, "remove", "--all")
    assert code == 0 and "removed 2 sessions" in out
    assert "llmsock" not in read_nb(path)["metadata"]


@pytest.mark.parametrize("args", [["remove"], ["remove", "notes-2", "--all"]], ids=["neither", "both"])
def test_cli_remove_needs_exactly_one_target(
    nb_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    """``remove`` without an id or --all, or with both, is a usage error and writes nothing."""
    path = nb_dir / "two_sessions.ipynb"
    before = fingerprint(path)
    code, _, err = call_cli(capsys, path, *args)
    assert code == 2 and "give one session ID or --all" in err
    assert fingerprint(path) == before


def test_cli_bad_notebook_exits_2(nb_dir: Path) -> None:
    """A file that is not JSON exits 2 with one line on stderr naming the file."""
    path = nb_dir / "not_json.ipynb"
    code, out, err = run_cli(path, "list")
    assert (code, out) == (2, "")
    assert err.startswith(f"llmsock: {path}: not a notebook: not valid JSON") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("malformed_llmsock.ipynb", ["remove", "--all"], "metadata.llmsock.sessions is not an object"),
        ("newer_schema.ipynb", ["export", "future-1"], "needs a newer llmsock"),
        ("missing.ipynb", ["show", "x"], "cannot read it"),
    ],
    ids=["malformed", "newer session", "missing"],
)
def test_cli_unusable_notebook_or_session_exits_2(
    nb_dir: Path, capsys: pytest.CaptureFixture[str], name: str, args: list[str], message: str
) -> None:
    """A malformed or missing notebook, or an unreadable session, exits 2 with a message."""
    code, out, err = call_cli(capsys, nb_dir / name, *args)
    assert (code, out) == (2, "")
    assert err.startswith(f"llmsock: {nb_dir / name}: ") and message in err


def test_cli_usage_error_exits_2(nb_dir: Path) -> None:
    """An unknown action is a usage error (exit 2)."""
    code, _, err = run_cli(nb_dir / "two_sessions.ipynb", "frobnicate")
    assert code == 2 and "usage:" in err and "invalid choice" in err


def _chat_over_the_cap(turns: int) -> InteractionState:
    messages: list[Message] = []
    for n in range(1, turns + 1):
        messages.append(
            Message(id=f"t{n}:u", role="user", text=f"question {n} " + "x" * 400, turn_id=f"t{n}", ts=n)
        )
        messages.append(Message(id=f"t{n}:a", role="assistant", text=f"answer {n}", turn_id=f"t{n}", ts=n))
    return dataclasses.replace(
        new_state("default", ts=1), messages=tuple(messages), revision=9, updated_at=turns
    )


def _notebook_with_a_cut_chat(tmp_path: Path, state: InteractionState) -> Path:
    """A notebook whose chat was cut to its cap and links its whole copy, as the kernel saves it."""
    path = tmp_path / "analysis.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)
    link = snapshot.FullCopy(path=".llmsock/analysis/default.json", revision=state.revision)
    cut = snapshot.encode_linked(state, link, max_chars=2_000)
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["metadata"]["llmsock"] = {"version": 1, "sessions": {"default": cut}}
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def test_offline_tools_read_the_whole_copy_a_cut_chat_links(tmp_path: Path, capsys: Any) -> None:
    """show / export / list give the whole chat, read from the file its notebook copy links."""
    state = _chat_over_the_cap(20)
    path = _notebook_with_a_cut_chat(tmp_path, state)
    assert notebookfile.read_sessions(path, whole=False).sessions["default"].dropped_turns > 0
    folder = tmp_path / ".llmsock" / "analysis"
    folder.mkdir(parents=True)
    (folder / "default.json").write_text(snapshot.dumps(state), encoding="utf-8")
    before = sorted(p.name for p in folder.iterdir())

    assert main(["sessions", str(path), "show", "default"]) == 0
    shown = capsys.readouterr().out
    assert "question 1 " in shown and "answer 20" in shown
    assert notebookfile.list_sessions(path)[0]["messages"] == 40
    exported = json.loads(notebookfile.export_session(path, "default", format="json"))
    assert len(exported["messages"]) == 40 and exported["droppedTurns"] == 0
    assert sorted(p.name for p in folder.iterdir()) == before  # only read


def test_offline_tools_say_when_the_whole_copy_is_missing(tmp_path: Path, capsys: Any) -> None:
    """Without the file (a notebook shared alone) the cut copy is shown, and the list says why."""
    path = _notebook_with_a_cut_chat(tmp_path, _chat_over_the_cap(20))
    found = notebookfile.read_sessions(path)
    kept = len(found.sessions["default"].messages)
    assert kept < 40
    assert found.problems == [
        f"session 'default': its whole copy, .llmsock/analysis/default.json, is missing;"
        f" showing the {kept} message(s) the notebook holds"
    ]
    for action in (["list"], ["show", "default"], ["export", "default"]):
        assert main(["sessions", str(path), *action]) == 0
        assert f"llmsock: warning: {path}: {found.problems[0]}" in capsys.readouterr().err
