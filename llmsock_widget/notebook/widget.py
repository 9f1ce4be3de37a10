"""ChatWidget: the chat cell, an anywidget that talks to the kernel's server over WebSocket.

The browser gets the server's address and token through the widget's comm (a
custom message in answer to the view's ``hello``), never through a synced
trait: traits are saved into the notebook, and the token must not be.  The
widget opens no socket in the kernel; the view connects from the browser.

The model settings ``system``, ``temperature``, ``max_tokens``, ``model``, ``tools``,
``timeout`` and ``retries`` are synced traits (not secrets): every prompt from a view carries
those that are set as its options (docs/protocol.md, section 7.1), so the session keeps the
last prompt's in its snapshot; the view's settings panel and its header's model picker edit
them.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from pathlib import Path
from typing import Any, cast

import anywidget
import traitlets

from ..errors import ClientError, InvalidFrame
from ..server.commlink import CommLink
from ..stores.notebook import NotebookStore
from ..wire import protocol
from ..wire.codes import CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_UNAVAILABLE
from ..wire.decode import prompt_options
from ..wire.protocol import SendPrompt
from . import chatturn, kernel, mentions
from .explain import NoErrorToExplain, explain_prompt, last_error
from .settings import Settings

log = logging.getLogger("llmsock")

STATIC = Path(__file__).resolve().parents[1] / "static"
WIDGET_PROTOCOL = "llmsock-widget/1"
MAX_OFFERED = 64  # snapshots a view may offer at once (one notebook's sessions)
MAX_LINKS = 8  # comm links one widget keeps (its views, in all open tabs)

SETTINGS = ("system", "temperature", "max_tokens", "model", "tools", "timeout", "retries")
"""The model settings, as traits (docs/protocol.md, section 7.1, names them as options)."""
_OPTION_OF = {"max_tokens": "maxTokens"}
_TRAIT_OF = {option: name for name, option in _OPTION_OF.items()}
_KEPT = ("system", "temperature", "max_tokens", "model")  # the settings a session's snapshot keeps

# What a browser may send as its origin: scheme://host[:port], nothing more ("null" is refused).
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[A-Za-z0-9._~\-\[\]:]+")


class ChatWidget(anywidget.AnyWidget):
    """An interactive chat on one session of the kernel's llmsock server.

    ``ChatWidget()`` uses the notebook's default session; ``ChatWidget(session="name")``
    a named one (created if new).  Several widgets on one session stay in sync.

    The model settings go with every prompt sent from the chat; None (the default) leaves
    the model's own: ``system`` is the system prompt (at most 32,768 characters);
    ``temperature`` 0 to 2; ``max_tokens`` the most tokens of an answer (1 to 1,000,000);
    ``model`` the name of a model set up in the kernel (``%llmsock model``; None: the
    kernel's default); ``tools`` is True (offer every registered tool), False (none) or a
    list of tool names; ``timeout`` the seconds of silence the model waits for its provider
    (above 0, at most 3600); ``retries`` the retries of a failed request (0 to 10).  They
    can be changed later (``chat.temperature = 0.2``) and in the chat's *settings* panel (the
    model in its header).  A session keeps the last prompt's settings in its snapshot; after
    a kernel restart a view takes those whose setting here is None.
    """

    _esm = STATIC / "widget.js"
    _css = STATIC / "widget.css"
    session = traitlets.Unicode(kernel.DEFAULT_SESSION).tag(sync=True)
    tools = traitlets.Any(None).tag(sync=True)
    timeout = traitlets.Any(None).tag(sync=True)
    retries = traitlets.Any(None).tag(sync=True)
    system = traitlets.Any(None).tag(sync=True)
    temperature = traitlets.Any(None).tag(sync=True)
    max_tokens = traitlets.Any(None).tag(sync=True)
    model = traitlets.Any(None).tag(sync=True)

    def __init__(
        self,
        session: str | None = None,
        *,
        tools: bool | list[str] | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        model: str | None = None,
        **kwargs: Any,
    ) -> None:
        # Checked before the widget exists, so a bad value leaves no half-made widget behind.
        settings = {
            "tools": tools,
            "timeout": timeout,
            "retries": retries,
            "system": system,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "model": model,
        }
        checked = {name: checked_setting(name, value) for name, value in settings.items()}
        super().__init__(session=session or kernel.DEFAULT_SESSION, **checked, **kwargs)
        self._links: dict[str, CommLink] = {}
        self.on_msg(self._on_message)
        kernel.watch(self)
        kernel.get_server()  # start it now, so a problem shows in the cell that made the widget
        # Its views may bring the notebook plugin: until one says hello, chats stay off the disk.
        kernel.expect_front_end()

    def tool(self, fn: Any = None, **options: Any) -> Any:
        """Register a Python function as a tool the model may call (``@chat.tool``).

        Tools belong to the kernel's server, so every chat in this kernel can use them.
        """
        return kernel.get_server().tool(fn, **options)

    @traitlets.observe("comm")
    def _route_by_front_end(self, change: Any) -> None:
        # ipykernel 7.4 hands a comm's incoming messages to the subshell the comm last published
        # from (``_reply_subshell_for``, asked by Kernel.shell_channel_thread_main), overriding
        # the subshell the front end named, so that a cell awaiting a reply on a subshell gets it
        # there.  A chat awaits nothing, and it publishes from the main shell (its comm_open, a
        # trait a cell sets): the views' next requests would wait behind a busy cell.  So its
        # messages go where the front end sends them, if that subshell exists: after a restart
        # JupyterLab still names the old kernel's subshells, which the kernel would refuse.
        comm = change["new"]
        kernel_route = getattr(comm, "_reply_subshell_for", None)
        if kernel_route is not None:
            comm._reply_subshell_for = functools.partial(_named_subshell, comm, kernel_route)

    @traitlets.validate(*SETTINGS)
    def _check_setting(self, proposal: Any) -> Any:
        # Python and the views (the settings panel) set these; both go through one rule.
        return checked_setting(proposal["trait"].name, proposal["value"])

    def __repr__(self) -> str:  # stable text, for plain-text front ends and notebook tests
        settings = "".join(
            f", {name}={getattr(self, name)!r}" for name in SETTINGS if getattr(self, name) is not None
        )
        return f"ChatWidget(session={self.session!r}{settings})"

    # -- the views' comm messages -------------------------------------------------------------
    #
    # Thread rule.  ``_on_message`` runs on whichever thread the kernel handles comm messages
    # on: the main shell thread, or, where the front end sends them to a kernel subshell
    # (``commsOverSubshells``: JupyterLab 4.4+ and Notebook 7.4+ with ipykernel 7+, the
    # default), a subshell thread *while a cell runs on the main one*.  So the handler only
    # reads the message and hands the work to the server's loop through ``server.call_soon``,
    # the one thread-safe door; the link table and every CommLink are touched on that loop
    # only.  Nothing else of ours reacts to the comm: the synced ``session`` trait has no
    # observers, and the settings traits only a pure validator.  This is what lets Stop over
    # the comm end an answer while a cell is busy.  The view's requests about the kernel
    # (``complete``, ``describe``, ``explain``) are answered on the comm's thread itself: they
    # read a copy of the user's namespace (or the last error) and change nothing, so they too
    # answer while a cell runs; ``explain``'s prompt goes to the loop through ``server.submit``.

    def _on_message(self, widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if "type" in content:  # a view's request about the kernel itself (docs/widget-comm.md, section 3)
            self._request(content)
            return
        kind = content.get("kind")
        if kind == "hello":
            self._hello(content)
            return
        handler = {"link": self._link, "send": self._send_frame, "unlink": self._unlink}.get(str(kind))
        if handler is None:
            return
        server = kernel.current_server()
        if server is not None:
            _soon(server, handler, server, content)
        elif kind == "link" and _link_id(content) is not None:
            self.send(
                {
                    "kind": "unlinked",
                    "link": content["link"],
                    "code": CLOSE_UNAVAILABLE,
                    "reason": "no server in this kernel",
                }
            )

    def _request(self, content: dict[str, Any]) -> None:
        """Answer ``complete`` and ``describe`` here, on the comm's thread; start ``explain``.

        They only read the user's namespace (notebook/mentions.py), so they answer while a cell
        runs when the comm is on a subshell.  Nothing here touches the server's state.
        """
        if content.get("type") == "explain":
            self._explain(content)
            return
        reply = mentions.answer(content)
        if reply is not None:
            self.send(reply)

    def _explain(self, content: dict[str, Any]) -> None:
        """Send the last error to this widget's session as a prompt (as ``%llmsock explain`` does)."""
        request_id = content.get("id")
        said: dict[str, Any] = {"type": "explained"}
        if isinstance(request_id, str) and len(request_id) <= mentions.MAX_ID:
            said["id"] = request_id
        try:
            # Read at once: the prompt is about the cell that failed, whatever runs now.
            prompt = explain_prompt(last_error())
        except NoErrorToExplain as exc:
            self.send({**said, "ok": False, "message": str(exc)})
            return
        try:
            server = kernel.get_server()
            options = prompt_options(self._prompt_options(), "ChatWidget")
        except Exception as exc:  # no server could start, or a setting the wire refuses
            self.send({**said, "ok": False, "message": f"not sent: {exc}"})
            return
        command = SendPrompt(text=prompt, message_id=f"explain-{secrets.token_urlsafe(9)}", options=options)
        try:
            # As a cell's Chat(session).send: the hub has it when this returns, and every view shows it.
            pending = chatturn.start(server, self.session, command, inherit_system=False)
        except Exception as exc:  # the server stopped meanwhile, or did not take it in time
            self.send({**said, "ok": False, "message": f"not sent: {exc}"})
            return
        refused = pending.done() and pending.result(0).finish_reason == "error"
        message = f"not sent: {pending.result(0).error}" if refused else ""
        self.send({**said, "ok": not refused, "message": message})

    def _prompt_options(self) -> dict[str, Any]:
        """Return the chat's settings as a prompt's options, as a view sends them with its prompts."""
        values = {name: getattr(self, name) for name in SETTINGS}
        return {_OPTION_OF.get(name, name): value for name, value in values.items() if value is not None}

    def _hello(self, content: dict[str, Any]) -> None:
        try:
            # Starting a server takes the kernel's lock and waits for the new loop: the one
            # step done on the calling thread (never on a loop).
            server = kernel.get_server()
        except Exception as exc:  # the view shows it; the cell that runs now is no place for it
            log.warning("llmsock: the chat widget could not start the server: %s", exc)
            self.send({"kind": "error", "message": f"llmsock server unavailable: {exc}"})
            return
        _soon(server, self._greet, server, content)

    def _greet(self, server: Any, content: dict[str, Any]) -> None:
        """Answer a view's hello (on the server's loop): allow its page, take its snapshots, connect."""
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
        if isinstance(snapshots, dict):
            self._adopt_settings(snapshots.get(self.session))
        if content.get("plugin") is True:
            kernel.add_front_end(self)
        else:
            kernel.front_end_without_plugin()
        self._send_connect(server, restored)

    def _adopt_settings(self, snapshot: Any) -> None:
        """Take the settings the notebook's copy of this session kept, where this widget has none.

        After a kernel restart ``ChatWidget()`` has no settings; the session's snapshot in the
        notebook (which the view brings in its hello) has the last prompt's.  Done here, in the
        kernel, so Python sees them: the view takes them too (index.js), but a change a view
        makes after a kernel restart does not reach the kernel until the page is reloaded.
        A value the widget would refuse (a model not set up in this kernel) is left out.
        """
        kept = snapshot.get("settings") if isinstance(snapshot, dict) else None
        if not isinstance(kept, dict):
            return
        for option, value in kept.items():
            name = _TRAIT_OF.get(option, option)
            if name not in _KEPT or getattr(self, name) is not None:
                continue
            try:
                setattr(self, name, value)
            except traitlets.TraitError as exc:
                log.info("llmsock: the chat's kept %s was not taken: %s", name, exc)

    def _link(self, server: Any, content: dict[str, Any]) -> None:
        """Attach a view to a session through this comm (on the server's loop)."""
        link_id = _link_id(content)
        if link_id is None:
            return
        session = content.get("session")
        resume = None
        value = content.get("resume")
        if isinstance(value, str) and value:
            try:
                resume = protocol.parse_resume(value)
            except ClientError:
                resume = None  # a position the view cannot have made: reload instead
        self._forget_links_of_other_servers(server)
        old = self._links.pop(link_id, None)
        if old is not None:
            old.close(CLOSE_NORMAL, "replaced")
        link = CommLink(server, link_id, self.send)
        self._links[link_id] = link
        while len(self._links) > MAX_LINKS:
            # A view closed with its page never says goodbye: its link would stay forever.
            # The oldest link goes; a view still using it reconnects (and resumes) by itself.
            oldest = self._links.pop(next(iter(self._links)))
            oldest.close(CLOSE_GOING_AWAY, "too many links on this widget; the oldest went")
        server.submit(link.open(session if isinstance(session, str) and session else None, resume))

    def _send_frame(self, server: Any, content: dict[str, Any]) -> None:
        """Act on a view's frame (a prompt, Stop, ...) on its link (on the server's loop)."""
        link = self._links.get(str(content.get("link")))
        frame = content.get("frame")
        if link is not None and link.server is server and isinstance(frame, str):
            link.command(frame)

    def _unlink(self, server: Any, content: dict[str, Any]) -> None:
        """End a view's link at its request (on the server's loop)."""
        link = self._links.pop(str(content.get("link")), None)
        if link is not None:
            link.close(CLOSE_NORMAL, "")

    def _forget_links_of_other_servers(self, server: Any) -> None:
        # A stopped server closed its links itself; only the current server's stay listed.
        self._links = {key: link for key, link in self._links.items() if link.server is server}

    def _close_links(self, code: int, reason: str) -> None:
        links, self._links = list(self._links.values()), {}
        for link in links:
            link.close(code, reason)

    def _restarted(self, server: Any) -> None:
        self._forget_links_of_other_servers(server)
        self._send_connect(server)

    def server_started(self, server: Any) -> None:
        """Tell the views the address of a new server (the old one was stopped)."""
        _soon(server, self._restarted, server)

    def send_snapshot(self, session_id: str, data: dict[str, Any] | None) -> None:
        """Ask the views to write a session's snapshot into the notebook's metadata (None removes it)."""
        self.send({"kind": "snapshot", "session": session_id, "snapshot": data})

    def close(self) -> None:
        kernel.remove_front_end(self)
        server = kernel.current_server()
        if server is not None:  # a stopped server closed its links already
            _soon(server, self._close_links, CLOSE_GOING_AWAY, "the widget was closed")
        super().close()

    def _send_connect(self, server: Any, restored: dict[str, str] | None = None) -> None:
        settings = Settings.current()
        if settings.connect_timeout_warning is not None:
            log.warning("%s", settings.connect_timeout_warning)
        self.send(
            {
                "kind": "connect",
                "url": server.url,
                "port": server.port,
                "token": server.token,
                "session": self.session,
                "transport": kernel.forced_transport(),
                "proxyUrl": kernel.proxy_url_template(),
                "connectTimeoutMs": settings.connect_timeout_ms,
                "store": kernel.describe_store(server.store),
                "restored": restored or {},
                "model": server.model.name,  # the header's model until an answer names its own
                "models": server.models(),  # the header's model picker
            }
        )


def checked_setting(name: str, value: Any) -> Any:
    """Return a model setting (``tools``, ``timeout``, ``retries``) checked as a prompt's option.

    The rule is the wire's (docs/protocol.md, section 7.1), so the chat never sends a prompt
    the server refuses.  A tuple of tool names is taken as a list.

    Raises:
        traitlets.TraitError: a value out of its range, said with what is allowed.
    """
    if value is None:
        return None
    if name == "tools" and isinstance(value, tuple):
        value = list(value)
    option = _OPTION_OF.get(name, name)
    try:
        checked = prompt_options({option: value}, "ChatWidget")[option]
    except InvalidFrame as exc:
        rule = _TOOLS_RULE if name == "tools" else exc.message.replace(option, name)  # Python's names
        raise traitlets.TraitError(f"{rule}, or None for the model's setting; not {value!r}") from None
    if name == "model":
        server = kernel.current_server()
        models = server.models() if server is not None else [checked]
        if checked not in models:
            raise traitlets.TraitError(
                f"model {checked!r} is not set up in this kernel (set up: {', '.join(models)}); "
                "use %llmsock model to add it, or None for the kernel's default"
            )
    return checked


_TOOLS_RULE = "ChatWidget.tools must be True (every registered tool), False (none) or a list of tool names"


def _host_of(origin: str) -> str | None:
    """Return the ``Host`` header a request from ``origin`` carries (the default port omitted)."""
    scheme, _, netloc = origin.partition("://")
    if scheme not in ("http", "https") or not netloc:
        return None  # vscode-webview:// and the like never come through a proxy
    return netloc.lower()


def _link_id(content: dict[str, Any]) -> str | None:
    """Return the view's name for a link, if it is one (a short non-empty string)."""
    link_id = content.get("link")
    return link_id if isinstance(link_id, str) and 0 < len(link_id) <= 64 else None


def _named_subshell(comm: Any, kernel_route: Any, data: Any, named: str | None) -> str | None:
    """Return the subshell a comm message names (None: the main shell) if the kernel has it, else
    the kernel's own choice (``kernel_route``), for the kernel's routing of ``comm``'s messages."""
    if named is None or named in _subshells(comm):
        return named
    return cast("str | None", kernel_route(data, named))


def _subshells(comm: Any) -> list[str]:
    """Return the ids of the kernel's subshells (none where it cannot say)."""
    try:
        return list(comm.kernel.shell_channel_thread.manager.list_subshell())
    except Exception:  # not ipykernel 7's kernel: no subshells to name
        return []


def _soon(server: Any, fn: Any, *args: Any) -> None:
    try:
        server.call_soon(fn, *args)
    except RuntimeError:  # the server stopped meanwhile; its links are closed already
        pass
