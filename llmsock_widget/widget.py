"""ChatWidget: the chat cell, an anywidget that talks to the kernel's server over WebSocket.

The browser gets the server's address and token through the widget's comm (a
custom message in answer to the view's ``hello``), never through a synced
trait: traits are saved into the notebook, and the token must not be.  The
widget opens no socket in the kernel; the view connects from the browser.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from . import kernel

log = logging.getLogger("llmsock")

STATIC = Path(__file__).parent / "static"
WIDGET_PROTOCOL = "llmsock-widget/1"

# What a browser may send as its origin: scheme://host[:port], nothing more ("null" is refused).
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[A-Za-z0-9._~\-\[\]:]+")


class ChatWidget(anywidget.AnyWidget):
    """An interactive chat on one session of the kernel's llmsock server.

    ``ChatWidget()`` uses the notebook's default session; ``ChatWidget(session="name")``
    a named one (created if new).  Several widgets on one session stay in sync.
    """

    _esm = STATIC / "widget.js"
    _css = STATIC / "widget.css"
    session = traitlets.Unicode(kernel.DEFAULT_SESSION).tag(sync=True)

    def __init__(self, session: str | None = None, **kwargs: Any) -> None:
        super().__init__(session=session or kernel.DEFAULT_SESSION, **kwargs)
        self.on_msg(self._on_message)
        kernel.watch(self)
        kernel.get_server()  # start it now, so a problem shows in the cell that made the widget

    def tool(self, fn: Any = None, **options: Any) -> Any:
        """Register a Python function as a tool the model may call (``@chat.tool``).

        Tools belong to the kernel's server, so every chat in this kernel can use them.
        """
        return kernel.get_server().tool(fn, **options)

    def __repr__(self) -> str:  # stable text, for plain-text front ends and notebook tests
        return f"ChatWidget(session={self.session!r})"

    def _on_message(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("kind") != "hello":
            return
        try:
            server = kernel.get_server()
        except Exception as exc:  # the view shows it; the cell that runs now is no place for it
            log.warning("llmsock: the chat widget could not start the server: %s", exc)
            self.send({"kind": "error", "message": f"llmsock server unavailable: {exc}"})
            return
        origin = content.get("origin")
        if isinstance(origin, str) and _ORIGIN.fullmatch(origin):
            server.allow_origin(origin)
        self._send_connect(server)

    def server_started(self, server: Any) -> None:
        """Tell the views the address of a new server (the old one was stopped)."""
        self._send_connect(server)

    def _send_connect(self, server: Any) -> None:
        self.send(
            {
                "kind": "connect",
                "url": server.url,
                "port": server.port,
                "token": server.token,
                "session": self.session,
            }
        )
