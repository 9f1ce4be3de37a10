"""Command line: ``python -m llmsock_widget serve [--host --port --model --store-dir]``."""

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
    serve.add_argument("--store-dir", default=None, help="keep sessions as JSON files in this directory")
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
    serve.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def serve(args: argparse.Namespace) -> int:
    """Run the server until SIGINT or SIGTERM; print its address as one JSON line first."""
    from .server import ServerThread
    from .stores import JsonFileStore, MemoryStore

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(message)s")
    store = JsonFileStore(args.store_dir) if args.store_dir else MemoryStore()
    model_options: dict[str, Any] = {}
    if args.base_url:
        model_options["base_url"] = args.base_url
    if args.api_key_env:
        model_options["api_key"] = os.environ.get(args.api_key_env)  # never on the command line
    try:
        server = ServerThread(
            host=args.host,
            port=args.port,
            model=args.model,
            model_options=model_options,
            store=store,
            allowed_origins=args.allow_origin,
            allowed_hosts=args.allow_host,
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
