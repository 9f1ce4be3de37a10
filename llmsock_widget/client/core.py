"""The client's pure core: backoff, close policy, URLs, frames, and the cursor over a session.

Nothing here does I/O, reads a clock or draws a random number: :mod:`.connection`
feeds frames in and acts on the :class:`Step` that comes out (decide in pure code,
act at the edge).  Both dialects are understood; the app sees each dialect's own
frames, plus pseudo-events named ``client.*`` that the client makes itself.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import LlmsockError
from ..wire.codes import CLOSE_POLICY, CLOSE_SLOW_CONSUMER
from ..wire.protocol import CONTROL_ACTIONS, SUBPROTOCOL_ENVELOPE, SUBPROTOCOL_TYPED, Dialect

Message = dict[str, Any]

SUBPROTOCOLS: dict[Dialect, str] = {"envelope": SUBPROTOCOL_ENVELOPE, "typed": SUBPROTOCOL_TYPED}


# -- errors ------------------------------------------------------------------------------


class ClientFailure(LlmsockError):
    """Base of the errors the Python client raises (a branch of the llmsock error tree)."""

    code = "client_error"


class ConnectFailed(ClientFailure):
    """The first connection could not be opened (network, timeout, an unexpected HTTP answer)."""

    code = "connect_failed"


class HandshakeRefused(ConnectFailed):
    """The server refused the handshake (401 token, 403 host or origin); retrying cannot help."""

    code = "unauthorized"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, code="unauthorized" if status == 401 else "forbidden")
        self.status = status


class SessionRefused(ClientFailure):
    """The server closed the connection by policy (4400: an invalid session id); not retried."""

    code = "session_refused"

    def __init__(self, message: str, *, close_code: int) -> None:
        super().__init__(message)
        self.close_code = close_code


class ConnectionLost(ClientFailure):
    """A request's connection dropped before its reply, or reconnecting gave up."""

    code = "connection_lost"


class RequestFailed(ClientFailure):
    """The server answered a request with an error reply; ``code`` is the server's."""


class ClientClosed(ClientFailure):
    """The client is closed: it sends and receives nothing more."""

    code = "closed"


# -- backoff and close policy -----------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Backoff:
    """Capped exponential backoff with full jitter.

    Attempt ``n`` (0-based) waits a uniform time in ``[0, min(cap, base * factor**n))``.
    ``max_attempts`` failed attempts in a row end reconnecting (None: never give up).
    """

    base: float = 0.25
    factor: float = 2.0
    cap: float = 10.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.base) and self.base > 0):
            raise ValueError(f"base must be a finite number > 0, not {self.base!r}")
        if not (math.isfinite(self.factor) and self.factor >= 1):
            raise ValueError(f"factor must be a finite number >= 1, not {self.factor!r}")
        if not (math.isfinite(self.cap) and self.cap >= self.base):
            raise ValueError(f"cap must be a finite number >= base, not {self.cap!r}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be None or >= 1, not {self.max_attempts!r}")

    def ceiling(self, attempt: int) -> float:
        """Return the longest delay of attempt ``attempt``: ``min(cap, base * factor**attempt)``."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, not {attempt!r}")
        # Compare logarithms, so a large attempt cannot overflow a float.
        if self.factor > 1 and attempt * math.log(self.factor) >= math.log(self.cap / self.base):
            return self.cap
        return min(self.cap, self.base * self.factor**attempt)

    def delay(self, attempt: int, random: Callable[[], float]) -> float:
        """Return the delay before attempt ``attempt``, jittered by ``random()`` in ``[0, 1)``."""
        return min(max(random(), 0.0), 1.0) * self.ceiling(attempt)

    def gave_up(self, failures: int) -> bool:
        """Whether ``failures`` failed attempts in a row end reconnecting."""
        return self.max_attempts is not None and failures >= self.max_attempts


def should_reconnect(code: int | None) -> bool:
    """Whether a close the app did not ask for is followed by a reconnect.

    Policy closes (1008, 4xxx) end the client, except 4008 (slow consumer): the
    server dropped what it had queued, which resuming gets back.
    """
    if code is None or code == CLOSE_SLOW_CONSUMER:
        return True
    return not (code == CLOSE_POLICY or 4000 <= code <= 4999)


# -- URLs and frames ---------------------------------------------------------------------


def session_url(base: str, *, session: str | None, resume: str | None) -> str:
    """Return ``base`` with ``session`` and ``resume`` in its query (and nothing secret).

    Raises:
        ValueError: not a ws:// or wss:// URL, or one that carries credentials or a token.
    """
    parts = urlsplit(base)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError("the URL must start with ws:// or wss:// and name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL must not carry credentials; pass token= instead")
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("session", "resume")
    ]
    if any("token" in k.lower() for k, _ in query):
        raise ValueError("the URL must not carry a token; pass token= instead")
    if session:
        query.append(("session", session))
    if resume:
        query.append(("resume", resume))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/ws", urlencode(query), ""))


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def prompt_frame(text: str, message_id: str, options: dict[str, Any], replaces: str | None = None) -> str:
    """Return the seed-004 ``user_message`` frame (understood in both dialects).

    ``replaces`` is the id of an earlier user message this prompt takes the place of.
    """
    data: dict[str, Any] = {"text": text}
    if replaces is not None:
        data["replaces"] = replaces
    if options:
        data["options"] = options
    return _dumps({"type": "user_message", "id": message_id, "data": data})


def control_frame(action: str, request_id: str) -> str:
    """Return a seed-004 ``control`` frame.

    Raises:
        ValueError: ``action`` is not a control action of the protocol.
    """
    if action not in CONTROL_ACTIONS:
        raise ValueError(f"unknown control action {action!r}; use one of {', '.join(CONTROL_ACTIONS)}")
    return _dumps({"type": "control", "id": request_id, "data": {"type": action}})


def approval_frame(call_id: str, approved: bool, request_id: str) -> str:
    """Return an ``approval`` frame: the answer to a tool call that waits for the user's approval."""
    return _dumps(
        {"type": "approval", "id": request_id, "data": {"toolCallId": call_id, "approved": approved}}
    )


def ping_frame(request_id: str) -> str:
    """Return a seed-004 ``ping`` frame."""
    return _dumps({"type": "ping", "id": request_id})


def pseudo(name: str, **data: Any) -> Message:
    """Return a pseudo-event the client makes itself (``name`` starts with ``client.``)."""
    return {"name": name, "data": data}


# -- statistics --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientStats:
    """A client's connection statistics (seed 004's ``ConnectionStats``; ``Client.connection_stats()``).

    Times are UTC; latencies are seconds.
    """

    connected_at: datetime | None
    """When the open connection (or, while reconnecting, the last one) got its ready; None before."""
    messages_sent: int
    """Frames this client sent: prompts, controls, pings, history requests."""
    messages_received: int
    """Frames it received, ready announcements and replies included."""
    last_message_at: datetime | None
    """When the last frame was sent or received; None before the first."""
    reconnect_count: int
    """Connections reopened since ``connect()`` (seed 004 counts the attempts of one outage instead)."""
    average_latency: float | None
    """The mean round trip of the ``ping()`` calls that got their pong; None before the first."""
    pings: int
    """How many round trips ``average_latency`` is the mean of."""
    heartbeat_latency: float | None
    """The last WebSocket ping's round trip on the open connection (the heartbeat); None if none yet."""


# -- reading server frames ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Ready:
    """The ready announcement, in either dialect."""

    session: str
    seq: int
    epoch: str
    resumed: bool | None
    replayed: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    """A reply to one request: ``kind`` is ``result`` (a control result), ``pong`` or ``error``."""

    request_id: str | None
    kind: str
    body: dict[str, Any]


def _parts(message: Message, dialect: Dialect) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(body, meta)``: the envelope's event and meta, or seed 004's data and metadata."""
    if dialect == "envelope":
        data = message.get("data")
        data = data if isinstance(data, dict) else {}
        body, meta = data.get("event"), data.get("meta")
    else:
        body, meta = message.get("data"), message.get("metadata")
    return (body if isinstance(body, dict) else {}), (meta if isinstance(meta, dict) else {})


def sequence_of(message: Message, dialect: Dialect) -> int | None:
    """Return the ``sequence`` of a session event, or None for a reply."""
    seq = _parts(message, dialect)[1].get("sequence")
    return seq if type(seq) is int else None


def ready_of(message: Message, dialect: Dialect) -> Ready | None:
    """Return the ready announcement in ``message``, or None if it is something else."""
    body, _ = _parts(message, dialect)
    if dialect == "envelope":
        if message.get("name") != "interaction.session" or body.get("type") != "ready":
            return None
    elif message.get("type") != "status" or message.get("id") != "ready":
        return None
    session, seq = body.get("sessionId"), body.get("sequence")
    if not isinstance(session, str) or type(seq) is not int:
        return None
    resumed = body.get("resumed")
    replayed = body.get("replayed", 0)
    return Ready(
        session=session,
        seq=seq,
        epoch=str(body.get("epoch") or ""),
        resumed=resumed if isinstance(resumed, bool) else None,
        replayed=replayed if type(replayed) is int else 0,
    )


def reply_of(message: Message, dialect: Dialect) -> Reply | None:
    """Return the reply in ``message`` (a frame without ``sequence``), normalised across dialects."""
    body, _ = _parts(message, dialect)
    if dialect == "envelope":
        name, kind, rid = message.get("name"), body.get("type"), body.get("requestId")
        if name == "interaction.control" and kind == "result":
            keep = ("action", "ok", "message", "data")
            return Reply(request_id=rid, kind="result", body={k: body.get(k) for k in keep})
        if name == "interaction.control" and kind == "pong":
            return Reply(request_id=rid, kind="pong", body={})
        if name == "interaction.error":
            return Reply(request_id=rid, kind="error", body=_error_body(body))
        return None
    kind, rid = message.get("type"), message.get("id")
    if kind == "control_response":
        # The data as the envelope dialect has it: seed 004's ``status`` (the kind of reply) and
        # ``history`` (a plain copy of ``messages``) go; the session's status is ``status`` again.
        data = {k: v for k, v in body.items() if k not in _TYPED_REPLY_FIELDS}
        if "sessionStatus" in body:
            data["status"] = body["sessionStatus"]
        result = {"action": body.get("type"), "ok": body.get("success"), "message": body.get("message")}
        return Reply(request_id=rid, kind="result", body={**result, "data": data})
    if kind == "pong":
        return Reply(request_id=rid, kind="pong", body=dict(body))
    if kind == "error":
        return Reply(request_id=rid, kind="error", body=_error_body(body))
    return None


_TYPED_REPLY_FIELDS = ("type", "success", "message", "status", "sessionStatus", "history")


def _error_body(body: dict[str, Any]) -> dict[str, Any]:
    code = body.get("llmsockCode", body.get("code"))  # typed: "code" is seed 004's, "llmsockCode" ours
    return {"code": code, "message": body.get("message"), "recoverable": body.get("recoverable")}


def _first_half(message: Message, dialect: Dialect) -> bool:
    """Whether ``message`` is the first of the two seed-004 frames of a tool result."""
    if dialect != "typed" or message.get("type") != "tool_call":
        return False
    return _parts(message, dialect)[0].get("status") in ("complete", "error")


# -- the cursor --------------------------------------------------------------------------


@dataclass
class Step:
    """What one frame means: messages for the app, the reply it carries, frames to send."""

    deliver: list[Message] = field(default_factory=list)
    reply: Reply | None = None
    send: list[str] = field(default_factory=list)


class Cursor:
    """Where the app is in a session's event sequence; decides what each frame means for it.

    It hands the app each session event once, in ``sequence`` order: events at or
    below the last one applied are dropped.  After a reconnect that the server could
    not resume, it asks for ``get_history``, holds live events until the history
    arrives, then hands the app a ``client.reloaded`` and the events after it.
    """

    def __init__(self, *, dialect: Dialect, session: str | None) -> None:
        self.dialect: Dialect = dialect
        self.session = session
        self.epoch = ""
        self.last: int | None = None  # the sequence of the last session event applied
        self.duplicates = 0
        self._half = False  # typed: ``last`` is a tool result whose second frame is still due
        self._reload: str | None = None  # the request id of the get_history being waited for
        self._reload_from = 0
        self._held: list[Message] = []
        self._epoch_before = ""

    def resume(self) -> str | None:
        """Return the ``resume`` query value for the next connection, or None to start afresh."""
        if not self.epoch or self.last is None or self._reload is not None:
            return None
        # Resume one event early when only half of a seed-004 tool result arrived: the replay
        # then sends both frames, and the first is dropped as a duplicate.
        return f"{self.epoch}:{self.last - 1 if self._half else self.last}"

    def url(self, base: str) -> str:
        """Return the URL of the next connection."""
        return session_url(base, session=self.session, resume=self.resume())

    def on_ready(self, message: Message, ready: Ready, *, reconnect: bool, history_id: str) -> Step:
        """Take the ready announcement of a new connection."""
        self.session = ready.session
        if not reconnect:
            self.epoch = ready.epoch
            self._applied(ready.seq)
            return Step(deliver=[message])
        if ready.resumed and ready.epoch == self.epoch and self._reload is None:
            note = pseudo(
                "client.reconnected",
                resumed=True,
                replayed=ready.replayed,
                sequence=ready.seq,
                epoch=self.epoch,
            )
            return Step(deliver=[message, note])
        if self._reload is None:
            self._epoch_before = self.epoch
        self.epoch = ready.epoch
        self._reload, self._reload_from, self._held = history_id, ready.seq, []
        note = pseudo("client.reconnected", resumed=False, replayed=0, sequence=ready.seq, epoch=self.epoch)
        return Step(deliver=[message, note], send=[control_frame("get_history", history_id)])

    def on_message(self, message: Message) -> Step:
        """Take any other frame."""
        seq = sequence_of(message, self.dialect)
        if seq is None:
            reply = reply_of(message, self.dialect)
            if reply is not None and self._reload is not None and reply.request_id == self._reload:
                return self._reloaded(reply)
            return Step(deliver=[message], reply=reply)
        if self._reload is not None:
            self._held.append(message)
            return Step()
        return Step(deliver=[message] if self._fresh(message, seq) else [])

    def _fresh(self, message: Message, seq: int) -> bool:
        if self.last is None or seq > self.last:
            self.last = seq
            self._half = _first_half(message, self.dialect)
            return True
        if seq == self.last and self._half and message.get("type") == "tool_result":
            self._half = False
            return True
        self.duplicates += 1
        return False

    def _applied(self, seq: int) -> None:
        self.last, self._half = seq, False

    def _reloaded(self, reply: Reply) -> Step:
        self._reload = None
        history = reply.body.get("data") if reply.kind == "result" and reply.body.get("ok") else None
        if isinstance(history, dict) and type(history.get("sequence")) is int:
            start = history["sequence"]
        else:  # no usable history (should not happen): go on from the ready
            history, start = None, self._reload_from
        self._applied(start)
        out = [
            pseudo(
                "client.reloaded",
                history=history,
                sequence=start,
                epoch=self.epoch,
                restarted=self.epoch != self._epoch_before,
            )
        ]
        held, self._held = self._held, []
        for message in held:
            seq = sequence_of(message, self.dialect)
            if seq is not None and self._fresh(message, seq):
                out.append(message)
        return Step(deliver=out)
