"""Snapshots: time and size to save, load and fit a long session.

A session of ``turns`` turns is built through the reducer (``session.apply``), each turn a
user message of about ``prompt_chars`` characters and an answer of about ``reply_chars``
(English-like words, so the JSON has few escapes).  Then, each the median of ``repeat`` runs:

* ``snapshot.dumps`` and ``snapshot.loads`` (the pure encoding, no I/O);
* ``JsonFileStore.save_sync`` with fsync (encode, check the stored revision, which reads and
  decodes the file already there, write a temporary file, fsync it, rename it, fsync the
  directory), the same without fsync, and ``JsonFileStore.load_sync``;
* ``snapshot.fit`` to the notebook cap (256 KiB of JSON text), and how many turns it keeps.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

from llmsock_widget.core import snapshot
from llmsock_widget.core.events import ModelDelta, ModelEnd, ModelStart, StatusChanged, UserMessage
from llmsock_widget.core.session import InteractionState, apply, new_state
from llmsock_widget.stores.jsonfile import JsonFileStore

from .common import table

_WORDS = (
    "the server keeps every session in order and sends each delta to the views that watch it while "
    "a notebook cell runs its own work the answer streams one word at a time and the store saves "
    "it when the turn ends so a new kernel finds the chat where it was left"
).split()


def _text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        word = _WORDS[int(rng.random() * len(_WORDS))]
        words.append(word)
        size += len(word) + 1
    return " ".join(words).capitalize() + "."


def build_session(turns: int, *, prompt_chars: int = 100, reply_chars: int = 1500) -> InteractionState:
    """Return the state of a session after ``turns`` complete turns, built by the reducer."""
    rng = random.Random(1)
    state = new_state("bench-session", ts=1_700_000_000_000, model="builtin")
    for turn in range(turns):
        turn_id, message_id = f"t-{turn:06d}", f"m-{turn:06d}"
        reply = _text(rng, reply_chars)
        ts = 1_700_000_000_000 + turn * 60_000

        def emit(cls: Callable[..., Any], ts: int = ts, **fields: Any) -> None:
            nonlocal state
            state = apply(state, cls(session_id=state.session_id, seq=state.seq + 1, ts=ts, **fields))

        emit(UserMessage, turn_id=turn_id, text=_text(rng, prompt_chars), message_id=message_id)
        emit(StatusChanged, turn_id=turn_id, status="generating")
        emit(ModelStart, turn_id=turn_id, model="builtin", message_id=message_id)
        emit(ModelDelta, turn_id=turn_id, text=reply, message_id=message_id)
        usage = {"inputTokens": prompt_chars // 5, "outputTokens": reply_chars // 5}
        emit(ModelEnd, turn_id=turn_id, finish_reason="stop", text=reply, message_id=message_id, usage=usage)
        emit(StatusChanged, status="idle")
    return state


def _median_ms(action: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def run(
    *,
    turns: int,
    repeat: int = 5,
    prompt_chars: int = 100,
    reply_chars: int = 1500,
    directory: str | None = None,
) -> dict[str, Any]:
    """Build a ``turns``-turn session and time its snapshot operations; return the report."""
    state = build_session(turns, prompt_chars=prompt_chars, reply_chars=reply_chars)
    text = snapshot.dumps(state)
    rows: list[dict[str, Any]] = [
        {"operation": "snapshot.dumps", "ms": _median_ms(lambda: snapshot.dumps(state), repeat)},
        {"operation": "snapshot.loads", "ms": _median_ms(lambda: snapshot.loads(text), repeat)},
    ]
    with tempfile.TemporaryDirectory(prefix="llmsock-bench-", dir=directory) as where:
        for fsync in (True, False):
            store = JsonFileStore(Path(where) / ("fsync" if fsync else "nofsync"), fsync=fsync)
            revisions = iter(range(1, 1_000_000))

            def save(store: JsonFileStore = store, revisions: Iterator[int] = revisions) -> None:
                store.save_sync("bench-session", replace(state, revision=next(revisions)))

            save()  # the first save has no file to check against: not timed
            label = "JsonFileStore.save_sync" + ("" if fsync else " (fsync=False)")
            rows.append({"operation": label, "ms": _median_ms(save, repeat)})
        loaded = store.load_sync("bench-session")
        assert loaded is not None and len(loaded.messages) == len(state.messages)
        rows.append(
            {
                "operation": "JsonFileStore.load_sync",
                "ms": _median_ms(lambda: store.load_sync("bench-session"), repeat),
            }
        )
        filesystem = _filesystem(where)
    fitted = snapshot.fit(state)
    rows.append(
        {"operation": "snapshot.fit (256 KiB)", "ms": _median_ms(lambda: snapshot.fit(state), repeat)}
    )
    return {
        "turns": turns,
        "messages": len(state.messages),
        "repeat": repeat,
        "prompt_chars": prompt_chars,
        "reply_chars": reply_chars,
        "snapshot_bytes": len(text.encode("utf-8")),
        "fitted_bytes": len(snapshot.dumps(fitted).encode("utf-8")),
        "fitted_turns": turns - fitted.dropped_turns,
        "cap_bytes": snapshot.DEFAULT_MAX_CHARS,
        "filesystem": filesystem,
        "results": rows,
    }


def _filesystem(path: str) -> str:
    """Return the type of the file system holding ``path`` (from /proc/mounts), or "unknown"."""
    best, kind = "", "unknown"
    try:
        target = os.path.realpath(path)
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            mount = fields[1]
            if target.startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
                best, kind = mount, fields[2]
    except (OSError, IndexError):
        pass
    return f"{kind} at {best or '?'}"


def render(report: dict[str, Any]) -> str:
    """Return the report as a table."""
    rows = [[r["operation"], f"{r['ms']:.1f}"] for r in report["results"]]
    size = report["snapshot_bytes"]
    return "\n".join(
        [
            f"snapshot: {report['turns']:,} turns ({report['messages']:,} messages, prompts "
            f"~{report['prompt_chars']} and answers ~{report['reply_chars']} characters); "
            f"median of {report['repeat']} runs; files on {report['filesystem']}",
            table(["operation", "ms"], rows),
            f"snapshot size: {size:,} bytes ({size / 2**20:.2f} MiB); "
            f"fit to {report['cap_bytes'] // 1024} KiB keeps {report['fitted_turns']:,} of "
            f"{report['turns']:,} turns ({report['fitted_bytes']:,} bytes)",
        ]
    )
