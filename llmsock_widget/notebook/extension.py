"""``%load_ext llmsock``: the kernel's server, and the ``%llmsock`` / ``%%llmsock`` magics.

``%llmsock``                    show the server's status
``%llmsock chat [SESSION]``     open a chat widget (on the default or a named session)
``%llmsock model SPEC [--base-url URL] [--api-key-env VAR] [--timeout S] [--connect-timeout S]
                 [--retries N] [--tools|--no-tools]``
                                pick the model for new turns: ``builtin``, ``builtin:<tokens/s>``,
                                ``openai:<model>`` (key from $OPENAI_API_KEY or VAR, never typed here;
                                S seconds of silence, N retries of a failed request; ``--tools``
                                offers the registered tools to prompts that do not choose: the
                                default for builtin, not for openai)
``%llmsock new [SESSION]``      make SESSION (or a fresh id) the default for ``%%llmsock`` and ``chat``
``%llmsock store [KIND [DIR]]`` say where chats are kept, or keep them from now on in ``notebook``
                                (the notebook's metadata; files next to it without the plugin),
                                ``memory``, ``file [DIR]``, ``redis`` or ``redis://...``
``%llmsock save``               save every open chat now (into the notebook's metadata, or files)
``%llmsock clear [SESSION]``    clear the history of the current (or the named) session; every open
                                view of it empties; refused while a turn runs
``%llmsock explain [--session NAME]``
                                ask the current (or the named) session to explain the last error: its
                                traceback, source lines and masked locals; the answer streams below
``%llmsock mcp``                list the MCP servers added and their tools
``%llmsock mcp add NAME -- COMMAND [ARG...]`` / ``%llmsock mcp add NAME --url URL``
                                start an MCP server (stdio) or reach one (streamable HTTP); its
                                tools become tools of this kernel's server, named ``NAME__tool``
``%llmsock mcp remove NAME``    close it and unregister its tools
``%llmsock stop``               stop the server and free its port
``%%llmsock [SESSION] [--tools [NAME,...]|--no-tools] [--timeout S] [--retries N]``
                                send the cell body as a prompt; stream the answer into the output
                                (the flags are this prompt's: which tools it offers, the model's
                                timeout and retries)

A mistake (an unknown command or option, a model that needs a package or a key, a bad
session id, a server that cannot start) is said in one line, what went wrong and what to
do, without a traceback; only a bug of ours shows one.
"""

from __future__ import annotations

import os
import shlex
from typing import Any

from ..errors import InvalidRequest, LlmsockError
from ..models import resolve_model
from ..runtime.turns import new_id
from . import kernel, kerneltools

_state: dict[str, str] = {"session": kernel.DEFAULT_SESSION}
SAVE_TIMEOUT = 30.0
MODEL_USAGE = (
    "usage: %llmsock model SPEC [--base-url URL] [--api-key-env VAR] [--timeout S] "
    "[--connect-timeout S] [--retries N] [--tools|--no-tools]"
)
MCP_USAGE = (
    "usage: %llmsock mcp [add NAME [--approval] -- COMMAND [ARG...] | add NAME [--approval] --url URL"
    " | remove NAME]"
)
EXPLAIN_USAGE = "usage: %llmsock explain [--session NAME]"
CELL_USAGE = "usage: %%llmsock [SESSION] [--tools [NAME,...]|--no-tools] [--timeout S] [--retries N]"


def load_ipython_extension(ipython: Any) -> None:
    """Start (or reuse) the kernel's server (with the kernel tools) and register the magics."""
    kernel.get_server()
    _watch_errors(ipython, True)
    ipython.register_magic_function(_llmsock_magic, magic_kind="line_cell", magic_name="llmsock")


def unload_ipython_extension(ipython: Any) -> None:
    """Stop the kernel's server (``%reload_ext`` then starts a fresh one); remove the kernel tools."""
    _watch_errors(ipython, False)
    kerneltools.uninstall()
    kernel.stop_server()


def _watch_errors(ipython: Any, on: bool) -> None:
    """Keep (or stop keeping) each failed cell's exception for ``%llmsock explain``."""
    from .explain import remember

    events = getattr(ipython, "events", None)
    if events is None:
        return
    registered = remember in events.callbacks.get("post_run_cell", [])
    if on and not registered:
        events.register("post_run_cell", remember)
    elif not on and registered:
        events.unregister("post_run_cell", remember)


def _llmsock_magic(line: str, cell: str | None = None) -> Any:
    """Show llmsock's status, open a chat, pick a model, or (as a cell magic) send a prompt."""
    try:
        result = _run(line, cell)
    except (LlmsockError, ValueError) as exc:
        # IPython shows a UsageError as one line on stderr, without a traceback.
        from IPython.core.error import UsageError

        message = exc.message if isinstance(exc, LlmsockError) else str(exc)
        raise UsageError(f"%llmsock: {' '.join(message.split())}") from None
    return Said(result) if isinstance(result, str) else result


def _models_said(names: list[str]) -> str:
    """Return the default model and the others set up, as ``%llmsock model`` says them."""
    others = names[1:]
    return f"model: {names[0]}" + (f" (also set up: {', '.join(others)})" if others else "")


class Said(str):
    """A magic's one-line answer: a ``str`` that a cell's output shows as plain text, unquoted."""

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def _run(line: str, cell: str | None) -> Any:
    """Do what the magic's ``line`` (and ``cell``) ask; raise ValueError or LlmsockError on a mistake."""
    try:
        args = shlex.split(line)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise ValueError(f"cannot read {line!r}: {str(exc).lower()}; close the quote") from None
    if cell is not None:
        session, options = _cell_options(args)
        # The answer's renderer (markdown-it, nh3) and the client: imported by the first
        # %%llmsock cell, not by %load_ext, which they would slow by about a third.
        from .answer import ask

        # IPython hands the body over with its final newline; the prompt is what the user typed.
        ask(cell.rstrip("\n"), session=session, server=kernel.get_server(), options=options)
        return None
    command, rest = (args[0], args[1:]) if args else ("status", [])
    if command == "status":
        server = kernel.get_server()
        status = {
            **server.status(),
            "store": kernel.describe_store(server.store),
            "tools": _tools_said(server),
        }
        if status.get("connections") == 0 and kernel.view_pending():
            # Run All reaches this cell before the chat views above have loaded and connected.
            status["connections"] = "0 (a chat view has not connected yet: run %llmsock again once it has)"
        return Status(status, _state["session"])
    if command == "chat":
        from .widget import ChatWidget

        return ChatWidget(session=rest[0] if rest else _state["session"])
    if command == "model":
        if not rest:
            return _models_said(kernel.get_server().models())
        spec, options = _model_options(rest)
        try:
            model = resolve_model(spec, **options)
        except ValueError as exc:
            raise ValueError(f"{exc}; {MODEL_USAGE}") from None
        kernel.get_server().set_model(model)
        return f"model: {spec}"
    if command == "new":
        _state["session"] = rest[0] if rest else new_id()
        return f"session: {_state['session']}"
    if command == "store":
        moved = ""
        if rest:
            kind = rest[0] if len(rest) == 1 else f"{rest[0]}:{rest[1]}"
            copied = kernel.set_store(kernel.make_store(kind))
            moved = (
                f" ({copied} chat{'s' if copied != 1 else ''} copied from the previous store)"
                if copied
                else " (nothing to copy: the previous store had no chat that this one lacks)"
            )
        return f"chats are kept in: {kernel.describe_store(kernel.get_server().store)}{moved}"
    if command == "save":
        server = kernel.get_server()
        count = server.submit(server.save_all()).result(SAVE_TIMEOUT)
        where = kernel.describe_store(server.store)
        if count == 0:  # a chat nobody has open was saved when it was last left
            return f"no chat is open; every chat is already saved in {where}"
        return f"saved {count} chat{'s' if count != 1 else ''} to {where}"
    if command == "clear":
        return _clear(rest[0] if rest else _state["session"])
    if command == "explain":
        _explain(rest)
        return None
    if command == "mcp":
        return _mcp(rest)
    if command == "stop":
        kernel.stop_server()
        return "llmsock server stopped"
    raise ValueError(
        f"unknown %llmsock command {command!r}; try: status, chat, model, new, store, save, clear, "
        "stop, mcp, explain"
    )


def _mcp(args: list[str]) -> str:
    """Do ``%llmsock mcp [add NAME -- COMMAND ... | add NAME --url URL | remove NAME]``; say what is there."""
    from ..tools.mcp import McpToolError

    server = kernel.get_server()
    action, rest = (args[0], args[1:]) if args else ("list", [])
    try:
        if action == "list" and not rest:
            return _mcp_listing(server.mcp_servers())
        if action == "remove" and len(rest) == 1:
            removed = server.remove_mcp(rest[0])
            if not removed:
                return f"no MCP server {rest[0]!r} was added"
            return f"MCP server {rest[0]!r} removed, and its tools: {', '.join(removed)}"
        approval = bool(rest) and action == "add" and "--approval" in rest[:2]
        if approval:
            rest = [word for i, word in enumerate(rest) if not (i < 2 and word == "--approval")]
        if action == "add" and len(rest) >= 3 and rest[1] in ("--", "--url"):
            name, how, target = rest[0], rest[1], rest[2:]
            if how == "--url" and len(target) != 1:
                raise ValueError(MCP_USAGE)
            added = server.add_mcp(
                name,
                target if how == "--" else None,
                url=target[0] if how == "--url" else None,
                approval=approval,
            )
            asks = " (each call waits for your approval)" if approval and added else ""
            return f"MCP server {name!r}: {', '.join(added) or 'no tools'}{asks}"
    except McpToolError as exc:
        raise ValueError(str(exc)) from None
    raise ValueError(MCP_USAGE)


def _mcp_listing(servers: dict[str, dict[str, Any]]) -> str:
    if not servers:
        return "no MCP server; add one: %llmsock mcp add NAME -- COMMAND [ARG...]"
    lines = []
    for name, info in servers.items():
        state = "" if info["running"] else f" (not running: {info['problem']})"
        tools = ", ".join(info["tools"]) or "no tools"
        lines.append(f"{name}: {info['transport']}{state}\n  tools: {tools}")
    return "\n".join(lines)


def _explain(args: list[str]) -> None:
    """Send the last error as a prompt, as ``%%llmsock`` sends a cell: the answer streams below."""
    if args and (len(args) != 2 or args[0] != "--session"):
        raise ValueError(EXPLAIN_USAGE)
    session = args[1] if args else _state["session"]
    # Read before anything else runs: the prompt is about the cell that failed, not about this one.
    from .answer import ask
    from .explain import explain_prompt, last_error

    prompt = explain_prompt(last_error())
    ask(prompt, session=session, server=kernel.get_server())


def _clear(session: str) -> str:
    """Clear ``session``'s history on the server's loop, as a view's ``clear_history``; say what went."""
    server = kernel.get_server()
    try:
        count = server.submit(server.hub.clear(session)).result(SAVE_TIMEOUT)
    except InvalidRequest:
        raise ValueError(f"session {session!r} was not cleared: a turn is running: stop it first") from None
    if count == 0:
        return f"session {session!r} has no messages"
    return f"cleared {count} message{'s' if count != 1 else ''} of session {session!r}"


def _model_options(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Return the model spec and options of ``%llmsock model SPEC [--base-url URL] ...`` (see MODEL_USAGE)."""
    spec, rest = args[0], args[1:]
    options: dict[str, Any] = {}
    while rest:
        if rest[0] in ("--tools", "--no-tools"):
            options["tools"], rest = rest[0] == "--tools", rest[1:]
            continue
        flag, value, rest = rest[0], (rest[1] if len(rest) > 1 else ""), rest[2:]
        if flag == "--base-url" and value:
            options["base_url"] = value
        elif flag == "--api-key-env" and value:
            if not os.environ.get(value):
                raise ValueError(
                    f"environment variable {value} is not set in the kernel; set it where Jupyter starts,"
                    " or name another with --api-key-env"
                )
            options["api_key"] = os.environ[value]
        elif flag in _NUMBER_FLAGS and value:
            name, kind = _NUMBER_FLAGS[flag]
            options[name] = _number(flag, value, kind)
        else:
            raise ValueError(
                f"unknown or incomplete option {flag!r}; use --base-url URL, --api-key-env VAR, "
                "--timeout S, --connect-timeout S, --retries N, --tools or --no-tools"
            )
    return spec, options


def _tools_said(server: Any) -> str:
    """Return the registered tools, and whether the model offers them to prompts that do not choose."""
    names = server.tools.names() if server.tools is not None else []
    if not names:
        return "none"
    if getattr(server.model, "offers_tools", True):
        return ", ".join(names)
    return (
        f"{', '.join(names)} (offered only to prompts that ask: %%llmsock --tools; "
        f"or %llmsock model {server.model.name} --tools)"
    )


def _cell_options(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Return the session and prompt options of ``%%llmsock [SESSION] [flags]`` (see CELL_USAGE)."""
    session = _state["session"]
    if args and not args[0].startswith("--"):
        session, args = args[0], args[1:]
    options: dict[str, Any] = {}
    while args:
        flag, args = args[0], args[1:]
        if flag == "--no-tools":
            options["tools"] = False
        elif flag == "--tools":
            if args and not args[0].startswith("--"):  # --tools a,b: only those
                options["tools"] = [name for name in args[0].split(",") if name]
                args = args[1:]
            else:
                options["tools"] = True
        elif flag in ("--timeout", "--retries") and args:
            kind: type[float] | type[int] = float if flag == "--timeout" else int
            options[flag[2:]], args = _number(flag, args[0], kind), args[1:]
        else:
            raise ValueError(f"unknown or incomplete option {flag!r}; {CELL_USAGE}")
    return session, options


# flag: (model option, type); the model checks the range and says what is wrong.
_NUMBER_FLAGS: dict[str, tuple[str, type[float] | type[int]]] = {
    "--timeout": ("timeout", float),
    "--connect-timeout": ("connect_timeout", float),
    "--retries": ("max_retries", int),
}


def _number(flag: str, value: str, kind: type[float] | type[int]) -> float | int:
    """Return ``value`` read as ``kind``, or raise ValueError naming the flag."""
    try:
        return kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number of seconds"
        raise ValueError(f"{flag} takes {what}, not {value!r}") from None


class Status:
    """The server's status, shown as a small table (and as plain text)."""

    def __init__(self, status: dict[str, Any], session: str) -> None:
        self.status = {**status, "defaultSession": session}

    def _rows(self) -> list[tuple[str, str]]:
        keys = (
            "url",
            "model",
            "defaultSession",
            "sessions",
            "connections",
            "transports",
            "messagesIn",
            "messagesOut",
            "bytesIn",
            "bytesOut",
            "resumed",
            "reloaded",
            "replayedEvents",
            "turns",
            "tools",
            "store",
        )
        return [(key, _text(self.status.get(key, ""))) for key in keys]

    def __repr__(self) -> str:
        return "\n".join(f"{key}: {value}" for key, value in self._rows())

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in self._rows()
        )
        return f"<table class='llmsock-status-table'>{rows}</table>"


def _text(value: Any) -> str:
    if isinstance(value, dict):  # transports: {"websocket": 1, "comm": 2}
        return ", ".join(f"{k} {v}" for k, v in sorted(value.items())) or "none"
    return str(value)
