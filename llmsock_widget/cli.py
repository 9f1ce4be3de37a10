"""Command line.

``python -m llmsock_widget serve [--host --port --model --store KIND --token-env VAR]``
runs the server (``--base-url --api-key-env --timeout --connect-timeout --retries --tools`` set up
an ``openai:<model>``);
``python -m llmsock_widget sessions NOTEBOOK.ipynb [list|show|export|remove]`` works on the
chats saved in a notebook (exit 0 ok, 1 no such session, 2 bad notebook or usage);
``python -m llmsock_widget chat --url ws://127.0.0.1:PORT/ws [--token-env VAR] [--session ID]``
chats with a running server in the terminal (the token comes from an environment variable).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from typing import Any, Sequence

from .errors import ServerStartError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m llmsock_widget", description="llmsock command line")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the llmsock server in the foreground")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="port to bind (default 0: a free port)")
    serve.add_argument(
        "--model",
        default="builtin",
        help="builtin, builtin:<tokens per second>, or openai:<model> for an OpenAI-compatible server",
    )
    serve.add_argument(
        "--base-url",
        default=None,
        help="with openai:<model>: the server's URL (e.g. http://localhost:8000/v1)",
    )
    serve.add_argument(
        "--api-key-env",
        default=None,
        metavar="VAR",
        help="with openai:<model>: read the API key from this environment variable (default OPENAI_API_KEY)",
    )
    serve.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="with openai:<model>: seconds to wait for the first byte and between bytes (default 60)",
    )
    serve.add_argument(
        "--connect-timeout",
        type=float,
        default=None,
        metavar="S",
        help="with openai:<model>: seconds to connect on each attempt (default 5, or --timeout if shorter)",
    )
    serve.add_argument(
        "--retries",
        type=int,
        default=None,
        metavar="N",
        help="with openai:<model>: retries of a request that failed before the answer began (default 2)",
    )
    serve.add_argument(
        "--tools",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="offer the tools to prompts that do not choose (default: on for builtin, off for openai:)",
    )
    serve.add_argument(
        "--store",
        default="memory",
        metavar="KIND",
        help="where sessions are kept: memory (default), file:<directory>, redis (the URL of "
        "$LLMSOCK_REDIS_URL, so no password is on the command line), redis://[:password@]host:port/db "
        "or redis+cluster://... (any node of a Redis Cluster)",
    )
    serve.add_argument("--store-dir", default=None, help="same as --store file:<directory>")
    serve.add_argument(
        "--redis-prefix",
        default=None,
        metavar="PREFIX",
        help="with a Redis store: the namespace of its keys (default llmsock); servers that share "
        "sessions use the same one",
    )
    serve.add_argument(
        "--lease",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with a Redis store: how long this server's hold on a session it runs lasts unless "
        "renewed; a server that dies has its sessions taken over within about this long (default 5)",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser pages from this exact origin (repeatable)",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="also accept this Host header (repeatable; loopback names with the port are always accepted)",
    )
    serve.add_argument(
        "--token-env",
        default=None,
        metavar="VAR",
        help="take the token from this environment variable, so it stays the same across restarts "
        "(default: a new token each start)",
    )
    serve.add_argument("--token", nargs="?", action=_RefuseToken, help=argparse.SUPPRESS)
    serve.add_argument(
        "--compression",
        action="store_true",
        help="accept permessage-deflate from clients that offer it (for clients over a network)",
    )
    serve.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    _add_sessions_parser(sub)
    _add_chat_parser(sub)
    return parser


def _add_chat_parser(sub: Any) -> None:
    chat = sub.add_parser(
        "chat",
        allow_abbrev=False,  # so "--token X" can never be read as "--token-env X"
        help="chat with a running server in the terminal",
        description="Read a prompt per line, stream each answer to standard output; Ctrl-C stops an "
        "answer, Ctrl-C at the prompt or the end of input quits. Reconnects and resumes by itself. "
        "The token is read from an environment variable, never from the command line "
        "(command lines are visible to other users).",
    )
    chat.add_argument("--url", required=True, help="the server's WebSocket URL, e.g. ws://127.0.0.1:8765/ws")
    chat.add_argument(
        "--token-env",
        default="LLMSOCK_TOKEN",
        metavar="VAR",
        help="read the token from this environment variable (default LLMSOCK_TOKEN)",
    )
    chat.add_argument(
        "--session", default=None, metavar="ID", help="the session to join (default: a new one)"
    )
    chat.add_argument("--token", nargs="?", action=_RefuseToken, help=argparse.SUPPRESS)


class _RefuseToken(argparse.Action):
    """Refuse ``--token`` without echoing its value: a token on a command line is visible to others."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        parser.error(
            "the token is never taken from the command line (other users can see it); "
            "put it in LLMSOCK_TOKEN or name another variable with --token-env"
        )


def _add_sessions_parser(sub: Any) -> None:
    sessions = sub.add_parser(
        "sessions",
        help="list, show, export or remove the chats saved in a notebook",
        description="Work on the llmsock chats saved in a notebook's metadata (default action: list). "
        "Exit status: 0 ok, 1 no such session, 2 bad notebook or usage.",
    )
    sessions.add_argument("notebook", metavar="NOTEBOOK.ipynb")
    actions = sessions.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="one line per session (the default)")
    listing.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    show = actions.add_parser("show", help="print a session as a Markdown transcript")
    show.add_argument("session_id", metavar="ID")
    export = actions.add_parser("export", help="write a session as Markdown or as its JSON snapshot")
    export.add_argument("session_id", metavar="ID")
    export.add_argument("--format", choices=("markdown", "json"), default="markdown")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    remove = actions.add_parser("remove", help="remove a session (or all of them) from the notebook")
    remove.add_argument("session_id", metavar="ID", nargs="?")
    remove.add_argument("--all", action="store_true", dest="all", help="remove every session")


def serve(args: argparse.Namespace) -> int:
    """Run the server until SIGINT or SIGTERM; print its address as one JSON line first."""
    from .server.thread import ServerThread

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(message)s")
    store = _store(args)
    if isinstance(store, str):
        print(f"llmsock: {store}", file=sys.stderr)
        return 2
    model_options = _model_options(args)
    if isinstance(model_options, str):
        print(f"llmsock: {model_options}", file=sys.stderr)
        return 2
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)  # never on the command line
        if not token:
            print(f"llmsock: environment variable {args.token_env} is not set", file=sys.stderr)
            return 2
    try:
        server = ServerThread(
            host=args.host,
            port=args.port,
            model=args.model,
            model_options=model_options,
            store=store,
            token=token,
            compression=args.compression,
            allowed_origins=args.allow_origin,
            allowed_hosts=args.allow_host,
            lease=args.lease,
        ).start()
    except (ServerStartError, ValueError) as exc:
        print(f"llmsock: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(json.dumps({"url": server.url, "token": server.token, "sse": server.sse_url}), flush=True)
    while not stop.wait(0.5):  # wake now and then: signal handlers run only in the main thread
        pass
    server.stop()
    logging.getLogger("llmsock").info("llmsock: stopped")
    return 0


def _store(args: argparse.Namespace) -> Any:
    """Return the store ``serve``'s flags ask for, or what is wrong with them (a Redis is pinged)."""
    from .errors import StoreError
    from .stores import JsonFileStore, MemoryStore

    kind, _, directory = args.store.partition(":")
    if args.store_dir:
        kind, directory = "file", args.store_dir
    if kind == "file" and directory:
        return JsonFileStore(directory)
    if kind == "memory" and not directory:
        return MemoryStore()
    from .stores.redis import SCHEMES  # the redis package is imported only when a client is made

    if kind.lower() in ("redis", *SCHEMES):
        from .notebook.settings import Settings  # the one reader of LLMSOCK_REDIS_URL
        from .stores.redis import RedisStore

        url = args.store if directory else Settings.current().redis_url
        if url is None:
            return "--store redis takes its URL from LLMSOCK_REDIS_URL, which is not set"
        try:
            store = RedisStore(url, **({"prefix": args.redis_prefix} if args.redis_prefix else {}))
            store.ping_sync()
        except (ValueError, ImportError, StoreError) as exc:
            return str(exc)
        return store
    from .stores.redis import shown_url  # a mistyped URL may still hold a password

    shown = shown_url(args.store)
    return f"unknown store {shown!r}; use memory or file:<directory>, or redis or redis://[:password@]host:port/db"


def _model_options(args: argparse.Namespace) -> dict[str, Any] | str:
    """Return the model options ``serve``'s flags ask for, or what is wrong with them."""
    options: dict[str, Any] = {}
    if args.base_url:
        options["base_url"] = args.base_url
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)  # never on the command line
        if not key:
            return f"environment variable {args.api_key_env} is not set"
        options["api_key"] = key
    for flag, name in (
        ("timeout", "timeout"),
        ("connect_timeout", "connect_timeout"),
        ("retries", "max_retries"),
    ):
        if getattr(args, flag) is not None:
            options[name] = getattr(args, flag)
    if args.tools is not None:
        options["tools"] = args.tools
    return options


def sessions(args: argparse.Namespace) -> int:
    """Run ``sessions``: user errors become one line on stderr and an exit status, never a traceback."""
    from .errors import LlmsockError
    from .notebook import notebookfile

    try:
        return _sessions(args)
    except notebookfile.SessionNotFound as exc:
        print(f"llmsock: {exc.message}", file=sys.stderr)
        return 1
    except LlmsockError as exc:
        print(f"llmsock: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:  # writing --output
        print(f"llmsock: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _sessions(args: argparse.Namespace) -> int:
    from .notebook import notebookfile

    path = args.notebook
    action = args.action or "list"
    if action == "list":
        found = notebookfile.read_sessions(path)
        for problem in found.problems:
            print(f"llmsock: warning: {path}: {problem}", file=sys.stderr)
        rows = [notebookfile.summarize(found.sessions[key]) for key in sorted(found.sessions)]
        if getattr(args, "json", False):
            print(json.dumps(rows, indent=2, ensure_ascii=False))
        elif rows:
            print(_table(rows))
        else:
            print(f"no llmsock sessions in {path}")
        return 0
    if action in ("show", "export"):
        # A chat the notebook holds cut, whose whole copy is not there: say so, show the cut copy.
        if (why := notebookfile.read_sessions(path).cut.get(args.session_id)) is not None:
            print(f"llmsock: warning: {path}: {why}", file=sys.stderr)
    if action == "show":
        sys.stdout.write(notebookfile.export_session(path, args.session_id, format="markdown"))
        return 0
    if action == "export":
        text = notebookfile.export_session(path, args.session_id, format=args.format)
        if args.output is None:
            sys.stdout.write(text)
        elif os.path.realpath(args.output) == os.path.realpath(path):
            print("llmsock: sessions export: the output file is the notebook itself", file=sys.stderr)
            return 2
        else:
            with open(args.output, "w", encoding="utf-8") as file:
                file.write(text)
        return 0
    # remove
    if args.all == (args.session_id is not None):
        print("llmsock: sessions remove: give one session ID or --all", file=sys.stderr)
        return 2
    if args.all:
        count = notebookfile.remove_all(path)
        print(f"removed {count} session{'' if count == 1 else 's'} from {path}")
        return 0
    if not notebookfile.remove_session(path, args.session_id):
        raise notebookfile.SessionNotFound(path, args.session_id)
    print(f"removed session {args.session_id} from {path}")
    return 0


def _table(rows: list[dict[str, Any]]) -> str:
    columns = ("id", "messages", "turns", "updated", "model", "last_status", "bytes")
    cells = [[c.upper() for c in columns]]
    # Models come from the notebook: keep control characters off the terminal.
    cells += [
        ["".join(ch if ch.isprintable() else "?" for ch in str(row[c])) for c in columns] for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells
    )


def chat(args: argparse.Namespace) -> int:
    """Run the terminal chat with the token from ``--token-env``.

    Returns:
        0 at the end of input or Ctrl-C at the prompt, 1 if the connection failed for good,
        2 if the token variable is not set or the URL is not usable.
    """
    from .client.chat import run_chat

    token = os.environ.get(args.token_env)
    if not token:
        print(f"llmsock: environment variable {args.token_env} is not set", file=sys.stderr)
        return 2
    try:
        return run_chat(args.url, token=token, session=args.session)
    except ValueError as exc:  # a URL that is not ws:// or carries a token
        print(f"llmsock: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "sessions":
        return sessions(args)
    if args.command == "chat":
        return chat(args)
    return 2


if __name__ == "__main__":  # python -m llmsock_widget.cli
    sys.exit(main())
