"""Decoding: a client's text frame -> a command, in either dialect.  Pure."""

from __future__ import annotations

import re
from typing import Any

from ..core.commands import Approve, Command, Control, Ping, SendPrompt
from ..core.settings import SETTINGS, check_setting
from ..errors import InvalidFrame, UnknownType
from .codes import CLIENT_TYPES, CONTROL_ACTIONS, DIALECTS, Dialect
from .strictjson import MAX_INT_DIGITS, check_text, parse_json


class ClientFrame:
    """One client text frame whose JSON is parsed at most once, however often it is asked for.

    The edge reads a frame in up to three steps (the auth frame check, the dialect sniff,
    the decoder); each asks the same ``ClientFrame``, so the strict parser runs once a frame.
    """

    __slots__ = ("_error", "_parsed", "_value", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._parsed = False
        self._value: Any = None
        self._error: str | None = None

    def json(self) -> Any:
        """Return the frame's JSON value, parsing it on the first call only.

        Raises:
            InvalidFrame: the text is not strict JSON (the same message on every call).
        """
        if not self._parsed:
            self._parsed = True
            try:
                self._value = parse_json(self.text)
            except InvalidFrame as exc:
                self._error = exc.message
        if self._error is not None:
            raise InvalidFrame(self._error)
        return self._value

    def client_type(self) -> str | None:
        """Return the frame's ``type`` if it is a JSON object of a client message type, else None."""
        kind = self.message_type()
        return kind if kind in CLIENT_TYPES else None

    def message_type(self) -> str:
        """Return the frame's ``type`` if it is a JSON object with a string ``type``, else ``""``.

        An error reply names it (:attr:`ErrorReply.refused`): a refused prompt's turn ends in
        the typed dialect, and seed 004's error codes depend on what was refused.
        """
        # Cheap test first: only a JSON object has a type.
        if not self.text.lstrip().startswith("{"):
            return ""
        try:
            value = self.json()
        except InvalidFrame:
            return ""
        kind = value.get("type") if isinstance(value, dict) else None
        return kind if isinstance(kind, str) else ""


def detect_dialect(frame: str | ClientFrame) -> Dialect:
    """Return the dialect a connection's first frame implies."""
    frame = frame if isinstance(frame, ClientFrame) else ClientFrame(frame)
    return "typed" if frame.client_type() is not None else "envelope"


def decode(frame: str | ClientFrame, dialect: Dialect) -> Command:
    """Return the command in a client text frame (its JSON parsed once, or not at all if plain text).

    Raises:
        InvalidFrame: malformed JSON or fields (typed), or an empty prompt.
        UnknownType: a ``type`` or control action that does not exist.
    """
    frame = frame if isinstance(frame, ClientFrame) else ClientFrame(frame)
    if dialect != "typed":  # llm-core sends nothing of its own to a server: llmcore reads envelope's frames
        if frame.client_type() is None:
            text = frame.text
            if not text.strip():
                raise InvalidFrame("empty prompt")
            check_text(text)
            return SendPrompt(text=text)
    message = frame.json()
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
    if kind == "approval":
        return _decode_approval(data, request_id)
    raise UnknownType(f"unknown message type: {kind!r}")


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
    # Seed 004's client spreads its options into data ({"text", "maxTokens", ...}); both places
    # are read, and data.options wins over data for an option given in both.
    merged = {**prompt_options(data, "data"), **prompt_options(options, "options")}
    return SendPrompt(text=text, message_id=request_id, options=merged, replaces=_replaces(data))


def _decode_approval(data: dict[str, Any], request_id: str | None) -> Approve:
    call_id = data.get("toolCallId")
    if not isinstance(call_id, str) or not 1 <= len(call_id) <= MAX_CALL_ID:
        raise InvalidFrame(f"approval needs data.toolCallId as a string of 1 to {MAX_CALL_ID} characters")
    approved = data.get("approved")
    if not isinstance(approved, bool):
        raise InvalidFrame("approval needs data.approved as true or false")
    return Approve(call_id=call_id, approved=approved, request_id=request_id)


MAX_CALL_ID = 256
"""The longest ``toolCallId`` an ``approval`` may name (the ids come from the model)."""


def _replaces(data: dict[str, Any]) -> str | None:
    """Return ``data.replaces``: the id of the user message the prompt takes the place of, or None."""
    value = data.get("replaces")
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 128:
        raise InvalidFrame("data.replaces must be a string of 1 to 128 characters: the id of a user message")
    return value


def prompt_options(options: dict[str, Any], where: str = "options") -> dict[str, Any]:
    """Return the known options in ``options`` (``data.options``, or ``data`` itself), validated.

    Raises:
        InvalidFrame: a value out of its range, named ``<where>.<option>``.
    """
    out: dict[str, Any] = {}
    for key in SETTINGS:  # the options a session keeps (temperature, maxTokens, system, model)
        if key in options and options[key] is not None:
            try:
                out[key] = check_setting(key, options[key])
            except ValueError as exc:
                raise InvalidFrame(f"{where}.{exc}") from None
    if "tools" in options and options["tools"] is not None:
        tools = options["tools"]
        if isinstance(tools, bool):  # true: every registered tool; false: none
            out["tools"] = tools
        elif isinstance(tools, list) and all(isinstance(t, str) for t in tools):
            out["tools"] = list(tools)
        else:
            raise InvalidFrame(f"{where}.tools must be true, false or a list of tool names")
    if "timeout" in options and options["timeout"] is not None:
        s = options["timeout"]
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 < s <= MAX_TIMEOUT:
            raise InvalidFrame(f"{where}.timeout must be a number of seconds above 0, at most {MAX_TIMEOUT}")
        out["timeout"] = float(s)
    if "retries" in options and options["retries"] is not None:
        n = options["retries"]
        if type(n) is not int or not 0 <= n <= MAX_RETRIES:
            raise InvalidFrame(f"{where}.retries must be an integer from 0 to {MAX_RETRIES}")
        out["retries"] = n
    if "attachments" in options and options["attachments"] is not None:
        out["attachments"] = _attachments(options["attachments"], where)
    return out


def _attachments(value: Any, where: str) -> list[dict[str, str]]:
    """Return a prompt's attachments (mentions) as ``[{"name", "text"}]``, their other keys left out.

    Raises:
        InvalidFrame: not a list of at most :data:`MAX_ATTACHMENTS` objects with a name and a
            text, or a name or a text too long.
    """
    name = f"{where}.attachments"
    if not isinstance(value, list):
        raise InvalidFrame(f"{name} must be a list of {{name, text}} objects")
    if len(value) > MAX_ATTACHMENTS:
        raise InvalidFrame(f"{name} holds {len(value)} attachments; at most {MAX_ATTACHMENTS} are allowed")
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidFrame(f"{name}[{index}] must be an object {{name, text}}")
        label, text = item.get("name"), item.get("text")
        if not isinstance(label, str) or not 1 <= len(label) <= MAX_ATTACHMENT_NAME:
            raise InvalidFrame(
                f"{name}[{index}].name must be a string of 1 to {MAX_ATTACHMENT_NAME} characters"
            )
        if not isinstance(text, str):
            raise InvalidFrame(f"{name}[{index}].text must be a string")
        if len(text) > MAX_ATTACHMENT_CHARS:
            raise InvalidFrame(
                f"{name}[{index}].text has {len(text)} characters; at most {MAX_ATTACHMENT_CHARS} are allowed"
            )
        out.append({"name": label, "text": text})
    return out


MAX_ATTACHMENTS = 8
"""The most attachments (mentions) a prompt may carry."""
MAX_ATTACHMENT_CHARS = 8000
"""The longest text of one attachment, in characters."""
MAX_ATTACHMENT_NAME = 128
"""The longest name of one attachment, in characters."""


MAX_TIMEOUT = 3600
"""The longest ``options.timeout`` a prompt may ask for, in seconds."""
MAX_RETRIES = 10
"""The most ``options.retries`` a prompt may ask for."""


def _optional_id(message: dict[str, Any]) -> str | None:
    value = message.get("id")
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 128:
        raise InvalidFrame("'id' must be a string of 1 to 128 characters")
    return value


def parse_dialect(value: str) -> Dialect:
    """Return the dialect a ``dialect=<name>`` query value names.

    Raises:
        InvalidFrame: no dialect has that name.
    """
    for dialect in DIALECTS:
        if value == dialect:
            return dialect
    raise InvalidFrame(f"dialect must be one of {', '.join(DIALECTS)}")


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
