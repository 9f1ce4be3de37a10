"""Encoding: an event -> its text frames in either dialect, or an SSE message.  Pure and total:
an event that cannot be encoded is replaced by a structured error, never an exception.

Each event type has one rule (``_RULES``) giving its frame in both dialects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from json.encoder import encode_basestring as _json_str
from typing import Any, Callable

from ..core.events import (
    ControlResult,
    Diagnostic,
    ErrorReply,
    Event,
    HistoryCleared,
    ModelDelta,
    ModelEnd,
    ModelError,
    ModelReasoning,
    ModelStart,
    ModelUsage,
    Pong,
    SessionReady,
    StatusChanged,
    ToolApproval,
    ToolApproved,
    ToolCall,
    ToolResult,
    UserMessage,
)
from ..errors import InvalidFrame
from .codes import Dialect
from .strictjson import dumps, parse_arguments, well_formed

# Encoding never raises (frames, sse_message): the log, not the wire, gets what went wrong.
log = logging.getLogger("llmsock")


def encode(event: Event, dialect: Dialect) -> str | None:
    """Return the text frame for ``event`` in ``dialect``, or None if it has none there."""
    if type(event) is ModelDelta:
        return _encode_delta(event, dialect)
    obj = _OBJECTS[dialect](event)
    if obj is None:
        return None
    return dumps(obj)


def _encode_delta(event: ModelDelta, dialect: Dialect) -> str:
    # Deltas are most of the traffic: build their frame from pieces instead of dicts and json.dumps.
    # The text is byte-for-byte what encode's general path gives (a unit test holds them equal).
    meta = f'{{"sessionId":{_json_str(event.session_id)},"timestamp":{event.ts},"sequence":{event.seq}'
    if event.turn_id is not None:
        meta += f',"turnId":{_json_str(event.turn_id)}'
    text = _json_str(event.text)
    if dialect == "envelope":
        return (
            '{"name":"interaction.model","data":{"kind":"model","event":{"type":"delta","text":'
            f'{text}}},"meta":{meta}}}}}}}'
        )
    if dialect == "llmcore":
        return _llmcore_delta(event, text)
    return (
        f'{{"type":"llm_chunk","id":{_json_str(event.message_id)},"data":{{"chunk":{text},'
        f'"isComplete":false}},"metadata":{meta}}}}}'
    )


def _llmcore_delta(event: ModelDelta, text: str) -> str:
    meta = f'{{"sequence":{event.seq},"timestamp":{event.ts},"sourceId":"{_MODEL_SOURCE}"'
    if event.turn_id is not None:
        meta += f',"correlationId":{_json_str(event.turn_id)}'
    meta += f',"interactionId":{_json_str(event.session_id)}'
    return (
        '{"name":"interaction.model","data":{"event":{"kind":"model","event":{"type":"delta","text":'
        f'{text}}},"meta":{meta}}}}}}}}}'
    )


def frames(event: Event, dialect: Dialect) -> tuple[str, ...]:
    """Return every text frame ``event`` makes in ``dialect``; never raise.

    Seed 004 reports a tool result twice.  An event that cannot be encoded (a value JSON
    cannot hold, nesting too deep, not an event at all) is replaced by the frame of
    :func:`unencodable`, so one bad event never takes down a batch, a replay or a
    subscriber.  Every frame is valid UTF-8: a lone surrogate becomes U+FFFD.
    """
    if type(event) is ModelDelta:  # most of the traffic: one frame, built from its parts
        frame = _delta_frame(event, dialect)
        if frame is not None:
            return (frame,)
    try:
        out = _frames(event, dialect)
    except Exception as exc:  # encoders are total: whatever failed, the peer gets a structured error
        log.error("llmsock: could not encode %s; sending an error in its place", _kind(event), exc_info=exc)
        out = _frames(unencodable(event, exc), dialect)
    return tuple(well_formed(frame) for frame in out)


def _delta_frame(event: ModelDelta, dialect: Dialect) -> str | None:
    """Return a delta's frame as :func:`frames` would, or None to leave it to the general path.

    An ASCII frame is valid UTF-8 as it stands, so only a frame with other characters (which
    may hold a lone surrogate) takes the well-formedness pass.
    """
    try:
        frame = _encode_delta(event, dialect)
    except Exception:  # a value the encoder cannot take: the general path says what failed
        return None
    return frame if frame.isascii() else well_formed(frame)


def sse_message(event: Event, dialect: Dialect = "envelope", event_id: str | None = None) -> str | None:
    """Return ``event`` as a Server-Sent Events message, or None; never raise.

    ``event:`` is the frame's ``name`` and ``data:`` its ``data`` (the envelope or llmcore
    dialect); ``event_id``, if given, is the ``id:`` line a reconnecting client sends back as
    ``Last-Event-ID``.  Like :func:`frames`, an event that cannot be encoded is replaced by
    :func:`unencodable`'s.
    """
    try:
        text = _sse_message(event, dialect, event_id)
    except Exception as exc:
        log.error("llmsock: could not encode %s; sending an error in its place", _kind(event), exc_info=exc)
        text = _sse_message(unencodable(event, exc), dialect, event_id)
    return None if text is None else well_formed(text)


def unencodable(event: object, exc: BaseException) -> Event:
    """Return the event sent in place of ``event``, which could not be encoded because of ``exc``.

    A session event becomes an ``unencodable_event`` diagnostic with the same ``seq``, so
    resuming clients keep an unbroken sequence; a reply becomes an ``internal_error`` reply.
    """
    session_id, seq, ts = (getattr(event, name, None) for name in ("session_id", "seq", "ts"))
    if isinstance(session_id, str) and session_id and type(seq) is int and seq >= 1 and type(ts) is int:
        turn_id = getattr(event, "turn_id", None)
        return Diagnostic(
            session_id=session_id,
            seq=seq,
            ts=ts,
            turn_id=turn_id if isinstance(turn_id, str) else None,
            level="error",
            code="unencodable_event",
            message=f"a {type(event).__name__} event could not be encoded ({type(exc).__name__}); "
            "it is left out",
        )
    request_id = getattr(event, "request_id", None)
    return ErrorReply(
        code="internal_error",
        message="internal error (see the kernel log)",
        ts=ts if type(ts) is int else 0,
        request_id=request_id if isinstance(request_id, str) else None,
    )


def _kind(event: object) -> str:
    seq = getattr(event, "seq", None)
    return f"a {type(event).__name__}" + ("" if seq is None else f" event (sequence {seq})")


def _frames(event: Event, dialect: Dialect) -> tuple[str, ...]:
    if dialect == "typed" and isinstance(event, ToolResult):
        status = _msg(
            "tool_call",
            event.message_id,
            {
                "toolCallId": event.call_id,
                "toolName": event.name,
                "status": "complete" if event.ok else "error",
            },
            _meta(event),
        )
        return (dumps(status), dumps(_typed_tool_result(event)))
    frame = encode(event, dialect)
    if frame is not None and dialect == "typed" and isinstance(event, (ModelError, ErrorReply)):
        end = _typed_failed_end(event)
        if end is not None:  # seed 004's client ends a prompt's turn only on llm_complete
            return (dumps(end), frame)
    return () if frame is None else (frame,)


def _typed_failed_end(event: ModelError | ErrorReply) -> dict[str, Any] | None:
    """Return the ``llm_complete`` sent before the ``error`` of a failed or refused prompt, or None.

    Seed 004's client settles a prompt on the first ``llm_complete`` or ``error`` with its id,
    but only an ``llm_complete`` ends the answer on its page; so a prompt's turn always ends
    with one, marked ``finishReason: "error"`` with the ``error`` and the partial text, and the
    ``error`` follows.  It has no ``metadata.sequence``: the event is the ``error`` (or, for a
    refused prompt, a reply), so a client that skips a sequence it has seen still gets it.
    """
    if isinstance(event, ModelError):
        meta = {key: value for key, value in _meta(event).items() if key != "sequence"}
        return _msg("llm_complete", event.message_id, _failed_end(event.text, _typed_error(event)), meta)
    if event.refused == "user_message" and event.request_id is not None:
        end = _failed_end("", _typed_error(event))
        return _msg("llm_complete", event.request_id, end, _reply_meta(event))
    return None


def _failed_end(text: str, error: dict[str, Any]) -> dict[str, Any]:
    return {"fullText": text, "finishReason": "error", "aborted": False, "error": error}


# Seed 004's error codes (its server, backend/src/ws/entry.ts, sends them in ``error`` messages):
# ``(llmsock's code, the type of the refused client message or "*" for any, seed 004's code)``,
# the first matching row wins.  docs/protocol.md, section 10.2, is this table (a test holds them equal).
SEED004_CODES: tuple[tuple[str, str, str], ...] = (
    ("invalid_message", "*", "INVALID_MESSAGE"),
    ("unknown_type", "control", "UNKNOWN_CONTROL"),
    ("unknown_type", "*", "UNKNOWN_MESSAGE_TYPE"),
    ("invalid_request", "control", "CONTROL_ERROR"),
    ("invalid_request", "user_message", "NO_CONVERSATION"),
    ("queue_full", "user_message", "PROCESSING_ERROR"),
    ("internal_error", "control", "CONTROL_ERROR"),
    ("internal_error", "user_message", "PROCESSING_ERROR"),
    ("internal_error", "*", "INVALID_MESSAGE"),
)


def seed004_code(code: str, refused: str | None) -> str | None:
    """Return seed 004's code for an error reply with llmsock's ``code``, or None if it has none.

    ``refused`` is the type of the client message the reply refuses (``""``: not readable);
    None means the reply refuses no client message, and seed 004 has no code for it.
    """
    if refused is None:
        return None
    for ours, kind, theirs in SEED004_CODES:
        if ours == code and kind in ("*", refused):
            return theirs
    return None


def _typed_error(event: ErrorReply | ModelError) -> dict[str, Any]:
    """Return the typed ``error`` data: seed 004's ``code`` where it has one, llmsock's in ``llmsockCode``."""
    theirs = seed004_code(event.code, event.refused) if isinstance(event, ErrorReply) else None
    codes = {"code": event.code} if theirs is None else {"code": theirs, "llmsockCode": event.code}
    return {**codes, "message": event.message, "recoverable": event.recoverable}


def _sse_message(event: Event, dialect: Dialect, event_id: str | None) -> str | None:
    obj = to_llmcore(event) if dialect == "llmcore" else to_envelope(event)
    if obj is None:
        return None
    id_line = "" if event_id is None else f"id: {event_id}\n"
    return f"event: {obj['name']}\n{id_line}data: {dumps(obj['data'])}\n\n"


def _arguments(text: str) -> Any:
    """Return tool-call arguments parsed strictly, or the raw text when they are not strict JSON."""
    try:
        return parse_arguments(text)
    except InvalidFrame:
        return text  # shown as the model wrote it; the call itself fails with invalid_arguments


def _resume_fields(event: SessionReady) -> dict[str, Any]:
    out: dict[str, Any] = {"epoch": event.epoch}
    if event.resumed is not None:
        out["resumed"] = event.resumed
        out["replayed"] = event.replayed
    return out


def _meta(event: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"sessionId": event.session_id, "timestamp": event.ts}
    seq = getattr(event, "seq", None)
    if isinstance(event, (SessionReady,)):
        return meta
    if seq is not None:
        meta["sequence"] = seq
    if getattr(event, "turn_id", None) is not None:
        meta["turnId"] = event.turn_id
    return meta


def _reply_meta(event: Any) -> dict[str, Any]:
    return {"timestamp": event.ts}


def _msg(kind: str, msg_id: str, data: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "id": msg_id, "data": data, "metadata": metadata}


_Part = Callable[[Any], dict[str, Any]]


@dataclass(frozen=True)
class _Rule:
    """How one event class reads in each dialect: the table below is the whole encoder."""

    name: str  # the envelope's name; its kind is the last part ("interaction.model" -> "model")
    body: _Part  # the envelope's event body
    seed_type: str | None  # the seed-004 message type; None: seed 004 has no such message
    seed_data: _Part
    seed_id: Callable[[Any], str] = lambda event: event.message_id
    meta: _Part = _meta
    # llmcore: llm-core's model event body or diagnostic entry where it differs from the envelope's body
    llmcore: _Part | None = None


def to_envelope(event: Event) -> dict[str, Any] | None:
    """Return the llm-core envelope for ``event``."""
    rule = _rule(event)
    body = {"kind": rule.name.rpartition(".")[2], "event": rule.body(event), "meta": rule.meta(event)}
    return {"name": rule.name, "data": body}


def to_typed(event: Event) -> dict[str, Any] | None:
    """Return the seed-004 message for ``event``, or None if that dialect has none."""
    rule = _rule(event)
    if rule.seed_type is None:
        return None
    return _msg(rule.seed_type, rule.seed_id(event), rule.seed_data(event), rule.meta(event))


def to_llmcore(event: Event) -> dict[str, Any]:
    """Return ``event`` as llm-core v1.21.5's code sends it: ``{"name", "data": {"event": ...}}``.

    Model events and diagnostics are llm-core's own ``model`` and ``diagnostic`` interaction
    events; every other event and reply rides in an ``event-stream`` one, which carries its
    envelope ``name`` and body.  A reply is no session event: its ``meta.sequence`` is 0, which
    llm-core's reducer never takes for a newer position than the events it applied.
    """
    rule = _rule(event)
    kind = rule.name.rpartition(".")[2]
    if kind in _LLMCORE_KINDS:
        source = _MODEL_SOURCE if kind == "model" else f"llmsock.{kind}"
        key = "entry" if kind == "diagnostic" else "event"
        body: dict[str, Any] = {"kind": kind, key: (rule.llmcore or rule.body)(event)}
    else:
        source, kind = f"llmsock.{kind}", "event-stream"
        body = {"kind": kind, "event": {"name": rule.name, "data": rule.body(event)}}
    body["meta"] = _llmcore_meta(rule.meta(event), source)
    return {"name": f"interaction.{kind}", "data": {"event": body}}


# llm-core's own interaction kinds among the envelope's; the others ride in "event-stream".
_LLMCORE_KINDS = ("model", "diagnostic")
_MODEL_SOURCE = "model.primary"  # the sourceId llm-core's interaction pipeline gives its model's events


def _llmcore_meta(meta: dict[str, Any], source: str) -> dict[str, Any]:
    """Return llm-core's InteractionEventMeta for an event whose envelope meta is ``meta``."""
    out = {"sequence": meta.get("sequence", 0), "timestamp": meta["timestamp"], "sourceId": source}
    if "turnId" in meta:  # llm-core's reducer keys a streamed message by correlationId and sourceId
        out["correlationId"] = meta["turnId"]
    if "sessionId" in meta:
        out["interactionId"] = meta["sessionId"]
    return out


def _llmcore_tool_result(event: ToolResult) -> dict[str, Any]:
    # llm-core's ToolResult; a failed call is marked isError, its result {"error": <code>, "message"}.
    out: dict[str, Any] = {"name": event.name, "toolCallId": event.call_id}
    if event.ok:
        return {**out, "result": event.result}
    error = event.error or {}
    return {**out, "isError": True, "result": {"error": error.get("code"), "message": error.get("message")}}


def _llmcore_entry(event: Diagnostic) -> dict[str, Any]:
    # llm-core's DiagnosticEntry knows the levels "warn" and "error"; data keeps llmsock's own.
    level = "error" if event.level == "error" else "warn"
    data = {"code": event.code, "level": event.level}
    return {"level": level, "kind": "pipeline", "message": event.message, "data": data}


_OBJECTS: dict[Dialect, Callable[[Event], dict[str, Any] | None]] = {
    "envelope": to_envelope,
    "typed": to_typed,
    "llmcore": to_llmcore,
}


def _rule(event: Event) -> _Rule:
    rule = _RULES.get(type(event))
    if rule is None:
        raise TypeError(f"cannot encode {type(event).__name__}")
    return rule


def _with_options(data: dict[str, Any], event: UserMessage) -> dict[str, Any]:
    if event.options:
        data["options"] = event.options
    if event.replaces is not None:  # an edit or a regenerate: viewers cut their transcript there
        data["replaces"] = event.replaces
        data["replaced"] = event.replaced
    return data


def _with_usage(data: dict[str, Any], event: ModelEnd) -> dict[str, Any]:
    if event.usage is not None:
        data["usage"] = event.usage
    return data


def _tool_call(event: ToolCall) -> dict[str, Any]:
    return {"id": event.call_id, "name": event.name, "arguments": _arguments(event.arguments)}


def _approval(event: ToolApproval, args: str) -> dict[str, Any]:
    return {
        "toolCallId": event.call_id,
        "toolName": event.name,
        args: _arguments(event.arguments),
        "timeoutMs": event.timeout_ms,
    }


# The decision on a call that waited for approval, the same in every dialect.
_APPROVED = (("toolCallId", "call_id"), ("toolName", "name"), ("approved", "approved"), ("reason", "reason"))


def _pick(event: Any, fields: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Return ``{wire key: event attribute}`` for the ``(key, attribute)`` pairs, in their order."""
    return {key: getattr(event, attribute) for key, attribute in fields}


# The fields both dialects carry, under each dialect's own key (the order is the frame's).
_RESULT = (("result", "result"), ("error", "error"), ("durationMs", "duration_ms"))


_TOOL_RESULT_ENVELOPE = (("id", "call_id"), ("name", "name"), ("ok", "ok"), *_RESULT)


_TOOL_RESULT_TYPED = (("toolCallId", "call_id"), ("toolName", "name"), ("success", "ok"), *_RESULT)


_READY_ENVELOPE = (("sessionId", "session_id"), ("sequence", "seq"), ("status", "status"))


_READY_TYPED = (("sessionId", "session_id"), ("sequence", "seq"), ("sessionStatus", "status"))


_READY_BOTH = (("created", "created"), ("protocol", "protocol"))


def _typed_tool_result(event: ToolResult) -> dict[str, Any]:
    return _msg("tool_result", event.message_id, _pick(event, _TOOL_RESULT_TYPED), _meta(event))


def _ready(event: SessionReady, first: dict[str, Any], fields: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return {**first, **_pick(event, fields + _READY_BOTH), **_resume_fields(event)}


# Seed 004 names the kind of a control reply in ``status``; the session's status moves to ``sessionStatus``.
_REPLY_STATUS = {
    "abort": "aborted",
    "pause": "paused",
    "resume": "resumed",
    "clear_history": "cleared",
    "get_history": "history",
    "get_status": "status_info",
    "approval": "approval",
}


def _typed_result(event: ControlResult) -> dict[str, Any]:
    data = {key: value for key, value in event.data.items() if key != "status"}
    if "status" in event.data:
        data["sessionStatus"] = event.data["status"]
    kind = _REPLY_STATUS.get(event.action, event.action)
    return {**data, "type": event.action, "status": kind, "success": event.ok, "message": event.message}


def _typed_ready(event: SessionReady) -> dict[str, Any]:
    welcome = {"status": "connected", "message": "connected", "convId": event.session_id}
    return _ready(event, welcome, _READY_TYPED)


def _by_seq(event: Any) -> str:
    return f"s{event.seq}"


def _no_data(event: Any) -> dict[str, Any]:
    return {}


_MODEL = "interaction.model"


_MODEL_ERROR_LLMCORE = (("code", "code"), ("message", "message"), ("recoverable", "recoverable"))


_RULES: dict[type, _Rule] = {
    ModelDelta: _Rule(
        _MODEL,
        lambda e: {"type": "delta", "text": e.text},
        "llm_chunk",
        lambda e: {"chunk": e.text, "isComplete": False},
    ),
    UserMessage: _Rule(
        "interaction.user",
        lambda e: _with_options({"type": "message", "text": e.text, "messageId": e.message_id}, e),
        "user_message",
        lambda e: _with_options({"text": e.text}, e),
    ),
    # Seed 004 has no start or usage message: start shows as status, usage rides on llm_complete.
    ModelStart: _Rule(
        _MODEL,
        lambda e: {"type": "start", "model": e.model, "messageId": e.message_id},
        None,
        _no_data,
        llmcore=lambda e: {"type": "start", "id": e.message_id, "modelId": e.model},
    ),
    ModelUsage: _Rule(
        _MODEL,
        lambda e: {"type": "usage", "inputTokens": e.input_tokens, "outputTokens": e.output_tokens},
        None,
        _no_data,
        llmcore=lambda e: {
            "type": "usage",
            "usage": {"inputTokens": e.input_tokens, "outputTokens": e.output_tokens},
        },
    ),
    ModelReasoning: _Rule(
        _MODEL,
        lambda e: {"type": "delta", "reasoning": e.text},
        "llm_chunk",
        # "" keeps fullText = joined chunks
        lambda e: {"chunk": "", "reasoning": e.text, "isComplete": False},
    ),
    ToolCall: _Rule(
        _MODEL,
        lambda e: {"type": "delta", "toolCall": _tool_call(e)},
        "tool_call",
        lambda e: {
            "toolCallId": e.call_id,
            "toolName": e.name,
            "args": _arguments(e.arguments),
            "status": "start",
        },
    ),
    ToolResult: _Rule(
        _MODEL,
        lambda e: {"type": "delta", "toolResult": _pick(e, _TOOL_RESULT_ENVELOPE)},
        "tool_result",
        lambda e: _pick(e, _TOOL_RESULT_TYPED),
        llmcore=lambda e: {"type": "delta", "toolResult": _llmcore_tool_result(e)},
    ),
    # A call that waits for the user's approval, and the decision (docs/protocol.md, section 9.9).
    ToolApproval: _Rule(
        _MODEL,
        lambda e: {"type": "delta", "approval": _approval(e, "arguments")},
        "tool_approval",
        lambda e: _approval(e, "args"),
    ),
    ToolApproved: _Rule(
        _MODEL,
        lambda e: {"type": "delta", "approvalResult": _pick(e, _APPROVED)},
        "tool_approval_result",
        lambda e: _pick(e, _APPROVED),
    ),
    ModelEnd: _Rule(
        _MODEL,
        lambda e: _with_usage({"type": "end", "finishReason": e.finish_reason, "text": e.text}, e),
        "llm_complete",
        lambda e: _with_usage(
            {"fullText": e.text, "finishReason": e.finish_reason, "aborted": e.finish_reason == "aborted"}, e
        ),
        # No text: llm-core's reducer adds an end's text to what the deltas streamed.
        llmcore=lambda e: {"type": "end", "finishReason": e.finish_reason},
    ),
    ModelError: _Rule(
        _MODEL,
        lambda e: {
            "type": "error",
            "code": e.code,
            "message": e.message,
            "recoverable": e.recoverable,
            "text": e.text,
        },
        "error",
        lambda e: {"code": e.code, "message": e.message, "recoverable": e.recoverable, "fullText": e.text},
        llmcore=lambda e: {"type": "error", "error": _pick(e, _MODEL_ERROR_LLMCORE)},
    ),
    Diagnostic: _Rule(
        "interaction.diagnostic",
        lambda e: {"type": "diagnostic", "level": e.level, "code": e.code, "message": e.message},
        "diagnostic",
        lambda e: {"level": e.level, "code": e.code, "message": e.message},
        seed_id=_by_seq,
        llmcore=_llmcore_entry,
    ),
    StatusChanged: _Rule(
        "interaction.status",
        lambda e: {"type": "status", "status": e.status},
        "status",
        lambda e: {"status": e.status},
        seed_id=_by_seq,
    ),
    HistoryCleared: _Rule(
        "interaction.session",
        lambda e: {"type": "cleared"},
        "status",
        lambda e: {"status": "idle", "historyCleared": True},
        seed_id=_by_seq,
    ),
    SessionReady: _Rule(
        "interaction.session",
        lambda e: _ready(e, {"type": "ready"}, _READY_ENVELOPE),
        "status",
        # Seed 004's welcome: its client keeps ``convId`` (here the session) and shows ``message``.
        _typed_ready,
        seed_id=lambda e: "ready",
    ),
    ControlResult: _Rule(
        "interaction.control",
        lambda e: {
            "type": "result",
            "action": e.action,
            "ok": e.ok,
            "message": e.message,
            "data": e.data,
            "requestId": e.request_id,
        },
        "control_response",
        _typed_result,
        seed_id=lambda e: e.request_id or e.action,
        meta=_reply_meta,
    ),
    ErrorReply: _Rule(
        "interaction.error",
        lambda e: {
            "type": "error",
            "code": e.code,
            "message": e.message,
            "recoverable": e.recoverable,
            "requestId": e.request_id,
        },
        "error",
        _typed_error,
        seed_id=lambda e: e.request_id or "error",
        meta=_reply_meta,
    ),
    Pong: _Rule(
        "interaction.control",
        lambda e: {"type": "pong", "requestId": e.request_id},
        "pong",
        lambda e: {**e.data, "timestamp": e.ts},
        seed_id=lambda e: e.request_id or "pong",
        meta=_reply_meta,
    ),
}
