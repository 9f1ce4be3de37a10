"""Session state <-> versioned JSON snapshot.  Pure.

A snapshot is a JSON object ``{"schema": 1, ...}`` (docs/protocol.md,
"Snapshots").  :func:`decode` migrates older schemas forward and refuses newer
ones with :class:`~llmsock_widget.errors.SnapshotVersionError`; a snapshot that
is not well formed raises :class:`~llmsock_widget.errors.CorruptSnapshot`.
Unknown fields are ignored, so a later minor addition still loads.

A snapshot cut to a size cap (:func:`fit`) may link the whole session kept
elsewhere, in an optional ``fullCopy`` field (:class:`FullCopy`,
:func:`encode_linked`, :func:`full_copy_of`); readers that do not know it ignore it.

Snapshots hold no secrets: the state has no place for a token or a key.

Integers reach the browser, where numbers are doubles: every integer field is at
most :data:`MAX_INTEGER` (2**53 - 1, JavaScript's ``Number.MAX_SAFE_INTEGER``), and
the counters that keep growing (``seq``, ``revision``, ``droppedTurns``) at most
:data:`MAX_COUNTER`, so they can go on counting without leaving that range.  A
snapshot over a bound is refused as corrupt, never clamped: a clamped ``seq``
would make the widget drop every new event as one it has seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Callable

from ..errors import CorruptSnapshot, SnapshotVersionError
from .session import APPROVALS, InteractionState, Message, ToolRecord
from .settings import SETTINGS, check_setting, settings_of

SCHEMA = 1

MAX_INTEGER = 2**53 - 1
"""The largest integer a snapshot may hold: the largest a JavaScript number holds exactly."""

MAX_COUNTER = 2**52
"""The largest ``seq``, ``revision`` or ``droppedTurns``: 2**52 more steps stay exact in JavaScript."""

# schema N -> function turning an N snapshot into an N+1 snapshot.
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

_MESSAGE_STATUSES = ("complete", "streaming", "aborted", "error", "length")


def encode(state: InteractionState) -> dict[str, Any]:
    """Return the snapshot of ``state`` as a JSON-ready dict."""
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "sessionId": state.session_id,
        "seq": state.seq,
        "revision": state.revision,
        "phase": state.phase,
        "status": state.status,
        "turnId": state.turn_id,
        "model": state.model,
        "createdAt": state.created_at,
        "updatedAt": state.updated_at,
        "droppedTurns": state.dropped_turns,
        "messages": [_encode_message(m) for m in state.messages],
        "current": _encode_message(state.current) if state.current else None,
    }
    if state.settings:  # a session whose prompts set none has none (and old readers see nothing new)
        out["settings"] = dict(state.settings)
    return out


def decode(data: Any) -> InteractionState:
    """Return the state a snapshot dict describes, migrating older schemas."""
    if not isinstance(data, dict):
        raise CorruptSnapshot("snapshot is not a JSON object")
    schema = data.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise CorruptSnapshot(f"snapshot has no valid schema number: {schema!r}")
    if schema > SCHEMA:
        raise SnapshotVersionError(
            f"snapshot schema {schema} is newer than this llmsock understands ({SCHEMA}); upgrade llmsock"
        )
    try:
        while schema < SCHEMA:
            data = _MIGRATIONS[schema](data)
            schema = data["schema"]
        current = data.get("current")
        state = InteractionState(
            session_id=_str(data, "sessionId"),
            seq=_int(data, "seq", most=MAX_COUNTER),
            revision=_int(data, "revision", most=MAX_COUNTER),
            phase=_choice(data, "phase", ("idle", "turn", "streaming")),  # type: ignore[arg-type]
            status=_choice(data, "status", ("idle", "generating", "paused")),  # type: ignore[arg-type]
            turn_id=_opt_str(data, "turnId"),
            model=_str(data, "model", allow_empty=True),
            created_at=_int(data, "createdAt"),
            updated_at=_int(data, "updatedAt"),
            dropped_turns=_int(data, "droppedTurns", most=MAX_COUNTER) if "droppedTurns" in data else 0,
            messages=tuple(_decode_message(m) for m in _list(data, "messages")),
            current=_decode_message(current) if current is not None else None,
            settings=_settings(data["settings"]) if "settings" in data else {},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptSnapshot(f"snapshot is malformed: {exc}") from None
    _check_consistent(state)
    return state


def _check_consistent(state: InteractionState) -> None:
    # Fields that must agree with the phase, so a loaded state can take the next event.
    if (state.phase == "streaming") != (state.current is not None):
        raise CorruptSnapshot("snapshot is malformed: 'current' must be set exactly while streaming")
    if (state.phase == "idle") != (state.turn_id is None):
        raise CorruptSnapshot("snapshot is malformed: 'turnId' must be set exactly during a turn")


DEFAULT_MAX_CHARS = 256 * 1024


def fit(state: InteractionState, *, max_chars: int = DEFAULT_MAX_CHARS) -> InteractionState:
    """Return ``state`` with its oldest turns dropped until its snapshot is at most ``max_chars`` long.

    The policy keeps a notebook small: whole turns (a user message and what answered it) go,
    oldest first, and ``dropped_turns`` counts them; the latest turn and the streaming answer
    are always kept, so a snapshot may stay over the cap when one turn alone is larger.
    """
    size = len(dumps(state))
    messages = list(state.messages)
    dropped = 0
    while size > max_chars:
        cut = _first_turn_length(messages)
        if cut == 0 or cut == len(messages):
            break
        size -= sum(
            len(json.dumps(_encode_message(m), ensure_ascii=False, separators=(",", ":"))) + 1
            for m in messages[:cut]
        )
        del messages[:cut]
        dropped += 1
    if not dropped:
        return state
    fitted = replace(state, messages=tuple(messages), dropped_turns=state.dropped_turns + dropped)
    if len(dumps(fitted)) > max_chars and len(messages) > _first_turn_length(messages):
        return fit(fitted, max_chars=max_chars)  # the count's own digits tipped it over: one more
    return fitted


@dataclass(frozen=True, kw_only=True, slots=True)
class FullCopy:
    """Where the whole session is kept when a snapshot of it was cut: a file and its revision.

    ``path`` is relative to the notebook's folder (``.llmsock/<notebook name>/<session>.json``)
    when the file is in the notebook's sidecar folder, else absolute; it tells people and
    tools where to look, and a reader never opens a path it names (it looks in its own store).
    """

    path: str
    revision: int


MAX_LINK_PATH = 4096
"""The longest ``fullCopy.path`` a reader accepts; a longer one is ignored."""

_FULL_COPY = "fullCopy"


def encode_linked(
    state: InteractionState, copy: FullCopy, *, max_chars: int = DEFAULT_MAX_CHARS
) -> dict[str, Any]:
    """Return the snapshot of ``state`` fitted to ``max_chars`` with a link to its full copy.

    The link counts toward the cap: the fitted snapshot leaves room for it, so the JSON of
    the result is at most ``max_chars`` characters (unless the latest turn alone is larger).
    """
    link = {"path": copy.path, "revision": copy.revision}
    # The link's JSON as an object of its own: its '{' and '}' make room for the ',' before it.
    room = len(json.dumps({_FULL_COPY: link}, ensure_ascii=False, separators=(",", ":")))
    data = encode(fit(state, max_chars=max(max_chars - room, 0)))
    data[_FULL_COPY] = link
    return data


def full_copy_of(data: Any) -> FullCopy | None:
    """Return the ``fullCopy`` link of a snapshot dict, or None when it has none or a malformed one.

    The link is optional: a malformed one is ignored like an unknown field, and the
    snapshot still loads (what it holds is whole, apart from its ``droppedTurns``).
    """
    link = data.get(_FULL_COPY) if isinstance(data, dict) else None
    if not isinstance(link, dict):
        return None
    path, revision = link.get("path"), link.get("revision")
    if not isinstance(path, str) or not 0 < len(path) <= MAX_LINK_PATH:
        return None
    if type(revision) is not int or not 0 <= revision <= MAX_COUNTER:
        return None
    return FullCopy(path=path, revision=revision)


def recency(state: InteractionState) -> tuple[int, int]:
    """Order copies of one session, newest last: the later save, then the fuller copy.

    Copies saved at the same moment hold the same state, and then the one that dropped
    fewer turns wins (a notebook's copy cut to its cap against the whole file written with it).
    """
    return (state.updated_at, -state.dropped_turns)


def merge(stored: InteractionState, ours: InteractionState) -> tuple[InteractionState, int]:
    """Return ``ours`` joined with the messages only ``stored`` has, and how many those are.

    For a save that finds another writer's newer copy (its ``revision`` is not below ours):
    the stored messages come first, as stored (that copy is the newer one), then ours that
    it lacks, and the messages of one turn stay together (a prompt saved by one side before
    the other saved its own turn still has its answer right after it); the turn in progress
    is ours.  Nothing either side holds is dropped.  The result's ``revision`` is one past
    the stored one.
    """
    mine = {_message_key(m) for m in ours.messages}
    stored_keys = {_message_key(m) for m in stored.messages}
    turns: dict[str, list[Message]] = {}
    for m in (*stored.messages, *(m for m in ours.messages if _message_key(m) not in stored_keys)):
        turns.setdefault(m.turn_id, []).append(m)
    merged = replace(
        ours,
        messages=tuple(m for turn in turns.values() for m in turn),
        seq=max(stored.seq, ours.seq),
        revision=stored.revision + 1,
        created_at=min(stored.created_at, ours.created_at),
        updated_at=max(stored.updated_at, ours.updated_at),
        dropped_turns=max(stored.dropped_turns, ours.dropped_turns),
    )
    return merged, len(stored_keys - mine)


def _message_key(m: Message) -> tuple[str, str, str]:
    # Turn ids are random and made by the server: two writers never share one by chance.
    return (m.turn_id, m.role, m.id)


def _first_turn_length(messages: list[Message]) -> int:
    """Return how many leading messages make up the first turn (0 if there are none)."""
    if not messages:
        return 0
    turn = messages[0].turn_id
    count = 0
    while count < len(messages) and messages[count].turn_id == turn:
        count += 1
    return count


def dumps(state: InteractionState) -> str:
    """Return the snapshot of ``state`` as compact JSON text."""
    return json.dumps(encode(state), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def loads(text: str | bytes) -> InteractionState:
    """Return the state in a JSON snapshot text."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CorruptSnapshot(f"snapshot is not valid JSON: {exc}") from None
    return decode(data)


def _encode_message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": m.id,
        "role": m.role,
        "text": m.text,
        "turnId": m.turn_id,
        "ts": m.ts,
        "status": m.status,
    }
    if m.error is not None:
        out["error"] = dict(m.error)
    if m.usage is not None:
        out["usage"] = dict(m.usage)
    if m.reasoning:
        out["reasoning"] = m.reasoning
    if m.tools:
        out["tools"] = [_encode_tool(r) for r in m.tools]
    if m.replaced:
        out["replaced"] = m.replaced
    if m.attachments:
        out["attachments"] = [{"name": name, "text": text} for name, text in m.attachments]
    return out


def _encode_tool(r: ToolRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"id": r.id, "name": r.name, "arguments": r.arguments, "status": r.status}
    if r.result is not None:
        out["result"] = r.result
    if r.error is not None:
        out["error"] = dict(r.error)
    if r.approval:  # only a call that needed approval has one (and old readers see nothing new)
        out["approval"] = r.approval
    if r.approval == "pending":  # a view that opens while it waits shows the time left
        out["askedAt"] = r.asked_at
        out["timeoutMs"] = r.timeout_ms
    return out


def _decode_tool(data: Any) -> ToolRecord:
    if not isinstance(data, dict):
        raise TypeError("tool record is not an object")
    error = data.get("error")
    if error is not None and not (
        isinstance(error, dict) and all(isinstance(v, str) for v in error.values())
    ):
        raise TypeError("tool error must map to strings")
    return ToolRecord(
        id=_str(data, "id"),
        name=_str(data, "name"),
        arguments=_str(data, "arguments", allow_empty=True),
        status=_choice(data, "status", ("running", "complete", "error")),  # type: ignore[arg-type]
        result=data.get("result"),
        error=dict(error) if error is not None else None,
        approval=_choice(data, "approval", APPROVALS) if "approval" in data else "",  # type: ignore[arg-type]
        asked_at=_int(data, "askedAt") if "askedAt" in data else 0,
        timeout_ms=_int(data, "timeoutMs") if "timeoutMs" in data else 0,
    )


def _decode_message(data: Any) -> Message:
    if not isinstance(data, dict):
        raise TypeError("message is not an object")
    error = data.get("error")
    usage = data.get("usage")
    if error is not None and not (
        isinstance(error, dict) and all(isinstance(v, str) for v in error.values())
    ):
        raise TypeError("message error must map to strings")
    if usage is not None and not (isinstance(usage, dict) and all(_in_range(v) for v in usage.values())):
        raise TypeError(f"message usage must map to integers from 0 to {MAX_INTEGER}")
    return Message(
        id=_str(data, "id"),
        role=_choice(data, "role", ("user", "assistant")),  # type: ignore[arg-type]
        text=_str(data, "text", allow_empty=True),
        turn_id=_str(data, "turnId", allow_empty=True),
        ts=_int(data, "ts"),
        status=_choice(data, "status", _MESSAGE_STATUSES),  # type: ignore[arg-type]
        error=dict(error) if error is not None else None,
        usage=dict(usage) if usage is not None else None,
        reasoning=_str(data, "reasoning", allow_empty=True) if "reasoning" in data else "",
        tools=tuple(_decode_tool(r) for r in _list(data, "tools")) if "tools" in data else (),
        replaced=_int(data, "replaced") if "replaced" in data else 0,
        attachments=_attachments(data["attachments"]) if "attachments" in data else (),
    )


def _attachments(data: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(data, list) or not all(
        isinstance(a, dict) and isinstance(a.get("name"), str) and isinstance(a.get("text"), str)
        for a in data
    ):
        raise TypeError("attachments must be a list of {name, text} strings")
    return tuple((a["name"], a["text"]) for a in data)


def _settings(data: Any) -> dict[str, Any]:
    """Return a session's settings, each checked by the rule a prompt's option meets.

    A key this version does not know is left out (a later minor addition), as unknown fields are;
    a null (or an empty ``system``) is an option not set, as in a prompt.
    """
    if not isinstance(data, dict):
        raise TypeError("settings must be an object")
    checked = {}
    for key in SETTINGS:
        if data.get(key) is not None:
            try:
                checked[key] = check_setting(key, data[key])
            except ValueError as exc:
                raise ValueError(f"settings.{exc}") from None
    return settings_of(checked)


def _str(data: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = data[key]
    if not isinstance(value, str) or (not value and not allow_empty):
        raise TypeError(f"{key} must be a {'' if allow_empty else 'non-empty '}string")
    return value


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{key} must be a string or null")
    return value


def _int(data: dict[str, Any], key: str, *, most: int = MAX_INTEGER) -> int:
    value = data[key]
    if type(value) is not int or value < 0:
        raise TypeError(f"{key} must be a non-negative integer")
    if value > most:
        raise ValueError(f"{key} is out of range: {_short_int(value)} is over the largest allowed, {most}")
    return value


def _in_range(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_INTEGER


def _short_int(value: int) -> str:
    # A hostile file may hold an integer of thousands of digits; the message stays short.
    return str(value) if value.bit_length() <= 96 else f"an integer of about 2**{value.bit_length()}"


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list):
        raise TypeError(f"{key} must be a list")
    return value


def _choice(data: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = data[key]
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}")
    return str(value)
