"""Chats kept inside a saved notebook (.ipynb): read, list, export, remove, write.

The notebook's document metadata holds, under its own key (never inside
``metadata.widgets``)::

    "llmsock": {"version": 1, "sessions": {"<session id>": <snapshot>, ...}}

where each snapshot is what :func:`llmsock_widget.snapshot.encode` gives.  A
JupyterLab plugin writes it from the browser; this module is the offline side.

Whose fault:

* :class:`NotebookError` — the file is at fault (cannot be read, not JSON, not
  a valid notebook, a malformed ``llmsock`` block).  Nothing is ever written to
  such a file.
* One session that cannot be read (corrupt, or from a newer llmsock) does not
  spoil the others: it is skipped, reported in :attr:`SessionsRead.problems`,
  and left as it is when the notebook is rewritten.

Rewrites are atomic: a temp file in the same directory, fsync, ``os.replace``.
Only ``metadata.llmsock`` changes; the rest of the JSON is kept as it was read,
written the way Jupyter writes notebooks (indent 1, sorted keys).
"""

from __future__ import annotations

import copy
import json
import os
import re
import reprlib
import stat
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Literal

import nbformat

from ..core import snapshot
from ..core.session import InteractionState, Message, ToolRecord
from ..errors import ClientError, CorruptSnapshot, InvalidSessionId, LlmsockError, SnapshotVersionError
from ..stores.durable import write_atomically
from ..stores.jsonfile import JsonFileStore
from ..stores.notebook import sidecar_dir

KEY = "llmsock"
VERSION = 1

# The session id rule of the protocol (errors.InvalidSessionId); ids are printed, so they must be tame.
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_short = reprlib.Repr()
_short.maxstring = 40
_short.maxother = 40

# Some of nbformat's functions carry no annotations.
_nbformat: Any = nbformat

Format = Literal["markdown", "json"]


class NotebookError(ClientError):
    """The notebook file is at fault: unreadable, not a notebook, or a malformed ``llmsock`` block."""

    code = "notebook_error"

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


class SessionNotFound(ClientError):
    """The notebook holds no session with this id."""

    code = "session_not_found"

    def __init__(self, path: str | os.PathLike[str], session_id: str) -> None:
        super().__init__(f"{os.fspath(path)}: no session {session_id!r}")
        self.path = os.fspath(path)
        self.session_id = session_id


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionsRead:
    """The sessions of a notebook that could be read, and what was wrong with the others."""

    sessions: dict[str, InteractionState]
    problems: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # session id -> problem
    # session id -> why a cut chat is shown cut (its whole copy could not be used); also in problems
    cut: dict[str, str] = field(default_factory=dict)


# -- reading --------------------------------------------------------------------------------


def read_sessions(path: str | os.PathLike[str], *, whole: bool = True) -> SessionsRead:
    """Return the sessions kept in the notebook at ``path``.

    A chat larger than the notebook keeps is cut there and links its whole copy beside the
    notebook (``.llmsock/<notebook name>/<session id>.json``, docs/persistence.md section 2):
    with ``whole`` that copy is read instead when it is there and not older, and a problem
    says when it is not.  The files are only read, never changed.

    Raises:
        NotebookError: the file cannot be read, is not a valid notebook, or
            its ``metadata.llmsock`` block is malformed.
    """
    raw, _ = _load(path)
    raw_sessions = _sessions_of(path, raw) or {}
    found = _decode_sessions(raw_sessions)
    if whole:
        _read_whole_copies(path, raw_sessions, found)
    return found


def list_sessions(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Return one summary per readable session (see :func:`summarize`), ordered by id."""
    found = read_sessions(path).sessions
    return [summarize(found[key]) for key in sorted(found)]


def summarize(state: InteractionState) -> dict[str, Any]:
    """Return ``id, messages, turns, updated (ISO 8601), model, last_status, bytes`` of a session."""
    messages = (*state.messages, state.current) if state.current else state.messages
    answers = [m for m in messages if m.role == "assistant"]
    return {
        "id": state.session_id,
        "messages": len(messages),
        "turns": sum(1 for m in messages if m.role == "user"),
        "updated": _iso(state.updated_at),
        "model": state.model,
        "last_status": answers[-1].status if answers else None,
        "bytes": len(snapshot.dumps(state).encode("utf-8")),
    }


def export_session(path: str | os.PathLike[str], session_id: str, *, format: Format = "markdown") -> str:
    """Return one session as a Markdown transcript or as its pretty-printed JSON snapshot.

    Raises:
        SessionNotFound: no session has this id.
        NotebookError: the notebook is bad, or this session cannot be read.
        ValueError: an unknown ``format``.
    """
    if format not in ("markdown", "json"):
        raise ValueError(f"unknown export format {format!r}: use 'markdown' or 'json'")
    found = read_sessions(path)
    if session_id in found.unreadable:
        raise NotebookError(path, found.unreadable[session_id])
    if session_id not in found.sessions:
        raise SessionNotFound(path, session_id)
    state = found.sessions[session_id]
    if format == "json":
        return json.dumps(snapshot.encode(state), indent=2, ensure_ascii=False) + "\n"
    return markdown(state)


# -- writing --------------------------------------------------------------------------------


def remove_session(path: str | os.PathLike[str], session_id: str) -> bool:
    """Remove one session (readable or not); return whether it was there.  The file is untouched if not."""

    def edit(sessions: dict[str, Any]) -> bool:
        if session_id not in sessions:
            return False
        del sessions[session_id]
        return True

    return _rewrite(path, edit, create=False)


def remove_all(path: str | os.PathLike[str]) -> int:
    """Remove every session and the ``llmsock`` key; return how many there were."""
    removed = 0

    def edit(sessions: dict[str, Any]) -> bool:
        nonlocal removed
        removed = len(sessions)
        sessions.clear()
        return removed > 0

    _rewrite(path, edit, create=False)
    return removed


def write_session(path: str | os.PathLike[str], state: InteractionState) -> None:
    """Store ``state`` in the notebook, replacing a session with the same id.

    Raises:
        InvalidSessionId: the state's id is not a valid session id.
        SnapshotVersionError: the stored session was written by a newer llmsock (it is kept).
        NotebookError: the notebook is bad (nothing is written).
    """
    if not _SESSION_ID.fullmatch(state.session_id):
        raise InvalidSessionId(f"not a valid session id: {_short.repr(state.session_id)}")
    encoded = snapshot.encode(state)

    def edit(sessions: dict[str, Any]) -> bool:
        old = sessions.get(state.session_id)
        if isinstance(old, dict) and _newer_schema(old.get("schema")):
            raise SnapshotVersionError(
                f"{os.fspath(path)}: session {state.session_id!r} was saved by a newer llmsock;"
                " not overwriting it"
            )
        sessions[state.session_id] = encoded
        return True

    _rewrite(path, edit, create=True)


# -- transcript -----------------------------------------------------------------------------


def markdown(state: InteractionState) -> str:
    """Return a Markdown transcript of a session: prompts, answers, reasoning, tool calls."""
    count = len(state.messages) + (1 if state.current else 0)
    lines = [
        f"# llmsock session `{state.session_id}`",
        "",
        f"Model: {state.model or 'unknown'} · created {_iso(state.created_at)}"
        f" · updated {_iso(state.updated_at)} · {count} message{'' if count == 1 else 's'}",
    ]
    for message in (*state.messages, state.current) if state.current else state.messages:
        lines += ["", "---", "", *_message_lines(message)]
    return "\n".join(lines) + "\n"


def _message_lines(m: Message) -> list[str]:
    marks = {
        "aborted": " (stopped)",
        "error": f" ({_error_text(m.error)})",
        "length": " (cut off at the length limit)",
        "streaming": " (still streaming when saved)",
    }
    who = "User" if m.role == "user" else "Assistant"
    lines = [f"**{who}**{marks.get(m.status, '')} · {_iso(m.ts)}", ""]
    if m.reasoning:
        lines += ["> *Reasoning*", ">", *(f"> {line}".rstrip() for line in m.reasoning.splitlines()), ""]
    for record in m.tools:
        lines += _tool_lines(record)
    lines.append(m.text if m.text else "*(no text)*")
    for name, text in m.attachments:  # what a mention sent the model, as the prompt's chip shows it
        lines += ["", f"Attached {_code_span('@' + name)}:", "", *_fenced(text, "text")]
    return lines


def _tool_lines(r: ToolRecord) -> list[str]:
    status = _error_text(r.error) if r.status == "error" else r.status
    asked = f", {_APPROVAL_SAID.get(r.approval, r.approval)}" if r.approval else ""
    lines = [f"Tool call {_code_span(r.name)} ({status}{asked})", "", "Arguments:", ""]
    try:
        lines += _fenced(json.dumps(json.loads(r.arguments), indent=2, ensure_ascii=False), "json")
    except (ValueError, RecursionError):  # a model's arguments may be nested thousands deep
        lines += _fenced(r.arguments, "text")
    if r.result is not None:
        shown = json.dumps(r.result, indent=2, ensure_ascii=False, default=str)
        lines += ["", "Result:", "", *_fenced(shown, "json")]
    return [*lines, ""]


_APPROVAL_SAID = {
    "pending": "waiting for approval",
    "approved": "approved by the user",
    "denied": "denied by the user",
    "timeout": "not approved in time",
    "aborted": "stopped while waiting for approval",
}


def _error_text(error: dict[str, str] | None) -> str:
    error = error or {}
    text = f"error: {error.get('code', 'unknown')}: {error.get('message', '')}".rstrip(": ")
    return " ".join(text.split())  # on one line: it goes in a heading


def _fenced(text: str, language: str) -> list[str]:
    # A fence longer than any backtick run inside, so the content cannot close it.
    fence = "`" * max(3, _longest_backticks(text) + 1)
    return [f"{fence}{language}", text, fence]


def _code_span(text: str) -> str:
    ticks = "`" * (_longest_backticks(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _longest_backticks(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def _iso(ms: int) -> str:
    try:
        when = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
    except (OverflowError, ValueError, OSError):
        return f"{ms} ms"
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


# -- the file -------------------------------------------------------------------------------


def _load(path: str | os.PathLike[str]) -> tuple[dict[str, Any], os.stat_result]:
    """Return the notebook's JSON as read (checked to be a valid notebook) and the file's stat."""
    try:
        with open(path, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise NotebookError(path, "not a regular file")
            data = file.read()
    except OSError as exc:
        raise NotebookError(path, f"cannot read it: {exc.strerror or type(exc).__name__}") from None
    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise NotebookError(path, "not a notebook: the file is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise NotebookError(path, f"not a notebook: not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or type(raw.get("nbformat")) is not int:
        raise NotebookError(path, "not a notebook: no 'nbformat' version number")
    if not isinstance(raw.get("metadata", {}), dict):
        raise NotebookError(path, "not a valid notebook: its metadata is not an object")
    _validate(path, raw)
    return raw, info


def _validate(path: str | os.PathLike[str], raw: dict[str, Any]) -> None:
    # nbformat normalizes what it validates (cell ids): it gets a copy, so what we write back is
    # what the file held.  Its own reads/writes would also log; the checks below raise instead.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            major, minor = _nbformat.reader.get_version(raw)
            if major not in _nbformat.versions:
                raise NotebookError(path, f"nbformat {major} is not a notebook format nbformat knows")
            nb = _nbformat.versions[major].to_notebook_json(copy.deepcopy(raw), minor=minor)
            _nbformat.validate(_nbformat.convert(nb, 4))
    except _nbformat.ValidationError as exc:
        raise NotebookError(path, f"not a valid notebook: {_validation_text(exc)}") from None
    except NotebookError:
        raise
    except AttributeError as exc:  # how nbformat's readers meet a missing key
        raise NotebookError(path, f"not a valid notebook: a required field is missing: {exc}") from None
    except Exception as exc:  # nbformat's converters raise what they meet (KeyError, TypeError, ...)
        raise NotebookError(path, f"not a valid notebook: {type(exc).__name__}: {exc}") from None


def _validation_text(exc: Any) -> str:
    # jsonschema's message quotes the whole offending value: keep it short and say where it is.
    lines = str(getattr(exc, "message", "") or "").strip().splitlines()
    text = lines[0] if lines else "invalid"
    text = text if len(text) <= 120 else text[:117] + "..."
    where = "/".join(str(p) for p in getattr(exc, "absolute_path", ()) or ())
    return f"at {where}: {text}" if where else text


def _sessions_of(path: str | os.PathLike[str], raw: dict[str, Any]) -> dict[str, Any] | None:
    """Return the raw ``sessions`` object of the ``llmsock`` block, None if there is no block."""
    metadata = raw.get("metadata")
    if not isinstance(metadata, dict) or KEY not in metadata:
        return None
    block = metadata[KEY]
    where = f"metadata.{KEY}"
    if not isinstance(block, dict):
        raise NotebookError(path, f"{where} is not an object")
    version = block.get("version")
    if type(version) is not int or version < 1:
        raise NotebookError(
            path, f"{where} has no valid version (expected {VERSION}): {_short.repr(version)}"
        )
    if version > VERSION:
        raise NotebookError(
            path, f"{where} is version {version}: it needs a newer llmsock (this one reads {VERSION})"
        )
    sessions = block.get("sessions")
    if not isinstance(sessions, dict):
        raise NotebookError(path, f"{where}.sessions is not an object")
    return sessions


def _decode_sessions(raw_sessions: dict[str, Any]) -> SessionsRead:
    sessions: dict[str, InteractionState] = {}
    unreadable: dict[str, str] = {}
    for key, data in raw_sessions.items():
        name = f"session {_short.repr(key)}"
        if not _SESSION_ID.fullmatch(key):
            unreadable[key] = f"{name}: not a valid session id; skipped"
            continue
        try:
            state = snapshot.decode(data)
        except SnapshotVersionError:
            schema = data.get("schema") if isinstance(data, dict) else None
            unreadable[key] = (
                f"{name} needs a newer llmsock (snapshot schema {schema}; this one reads"
                f" {snapshot.SCHEMA}); skipped, kept in the notebook"
            )
            continue
        except CorruptSnapshot as exc:
            unreadable[key] = f"{name}: {exc.message}; skipped"
            continue
        if state.session_id != key:
            unreadable[key] = f"{name}: its snapshot is for session {state.session_id!r}; skipped"
            continue
        sessions[key] = state
    return SessionsRead(sessions=sessions, problems=list(unreadable.values()), unreadable=unreadable)


def _read_whole_copies(
    path: str | os.PathLike[str], raw_sessions: dict[str, Any], found: SessionsRead
) -> None:
    """Put, in ``found``, the whole copy of each cut session that links one, where it can be read."""
    files = JsonFileStore(sidecar_dir(Path(os.path.abspath(path))))
    for key, cut in list(found.sessions.items()):
        link = snapshot.full_copy_of(raw_sessions.get(key))
        if link is None or cut.dropped_turns == 0:
            continue
        try:
            whole = files.peek_sync(key)
        except LlmsockError as exc:
            why = f"could not be read ({exc.message})"
        else:
            if whole is not None and whole.session_id == key:
                if snapshot.recency(whole) >= snapshot.recency(cut):
                    found.sessions[key] = whole
                    continue
                why = "is older than the notebook's"
            else:
                why = "is missing"
        found.cut[key] = (
            f"session {key!r}: its whole copy, {link.path}, {why};"
            f" showing the {len(cut.messages)} message(s) the notebook holds"
        )
        found.problems.append(found.cut[key])


def _newer_schema(schema: Any) -> bool:
    return type(schema) is int and schema > snapshot.SCHEMA


def _rewrite(path: str | os.PathLike[str], edit: Callable[[dict[str, Any]], bool], *, create: bool) -> bool:
    """Apply ``edit`` to the raw sessions object and write the notebook back if it says so.

    ``create``: add an empty ``llmsock`` block when there is none (else a missing block
    means there is nothing to edit).  The block is removed when no session is left.
    """
    target = os.path.realpath(path)  # write through a symlink, not over it
    raw, before = _load(path)
    if raw["nbformat"] != 4:
        raise NotebookError(
            path, f"nbformat {raw['nbformat']} notebooks are read-only here; save it in Jupyter"
        )
    sessions = _sessions_of(path, raw)
    if sessions is None and not create:
        return False
    sessions = {} if sessions is None else sessions
    if not edit(sessions):
        return False
    metadata = raw.setdefault("metadata", {})
    if sessions:
        metadata[KEY] = {**(metadata.get(KEY) or {}), "version": VERSION, "sessions": sessions}
    else:
        metadata.pop(KEY, None)
    text = json.dumps(raw, indent=1, sort_keys=True, ensure_ascii=False) + "\n"  # as Jupyter writes it
    _replace(path, target, text.encode("utf-8"), before)
    return True


def _replace(shown: str | os.PathLike[str], target: str, data: bytes, before: os.stat_result) -> None:
    def unchanged() -> None:
        now = os.stat(target)
        if (now.st_ino, now.st_size, now.st_mtime_ns) != (before.st_ino, before.st_size, before.st_mtime_ns):
            raise NotebookError(shown, "the notebook changed while it was being edited; nothing written")

    directory, name = os.path.split(target)
    write_atomically(directory, name, data, mode=stat.S_IMODE(before.st_mode), check=unchanged)


__all__ = [
    "NotebookError",
    "SessionNotFound",
    "SessionsRead",
    "export_session",
    "list_sessions",
    "markdown",
    "read_sessions",
    "remove_all",
    "remove_session",
    "summarize",
    "write_session",
]
