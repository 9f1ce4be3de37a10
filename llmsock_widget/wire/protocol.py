"""The wire API of both dialects, in one place for its callers.  Pure: text in, commands out;
events in, text out.

* ``envelope`` — the llm-core dialect (seeds 000–002): a plain-text frame is a
  prompt; the server sends ``{"name", "data": {"kind", "event", "meta"}}``.
  JSON frames whose ``type`` is a seed-004 client type are commands here too.
* ``typed`` — the JSON protocol of seed 004: ``{"type", "id", "data", "metadata"}``.
* ``llmcore`` — the same events as llm-core v1.21.5's code sends them:
  ``{"name", "data": {"event": {"kind", "event", "meta"}}}``; client frames as ``envelope``'s.

docs/protocol.md is the normative description.  The work is done in ``decode`` (client
frames -> commands), ``encode`` (events -> frames, one rule per event type),
``strictjson`` (the one strict parser) and ``codes`` (names and numbers); the commands
are ``core.commands``.
"""

from __future__ import annotations

from ..core.commands import Approve, Command, Control, Ping, SendPrompt
from .codes import (
    APPROVAL_ACTION,
    CLIENT_TYPES,
    CONTROL_ACTIONS,
    DIALECT_PARAMETER,
    DIALECTS,
    PROTOCOL_VERSION,
    SUBPROTOCOL_AUTO,
    SUBPROTOCOL_DIALECTS,
    SUBPROTOCOL_ENVELOPE,
    SUBPROTOCOL_LLMCORE,
    SUBPROTOCOL_SEED004,
    SUBPROTOCOL_TOKEN_PREFIX,
    SUBPROTOCOL_TYPED,
    Dialect,
)
from .decode import ClientFrame, decode, detect_dialect, parse_dialect, parse_resume
from .encode import encode, frames, sse_message, to_envelope, to_llmcore, to_typed, unencodable
from .strictjson import MAX_DEPTH, MAX_INT_DIGITS, parse_arguments, parse_json, well_formed

__all__ = [
    "APPROVAL_ACTION",
    "CLIENT_TYPES",
    "CONTROL_ACTIONS",
    "DIALECTS",
    "DIALECT_PARAMETER",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "PROTOCOL_VERSION",
    "SUBPROTOCOL_AUTO",
    "SUBPROTOCOL_DIALECTS",
    "SUBPROTOCOL_ENVELOPE",
    "SUBPROTOCOL_LLMCORE",
    "SUBPROTOCOL_SEED004",
    "SUBPROTOCOL_TOKEN_PREFIX",
    "SUBPROTOCOL_TYPED",
    "Approve",
    "ClientFrame",
    "Command",
    "Control",
    "Dialect",
    "Ping",
    "SendPrompt",
    "decode",
    "detect_dialect",
    "encode",
    "frames",
    "parse_arguments",
    "parse_dialect",
    "parse_json",
    "parse_resume",
    "sse_message",
    "to_envelope",
    "to_llmcore",
    "to_typed",
    "unencodable",
    "well_formed",
]
