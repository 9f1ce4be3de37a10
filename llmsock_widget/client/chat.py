"""The terminal chat of ``python -m llmsock_widget chat``: read a line, stream the answer, repeat.

Ctrl-C while an answer streams aborts that turn (the partial answer ends with
``(stopped)``) and the chat goes on; Ctrl-C at the prompt, or the end of input,
ends the chat with status 0.  Answers go to stdout; notes (reconnects, warnings,
errors) go to stderr.  The token comes from the caller, never from the command line.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections import deque
from typing import Any, TextIO

from .answers import Answer, AnswerCollector
from .connection import Client
from .core import Backoff, ClientFailure

# What the chat waits on, in one queue: ("line", text), ("eof", None), ("interrupt", None),
# ("event", message) from the client, ("end", error) when the client stopped.
Item = tuple[str, Any]

_MARKERS = {"aborted": "\n(stopped)\n", "length": "\n(cut at the token limit)\n"}


class _Quit(Exception):
    """The user asked to leave (a second Ctrl-C while a turn is being stopped)."""


def run_chat(url: str, *, token: str, session: str | None = None, backoff: Backoff = Backoff()) -> int:
    """Run the chat until the end of input or Ctrl-C at the prompt; return the exit status."""
    try:
        return asyncio.run(chat(url, token=token, session=session, backoff=backoff))
    except KeyboardInterrupt:  # before the chat took over Ctrl-C
        return 130


async def chat(
    url: str,
    *,
    token: str,
    session: str | None = None,
    backoff: Backoff = Backoff(),
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Chat on ``session`` (a new one if None) of the server at ``url``; return the exit status."""
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Item] = asyncio.Queue()
    _start_reader(loop, inbox)
    interruptible = _catch_interrupts(loop, inbox)
    client = Client(url, token=token, session=session, backoff=backoff)
    stream = client.events()
    try:
        await client.connect()
        err.write(f"[llmsock] connected to session {client.session}; Ctrl-C stops an answer, EOF quits\n")
        pump = loop.create_task(_pump(stream, inbox))
        try:
            return await _converse(client, inbox, out, err)
        finally:
            pump.cancel()
    except ClientFailure as exc:
        err.write(f"llmsock: {exc.message}\n")
        return 1
    except _Quit:
        return 130
    finally:
        await client.close()
        if interruptible:
            loop.remove_signal_handler(signal.SIGINT)


async def _converse(client: Client, inbox: asyncio.Queue[Item], out: TextIO, err: TextIO) -> int:
    lines: deque[str] = deque()
    eof = False
    tty = _isatty(out)
    prompted = False  # "> " is on the screen, waiting for a line
    while True:
        if not lines and not eof:
            if tty and not prompted:
                out.write("> ")
                out.flush()
                prompted = True
            kind, value = await inbox.get()
            if kind == "interrupt":
                return 0
            # Events between turns (the session's status, say) print nothing: the prompt stays.
            wrote = _take(kind, value, lines, err)
            prompted = prompted and kind != "line" and not wrote
            eof = eof or kind == "eof"
            continue
        if not lines:
            return 0
        text = lines.popleft()
        if text.strip():
            eof = await _turn(client, text, inbox, lines, out, err) or eof


async def _turn(
    client: Client, text: str, inbox: asyncio.Queue[Item], lines: deque[str], out: TextIO, err: TextIO
) -> bool:
    """Send one prompt and stream its answer; return whether the input ended meanwhile."""
    eof, stopping = False, False
    message_id = await client.send_prompt(text)
    collector = AnswerCollector(message_id, dialect=client.dialect, session=client.session or "")
    printed = ""
    while True:
        kind, value = await inbox.get()
        if kind == "interrupt":
            if stopping:
                raise _Quit
            stopping = await _stop(client, collector, err)
            continue
        if kind != "event":
            _take(kind, value, lines, err)
            eof = eof or kind == "eof"
            continue
        answer = collector.feed(value)
        printed = _show(collector.text if answer is None else answer.text, printed, out)
        if answer is not None:
            _finish(answer, out, err)
            return eof


async def _stop(client: Client, collector: AnswerCollector, err: TextIO) -> bool:
    """Abort the turn if it runs (abort is session-wide: never abort someone else's turn)."""
    if collector.turn_id is None:
        err.write("[llmsock] the prompt waits in the queue and cannot be withdrawn; Ctrl-C again quits\n")
        return True
    try:
        await client.abort()
    except (ClientFailure, TimeoutError, asyncio.TimeoutError) as exc:
        err.write(f"[llmsock] could not stop the answer: {exc}\n")
    return True


def _show(text: str, printed: str, out: TextIO) -> str:
    """Print what ``text`` adds to ``printed``; return what is on the screen now."""
    if text == printed:
        return printed
    if text.startswith(printed):
        out.write(text[len(printed) :])
    else:  # a reload gave a text that does not continue the screen's: start a new line
        out.write("\n" + text)
    out.flush()
    return text


def _finish(answer: Answer, out: TextIO, err: TextIO) -> None:
    out.write(_MARKERS.get(answer.finish_reason, "\n"))
    out.flush()
    if answer.error:
        err.write(f"[llmsock] error: {answer.error}\n")


def _take(kind: str, value: Any, lines: deque[str], err: TextIO) -> bool:
    """Act on an inbox item that is not part of a turn's answer; return whether it printed a note."""
    if kind == "line":
        lines.append(value)
    elif kind == "event":
        return _note(value, err)
    elif kind == "end":
        raise value or ClientFailure("the connection is closed")
    return False


def _note(message: dict[str, Any], err: TextIO) -> bool:
    """Tell the user about reconnects, reloads and warnings; return whether a note was printed."""
    name, data = message.get("name"), message.get("data")
    if not isinstance(data, dict):
        return False
    if name == "client.reconnecting":
        err.write(
            f"[llmsock] connection lost ({data.get('code')}); reconnecting in {data.get('delay', 0):.1f} s"
            f" (attempt {data.get('attempt')})\n"
        )
    elif name == "client.reconnected":
        how = f"resumed, {data.get('replayed')} events replayed" if data.get("resumed") else "reloading"
        err.write(f"[llmsock] reconnected ({how})\n")
    elif name == "client.reloaded":
        history = data.get("history") or {}
        err.write(f"[llmsock] session reloaded ({len(history.get('messages') or ())} messages)\n")
    elif name == "interaction.diagnostic" and (data.get("event") or {}).get("level") in ("warning", "error"):
        event = data["event"]
        err.write(f"[llmsock] {event.get('code')}: {event.get('message')}\n")
    else:
        return False
    return True


async def _pump(stream: Any, inbox: asyncio.Queue[Item]) -> None:
    """Forward the client's messages into the inbox, then how the client ended."""
    try:
        async for message in stream:
            inbox.put_nowait(("event", message))
    except ClientFailure as exc:
        inbox.put_nowait(("end", exc))
        return
    inbox.put_nowait(("end", None))


def _start_reader(loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[Item]) -> None:
    """Read stdin's lines on a daemon thread (os.read holds no lock that could block the exit)."""

    def read() -> None:
        try:
            fd, pending = sys.stdin.fileno(), b""
        except (AttributeError, ValueError, OSError):  # no usable stdin: as if it were empty
            loop.call_soon_threadsafe(inbox.put_nowait, ("eof", None))
            return
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                if pending:
                    loop.call_soon_threadsafe(inbox.put_nowait, ("line", _text(pending)))
                loop.call_soon_threadsafe(inbox.put_nowait, ("eof", None))
                return
            *complete, pending = (pending + chunk).split(b"\n")
            for line in complete:
                loop.call_soon_threadsafe(inbox.put_nowait, ("line", _text(line)))

    threading.Thread(target=read, name="llmsock-chat-stdin", daemon=True).start()


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


def _catch_interrupts(loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[Item]) -> bool:
    """Turn Ctrl-C into an inbox item; return whether that was possible (not on Windows)."""
    try:
        loop.add_signal_handler(signal.SIGINT, inbox.put_nowait, ("interrupt", None))
    except (NotImplementedError, RuntimeError):
        return False
    return True


def _isatty(out: TextIO) -> bool:
    try:
        return sys.stdin.isatty() and out.isatty()
    except (AttributeError, ValueError):
        return False
