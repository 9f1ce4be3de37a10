"""The command line: ``python -m benchmarks [SUITE] [options]``.

Without a suite every suite runs, with its defaults (about eight minutes on two cores; ``peer``,
``redis`` and ``shared`` run only when named).  The form ``python -m benchmarks --deltas N --repeat N``
(no suite, throughput options) runs the throughput suite alone, as earlier versions did;
``scripts/test.sh`` uses it as a smoke run.  Each suite prints a table, or with ``--json``
everything goes out as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
from collections.abc import Sequence
from typing import Any, Callable

from websockets.exceptions import WebSocketException

from llmsock_widget.models.builtin import MAX_DIRECTIVE_TOKENS

from . import comm, connections, context, kernel, latency, openai_path, peer, reducer, snapshots, throughput
from . import redis as redis_suite
from . import shared as shared_suite
from .common import BenchFailure, describe, machine

SUITES = (
    "throughput",
    "reducer",
    "latency",
    "connections",
    "snapshot",
    "comm",
    "openai",
    "kernel",
    "context",
)
EXTRA_SUITES = ("peer", "redis", "shared")  # named only: not in the default run (a peer server, redis-server)
_THROUGHPUT_OPTIONS = ("--deltas", "--repeat", "--client")


def _numbers(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None

    return parse


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the results as one JSON object")
    common.add_argument("--timeout", type=float, default=60.0, help="seconds one step may take (default 60)")
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of the llmsock server; each suite prints a table. "
        "Without a suite, all of them run with their defaults.",
    )
    suites = parser.add_subparsers(dest="suite", metavar="SUITE")

    sub = suites.add_parser("throughput", parents=[common], help="deltas/s: full stack against bare Tornado")
    sub.add_argument("--deltas", type=int, default=10_000, help="deltas per turn (default 10000)")
    sub.add_argument("--repeat", type=int, default=5, help="measured runs per target (default 5)")
    sub.add_argument(
        "--client",
        choices=("process", "thread"),
        default="process",
        help="run the client in its own process (default) or in a thread of the servers' process",
    )

    sub = suites.add_parser(
        "reducer", parents=[common], help="CPU per delta in the session state, by answer length"
    )
    sub.add_argument(
        "--lengths", type=_numbers(int), default=[1000, 10000, 100000], help="answer lengths in deltas"
    )
    sub.add_argument("--repeat", type=int, default=3, help="runs of each, the best counts (default 3)")

    sub = suites.add_parser("latency", parents=[common], help="delta latency at many streaming sessions")
    sub.add_argument(
        "--sessions", type=_numbers(int), default=[1, 100, 1000], help="loads to run (default 1,100,1000)"
    )
    sub.add_argument("--rate", type=float, default=50.0, help="deltas a second per session (default 50)")
    sub.add_argument("--seconds", type=float, default=4.0, help="seconds each session streams (default 4)")
    sub.add_argument("--no-busy", action="store_true", help="leave out the run beside a busy thread")
    sub.add_argument("--no-control", action="store_true", help="leave out the plain websockets server's runs")
    sub.add_argument(
        "--burst",
        type=int,
        default=None,
        help="turns started at once (default: the largest of --sessions; 0: none)",
    )
    sub.add_argument("--burst-deltas", type=int, default=100, help="deltas per burst turn (default 100)")

    sub = suites.add_parser("connections", parents=[common], help="memory per idle WebSocket, most held")
    sub.add_argument("--connections", type=int, default=5000, help="connections to open (default 5000)")
    sub.add_argument(
        "--no-control", action="store_true", help="leave out the plain websockets and bare Tornado servers"
    )

    sub = suites.add_parser("snapshot", parents=[common], help="save, load and fit a long session")
    sub.add_argument("--turns", type=int, default=1000, help="turns in the session (default 1000)")
    sub.add_argument("--repeat", type=int, default=5, help="runs of each operation (default 5)")
    sub.add_argument("--reply-chars", type=int, default=1500, help="characters per answer (default 1500)")
    sub.add_argument("--dir", default=None, help="where to write the files (default: the temp directory)")

    sub = suites.add_parser("comm", parents=[common], help="comm messages against the IOPub rate limit")
    sub.add_argument("--deltas", type=int, default=10_000, help="deltas in the answer (default 10000)")
    sub.add_argument(
        "--paces",
        type=_numbers(float),
        default=[0.0, 2000.0],
        help="model paces in deltas/s, 0 for unpaced (default 0,2000)",
    )

    sub = suites.add_parser(
        "openai", parents=[common], help="chunks/s: llmsock's OpenAI path against the openai SDKs reading"
    )
    sub.add_argument("--chunks", type=int, default=10_000, help="chunks per stream (default 10000)")
    sub.add_argument("--repeat", type=int, default=5, help="measured runs per reader (default 5)")
    sub.add_argument("--no-node", action="store_true", help="leave out the Node openai SDK's row")

    sub = suites.add_parser(
        "peer", parents=[common], help="side by side with another chat server (llm-core under Bun)"
    )
    sub.add_argument("--url", default=None, help="the peer's WebSocket URL (without: llmsock alone)")
    sub.add_argument(
        "--protocol",
        choices=sorted(peer.ADAPTERS),
        default="llmcore",
        help="how to talk to the peer (default llmcore: llm-core's example servers)",
    )
    sub.add_argument("--peer-pid", type=int, default=None, help="the peer's process id, for its CPU time")
    sub.add_argument(
        "--peer-token", default=None, help="a bearer token for the peer (another llmsock server)"
    )
    sub.add_argument("--deltas", type=int, default=10_000, help="deltas in the answer (default 10000)")
    sub.add_argument("--sessions", type=int, default=1000, help="sessions in the burst (default 1000)")
    sub.add_argument("--burst-deltas", type=int, default=100, help="deltas per burst answer (default 100)")
    sub.add_argument("--rounds", type=int, default=3, help="rounds, the servers alternating (default 3)")

    sub = suites.add_parser(
        "kernel",
        parents=[common],
        help="llmsock in a real IPython kernel: load, idle CPU, beside a busy cell",
    )
    sub.add_argument("--kernels", type=int, default=5, help="fresh kernels to time %%load_ext in (default 5)")
    sub.add_argument(
        "--idle-seconds", type=float, default=10.0, help="seconds of each idle CPU reading (default 10)"
    )
    sub.add_argument(
        "--repeat", type=int, default=3, help="fresh kernels running the streaming scenarios (default 3)"
    )
    sub.add_argument(
        "--intervals",
        type=_numbers(float),
        default=[1.0, 5.0],
        help="GIL switch intervals in ms (default 1,5)",
    )
    sub.add_argument("--rate", type=float, default=50.0, help="deltas a second (default 50)")
    sub.add_argument("--seconds", type=float, default=4.0, help="seconds each stream lasts (default 4)")
    sub.add_argument("--stops", type=int, default=10, help="Stop trials per scenario and round (default 10)")

    sub = suites.add_parser(
        "context", parents=[common], help="time to summarize a live object (1M-row DataFrame) for a model"
    )
    sub.add_argument("--rows", type=int, default=1_000_000, help="rows of the DataFrame and the list")
    sub.add_argument("--repeat", type=int, default=20, help="timed runs of each summary (default 20)")

    sub = suites.add_parser(
        "redis", parents=[common], help="the Redis session store: round trips, conflicts, memory, per turn"
    )
    sub.add_argument("--turns", type=int, default=20, help="turns in the stored session (default 20)")
    sub.add_argument("--reply-chars", type=int, default=500, help="characters per answer (default 500)")
    sub.add_argument("--sessions", type=_numbers(int), default=[1, 8, 64], help="sessions at once (1,8,64)")
    sub.add_argument("--seconds", type=float, default=2.0, help="seconds of each round-trip run (default 2)")
    sub.add_argument("--rounds", type=int, default=500, help="rounds of blind saves in turn (default 500)")
    sub.add_argument("--memory-sessions", type=int, default=1000, help="sessions stored for memory (1000)")
    sub.add_argument("--prompts", type=int, default=100, help="prompts asked of the server (default 100)")

    sub = suites.add_parser(
        "shared", parents=[common], help="two servers sharing sessions through Redis: delivery, load, memory"
    )
    sub.add_argument(
        "--deltas", type=int, default=10_000, help="deltas in the unpaced answer (default 10000)"
    )
    sub.add_argument("--repeat", type=int, default=3, help="measured runs of that answer (default 3)")
    sub.add_argument(
        "--sessions",
        type=_numbers(int),
        default=list(shared_suite.LOADS),
        help="sessions streaming at once, the loads to run (default 10,50,70,90,200)",
    )
    sub.add_argument("--rate", type=float, default=20.0, help="deltas a second per session (default 20)")
    sub.add_argument("--seconds", type=float, default=5.0, help="seconds each session streams (default 5)")
    sub.add_argument("--memory-sessions", type=int, default=10, help="sessions stored for memory (10)")
    sub.add_argument("--memory-tokens", type=int, default=1000, help="tokens per such answer (default 1000)")
    sub.add_argument(
        "--cluster",
        action="store_true",
        help="share through a Redis Cluster of three primaries instead of one redis-server",
    )

    suites.add_parser("all", parents=[common], help="every suite with its defaults (the default)")
    return parser


def _argv(argv: Sequence[str]) -> list[str]:
    """Return ``argv`` with the suite named: ``all``, or ``throughput`` for the older flag-only form."""
    args = list(argv)
    if args and (args[0] in (*SUITES, *EXTRA_SUITES, "all") or args[0] in ("-h", "--help")):
        return args
    if any(arg.split("=")[0] in _THROUGHPUT_OPTIONS for arg in args):
        return ["throughput", *args]
    return ["all", *args]


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.suite in ("throughput", "comm") and not 1 <= args.deltas <= MAX_DIRECTIVE_TOKENS:
        parser.error(f"--deltas must be from 1 to {MAX_DIRECTIVE_TOKENS}")
    if args.suite in ("throughput", "reducer", "snapshot", "openai", "kernel", "context") and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.suite == "latency" and (not args.sessions or min(args.sessions) < 1 or not args.rate > 0):
        parser.error("--sessions must be counts >= 1 and --rate > 0")
    if args.suite == "latency" and (
        (args.burst is not None and args.burst < 0) or not 1 <= args.burst_deltas <= MAX_DIRECTIVE_TOKENS
    ):
        parser.error(f"--burst must be >= 0 and --burst-deltas from 1 to {MAX_DIRECTIVE_TOKENS}")
    if args.suite == "kernel" and (
        min(args.kernels, args.stops) < 1
        or not (args.idle_seconds > 0 and args.rate > 0 and args.seconds > 0)
        or not args.intervals
        or min(args.intervals) <= 0
    ):
        parser.error("--kernels and --stops must be at least 1, the other numbers above 0")
    if args.suite == "redis" and not (
        min(args.turns, args.reply_chars, args.rounds, args.memory_sessions, args.prompts) >= 1
        and args.sessions
        and min(args.sessions) >= 1
        and args.seconds > 0
    ):
        parser.error("--seconds must be above 0, the other numbers at least 1")
    if args.suite == "shared" and not (
        1 <= min(args.deltas, args.memory_tokens)
        and max(args.deltas, args.memory_tokens) <= MAX_DIRECTIVE_TOKENS
        and min(args.repeat, args.memory_sessions) >= 1
        and args.sessions
        and min(args.sessions) >= 1
        and args.rate > 0
        and args.seconds > 0
    ):
        parser.error(
            f"--deltas and --memory-tokens must be from 1 to {MAX_DIRECTIVE_TOKENS}, --rate and --seconds "
            "above 0, the other numbers at least 1"
        )
    if args.suite == "context" and args.rows < 1:
        parser.error("--rows must be at least 1")
    if args.suite == "openai" and args.chunks < 1:
        parser.error("--chunks must be at least 1")
    if args.suite == "reducer" and (not args.lengths or min(args.lengths) < 1):
        parser.error("--lengths must be counts >= 1")
    if args.suite == "connections" and args.connections < 1:
        parser.error("--connections must be at least 1")
    if args.suite == "snapshot" and (args.turns < 1 or args.reply_chars < 1):
        parser.error("--turns and --reply-chars must be at least 1")
    if args.suite == "peer" and not (
        1 <= args.deltas <= MAX_DIRECTIVE_TOKENS
        and 1 <= args.burst_deltas <= MAX_DIRECTIVE_TOKENS
        and args.sessions >= 1
        and args.rounds >= 1
    ):
        parser.error(
            f"--deltas and --burst-deltas must be from 1 to {MAX_DIRECTIVE_TOKENS}; --sessions, --rounds >= 1"
        )


def _run(suite: str, args: argparse.Namespace) -> dict[str, Any]:
    timeout = args.timeout
    if suite == "throughput":
        return throughput.run(deltas=args.deltas, repeat=args.repeat, client=args.client, timeout=timeout)
    if suite == "reducer":
        return reducer.run(lengths=args.lengths, repeat=args.repeat)
    if suite == "latency":
        busy = not args.no_busy
        return latency.run(
            sessions=args.sessions,
            rate=args.rate,
            seconds=args.seconds,
            busy=busy,
            timeout=timeout,
            control=not args.no_control,
            burst_sessions=args.burst,
            burst_deltas=args.burst_deltas,
        )
    if suite == "connections":
        return connections.run(connections=args.connections, timeout=timeout, control=not args.no_control)
    if suite == "snapshot":
        return snapshots.run(
            turns=args.turns, repeat=args.repeat, reply_chars=args.reply_chars, directory=args.dir
        )
    if suite == "kernel":
        return kernel.run(
            kernels=args.kernels,
            idle_seconds=args.idle_seconds,
            repeat=args.repeat,
            intervals=args.intervals,
            rate=args.rate,
            seconds=args.seconds,
            stops=args.stops,
            timeout=timeout,
        )
    if suite == "peer":
        other = peer.Peer(args.url, args.protocol, args.peer_pid, args.peer_token) if args.url else None
        return peer.run(
            peer=other,
            deltas=args.deltas,
            sessions=args.sessions,
            burst_deltas=args.burst_deltas,
            rounds=args.rounds,
            timeout=timeout,
        )
    if suite == "context":
        return context.run(rows=args.rows, repeat=args.repeat)
    if suite == "redis":
        options = ("turns", "reply_chars", "sessions", "seconds", "rounds", "memory_sessions", "prompts")
        return redis_suite.run(**{name: getattr(args, name) for name in options}, timeout=timeout)
    if suite == "shared":
        options = ("deltas", "repeat", "sessions", "rate", "seconds", "memory_sessions", "memory_tokens")
        return shared_suite.run(
            **{name: getattr(args, name) for name in options}, cluster=args.cluster, timeout=timeout
        )
    if suite == "openai":
        return openai_path.run(chunks=args.chunks, repeat=args.repeat, timeout=timeout, node=not args.no_node)
    return comm.run(deltas=args.deltas, paces=args.paces, timeout=timeout)


_RENDER: dict[str, Callable[[dict[str, Any]], str]] = {
    "throughput": throughput.render,
    "reducer": reducer.render,
    "latency": latency.render,
    "connections": connections.render,
    "snapshot": snapshots.render,
    "comm": comm.render,
    "openai": openai_path.render,
    "peer": peer.render,
    "kernel": kernel.render,
    "context": context.render,
    "redis": redis_suite.render,
    "shared": shared_suite.render,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suites asked for; return the exit status."""
    parser = _parser()
    args = parser.parse_args(_argv(sys.argv[1:] if argv is None else argv))
    if args.suite == "all":  # every suite with its defaults, keeping --json and --timeout
        defaults = {s: parser.parse_args([s]) for s in SUITES}
        plan = [(s, argparse.Namespace(**{**vars(defaults[s]), "timeout": args.timeout})) for s in SUITES]
    else:
        _check(parser, args)
        plan = [(args.suite, args)]
    info = machine()
    if not args.json:
        print(describe(info), flush=True)
    reports: dict[str, Any] = {"machine": info}
    try:
        for suite, options in plan:
            reports[suite] = report = _run(suite, options)
            if not args.json:
                print(f"\n{_RENDER[suite](report)}", flush=True)
    except (BenchFailure, WebSocketException, asyncio.TimeoutError, OSError) as exc:
        print(f"bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    leftover = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if leftover:
        print(f"bench failed: threads still running after shutdown: {leftover}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(reports))
    return 0
