"""A Python handle on a chat: ``Chat("name")`` is the session ``ChatWidget(session="name")`` shows.

Everything goes through the kernel's server in-process, on its loop (the one
thread-safe door, ``ServerThread.submit``), never through a socket: a prompt
sent here is handed to the hub as a view's is, so it streams into every open
view of the session, and the session's events reach the handle's callbacks
whoever caused them.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from ..aio import within
from ..client.answers import Answer
from ..core import snapshot
from ..core.session import InteractionState
from ..core.settings import check_setting
from ..server.thread import ServerThread
from ..stores.base import session_key
from ..wire.decode import prompt_options
from ..wire.protocol import Approve, Control, SendPrompt
from . import kernel
from .answer import options_of, with_mentions
from .chatevents import EVENTS, Callback, ChatEvents, on_loop
from .chatturn import PendingAnswer, start
from .kerneltools import cell_waits_for_chat
from .notebookfile import markdown

__all__ = ["EVENTS", "Chat", "PendingAnswer", "Results", "results"]

READ_TIMEOUT = 30.0  # seconds to load a session and read it on the server's loop

_UNSET: Any = object()  # the handle has not set a system prompt: the session's is used


class Chat:
    """The chat session ``name`` of the kernel's server (or of ``server``), from Python.

    ``send`` a prompt (it streams into every open view of the session) or ``await ask``
    it; read the ``history``; ``clear`` or ``export`` it; ``on`` an event, call back;
    set its ``system`` prompt; ``approve`` a tool call; read the live objects tools returned
    (``results``).
    Any thread but the server's own may use it: a cell, a script, a plain tool.

    Raises:
        InvalidSessionId: ``name`` is not 1 to 128 of ``A-Z a-z 0-9 _ -``.
    """

    def __init__(self, name: str = kernel.DEFAULT_SESSION, *, server: ServerThread | None = None) -> None:
        self.name = session_key(name)
        self._server = server
        self._system: str | None = _UNSET
        self._events = ChatEvents(self.name)
        if server is None:
            kernel.watch(self._events)  # callbacks follow the kernel's server when it restarts

    def __repr__(self) -> str:
        return f"Chat({self.name!r})"

    @property
    def server(self) -> ServerThread:
        """The server the chat lives on: the one given, else the kernel's (started if none runs)."""
        return self._server if self._server is not None else kernel.get_server()

    # -- prompts ---------------------------------------------------------------------------------

    def send(
        self,
        text: str,
        *,
        tools: bool | list[str] | None = None,
        model_timeout: float | None = None,
        retries: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        system: str | None = None,
        model: str | None = None,
    ) -> PendingAnswer:
        """Send ``text`` as a prompt of this chat and return at once; the answer streams meanwhile.

        The options are ``ask()``'s (section 4.3 of docs/configuration.md); ``system`` defaults
        to :attr:`system`.  The returned :class:`PendingAnswer` has the ``text`` so far,
        ``result()`` (or ``await``) for the :class:`Answer`, and ``stop()``.

        Raises:
            ValueError: an empty prompt.
            InvalidFrame: an option out of its range.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a prompt needs a non-whitespace character")
        server = self.server
        if self._server is None:  # in a script, say once where the kernel's chats are kept, as ask() does
            note = kernel.runtime.announce_store(server.store)
            if note is not None:
                print(note, file=sys.stderr)
        chosen = options_of(
            tools=tools,
            model_timeout=model_timeout,
            retries=retries,
            temperature=temperature,
            max_tokens=max_tokens,
            system=self._system if system is None and self._system is not _UNSET else system,
            model=model,
        )
        command = SendPrompt(
            text=text,
            message_id=f"chat-{secrets.token_urlsafe(9)}",
            options=prompt_options(with_mentions(text, chosen)),
        )
        # Neither given nor set here: the prompt keeps the session's system prompt, as a view's does.
        inherit = system is None and self._system is _UNSET
        return start(server, self.name, command, inherit_system=inherit)

    async def ask(self, text: str, *, timeout: float | None = None, **options: Any) -> str:
        """Send ``text`` and return the answer's text once it has ended (``await chat.ask(...)``).

        ``options`` are :meth:`send`'s.  A stopped answer returns the text it had.

        Raises:
            TimeoutError: no end within ``timeout`` seconds (the turn is stopped).
            AnswerFailed: the model failed or the prompt was refused (``.answer`` has it).
        """
        pending = await asyncio.to_thread(self.send, text, **options)
        waiting = asyncio.ensure_future(_wait(pending))
        try:
            # Shielded: a timeout stops the turn, and the PendingAnswer still gets its end.
            with cell_waits_for_chat():  # a cell that awaits the answer does not hold run_code back
                answer = await within(asyncio.shield(waiting), timeout)
        except asyncio.TimeoutError:
            await asyncio.to_thread(pending.stop)
            raise TimeoutError(f"no answer within {timeout} s; the turn was stopped") from None
        except (asyncio.CancelledError, KeyboardInterrupt):
            await asyncio.shield(asyncio.to_thread(pending.stop))
            raise
        if answer.finish_reason == "error":
            raise AnswerFailed(answer)
        return answer.text

    @property
    def system(self) -> str | None:
        """The system prompt this chat's prompts get: the one set here, else the session's (or None).

        Setting it applies to the next prompts sent from this handle; the session keeps it
        from the next prompt on (a session keeps its last prompt's settings, which every
        view shows).  ``None`` sends none.

        Raises:
            ValueError: (on set) not a string of at most 32,768 characters, or None.
        """
        return self._system_for(self.server)

    @system.setter
    def system(self, value: str | None) -> None:
        self._system = None if value is None or value == "" else check_setting("system", value)

    def _system_for(self, server: ServerThread) -> str | None:
        if self._system is not _UNSET:
            return self._system
        kept = self._read(server, lambda live: live.state.settings.get("system"))
        return kept if isinstance(kept, str) and kept else None

    # -- the session -------------------------------------------------------------------------------

    @property
    def history(self) -> list[dict[str, Any]]:
        """Return the transcript as ``get_history`` gives it: ``{"id", "role", "text", "status", ...}`` each.

        A copy; the answer streaming now (if any) is not in it until it ends.
        """
        server = self.server

        def read(live: Any) -> list[dict[str, Any]]:
            replies: list[Any] = []
            server.hub.handle(self.name, Control(action="get_history"), replies.append)
            return copy.deepcopy(list(replies[0].data["messages"]))

        return self._read(server, read)  # type: ignore[no-any-return]

    def clear(self) -> int:
        """Empty the chat, as its view's *clear* does (every view is told); return how many messages went.

        Raises:
            InvalidRequest: an answer is streaming or prompts wait; stop it first.
        """
        server = self.server
        on_loop(server)
        return int(server.submit(server.hub.clear(self.name)).result(READ_TIMEOUT))

    def export(self, format: Literal["markdown", "json"] = "markdown") -> str:
        """Return the chat as a Markdown transcript or as its JSON snapshot (``sessions export``'s formats).

        The JSON is the snapshot a store keeps (``snapshot.loads`` reads it back).

        Raises:
            ValueError: an unknown ``format``.
        """
        if format not in ("markdown", "json"):
            raise ValueError(f"unknown export format {format!r}: use 'markdown' or 'json'")
        state: InteractionState = self._read(self.server, lambda live: live.state)
        if format == "json":
            return json.dumps(snapshot.encode(state), indent=2, ensure_ascii=False) + "\n"
        return markdown(state)

    def on(self, event: str, callback: Callback) -> Callable[[], None]:
        """Call ``callback(e)`` for each ``event`` of the session, from any view; return the unsubscribe.

        ``event`` is ``message`` (a prompt: ``UserMessage``), ``delta`` (``ModelDelta``: ``e.text``),
        ``end`` (``ModelEnd``), ``error`` (``ModelError``), ``tool_call``, ``tool_result`` or
        ``approval`` (a call waits for the user, then the decision).  Callbacks run one at a
        time in event order on a thread of their own, never the server's; one that raises is
        logged and the others still run.

        Raises:
            ValueError: an unknown event name.
        """
        return self._events.add(event, callback, self.server)

    def approve(self, call_id: str, approved: bool = True) -> bool:
        """Answer the tool call ``call_id`` that waits for the user: run it, or (``approved=False``) not.

        The same decision as a view's *approve* / *deny* buttons; the first answer wins.  Returns
        whether that call was waiting (False: unknown, decided already, timed out).
        """
        server = self.server

        def decide(live: Any) -> bool:
            replies: list[Any] = []
            command = Approve(call_id=call_id, approved=bool(approved))
            server.hub.handle(self.name, command, replies.append)
            return bool(replies and getattr(replies[0], "ok", False))

        return bool(self._read(server, decide))

    @property
    def results(self) -> Results:
        """This chat's live objects tools returned, by call id (read-only; the server keeps the last 100)."""
        return Results(self.server, session=self.name)

    def _read(self, server: ServerThread, read: Callable[[Any], Any]) -> Any:
        """Return ``read(live session)``, run on the server's loop with the session loaded."""
        on_loop(server)
        return server.submit(_peek(server, self.name, read)).result(READ_TIMEOUT)


class AnswerFailed(RuntimeError):
    """The model failed, or the prompt was refused: ``.answer`` is the :class:`Answer`, with its error."""

    def __init__(self, answer: Any) -> None:
        super().__init__(answer.error or "the answer failed")
        self.answer = answer


class Results(Mapping[str, Any]):
    """A read-only view of the live objects a server's tools returned, by call id."""

    def __init__(self, server: ServerThread, *, session: str | None = None) -> None:
        every = server.hub.results  # thread-safe: the loop adds, cells read
        self._source: Mapping[str, Any] = every if session is None else every.of(session)

    def __getitem__(self, call_id: str) -> Any:
        return self._source[call_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._source)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._source

    def __len__(self) -> int:
        return len(self._source)

    def __repr__(self) -> str:
        return f"Results({list(self)!r})"


def results() -> Results:
    """Return the live objects the kernel's server's tools returned, by call id (read-only)."""
    return Results(kernel.get_server())


async def _peek(server: ServerThread, name: str, read: Callable[[Any], Any]) -> Any:
    # Attached while reading, so the session is loaded (and stays so) without a view.
    key, detach, _ = await server.hub.attach(name, _ignore)
    try:
        return read(server.hub.sessions[key])
    finally:
        await detach()


async def _wait(pending: PendingAnswer) -> Answer:
    return await pending


def _ignore(event: Any) -> None:
    """Drop an event (a handle that reads the session listens to nothing)."""
