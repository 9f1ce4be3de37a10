"""Wire formats of both dialects.  Pure: text in, commands out; events in, text out.

* ``envelope`` — the llm-core dialect (seeds 000–002): a plain-text frame is a
  prompt; the server sends ``{"name", "data": {"kind", "event", "meta"}}``.
  JSON frames whose ``type`` is a seed-004 client type are commands here too.
* ``seed004`` — the JSON protocol of seed 004: ``{"type", "id", "data", "metadata"}``.

docs/protocol.md is the normative description; this module implements it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _json_str
from typing import Any, Callable, Literal, Union

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
    ToolCall,
    ToolResult,
    UserMessage,
)
from ..errors import InvalidFrame, UnknownType

PROTOCOL_VERSION = "llmsock/1"
Dialect = Literal["envelope", "seed004"]
DIALECTS: tuple[Dialect, ...] = ("envelope", "seed004")

# WebSocket subprotocol names: a client may name its dialect.  A token offered as a subprotocol
# (the prefix below) is refused: proxies log subprotocols; browsers send an auth frame instead.
SUBPROTOCOL_ENVELOPE = "llmsock.envelope.v1"
SUBPROTOCOL_SEED004 = "llmsock.seed004.v1"
SUBPROTOCOL_AUTO = "llmsock.v1"
SUBPROTOCOL_TOKEN_PREFIX = "llmsock.token."

CLIENT_TYPES = ("user_message", "control", "ping")
CONTROL_ACTIONS = ("abort", "pause", "resume", "clear_history", "get_history", "get_status")

# Encoding never raises (frames, sse_message): the log, not the wire, gets what went wrong.
log = logging.getLogger("llmsock")

MAX_DEPTH = 32
MAX_INT_DIGITS = 20


# -- commands (what a client asks for) --------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class SendPrompt:
    """Run a turn with this user text."""

    text: str
    message_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class Control:
    """One of :data:`CONTROL_ACTIONS`."""

    action: str
    request_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Ping:
    """Ask for a ``pong``."""

    request_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


Command = Union[SendPrompt, Control, Ping]


# -- decoding ------------------------------------------------------------------------


def parse_json(text: str) -> Any:
    """Parse JSON strictly: no NaN/Infinity, no duplicate keys, bounded depth and integers.

    Raises:
        InvalidFrame: with a message saying what is wrong.
    """
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except InvalidFrame:
        raise
    except RecursionError:
        raise InvalidFrame("JSON is nested too deeply") from None
    except ValueError as exc:
        raise InvalidFrame(f"not valid JSON: {exc}") from None
    _check_value(value, 0)
    return value


def detect_dialect(text: str) -> Dialect:
    """Return the dialect a connection's first frame implies."""
    return "seed004" if _client_type(text) is not None else "envelope"


def decode(text: str, dialect: Dialect) -> Command:
    """Return the command in a client text frame.

    Raises:
        InvalidFrame: malformed JSON or fields (seed004), or an empty prompt.
        UnknownType: a ``type`` or control action that does not exist.
    """
    if dialect == "envelope":
        if _client_type(text) is None:
            if not text.strip():
                raise InvalidFrame("empty prompt")
            _check_text(text)
            return SendPrompt(text=text)
    message = parse_json(text)
    if not isinstance(message, dict):
        raise InvalidFrame("a message must be a JSON object")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise InvalidFrame("a message needs a string 'type'")
    request_id = _optional_id(message)
    try:
        return _decode_message(message, kind, request_id)
    except (InvalidFrame, UnknownType) as exc:
        exc.request_id = request_id  # so the error reply names the message it answers
        raise


def _decode_message(message: dict[str, Any], kind: str, request_id: str | None) -> Command:
    data = message.get("data", {})
    if not isinstance(data, dict):
        raise InvalidFrame("'data' must be an object")
    if "metadata" in message and not isinstance(message["metadata"], (dict, type(None))):
        raise InvalidFrame("'metadata' must be an object")
    if kind == "user_message":
        return _decode_user_message(data, request_id)
    if kind == "control":
        action = data.get("type")
        if not isinstance(action, str):
            raise InvalidFrame("a control message needs data.type")
        if action not in CONTROL_ACTIONS:
            raise UnknownType(f"unknown control action: {action!r}")
        return Control(action=action, request_id=request_id)
    if kind == "ping":
        return Ping(request_id=request_id, data=data)
    raise UnknownType(f"unknown message type: {kind!r}")


def _client_type(text: str) -> str | None:
    # Cheap test first: only a JSON object can be a command.
    if not text.lstrip().startswith("{"):
        return None
    try:
        value = parse_json(text)
    except InvalidFrame:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if kind in CLIENT_TYPES else None


def _decode_user_message(data: dict[str, Any], request_id: str | None) -> SendPrompt:
    text = data.get("text")
    if not isinstance(text, str):
        raise InvalidFrame("user_message needs data.text as a string")
    if not text.strip():
        raise InvalidFrame("empty prompt")
    options = data.get("options", {})
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InvalidFrame("data.options must be an object")
    return SendPrompt(text=text, message_id=request_id, options=_decode_options(options))


def _decode_options(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "temperature" in options and options["temperature"] is not None:
        t = options["temperature"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 2:
            raise InvalidFrame("options.temperature must be a number from 0 to 2")
        out["temperature"] = float(t)
    if "maxTokens" in options and options["maxTokens"] is not None:
        n = options["maxTokens"]
        if type(n) is not int or not 1 <= n <= 1_000_000:
            raise InvalidFrame("options.maxTokens must be an integer from 1 to 1000000")
        out["maxTokens"] = n
    if "tools" in options and options["tools"] is not None:
        tools = options["tools"]
        if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
            raise InvalidFrame("options.tools must be a list of strings")
        out["tools"] = list(tools)
    return out


def _optional_id(message: dict[str, Any]) -> str | None:
    value = message.get("id")
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 128:
        raise InvalidFrame("'id' must be a string of 1 to 128 characters")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidFrame(f"duplicate key in JSON object: {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise InvalidFrame(f"{name} is not allowed in JSON")


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise InvalidFrame(f"integer with more than {MAX_INT_DIGITS} digits")
    return int(digits)


def _finite_float(digits: str) -> float:
    value = float(digits)
    if value in (float("inf"), float("-inf")):
        raise InvalidFrame(f"number out of range: {digits[:20]}")
    return value


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidFrame("text holds a lone surrogate (not valid Unicode)") from None


def _check_value(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidFrame(f"JSON is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_value(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_value(item, depth + 1)


# -- encoding ------------------------------------------------------------------------


def encode(event: Event, dialect: Dialect) -> str | None:
    """Return the text frame for ``event`` in ``dialect``, or None if it has none there."""
    if type(event) is ModelDelta:
        return _encode_delta(event, dialect)
    obj = to_envelope(event) if dialect == "envelope" else to_seed004(event)
    if obj is None:
        return None
    return _dumps(obj)


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
    return (
        f'{{"type":"llm_chunk","id":{_json_str(event.message_id)},"data":{{"chunk":{text},'
        f'"isComplete":false}},"metadata":{meta}}}}}'
    )


def frames(event: Event, dialect: Dialect) -> tuple[str, ...]:
    """Return every text frame ``event`` makes in ``dialect``; never raise.

    Seed 004 reports a tool result twice.  An event that cannot be encoded (a value JSON
    cannot hold, nesting too deep, not an event at all) is replaced by the frame of
    :func:`unencodable`, so one bad event never takes down a batch, a replay or a
    subscriber.  Every frame is valid UTF-8: a lone surrogate becomes U+FFFD.
    """
    try:
        out = _frames(event, dialect)
    except Exception as exc:  # encoders are total: whatever failed, the peer gets a structured error
        log.error("llmsock: could not encode %s; sending an error in its place", _kind(event), exc_info=exc)
        out = _frames(unencodable(event, exc), dialect)
    return tuple(well_formed(frame) for frame in out)


def sse_message(event: Event) -> str | None:
    """Return ``event`` as a Server-Sent Events message (envelope dialect), or None; never raise.

    Like :func:`frames`, an event that cannot be encoded is replaced by :func:`unencodable`'s.
    """
    try:
        text = _sse_message(event)
    except Exception as exc:
        log.error("llmsock: could not encode %s; sending an error in its place", _kind(event), exc_info=exc)
        text = _sse_message(unencodable(event, exc))
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
    if dialect == "seed004" and isinstance(event, ToolResult):
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
        return (_dumps(status), _dumps(_seed004_tool_result(event)))
    frame = encode(event, dialect)
    return () if frame is None else (frame,)


def _sse_message(event: Event) -> str | None:
    envelope = to_envelope(event)
    if envelope is None:
        return None
    return f"event: {envelope['name']}\ndata: {_dumps(envelope['data'])}\n\n"


_SURROGATE = re.compile("[\ud800-\udfff]")


def well_formed(text: str) -> str:
    """Return ``text`` with each lone surrogate (which UTF-8 cannot hold) replaced by U+FFFD.

    A provider's JSON may decode to such a string (``"\\ud800"``); no frame, file or comm
    message could carry it.
    """
    if text.isascii():  # the common case, and cheap
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)


def parse_arguments(text: str) -> Any:
    """Parse a model's tool-call arguments with :func:`parse_json`, the parser of client frames.

    Raises:
        InvalidFrame: the text is not strict JSON (``NaN``, duplicate keys, too deep, ...).
    """
    return parse_json(text)


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


def parse_resume(value: str) -> tuple[str, int]:
    """Return ``(epoch, seq)`` from a ``resume=<epoch>:<seq>`` query value.

    Raises:
        InvalidFrame: the value is not of that form.
    """
    epoch, _, seq = value.rpartition(":")
    if not epoch or len(epoch) > 64 or not _ASCII_DIGITS.fullmatch(seq) or len(seq) > MAX_INT_DIGITS:
        raise InvalidFrame("resume must be <epoch>:<sequence>")
    return epoch, int(seq)


_ASCII_DIGITS = re.compile(r"[0-9]+")  # str.isdigit() would also take "²" and other scripts' digits


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


def to_envelope(event: Event) -> dict[str, Any] | None:
    """Return the llm-core envelope for ``event``."""
    rule = _rule(event)
    body = {"kind": rule.name.rpartition(".")[2], "event": rule.body(event), "meta": rule.meta(event)}
    return {"name": rule.name, "data": body}


def to_seed004(event: Event) -> dict[str, Any] | None:
    """Return the seed-004 message for ``event``, or None if that dialect has none."""
    rule = _rule(event)
    if rule.seed_type is None:
        return None
    return _msg(rule.seed_type, rule.seed_id(event), rule.seed_data(event), rule.meta(event))


def _rule(event: Event) -> _Rule:
    rule = _RULES.get(type(event))
    if rule is None:
        raise TypeError(f"cannot encode {type(event).__name__}")
    return rule


def _with_options(data: dict[str, Any], event: UserMessage) -> dict[str, Any]:
    if event.options:
        data["options"] = event.options
    return data


def _with_usage(data: dict[str, Any], event: ModelEnd) -> dict[str, Any]:
    if event.usage is not None:
        data["usage"] = event.usage
    return data


def _tool_call(event: ToolCall) -> dict[str, Any]:
    return {"id": event.call_id, "name": event.name, "arguments": _arguments(event.arguments)}


def _pick(event: Any, fields: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Return ``{wire key: event attribute}`` for the ``(key, attribute)`` pairs, in their order."""
    return {key: getattr(event, attribute) for key, attribute in fields}


# The fields both dialects carry, under each dialect's own key (the order is the frame's).
_RESULT = (("result", "result"), ("error", "error"), ("durationMs", "duration_ms"))
_TOOL_RESULT_ENVELOPE = (("id", "call_id"), ("name", "name"), ("ok", "ok"), *_RESULT)
_TOOL_RESULT_SEED004 = (("toolCallId", "call_id"), ("toolName", "name"), ("success", "ok"), *_RESULT)
_READY_ENVELOPE = (("sessionId", "session_id"), ("sequence", "seq"), ("status", "status"))
_READY_SEED004 = (("sessionId", "session_id"), ("sequence", "seq"), ("sessionStatus", "status"))
_READY_BOTH = (("created", "created"), ("protocol", "protocol"))


def _seed004_tool_result(event: ToolResult) -> dict[str, Any]:
    return _msg("tool_result", event.message_id, _pick(event, _TOOL_RESULT_SEED004), _meta(event))


def _ready(event: SessionReady, first: dict[str, Any], fields: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return {**first, **_pick(event, fields + _READY_BOTH), **_resume_fields(event)}


def _by_seq(event: Any) -> str:
    return f"s{event.seq}"


def _no_data(event: Any) -> dict[str, Any]:
    return {}


_MODEL = "interaction.model"

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
        _MODEL, lambda e: {"type": "start", "model": e.model, "messageId": e.message_id}, None, _no_data
    ),
    ModelUsage: _Rule(
        _MODEL,
        lambda e: {"type": "usage", "inputTokens": e.input_tokens, "outputTokens": e.output_tokens},
        None,
        _no_data,
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
        lambda e: _pick(e, _TOOL_RESULT_SEED004),
    ),
    ModelEnd: _Rule(
        _MODEL,
        lambda e: _with_usage({"type": "end", "finishReason": e.finish_reason, "text": e.text}, e),
        "llm_complete",
        lambda e: _with_usage(
            {"fullText": e.text, "finishReason": e.finish_reason, "aborted": e.finish_reason == "aborted"}, e
        ),
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
    ),
    Diagnostic: _Rule(
        "interaction.diagnostic",
        lambda e: {"type": "diagnostic", "level": e.level, "code": e.code, "message": e.message},
        "diagnostic",
        lambda e: {"level": e.level, "code": e.code, "message": e.message},
        seed_id=_by_seq,
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
        lambda e: _ready(e, {"status": "connected"}, _READY_SEED004),
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
        lambda e: {**e.data, "type": e.action, "success": e.ok, "message": e.message},
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
        lambda e: {"code": e.code, "message": e.message, "recoverable": e.recoverable},
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
