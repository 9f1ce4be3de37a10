"""Collect one prompt's answer from the frames a client receives.  Pure.

A prompt's frames are found by its message id: seed 004 puts it on every frame
of the turn; the envelope dialect puts it on the ``user`` echo and ``start``
only, so the collector follows the turn id from there.  A ``client.reloaded``
pseudo-event (the server could not resume) carries the history, from which the
answer is picked up again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.events import ModelEnd, ModelError
from ..wire.protocol import Dialect

Message = dict[str, Any]

# How a history message's status reads as a finish reason.
_FINISH = {"complete": "stop", "aborted": "aborted", "length": "length", "error": "error"}


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer:
    """What a turn produced: its text, how it ended, and its error if it failed.

    The one Answer: the Python client's ``ask`` and the kernel's ``llmsock_widget.ask``
    (``%%llmsock``) both return it.  ``message_id`` is the prompt's id.
    """

    text: str
    finish_reason: str  # "stop", "length", "aborted" or "error"
    error: str | None = None
    session: str = ""
    message_id: str = ""

    def __str__(self) -> str:
        return self.text


def answer_ending(event: object, message_id: str, session: str = "") -> Answer | None:
    """Return the Answer if session event ``event`` ends prompt ``message_id``'s turn, else None.

    In-process readers of a session's events (``llmsock_widget.ask``, ``Chat.send``) take
    a turn's end here; a client reading frames uses :class:`AnswerCollector`.
    """
    if getattr(event, "message_id", None) != message_id:
        return None
    reason: str
    error: str | None = None
    if isinstance(event, ModelEnd):
        reason = event.finish_reason
    elif isinstance(event, ModelError):
        reason, error = "error", f"{event.code}: {event.message}"
    else:
        return None
    return Answer(text=event.text, finish_reason=reason, error=error, session=session, message_id=message_id)


class AnswerCollector:
    """Follow the turn of prompt ``message_id``; :meth:`feed` returns its Answer once it ends.

    ``text`` is the answer so far, so a caller can print it as it grows.
    """

    def __init__(self, message_id: str, *, dialect: Dialect, session: str = "") -> None:
        self.message_id = message_id
        self.dialect: Dialect = dialect
        self.session = session
        self.turn_id: str | None = None
        self.text = ""

    def feed(self, message: Message) -> Answer | None:
        """Take one frame (or pseudo-event); return the Answer if it ends the turn."""
        if message.get("name") == "client.reloaded":
            data = message.get("data")
            return self._from_history(data) if isinstance(data, dict) else None
        if self.dialect == "envelope":
            return self._envelope(message)
        return self._typed(message)

    def _finish(self, text: str, reason: str, error: str | None = None) -> Answer:
        self.text = text
        return Answer(
            text=text, finish_reason=reason, error=error, session=self.session, message_id=self.message_id
        )

    def _envelope(self, message: Message) -> Answer | None:
        data = message.get("data")
        if not isinstance(data, dict):
            return None
        event, meta = data.get("event"), data.get("meta")
        if not isinstance(event, dict) or not isinstance(meta, dict):
            return None
        name, kind = message.get("name"), event.get("type")
        if name == "interaction.error":
            if event.get("requestId") == self.message_id:
                return self._finish("", "error", _describe(event))
            return None
        if event.get("messageId") == self.message_id and kind in ("message", "start"):
            self.turn_id = meta.get("turnId")
            return None
        if name != "interaction.model" or self.turn_id is None or meta.get("turnId") != self.turn_id:
            return None
        if kind == "delta" and isinstance(event.get("text"), str):
            self.text += event["text"]
        elif kind == "end":
            return self._finish(str(event.get("text", "")), str(event.get("finishReason", "stop")))
        elif kind == "error":
            return self._finish(str(event.get("text", "")), "error", _describe(event))
        return None

    def _typed(self, message: Message) -> Answer | None:
        if message.get("id") != self.message_id:
            return None
        data, meta = message.get("data"), message.get("metadata")
        if not isinstance(data, dict) or not isinstance(meta, dict):
            return None
        kind = message.get("type")
        if kind == "user_message":
            self.turn_id = meta.get("turnId")
        elif kind == "llm_chunk" and isinstance(data.get("chunk"), str):
            self.text += data["chunk"]
        elif kind == "llm_complete":  # a failed or refused prompt's carries the error that follows it
            error = _describe(data["error"]) if isinstance(data.get("error"), dict) else None
            return self._finish(str(data.get("fullText", "")), str(data.get("finishReason", "stop")), error)
        elif kind == "error":  # a model error (with sequence) or an error reply to the prompt
            return self._finish(str(data.get("fullText", "")), "error", _describe(data))
        return None

    def _from_history(self, data: dict[str, Any]) -> Answer | None:
        history = data.get("history")
        messages = history.get("messages") if isinstance(history, dict) else None
        if not isinstance(history, dict) or not isinstance(messages, list):
            return None
        found = [m for m in messages if isinstance(m, dict)]
        if self.turn_id is None:
            mine = [m for m in found if m.get("role") == "user" and m.get("id") == self.message_id]
            self.turn_id = mine[-1].get("turnId") if mine else None
        if self.turn_id is not None:
            answered = [m for m in found if m.get("id") == f"{self.turn_id}:a"]
            if answered:
                done = answered[-1]
                reason = _FINISH.get(str(done.get("status")), "stop")
                error = _describe(done["error"]) if isinstance(done.get("error"), dict) else None
                return self._finish(str(done.get("text", "")), reason, error if reason == "error" else None)
            current = history.get("current")
            if isinstance(current, dict) and current.get("turnId") == self.turn_id:
                self.text = str(current.get("text", ""))
                return None
            if any(m.get("turnId") == self.turn_id for m in found):
                return None  # the prompt is in, the model has not started
        if data.get("restarted"):
            # Queued prompts live in the server's memory only: a restart drops a prompt not yet run.
            return self._finish("", "error", "lost: the server restarted before this prompt was answered")
        return None


def _describe(body: dict[str, Any]) -> str:
    # The typed dialect puts seed 004's code in "code" and llmsock's own in "llmsockCode".
    return f"{body.get('llmsockCode', body.get('code'))}: {body.get('message')}"
