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

from . import kernel, protocol
from .commlink import CommLink
from .errors import ClientError
from .stores.notebook import NotebookStore

log = logging.getLogger("llmsock")

STATIC = Path(__file__).parent / "static"
WIDGET_PROTOCOL = "llmsock-widget/1"
MAX_OFFERED = 64  # snapshots a view may offer at once (one notebook's sessions)
MAX_LINKS = 8  # comm links one widget keeps (its views, in all open tabs)

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
        self._links: dict[str, CommLink] = {}
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
        if not isinstance(content, dict):
            return
        kind = content.get("kind")
        if kind == "hello":
            self._hello(content)
        elif kind == "link":
            self._link(content)
        elif kind == "send":
            link = self._links.get(str(content.get("link")))
            frame = content.get("frame")
            if link is not None and isinstance(frame, str):
                _soon(link.server, link.command, frame)
        elif kind == "unlink":
            link = self._links.pop(str(content.get("link")), None)
            if link is not None:
                _soon(link.server, link.close, 1000, "")

    def _hello(self, content: dict[str, Any]) -> None:
        try:
            server = kernel.get_server()
        except Exception as exc:  # the view shows it; the cell that runs now is no place for it
            log.warning("llmsock: the chat widget could not start the server: %s", exc)
            self.send({"kind": "error", "message": f"llmsock server unavailable: {exc}"})
            return
        origin = content.get("origin")
        if isinstance(origin, str) and _ORIGIN.fullmatch(origin):
            # The hello comes through Jupyter's authenticated comm, so this page is the user's:
            # allow its origin, and its host, which requests through jupyter-server-proxy carry.
            kernel.allow_page(origin, _host_of(origin))
        restored: dict[str, str] = {}
        store = server.store
        snapshots = content.get("snapshots")
        if isinstance(store, NotebookStore) and isinstance(snapshots, dict):
            for key, data in list(snapshots.items())[:MAX_OFFERED]:
                try:
                    restored[str(key)] = store.offer(str(key), data)
                except ClientError as exc:  # a session id the notebook should not hold
                    restored[str(key)] = f"not restored: {exc.message}"
        if content.get("plugin") is True:
            kernel.add_front_end(self)
        self._send_connect(server, restored)

    def _link(self, content: dict[str, Any]) -> None:
        server = kernel.current_server()
        link_id = content.get("link")
        if not isinstance(link_id, str) or not link_id or len(link_id) > 64:
            return
        if server is None:
            self.send(
                {"kind": "unlinked", "link": link_id, "code": 1011, "reason": "no server in this kernel"}
            )
            return
        session = content.get("session")
        resume = None
        value = content.get("resume")
        if isinstance(value, str) and value:
            try:
                resume = protocol.parse_resume(value)
            except ClientError:
                resume = None  # a position the view cannot have made: reload instead
        old = self._links.pop(link_id, None)
        if old is not None:
            _soon(old.server, old.close, 1000, "replaced")
        while len(self._links) >= MAX_LINKS:
            # A view closed with its page never says goodbye: its link would stay forever.
            # The oldest link goes; a view still using it reconnects (and resumes) by itself.
            oldest = self._links.pop(next(iter(self._links)))
            _soon(oldest.server, oldest.close, 1001, "too many links on this widget; the oldest went")
        link = CommLink(server, link_id, self.send)
        self._links[link_id] = link
        server.submit(link.open(session if isinstance(session, str) and session else None, resume))

    def server_started(self, server: Any) -> None:
        """Tell the views the address of a new server (the old one was stopped)."""
        self._links.clear()  # the old server closed them
        self._send_connect(server)

    def send_snapshot(self, session_id: str, data: dict[str, Any] | None) -> None:
        """Ask the views to write a session's snapshot into the notebook's metadata (None removes it)."""
        self.send({"kind": "snapshot", "session": session_id, "snapshot": data})

    def close(self) -> None:
        kernel.remove_front_end(self)
        links, self._links = list(self._links.values()), {}
        for link in links:
            _soon(link.server, link.close, 1001, "the widget was closed")
        super().close()

    def _send_connect(self, server: Any, restored: dict[str, str] | None = None) -> None:
        self.send(
            {
                "kind": "connect",
                "url": server.url,
                "port": server.port,
                "token": server.token,
                "session": self.session,
                "transport": kernel.forced_transport(),
                "proxyUrl": kernel.proxy_url_template(),
                "store": kernel.describe_store(server.store),
                "restored": restored or {},
            }
        )


def _host_of(origin: str) -> str | None:
    """Return the ``Host`` header a request from ``origin`` carries (the default port omitted)."""
    scheme, _, netloc = origin.partition("://")
    if scheme not in ("http", "https") or not netloc:
        return None  # vscode-webview:// and the like never come through a proxy
    return netloc.lower()


def _soon(server: Any, fn: Any, *args: Any) -> None:
    try:
        server.call_soon(fn, *args)
    except RuntimeError:  # the server stopped meanwhile; its links are closed already
        pass
