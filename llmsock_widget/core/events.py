"""Frozen event values: what happens in a session, and replies to one connection.

Session events carry ``seq``: it grows by one per event within a session, is
kept in the session state, and survives a store save/load.  Every connection on
the session sees the same session events in ``seq`` order.

Replies (:class:`SessionReady`, :class:`ControlResult`, :class:`ErrorReply`,
:class:`Pong`) go to one connection only and have no ``seq``.

Events validate themselves on construction (as h11's do), so a bad value is
caught where it is made, not where it is encoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, Union

FinishReason = Literal["stop", "length", "aborted"]
ApprovalReason = Literal["user", "timeout", "aborted"]
Status = Literal["idle", "generating", "paused"]
Level = Literal["info", "warning", "error"]

FINISH_REASONS = ("stop", "length", "aborted")
APPROVAL_REASONS = ("user", "timeout", "aborted")
"""Why a :class:`ToolApproved` decision was made: the user's answer, the timeout, or a stop."""
STATUSES = ("idle", "generating", "paused")
LEVELS = ("info", "warning", "error")
DIAGNOSTIC_CODES = (
    "queued",  # hub: a prompt waits
    "recovered",  # hub: a loaded snapshot showed an interrupted turn
    "corrupt_snapshot",  # hub: a stored copy could not be read, or names another session
    "store_error",  # hub: a save failed
    "store_conflict",  # hub: the store held a newer revision (refused, or merged)
    "pause_timeout",  # hub: a paused answer was not resumed in time
    "tool_limit",  # turns: the model still called tools at the step limit
    "unencodable_event",  # protocol: stands in for an event that JSON cannot hold
    "history_kept_in_file",  # notebook store: the chat passed the notebook's cap; kept whole in a file
    "history_restored",  # notebook store: a chat cut in the notebook came back whole from its file
    "history_truncated",  # notebook store: older turns of a chat could not be kept or restored
    "sharing_unavailable",  # Redis sharing: the shared session's Redis cannot be reached; events wait
    "sharing_restored",  # Redis sharing: Redis answers again; the events that waited were shared
)
"""The codes a :class:`Diagnostic` carries (docs/protocol.md, "Error codes")."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


@dataclass(frozen=True, kw_only=True, slots=True)
class _SessionEvent:
    session_id: str
    seq: int
    ts: int  # milliseconds since the epoch, given by the caller (the core has no clock)
    turn_id: str | None = None

    def __post_init__(self) -> None:
        # Every event passes here (deltas are most of them): the message is built only on failure.
        if type(self.seq) is not int or self.seq < 1:
            raise ValueError(f"seq must be >= 1, not {self.seq!r}")
        if not self.session_id:
            raise ValueError("session_id must not be empty")


@dataclass(frozen=True, kw_only=True, slots=True)
class UserMessage(_SessionEvent):
    """A user's prompt, echoed to every connection when its turn starts.

    ``replaces`` names an earlier user message that this prompt takes the place of:
    that message and every one after it leave the transcript, ``replaced`` of them
    (the replaced prompt counted), docs/protocol.md, section 9.8.
    """

    text: str
    message_id: str
    options: dict[str, Any] = field(default_factory=dict)
    replaces: str | None = None
    replaced: int = 0

    def __post_init__(self) -> None:
        _SessionEvent.__post_init__(self)
        if type(self.replaced) is not int or self.replaced < 0:
            raise ValueError(f"replaced must be an integer >= 0, not {self.replaced!r}")
        _check(self.replaces is not None or self.replaced == 0, "replaced needs replaces")
        _check(self.replaces is None or self.replaced >= 1, "a replacing prompt removes >= 1 message")


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelStart(_SessionEvent):
    """The model starts answering the turn's user message."""

    model: str
    message_id: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelDelta(_SessionEvent):
    """A piece of the model's answer text."""

    text: str
    message_id: str = ""


_new = object.__new__


def _slot_setter(cls: type, name: str) -> Any:
    """Return the function that sets slot ``name`` of a ``cls`` instance, frozen or not."""
    return getattr(cls, name).__set__  # the slot's member descriptor (a class's own or inherited)


_set_session_id = _slot_setter(ModelDelta, "session_id")
_set_seq = _slot_setter(ModelDelta, "seq")
_set_ts = _slot_setter(ModelDelta, "ts")
_set_turn_id = _slot_setter(ModelDelta, "turn_id")
_set_message_id = _slot_setter(ModelDelta, "message_id")
_set_text = _slot_setter(ModelDelta, "text")


def model_delta(
    session_id: str, seq: int, ts: int, turn_id: str | None, message_id: str, text: str
) -> ModelDelta:
    """Return ``ModelDelta(session_id=..., seq=..., ...)``, with the same checks, at half the cost.

    The answer's hot path makes one per delta: a frozen dataclass's ``__init__`` sets each field
    through ``object.__setattr__`` and then runs ``__post_init__``; this sets the slots directly.
    """
    if type(seq) is not int or seq < 1:
        raise ValueError(f"seq must be >= 1, not {seq!r}")
    if not session_id:
        raise ValueError("session_id must not be empty")
    event = _new(ModelDelta)
    _set_session_id(event, session_id)
    _set_seq(event, seq)
    _set_ts(event, ts)
    _set_turn_id(event, turn_id)
    _set_message_id(event, message_id)
    _set_text(event, text)
    return event


def joined_deltas(run: list[ModelDelta]) -> ModelDelta:
    """Return deltas of one message as one: their text, and the last one's sequence, time and ids.

    How a connection sends deltas that waited together (docs/protocol.md, section 5.1).
    """
    if len(run) == 1:
        return run[0]
    return replace(run[-1], text="".join(delta.text for delta in run))


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelReasoning(_SessionEvent):
    """A piece of the model's reasoning, shown apart from the answer."""

    text: str
    message_id: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolCall(_SessionEvent):
    """The model calls a tool; ``arguments`` is the JSON text it wrote."""

    call_id: str
    name: str
    arguments: str
    message_id: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolResult(_SessionEvent):
    """A tool call finished: its JSON-ready ``result``, or ``error`` ``{"code", "message"}``."""

    call_id: str
    name: str
    ok: bool
    result: Any = None
    error: dict[str, str] | None = None
    duration_ms: int = 0
    message_id: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolApproval(_SessionEvent):
    """A tool call waits for the user's approval, at most ``timeout_ms``; ``arguments`` as written."""

    call_id: str
    name: str
    arguments: str
    timeout_ms: int
    message_id: str = ""

    def __post_init__(self) -> None:
        _SessionEvent.__post_init__(self)
        _check(type(self.timeout_ms) is int and self.timeout_ms >= 0, "timeout_ms must be an integer >= 0")


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolApproved(_SessionEvent):
    """The decision on a tool call that waited for approval: ``approved``, and why (``reason``).

    Only the user approves: a timeout or a stop (``"aborted"``) always denies.
    """

    call_id: str
    name: str
    approved: bool
    reason: ApprovalReason
    message_id: str = ""

    def __post_init__(self) -> None:
        _SessionEvent.__post_init__(self)
        if self.reason not in APPROVAL_REASONS:
            raise ValueError(f"bad approval reason {self.reason!r}")
        _check(type(self.approved) is bool, "approved must be True or False")
        _check(not self.approved or self.reason == "user", "only the user approves a call")


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelUsage(_SessionEvent):
    """Token counts for the turn."""

    input_tokens: int
    output_tokens: int
    message_id: str = ""

    def __post_init__(self) -> None:
        _SessionEvent.__post_init__(self)
        _check(self.input_tokens >= 0 and self.output_tokens >= 0, "token counts must be >= 0")


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelEnd(_SessionEvent):
    """The turn is over; ``text`` is the whole answer as the deltas built it."""

    finish_reason: FinishReason
    text: str
    message_id: str = ""
    usage: dict[str, int] | None = None

    def __post_init__(self) -> None:
        _SessionEvent.__post_init__(self)
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(f"bad finish_reason {self.finish_reason!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelError(_SessionEvent):
    """The model failed; the turn is over and its partial text is kept, marked."""

    code: str
    message: str
    text: str = ""
    message_id: str = ""
    recoverable: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class Diagnostic(_SessionEvent):
    """Something the users of a session should know (store trouble, queueing)."""

    level: Level
    code: str
    message: str

    def __post_init__(self) -> None:
        _SessionEvent.__post_init__(self)
        if self.level not in LEVELS:
            raise ValueError(f"bad level {self.level!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusChanged(_SessionEvent):
    """The session went idle, started generating, or was paused."""

    status: Status

    def __post_init__(self) -> None:
        _SessionEvent.__post_init__(self)
        if self.status not in STATUSES:
            raise ValueError(f"bad status {self.status!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class HistoryCleared(_SessionEvent):
    """The conversation history was cleared."""


SessionEvent = Union[
    UserMessage,
    ModelStart,
    ModelDelta,
    ModelReasoning,
    ToolCall,
    ToolResult,
    ToolApproval,
    ToolApproved,
    ModelUsage,
    ModelEnd,
    ModelError,
    Diagnostic,
    StatusChanged,
    HistoryCleared,
]


# -- replies to one connection (no seq) ------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionReady:
    """Sent on connect: which session this connection is on and how far it is.

    ``epoch`` names this run of the server: a client that reconnects with the same
    epoch may resume from the last ``seq`` it applied.  ``resumed`` says whether the
    events it missed follow (``replayed`` of them); False means it must reload the
    session (``get_history``); None means it did not ask to resume.
    """

    session_id: str
    seq: int
    status: Status
    ts: int
    created: bool = False
    protocol: str = "llmsock/1"
    epoch: str = ""
    resumed: bool | None = None
    replayed: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class ControlResult:
    """The outcome of a control command, for the connection that sent it."""

    action: str
    ok: bool
    ts: int
    request_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ErrorReply:
    """A request from this connection failed; the connection stays open."""

    code: str
    message: str
    ts: int
    recoverable: bool = True
    request_id: str | None = None
    # The type of the client message it refuses ("user_message", "control", "ping"), when known:
    # a refused prompt ends its turn in the typed dialect, and seed 004's error codes depend on it.
    refused: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Pong:
    """The answer to a ``ping``."""

    ts: int
    request_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


Reply = Union[SessionReady, ControlResult, ErrorReply, Pong]
Event = Union[SessionEvent, Reply]
