"""Interaction state and its reducer: ``apply(state, event) -> state``.  Pure.

A session goes through turns.  Whether an event may happen, and the phase and
status it leads to, come from one table, :data:`.lifecycle.TRANSITIONS`; events it
does not list for the session's phase and status are refused with
:class:`InvalidTransition`, which is our bug, never the peer's.  The phases::

    phase       event                          next phase
    idle        UserMessage                    turn       (one replacing a prompt cuts the transcript)
    turn        ModelStart                     streaming
    turn        ModelEnd / ModelError          idle       (failed or aborted before the model began)
    streaming   ModelDelta / ModelReasoning    streaming
    streaming   ModelUsage / ToolCall          streaming
    streaming   ToolResult (of a known call)   streaming
    streaming   ToolApproval / ToolApproved    streaming  (of a known running call; also while paused)
    streaming   ModelEnd / ModelError          idle
    idle        HistoryCleared                 idle
    any         Diagnostic                     same

``StatusChanged`` keeps the phase: ``paused`` only during a turn, ``generating``
from the prompt on and on resume, ``idle`` once the answer has ended; while
paused, only a running tool's ``ToolResult`` and the turn's end may come.
The handlers here only say what else an event changes (the messages).

Every event's ``seq`` must be exactly ``state.seq + 1``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..errors import LocalError
from .events import (
    Diagnostic,
    HistoryCleared,
    ModelDelta,
    ModelEnd,
    ModelError,
    ModelReasoning,
    ModelStart,
    ModelUsage,
    SessionEvent,
    Status,
    StatusChanged,
    ToolApproval,
    ToolApproved,
    ToolCall,
    ToolResult,
    UserMessage,
)
from .lifecycle import Phase, Stage, kind, next_stage
from .settings import settings_of

Role = Literal["user", "assistant"]
MessageStatus = Literal["complete", "streaming", "aborted", "error", "length"]


class InvalidTransition(LocalError):
    """An event that the session's phase does not allow (a bug in the caller, never the peer's).

    Its wire code is ``internal_error``: it reports our bug, not something a client can fix.
    """

    code = "internal_error"


ToolStatus = Literal["running", "complete", "error"]
Approval = Literal["", "pending", "approved", "denied", "timeout", "aborted"]
APPROVALS: tuple[Approval, ...] = ("", "pending", "approved", "denied", "timeout", "aborted")
"""A tool record's approval: ``""`` none needed, ``"pending"`` waiting for the user, then the decision."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolRecord:
    """One tool call of an answer: what was asked and what came back (and, if asked, the user's approval)."""

    id: str
    name: str
    arguments: str
    status: ToolStatus = "running"
    result: Any = None
    error: dict[str, str] | None = None
    approval: Approval = ""
    # While ``pending``: when the approval was asked (ms, the server's clock) and how long it waits,
    # so a view that opens meanwhile shows the time left.
    asked_at: int = 0
    timeout_ms: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    """One message of the transcript (an answer also holds its reasoning and tool calls)."""

    id: str
    role: Role
    text: str
    turn_id: str
    ts: int
    status: MessageStatus = "complete"
    error: dict[str, str] | None = None
    usage: dict[str, int] | None = None
    reasoning: str = ""
    tools: tuple[ToolRecord, ...] = ()
    replaced: int = 0  # user: how many messages this prompt took the place of (an edit, a regenerate)
    attachments: tuple[tuple[str, str], ...] = ()  # user: (name, text) of each mention the model also reads


@dataclass(frozen=True, kw_only=True, slots=True)
class InteractionState:
    """Everything a session needs to go on and to be shown.

    ``current`` is the assistant message being streamed, kept apart from
    ``messages`` so that a delta replaces one small value, not the transcript.
    ``revision`` counts saves (stores use it to refuse stale writes).
    ``settings`` are the options of the last prompt that a session keeps (its system prompt,
    temperature, maxTokens and model: :mod:`.settings`), those it set.
    """

    session_id: str
    seq: int = 0
    revision: int = 0
    phase: Phase = "idle"
    status: Status = "idle"
    turn_id: str | None = None
    messages: tuple[Message, ...] = ()
    current: Message | None = None
    model: str = ""
    created_at: int = 0
    updated_at: int = 0
    dropped_turns: int = 0  # earlier turns left out of this state to keep its snapshot small
    settings: dict[str, Any] = field(default_factory=dict)


def new_state(session_id: str, *, ts: int = 0, model: str = "") -> InteractionState:
    """Return the state of a session that has seen nothing yet."""
    return InteractionState(session_id=session_id, created_at=ts, updated_at=ts, model=model)


def apply(state: InteractionState, event: SessionEvent) -> InteractionState:
    """Return the state after ``event``; raise :class:`InvalidTransition` if it cannot happen."""
    phase, status = check(state, event)
    # Handlers return the fields that change, so each event costs one replace (deltas are the hot path).
    changes = _HANDLERS[type(event)](state, event)
    return replace(
        state,
        **changes,
        phase=phase,
        status=status,
        seq=event.seq,
        updated_at=max(state.updated_at, event.ts),
    )


def check(state: InteractionState, event: SessionEvent, *, seq: int | None = None) -> Stage:
    """Return the phase and status after ``event``; raise :class:`InvalidTransition` if it cannot happen.

    ``seq`` stands for ``state.seq`` when the caller keeps the latest seq apart
    (a live session does while deltas' text waits to be folded into its state).
    The handlers may still refuse what the event names (an unknown tool call).
    """
    if event.session_id != state.session_id:
        raise InvalidTransition(f"event for session {event.session_id!r} applied to {state.session_id!r}")
    last = state.seq if seq is None else seq
    if event.seq != last + 1:
        raise InvalidTransition(f"event seq {event.seq} does not follow {last}")
    event_kind = kind(event)
    stage = next_stage(state.phase, state.status, event_kind)
    if stage is None:
        raise InvalidTransition(f"{event_kind} not allowed while {state.phase} (status {state.status})")
    if state.phase != "idle" and not isinstance(event, (Diagnostic, StatusChanged)):
        if event.turn_id != state.turn_id:
            raise InvalidTransition(f"event for turn {event.turn_id!r} during turn {state.turn_id!r}")
    return stage


def history(state: InteractionState, *, native_tools: bool = True) -> list[dict[str, Any]]:
    """Return the conversation in the OpenAI chat format, for a model.

    The shape is one that strict chat templates (Gemma's, Mistral's) accept: the roles
    alternate user, assistant, user, ...; an answer that called tools is given as one
    assistant message with all its calls, one ``tool`` message per call, then an assistant
    message with its text (with ``native_tools=False``, for a request that offers no tools,
    as one assistant message that says the calls and results in words before its text:
    :func:`tools_said`); every ``content`` is a string.  So every prompt is followed by an
    assistant message: an answer that ended with no text (failed, stopped or cut before its
    first token, or a prompt whose answer was never recorded) is given as a short note of what
    became of it (:func:`answer_note`), and an aborted or failed answer with text as the text
    it reached, as the user saw it.  An answer with no prompt before it (a snapshot cut
    mid-turn) is left out.  The prompt being answered comes last.
    """
    out: list[dict[str, Any]] = []
    waiting = False  # a prompt whose answer has not been given yet
    for message in state.messages:
        if message.role == "user":
            if waiting:
                out.append({"role": "assistant", "content": NO_ANSWER})
            out.append({"role": "user", "content": user_content(message)})
            waiting = True
        elif waiting:
            out += answer_messages(message) if native_tools else [answer_said(message)]
            waiting = False
    return out


def user_content(message: Message) -> str:
    """Return a prompt as its model reads it: the text, then one block per attachment (a mention).

    The blocks follow the text, each after a blank line: ``Context `@NAME`:`` and the attachment's
    text in a ``text`` code fence.
    """
    if not message.attachments:
        return message.text
    blocks = [f"Context `@{name}`:\n```text\n{text}\n```" for name, text in message.attachments]
    return "\n\n".join([message.text, *blocks])


def attachments_of(options: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Return the ``(name, text)`` pairs of a prompt's ``attachments`` option (none if it has none)."""
    value = options.get("attachments")
    if not isinstance(value, list):
        return ()
    return tuple(
        (item["name"], item["text"])
        for item in value
        if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("text"), str)
    )


NO_ANSWER = "(no answer)"
"""What the model is told an answer was when it has no text and nothing else is known."""


def answer_messages(message: Message) -> list[dict[str, Any]]:
    """Return an answer as the model sees it: its tool calls and results, then its text or a note."""
    out = tool_messages(message.tools) if message.tools else []
    out.append({"role": "assistant", "content": message.text or answer_note(message)})
    return out


def answer_said(message: Message) -> dict[str, Any]:
    """Return an answer as one assistant message: its tool calls and results said in words, then its text."""
    parts = [tools_said(message.tools)] if message.tools else []
    parts.append(message.text or answer_note(message))
    return {"role": "assistant", "content": "\n\n".join(parts)}


def tools_said(records: tuple[ToolRecord, ...]) -> str:
    """Return tool calls and their results as a note in words.

    E.g. ``(tool calls: get_time({}) returned 12:00)``.
    """
    lines = []
    for r in records:
        if r.status == "complete":
            outcome = f"returned {_json_text(r.result)}"
        else:
            error = r.error or {}
            outcome = f"failed: {error.get('message') or error.get('code') or 'no result'}"
        lines.append(f"{r.name}({r.arguments}) {outcome}")
    return "(tool calls: " + "; ".join(lines) + ")"


def answer_note(message: Message) -> str:
    """Return the note that stands for an answer without text, saying what became of it."""
    if message.status == "error":
        error = message.error or {}
        return f"(no answer: {error.get('message') or error.get('code') or 'the answer failed'})"
    if message.status == "aborted":
        return "(no answer: it was stopped)"
    if message.status == "length":
        return "(no answer: the model reached its token limit)"
    return NO_ANSWER


def tool_messages(records: tuple[ToolRecord, ...], text: str | None = None) -> list[dict[str, Any]]:
    """Return an assistant message asking for ``records`` and one tool message per result.

    Its ``content`` is the step's text, ``""`` when none: templates that read the content
    of every message need a string.
    """
    calls = [
        {"id": r.id, "type": "function", "function": {"name": r.name, "arguments": r.arguments}}
        for r in records
    ]
    out: list[dict[str, Any]] = [{"role": "assistant", "content": text or "", "tool_calls": calls}]
    for r in records:
        content = r.result if r.status == "complete" else {"error": r.error or {"code": "aborted"}}
        out.append({"role": "tool", "tool_call_id": r.id, "content": _json_text(content)})
    return out


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


# -- handlers -------------------------------------------------------------------------


def replaced_from(messages: tuple[Message, ...], message_id: str) -> int | None:
    """Return where a prompt replacing user message ``message_id`` cuts ``messages``, or None.

    The cut is at the last user message with that id (ids are the clients' and may repeat):
    it and every message after it leave the transcript.  None when no user message has it
    (never there, or gone: cleared, replaced, or dropped from a long chat's state).
    """
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.id == message_id and message.role == "user":
            return index
    return None


def _user_message(state: InteractionState, event: Any) -> dict[str, Any]:
    assert isinstance(event, UserMessage)
    if event.turn_id is None:
        raise InvalidTransition("a user message needs a turn_id")
    kept = state.messages
    if event.replaces is not None:
        cut = replaced_from(kept, event.replaces)
        if cut is None:
            raise InvalidTransition(f"user message {event.replaces!r} to replace is not in the transcript")
        if len(kept) - cut != event.replaced:
            removed = len(kept) - cut
            raise InvalidTransition(f"replacing {event.replaces!r} removes {removed}, not {event.replaced}")
        kept = kept[:cut]
    message = Message(
        id=event.message_id,
        role="user",
        text=event.text,
        turn_id=event.turn_id,
        ts=event.ts,
        replaced=event.replaced,
        attachments=attachments_of(event.options),
    )
    return {"turn_id": event.turn_id, "messages": (*kept, message), "settings": settings_of(event.options)}


def _model_start(state: InteractionState, event: Any) -> dict[str, Any]:
    assert isinstance(event, ModelStart)
    current = Message(
        id=f"{state.turn_id}:a",
        role="assistant",
        text="",
        turn_id=state.turn_id or "",
        ts=event.ts,
        status="streaming",
    )
    return {"current": current, "model": event.model or state.model}


def _model_delta(state: InteractionState, event: Any) -> dict[str, Any]:
    assert isinstance(event, ModelDelta) and state.current is not None
    return {"current": replace(state.current, text=state.current.text + event.text)}


def _model_reasoning(state: InteractionState, event: Any) -> dict[str, Any]:
    assert isinstance(event, ModelReasoning) and state.current is not None
    return {"current": replace(state.current, reasoning=state.current.reasoning + event.text)}


def _tool_call(state: InteractionState, event: Any) -> dict[str, Any]:
    assert isinstance(event, ToolCall) and state.current is not None
    record = ToolRecord(id=event.call_id, name=event.name, arguments=event.arguments)
    return {"current": replace(state.current, tools=(*state.current.tools, record))}


def _tool_result(state: InteractionState, event: Any) -> dict[str, Any]:
    assert isinstance(event, ToolResult) and state.current is not None
    tools = state.current.tools
    index = next((i for i, r in enumerate(tools) if r.id == event.call_id), None)
    if index is None:
        raise InvalidTransition(f"result for unknown tool call {event.call_id!r}")
    done = replace(
        tools[index], status="complete" if event.ok else "error", result=event.result, error=event.error
    )
    return {"current": replace(state.current, tools=(*tools[:index], done, *tools[index + 1 :]))}


def _tool_index(message: Message, call_id: str) -> int:
    for index, record in enumerate(message.tools):
        if record.id == call_id:
            return index
    raise InvalidTransition(f"approval for unknown tool call {call_id!r}")


def _with_approval(message: Message, call_id: str, expected: str, approval: Approval) -> Message:
    # Only a running call is asked, once; only a call being asked gets a decision.
    tools = message.tools
    index = _tool_index(message, call_id)
    record = tools[index]
    if record.status != "running" or record.approval != expected:
        raise InvalidTransition(f"tool call {call_id!r} is {record.status} with approval {record.approval!r}")
    # The time a call was asked matters only while it waits: a decided record drops it.
    decided = replace(record, approval=approval, asked_at=0, timeout_ms=0)
    return replace(message, tools=(*tools[:index], decided, *tools[index + 1 :]))


def _tool_approval(state: InteractionState, event: Any) -> dict[str, Any]:
    assert isinstance(event, ToolApproval) and state.current is not None
    asked = _with_approval(state.current, event.call_id, "", "pending")
    tools = tuple(
        replace(r, asked_at=event.ts, timeout_ms=event.timeout_ms) if r.id == event.call_id else r
        for r in asked.tools
    )
    return {"current": replace(asked, tools=tools)}


def _decision(event: ToolApproved) -> Approval:
    if event.approved:
        return "approved"
    return "denied" if event.reason == "user" else event.reason


def _tool_approved(state: InteractionState, event: Any) -> dict[str, Any]:
    assert isinstance(event, ToolApproved) and state.current is not None
    return {"current": _with_approval(state.current, event.call_id, "pending", _decision(event))}


def _stop_tools(message: Message) -> Message:
    # A turn that ends while tools still run (abort, failure): those calls end as errors, and a
    # call still waiting for the user's approval is no longer waiting (a restart's recovery too).
    if not any(r.status == "running" or r.approval == "pending" for r in message.tools):
        return message
    stopped = {"code": "aborted", "message": "the turn ended before the tool finished"}
    tools = tuple(_stopped(r, stopped) for r in message.tools)
    return replace(message, tools=tools)


def _stopped(record: ToolRecord, stopped: dict[str, str]) -> ToolRecord:
    if record.approval == "pending":
        record = replace(record, approval="aborted", asked_at=0, timeout_ms=0)
    return replace(record, status="error", error=stopped) if record.status == "running" else record


def _model_usage(state: InteractionState, event: Any) -> dict[str, Any]:
    assert isinstance(event, ModelUsage) and state.current is not None
    usage = {"inputTokens": event.input_tokens, "outputTokens": event.output_tokens}
    return {"current": replace(state.current, usage=usage)}


def _finish(state: InteractionState, message: Message) -> dict[str, Any]:
    return {"turn_id": None, "current": None, "messages": (*state.messages, message)}


def _placeholder(state: InteractionState, ts: int) -> Message:
    # A turn that ended before the model started still gets an assistant entry,
    # so the transcript shows what happened to the prompt.
    return Message(id=f"{state.turn_id}:a", role="assistant", text="", turn_id=state.turn_id or "", ts=ts)


def _model_end(state: InteractionState, event: Any) -> dict[str, Any]:
    assert isinstance(event, ModelEnd)
    base = state.current or _placeholder(state, event.ts)
    status: MessageStatus = "complete" if event.finish_reason == "stop" else event.finish_reason
    return _finish(state, _stop_tools(replace(base, status=status, usage=event.usage or base.usage)))


def _model_error(state: InteractionState, event: Any) -> dict[str, Any]:
    assert isinstance(event, ModelError)
    base = state.current or _placeholder(state, event.ts)
    error = {"code": event.code, "message": event.message}
    return _finish(state, _stop_tools(replace(base, status="error", error=error)))


def _history_cleared(state: InteractionState, event: Any) -> dict[str, Any]:
    return {"messages": ()}


def _unchanged(state: InteractionState, event: Any) -> dict[str, Any]:
    return {}


# What each event changes besides phase and status (which the lifecycle table gives).
_HANDLERS = {
    UserMessage: _user_message,
    ModelStart: _model_start,
    ModelDelta: _model_delta,
    ModelUsage: _model_usage,
    ModelReasoning: _model_reasoning,
    ToolCall: _tool_call,
    ToolResult: _tool_result,
    ToolApproval: _tool_approval,
    ToolApproved: _tool_approved,
    ModelEnd: _model_end,
    ModelError: _model_error,
    HistoryCleared: _history_cleared,
    Diagnostic: _unchanged,
    StatusChanged: _unchanged,
}
