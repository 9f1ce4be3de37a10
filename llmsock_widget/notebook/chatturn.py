"""One prompt a :class:`~.chat.Chat` handle sent: its answer as it streams, then the :class:`Answer`.

The prompt goes to the hub on the server's loop, as a view's does, so it streams
into every open view of the session.  The loop fills the :class:`PendingAnswer`;
any thread (or an asyncio loop, with ``await``) reads it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any

from ..client.answers import Answer, answer_ending
from ..core.events import ErrorReply, Event, ModelDelta
from ..server.thread import ServerThread
from ..wire.protocol import Control, SendPrompt
from .chatevents import ATTACH_TIMEOUT, on_loop
from .kerneltools import cell_waits_for_chat


class PendingAnswer:
    """The answer to a prompt sent with ``Chat.send``, filled as it streams.  Thread-safe.

    ``text`` is the answer so far; :meth:`result` waits for the :class:`Answer`
    (``await pending`` does the same in a coroutine); :meth:`stop` ends the turn.
    """

    def __init__(self, server: ServerThread, session: str, message_id: str) -> None:
        self.session = session
        self.message_id = message_id
        self.text = ""
        self._server = server
        self._future: concurrent.futures.Future[Answer] = concurrent.futures.Future()

    def done(self) -> bool:
        """Return whether the turn has ended (answered, stopped, failed or refused)."""
        return self._future.done()

    def result(self, timeout: float | None = None) -> Answer:
        """Wait for the turn's end and return its Answer.

        Raises:
            TimeoutError: no end within ``timeout`` seconds (the turn goes on).
        """
        try:
            # The cell only waits for the answer: a run_code the user approves meanwhile need not wait.
            with cell_waits_for_chat():
                return self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"no answer within {timeout} s") from None

    def __await__(self) -> Generator[Any, None, Answer]:
        return asyncio.wrap_future(self._future).__await__()

    def stop(self, timeout: float = ATTACH_TIMEOUT) -> bool:
        """Stop this prompt's answer if it is the one streaming now; return whether it was."""
        if self.done():
            return False
        on_loop(self._server)
        return bool(self._server.submit(_stop(self._server, self.session, self.message_id)).result(timeout))

    def __repr__(self) -> str:
        if not self.done():
            return f"<PendingAnswer streaming, {len(self.text)} characters so far>"
        answer = self._future.result()
        return f"<PendingAnswer {answer.finish_reason}: {answer.text[:60]!r}>"

    # -- on the server's loop ------------------------------------------------------------------

    def take(self, event: Event) -> bool:
        """Take one event of the session; return whether it ended this prompt's turn."""
        if isinstance(event, ModelDelta) and event.message_id == self.message_id:
            self.text += event.text
        elif (ended := answer_ending(event, self.message_id, self.session)) is not None:
            self._finish(ended)
        elif isinstance(event, ErrorReply) and event.request_id == self.message_id:
            error = f"{event.code}: {event.message}"
            refused = Answer(
                text="", finish_reason="error", error=error, session=self.session, message_id=self.message_id
            )
            self._finish(refused)
        return self.done()

    def _finish(self, answer: Answer) -> None:
        self.text = answer.text
        if not self._future.done():
            self._future.set_result(answer)


async def send(
    server: ServerThread, session: str, command: SendPrompt, pending: PendingAnswer, *, inherit_system: bool
) -> None:
    """Attach to ``session``, hand ``command`` to the hub, and stay attached until its turn ends.

    ``inherit_system``: a prompt without a system prompt gets the one the session keeps.
    """
    detach: Callable[[], Any] | None = None

    def deliver(event: Event) -> None:
        if pending.take(event) and detach is not None:
            asyncio.get_running_loop().create_task(detach())

    key, detach, _ = await server.hub.attach(session, deliver)
    kept = server.hub.sessions[key].state.settings.get("system")
    if inherit_system and "system" not in command.options and isinstance(kept, str) and kept:
        command = replace(command, options={**command.options, "system": kept})
    server.hub.handle(key, command, deliver)
    if pending.done():  # refused at once: nothing more will come
        await detach()


async def _stop(server: ServerThread, session: str, message_id: str) -> bool:
    live = server.hub.sessions.get(session)
    if live is None:
        return False
    if live.link.runs_here:
        active = live.active
        if active is None or active.message_id != message_id:
            return False  # its turn has not started (it waits in the queue) or has ended
    else:  # another server runs the chat (shared on Redis): its turn is our copy's last prompt
        prompts = [message for message in live.state.messages if message.role == "user"]
        if live.state.phase == "idle" or not prompts or prompts[-1].id != message_id:
            return False
    result: list[Any] = []
    server.hub.handle(session, Control(action="abort"), result.append)
    # Handed to the server that runs the chat, the Stop's answer comes later: it was sent.
    return bool(result and getattr(result[0], "ok", False)) if live.link.runs_here else True


def start(server: ServerThread, session: str, command: SendPrompt, *, inherit_system: bool) -> PendingAnswer:
    """Send ``command`` on ``session`` and return its PendingAnswer once the hub has it."""
    assert command.message_id is not None
    pending = PendingAnswer(server, session, command.message_id)
    on_loop(server)
    coro = send(server, session, command, pending, inherit_system=inherit_system)
    server.submit(coro).result(ATTACH_TIMEOUT)
    return pending
