"""The protocol's names and numbers, each declared once: version, dialects, subprotocols, client
message types and control actions (docs/protocol.md, sections 3 and 7.1), and the WebSocket close
codes (docs/protocol.md, section 12; docs/widget-comm.md, section 2).

The server's handlers, the comm links, the widget and the Python client all
import them from here, so a code cannot mean one thing on the server and
another in the client.  Pure constants: this module imports nothing.
"""

from __future__ import annotations

from typing import Literal

PROTOCOL_VERSION = "llmsock/1"
# "typed": every frame is {"type", "id", "data", "metadata"} (the protocol of seed 004; 0.1 called
# this dialect "seed004"); "envelope": llm-core's interaction envelopes as its guide shows them
# (seeds 000-002); "llmcore": the envelopes exactly as llm-core v1.21.5's code sends them.
Dialect = Literal["envelope", "typed", "llmcore"]
DIALECTS: tuple[Dialect, ...] = ("envelope", "typed", "llmcore")
# The query parameter that names a dialect (``?dialect=llmcore``): a client that offers no subprotocol.
DIALECT_PARAMETER = "dialect"

# WebSocket subprotocol names: a client may name its dialect.  A token offered as a subprotocol
# (the prefix below) is refused: proxies log subprotocols; browsers send an auth frame instead.
SUBPROTOCOL_ENVELOPE = "llmsock.envelope.v1"
SUBPROTOCOL_TYPED = "llmsock.typed.v1"
SUBPROTOCOL_LLMCORE = "llmsock.llmcore.v1"
# The 0.1 name of the typed dialect ("seed004"); still selected, until 0.3.
SUBPROTOCOL_SEED004 = "llmsock.seed004.v1"
SUBPROTOCOL_AUTO = "llmsock.v1"
SUBPROTOCOL_TOKEN_PREFIX = "llmsock.token."
# The subprotocols that fix a connection's dialect, in the server's order of preference.
SUBPROTOCOL_DIALECTS: tuple[tuple[str, Dialect], ...] = (
    (SUBPROTOCOL_TYPED, "typed"),
    (SUBPROTOCOL_SEED004, "typed"),
    (SUBPROTOCOL_LLMCORE, "llmcore"),
    (SUBPROTOCOL_ENVELOPE, "envelope"),
)

CLIENT_TYPES = ("user_message", "control", "ping", "approval")
CONTROL_ACTIONS = ("abort", "pause", "resume", "clear_history", "get_history", "get_status")
# The action of the control result that answers an ``approval`` message (not a control action).
APPROVAL_ACTION = "approval"

# Sent on /ws (section 12); a comm link's ``unlinked`` message carries the same codes
# (docs/widget-comm.md, section 2).
CLOSE_NORMAL = 1000  # an unanswered ping (sent by Tornado itself)
CLOSE_GOING_AWAY = 1001  # the server is stopping
CLOSE_UNSUPPORTED = 1003  # a binary frame
CLOSE_TOO_BIG = 1009  # a frame over max_message_size (sent by Tornado itself)
CLOSE_UNAVAILABLE = 1011  # the session could not be loaded (store failure, newer snapshot)
CLOSE_SLOW_CONSUMER = 4008  # the client did not read and its outbound queue overflowed
CLOSE_SESSION_REFUSED = 4400  # the session named in the URL is not a valid id
CLOSE_UNAUTHORIZED = 4401  # the first frame was not an auth frame with the right token, or came too late
CLOSE_TOO_MANY_ATTEMPTS = 4429  # the server's budget of wrong tokens is spent; try again later

# A comm link's only: the server is full (WebSockets are refused with HTTP 503 instead).
CLOSE_TRY_LATER = 1013

# Never sent by this server; the client treats it, like every 4xxx code, as final.
CLOSE_POLICY = 1008
