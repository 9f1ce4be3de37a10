"""Send one prompt from Python and stream the answer (``%%llmsock`` and ``llmsock_widget.ask``).

The caller's thread (the kernel's main thread, in a notebook) waits on a
thread-safe queue that the server loop fills; the server thread never touches
the caller's output.  Interrupting the wait (Ctrl-C, the kernel's Stop button)
aborts the turn and returns the partial answer.
"""

from __future__ import annotations

import queue
import secrets
import sys
import time
from typing import Any

# One Answer for both ways of asking (here and the Python client); re-exported under its old path.
from ..client.answers import Answer as Answer
from ..client.answers import answer_ending
from ..core.events import Diagnostic, ErrorReply, Event, ModelDelta
from ..server.thread import ServerThread
from ..wire.decode import prompt_options
from ..wire.protocol import Control, SendPrompt
from ..wire.safehtml import neutralize, render_answer
from . import mentions
from .kerneltools import cell_waits_for_chat

_RENDER_EVERY = 0.05  # seconds between two re-renders of the streaming answer, at least
_RENDER_SHARE = 0.2  # and re-rendering takes at most this share of the time (long answers)

SHARING = "sharing_unavailable"  # said to every view of a shared chat whose server cannot read it


def options_of(
    *,
    tools: bool | list[str] | None = None,
    model_timeout: float | None = None,
    retries: int | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    system: str | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Return the Python API's prompt settings (``ask()``, ``Chat.send``) as the wire's option names."""
    return {
        "tools": tools,
        "timeout": model_timeout,
        "retries": retries,
        "temperature": temperature,
        "maxTokens": max_tokens,
        "system": system,
        "model": model,
    }


def with_mentions(prompt: str, options: dict[str, Any]) -> dict[str, Any]:
    """Return ``options`` with the prompt's ``@name`` mentions attached, unless it names its own."""
    if options.get("attachments") is not None:
        return options
    found = mentions.attachments(prompt)
    return {**options, "attachments": found} if found else options


def ask(
    prompt: str,
    *,
    session: str = "default",
    server: ServerThread,
    display: bool = True,
    timeout: float | None = None,
    options: dict[str, Any] | None = None,
) -> Answer:
    """Send ``prompt`` on ``session`` and return the answer, streaming it to the output meanwhile.

    ``options`` are the prompt's options as on the wire (``tools``, ``timeout``, ``retries``,
    ``temperature``, ``maxTokens``: docs/protocol.md section 7.1).

    Raises:
        TimeoutError: no end of the turn within ``timeout`` seconds (the turn is aborted).
        InvalidFrame: an option out of its range.
    """
    checked = prompt_options(with_mentions(prompt, options or {}))
    events: queue.Queue[Event] = queue.Queue()
    message_id = f"ask-{secrets.token_urlsafe(9)}"
    command = SendPrompt(text=prompt, message_id=message_id, options=checked)
    key, detach = server.submit(_attach(server, session, events.put_nowait, command)).result(30)
    out = _Output(display)
    text = ""
    deadline = None if timeout is None else time.monotonic() + timeout
    # The cell only waits for the answer: a run_code the user approves meanwhile need not wait for it.
    with cell_waits_for_chat():
        try:
            while True:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    event = events.get(timeout=remaining if remaining is not None else 3600)
                except queue.Empty:
                    if deadline is not None and time.monotonic() >= deadline:
                        _abort(server, key)
                        raise TimeoutError(f"no answer within {timeout} s; the turn was aborted") from None
                    continue
                if isinstance(event, ModelDelta) and event.message_id == message_id:
                    text += event.text
                    out.update(text)
                elif (ended := answer_ending(event, message_id, key)) is not None:
                    out.finish(ended.text, ended.finish_reason, ended.error)
                    return ended
                elif isinstance(event, ErrorReply) and event.request_id is None and event.code == SHARING:
                    out.note(f"{event.code}: {event.message}")  # a notice to every view; the turn goes on
                elif isinstance(event, ErrorReply):
                    out.finish("", "error", f"{event.code}: {event.message}")
                    return Answer(
                        text="",
                        finish_reason="error",
                        error=event.message,
                        session=key,
                        message_id=message_id,
                    )
                elif isinstance(event, Diagnostic) and event.level != "info":
                    out.note(f"{event.code}: {event.message}")
        except KeyboardInterrupt:
            _abort(server, key)
            out.finish(text, "aborted")
            return Answer(text=text, finish_reason="aborted", session=key, message_id=message_id)
        finally:
            server.submit(detach()).result(30)


async def _attach(server: ServerThread, session: str, deliver: Any, command: SendPrompt) -> Any:
    key, detach, _ = await server.hub.attach(session, deliver)
    server.hub.handle(key, command, deliver)
    return key, detach


def _abort(server: ServerThread, key: str) -> None:
    # Queued on the server's loop before the detach that follows, so the turn is aborted first.
    server.call_soon(server.hub.handle, key, Control(action="abort"), lambda reply: None)


class _Output:
    """Where the streaming answer goes: a live HTML display in IPython, else stdout.

    The display is sanitized HTML plus plain text (safehtml), never Markdown: JupyterLab would
    render Markdown with raw HTML live, and a saved notebook is trusted on reopen.
    """

    def __init__(self, display: bool) -> None:
        self.handle: Any = None
        self.printed = 0
        self.next_render = 0.0
        if display:
            try:
                import IPython.display
                from IPython import get_ipython

                if get_ipython() is not None:
                    shown: Any = IPython.display
                    # Streaming starts here.
                    self.handle = shown.display(_bundle("…"), raw=True, display_id=True)
            except ImportError:
                self.handle = None
        self.display = display

    def update(self, text: str) -> None:
        if not self.display:
            return
        if self.handle is None:
            sys.stdout.write(text[self.printed :])
            sys.stdout.flush()
            self.printed = len(text)
            return
        now = time.monotonic()
        if now >= self.next_render:  # re-render a few times a second, not per token
            self.handle.update(_bundle(text), raw=True)
            cost = time.monotonic() - now
            self.next_render = now + max(_RENDER_EVERY, cost / _RENDER_SHARE)

    def finish(self, text: str, reason: str, error: str | None = None) -> None:
        if not self.display:
            return
        marker = {"aborted": "\n\n*(stopped)*", "length": "\n\n*(cut at the token limit)*"}.get(reason, "")
        if error:
            marker = f"\n\n**Error** {error}"
        if self.handle is None:
            sys.stdout.write(text[self.printed :] + marker.replace("*", "") + "\n")
            sys.stdout.flush()
            return
        self.handle.update(_bundle(text + marker), raw=True)

    def note(self, message: str) -> None:
        if self.display:
            print(f"[llmsock] {message}", file=sys.stderr)


def _bundle(text: str) -> dict[str, str]:
    """Return the display data of an answer: sanitized HTML, and the text with invisibles shown."""
    return {"text/html": render_answer(text), "text/plain": neutralize(text)}
