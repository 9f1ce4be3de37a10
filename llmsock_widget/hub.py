"""The coordinator on the server loop: command -> session -> model -> events -> fan-out.

The hub owns the live sessions.  It decides with the pure core (``session.apply``),
and acts through ports: a :class:`~llmsock_widget.stores.SessionStore` to load and
save, a :class:`~llmsock_widget.models.ChatModel` to answer, a
:class:`~llmsock_widget.fanout.Fanout` to deliver.  It knows nothing of Tornado,
sockets or dialects: connections subscribe with a callback and send commands.

All methods run on the server's event loop (one thread), so the hub needs no locks.
Turns of one session run one at a time, in arrival order; a prompt that arrives
while a turn runs waits in a bounded queue.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from . import snapshot
from .errors import CorruptSnapshot, InvalidRequest, LlmsockError, ModelFailure, QueueFull, StoreConflict
from .events import (
    ControlResult,
    Diagnostic,
    ErrorReply,
    HistoryCleared,
    Level,
    ModelDelta,
    ModelEnd,
    ModelError,
    ModelStart,
    ModelUsage,
    Pong,
    Reply,
    SessionEvent,
    SessionReady,
    StatusChanged,
    UserMessage,
)
from .fanout import Deliver, Fanout, LocalFanout, Unsubscribe
from .models.base import ChatModel, FinishChunk, ModelRequest, TextChunk, UsageChunk
from .protocol import Command, Control, Ping, SendPrompt
from .session import InteractionState, apply, history, new_state
from .stores.base import SessionStore, resolve, session_key

log = logging.getLogger("llmsock")

ReplyTo = Callable[[Reply], None]


def now_ms() -> int:
    """Return the wall clock in milliseconds (the hub's default clock)."""
    return int(time.time() * 1000)


def new_id(prefix: str = "") -> str:
    """Return a fresh random id usable as a session, turn or message id."""
    return prefix + secrets.token_urlsafe(12)


@dataclass(eq=False)
class LiveSession:
    """A session the hub holds in memory: its state and its turn machinery."""

    state: InteractionState
    queue: deque[SendPrompt] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None
    stream: asyncio.Task[None] | None = None
    aborting: bool = False
    running: asyncio.Event = field(default_factory=asyncio.Event)  # cleared while paused
    subscribers: int = 0
    saved_seq: int = 0  # the seq of the last state the store accepted

    @property
    def busy(self) -> bool:
        return self.worker is not None


class Hub:
    """Run sessions: attach connections, run turns, answer controls."""

    def __init__(
        self,
        *,
        store: SessionStore,
        model: ChatModel,
        fanout: Fanout | None = None,
        clock: Callable[[], int] = now_ms,
        max_queue: int = 8,
    ) -> None:
        self.store = store
        self.model = model
        self.fanout: Fanout = fanout if fanout is not None else LocalFanout()
        self.clock = clock
        self.max_queue = max_queue
        self.sessions: dict[str, LiveSession] = {}
        self._loading: dict[str, asyncio.Future[LiveSession]] = {}
        self.turns_run = 0

    # -- connections ---------------------------------------------------------------

    async def attach(self, session_id: str | None, deliver: Deliver) -> tuple[str, Unsubscribe, SessionReady]:
        """Subscribe ``deliver`` to a session (a new one if ``session_id`` is None).

        Returns the session id, an async ``detach`` to call when the connection
        closes, and the :class:`SessionReady` reply to send first.

        Raises:
            InvalidSessionId: ``session_id`` is not a valid id.
        """
        created = session_id is None
        key = new_id() if session_id is None else session_key(session_id)
        live, was_new = await self._get(key, fresh=created)
        unsubscribe = await self.fanout.subscribe(key, deliver)
        live.subscribers += 1
        ready = SessionReady(
            session_id=key, seq=live.state.seq, status=live.state.status, ts=self.clock(), created=was_new
        )

        async def detach() -> None:
            await unsubscribe()
            live.subscribers -= 1
            self._maybe_evict(key, live)

        return key, detach, ready

    def handle(self, session_id: str, command: Command, reply: ReplyTo) -> None:
        """Act on a command from a connection attached to ``session_id``; never blocks.

        Failures the peer can fix go back through ``reply`` as an ErrorReply.
        """
        live = self.sessions.get(session_id)
        if live is None:
            reply(ErrorReply(code="invalid_request", message="not attached to a session", ts=self.clock()))
            return
        try:
            if isinstance(command, SendPrompt):
                self._enqueue(session_id, live, command)
            elif isinstance(command, Control):
                reply(self._control(session_id, live, command))
            elif isinstance(command, Ping):
                reply(Pong(ts=self.clock(), request_id=command.request_id))
        except LlmsockError as exc:
            request_id = getattr(command, "request_id", None) or getattr(command, "message_id", None)
            reply(ErrorReply(code=exc.code, message=exc.message, ts=self.clock(), request_id=request_id))

    async def close(self) -> None:
        """Stop every running turn (used when the server stops)."""
        tasks = [live.worker for live in self.sessions.values() if live.worker is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- loading and saving ----------------------------------------------------------

    async def _get(self, key: str, *, fresh: bool) -> tuple[LiveSession, bool]:
        live = self.sessions.get(key)
        if live is not None:
            return live, False
        pending = self._loading.get(key)
        if pending is not None:  # another connection is loading this session right now
            return await asyncio.shield(pending), False
        future: asyncio.Future[LiveSession] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            state, created = (
                (new_state(key, ts=self.clock(), model=self.model.name), True)
                if fresh
                else (await self._load(key))
            )
            live = LiveSession(state=state, saved_seq=0 if created else state.seq)
            live.running.set()
            self.sessions[key] = live
            future.set_result(live)
            return live, created
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: the caller re-raises it
            raise
        finally:
            del self._loading[key]

    async def _load(self, key: str) -> tuple[InteractionState, bool]:
        notes: list[tuple[str, str]] = []
        try:
            state = await resolve(self.store.load(key))
        except CorruptSnapshot as exc:
            log.warning("llmsock: session %s had a corrupt snapshot (moved to %s)", key, exc.moved_to)
            notes.append(
                ("corrupt_snapshot", f"the saved session could not be read and was set aside: {exc}")
            )
            state = None
        if state is None:
            return new_state(key, ts=self.clock(), model=self.model.name), True
        if state.phase != "idle":
            # The process stopped mid-turn: close that turn, marked aborted, so the session can go on.
            end = ModelEnd(
                session_id=key,
                seq=state.seq + 1,
                ts=self.clock(),
                turn_id=state.turn_id,
                finish_reason="aborted",
                text=state.current.text if state.current else "",
            )
            state = apply(state, end)
            notes.append(
                ("recovered", "the last turn was interrupted when the server stopped; it is marked aborted")
            )
        if state.status != "idle":
            state = apply(
                state, StatusChanged(session_id=key, seq=state.seq + 1, ts=self.clock(), status="idle")
            )
        for code, message in notes:
            state = apply(
                state,
                Diagnostic(
                    session_id=key,
                    seq=state.seq + 1,
                    ts=self.clock(),
                    level="warning",
                    code=code,
                    message=message,
                ),
            )
        return state, False

    async def _save(self, key: str, live: LiveSession) -> None:
        state = replace(live.state, revision=live.state.revision + 1)
        try:
            await resolve(self.store.save(key, state))
        except StoreConflict as exc:
            self._diagnose(key, live, "error", "store_conflict", f"session not saved: {exc.message}")
            return
        except Exception as exc:  # the store failed: keep the in-memory state, say so, retry on the next save
            log.warning("llmsock: could not save session %s: %s", key, exc)
            message = exc.message if isinstance(exc, LlmsockError) else f"{type(exc).__name__}"
            self._diagnose(key, live, "error", "store_error", f"session not saved: {message}")
            return
        live.state = replace(live.state, revision=state.revision)
        live.saved_seq = state.seq

    def _maybe_evict(self, key: str, live: LiveSession) -> None:
        # A session nobody watches and nothing runs on lives on in the store only,
        # unless the store has not got its latest state (a failed save): then keep it here.
        unsaved = live.state.seq != live.saved_seq and live.state.seq > 0
        if live.subscribers <= 0 and not live.busy and not unsaved and self.sessions.get(key) is live:
            del self.sessions[key]

    # -- events ----------------------------------------------------------------------

    def _stamp(self, key: str, live: LiveSession) -> dict[str, Any]:
        """Return the session id, next seq and time for the session's next event."""
        return {"session_id": key, "seq": live.state.seq + 1, "ts": self.clock()}

    def _emit(self, key: str, live: LiveSession, event: SessionEvent) -> SessionEvent:
        live.state = apply(live.state, event)
        self.fanout.publish(key, event)
        return event

    def _diagnose(self, key: str, live: LiveSession, level: Level, code: str, message: str) -> None:
        self._emit(
            key,
            live,
            Diagnostic(
                **self._stamp(key, live),
                level=level,
                code=code,
                message=message,
            ),
        )

    def _set_status(self, key: str, live: LiveSession, status: str) -> None:
        self._emit(
            key,
            live,
            StatusChanged(
                **self._stamp(key, live),
                status=status,  # type: ignore[arg-type]
            ),
        )

    # -- turns ---------------------------------------------------------------------

    def _enqueue(self, key: str, live: LiveSession, prompt: SendPrompt) -> None:
        if len(live.queue) >= self.max_queue:
            raise QueueFull(f"{len(live.queue)} prompts are already waiting on this session; try again later")
        live.queue.append(prompt)
        if live.worker is None:
            live.worker = asyncio.get_running_loop().create_task(self._run_turns(key, live))
        else:
            self._diagnose(key, live, "info", "queued", f"prompt queued behind {len(live.queue)} turn(s)")

    async def _run_turns(self, key: str, live: LiveSession) -> None:
        try:
            while live.queue:
                prompt = live.queue.popleft()
                try:
                    await self._run_turn(key, live, prompt)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug must not stop the session: log it, close the turn, go on
                    log.exception("llmsock: turn failed in session %s", key)
                    if live.state.phase != "idle":
                        self._emit(
                            key,
                            live,
                            ModelError(
                                **self._stamp(key, live),
                                turn_id=live.state.turn_id,
                                code="internal_error",
                                message="internal error (see the kernel log)",
                                text=live.state.current.text if live.state.current else "",
                            ),
                        )
                        self._set_status(key, live, "idle")
        finally:
            live.worker = None
            self._maybe_evict(key, live)

    async def _run_turn(self, key: str, live: LiveSession, prompt: SendPrompt) -> None:
        turn_id = new_id("t-")
        message_id = prompt.message_id or new_id("m-")
        live.aborting = False
        live.running.set()
        self._emit(
            key,
            live,
            UserMessage(
                **self._stamp(key, live),
                turn_id=turn_id,
                text=prompt.text,
                message_id=message_id,
                options=prompt.options,
            ),
        )
        self._set_status(key, live, "generating")
        await self._save(key, live)  # the prompt survives a crash during the answer
        request = ModelRequest(messages=tuple(history(live.state)), options=prompt.options, session_id=key)
        if not live.aborting:
            self._emit(
                key,
                live,
                ModelStart(
                    **self._stamp(key, live),
                    turn_id=turn_id,
                    model=self.model.name,
                    message_id=message_id,
                ),
            )
            live.stream = asyncio.get_running_loop().create_task(self._pump(key, live, request, message_id))
            try:
                await asyncio.shield(live.stream)
            except asyncio.CancelledError:
                if not live.stream.cancelled() or not live.aborting:
                    live.stream.cancel()
                    raise
            finally:
                live.stream = None
        if live.state.phase != "idle":  # aborted (before or during the stream)
            self._emit(
                key,
                live,
                ModelEnd(
                    **self._stamp(key, live),
                    turn_id=turn_id,
                    finish_reason="aborted",
                    message_id=message_id,
                    text=live.state.current.text if live.state.current else "",
                    usage=live.state.current.usage if live.state.current else None,
                ),
            )
        live.running.set()
        self._set_status(key, live, "idle")
        self.turns_run += 1
        await self._save(key, live)

    async def _pump(self, key: str, live: LiveSession, request: ModelRequest, message_id: str) -> None:
        turn_id = live.state.turn_id
        finish = "stop"
        try:
            async for chunk in self.model.stream(request):
                if not live.running.is_set():
                    await live.running.wait()  # paused: hold the model where it is, lose nothing
                if isinstance(chunk, TextChunk):
                    if chunk.text:
                        text = chunk.text
                        self._emit(
                            key,
                            live,
                            ModelDelta(
                                **self._stamp(key, live),
                                turn_id=turn_id,
                                text=text,
                                message_id=message_id,
                            ),
                        )
                elif isinstance(chunk, UsageChunk):
                    usage = chunk
                    self._emit(
                        key,
                        live,
                        ModelUsage(
                            **self._stamp(key, live),
                            turn_id=turn_id,
                            message_id=message_id,
                            input_tokens=usage.input_tokens,
                            output_tokens=usage.output_tokens,
                        ),
                    )
                elif isinstance(chunk, FinishChunk) and chunk.reason == "length":
                    finish = "length"
        except ModelFailure as exc:
            self._model_error(key, live, message_id, exc.code, exc.message, exc.recoverable)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("llmsock: model %s failed", self.model.name)
            self._model_error(
                key, live, message_id, "model_error", f"the model raised {type(exc).__name__}", True
            )
            return
        current = live.state.current
        self._emit(
            key,
            live,
            ModelEnd(
                **self._stamp(key, live),
                turn_id=turn_id,
                message_id=message_id,
                finish_reason=finish,  # type: ignore[arg-type]
                text=current.text if current else "",
                usage=current.usage if current else None,
            ),
        )

    def _model_error(
        self, key: str, live: LiveSession, message_id: str, code: str, message: str, ok: bool
    ) -> None:
        text = live.state.current.text if live.state.current else ""
        self._emit(
            key,
            live,
            ModelError(
                **self._stamp(key, live),
                turn_id=live.state.turn_id,
                message_id=message_id,
                code=code,
                message=message,
                recoverable=ok,
                text=text,
            ),
        )

    # -- controls ------------------------------------------------------------------

    def _control(self, key: str, live: LiveSession, command: Control) -> ControlResult:
        action = command.action

        def result(ok: bool, message: str = "", **data: Any) -> ControlResult:
            return ControlResult(
                action=action,
                ok=ok,
                ts=self.clock(),
                request_id=command.request_id,
                message=message,
                data=data,
            )

        if action == "abort":
            if live.state.phase == "idle":
                return result(False, "nothing to abort: no turn is running")
            live.aborting = True
            live.running.set()
            if live.stream is not None:
                live.stream.cancel()
            return result(True, "turn aborted")
        if action == "pause":
            if live.state.phase == "idle" or not live.running.is_set():
                return result(
                    False,
                    "nothing to pause: no answer is streaming"
                    if live.state.phase == "idle"
                    else "already paused",
                )
            live.running.clear()
            self._set_status(key, live, "paused")
            return result(True, "paused")
        if action == "resume":
            if live.running.is_set():
                return result(False, "not paused")
            self._set_status(key, live, "generating")
            live.running.set()
            return result(True, "resumed")
        if action == "clear_history":
            if live.busy:
                raise InvalidRequest("cannot clear history while a turn is running; abort it first")
            self._emit(
                key,
                live,
                HistoryCleared(
                    **self._stamp(key, live),
                ),
            )
            asyncio.get_running_loop().create_task(self._save(key, live))
            return result(True, "history cleared")
        if action == "get_history":
            messages = snapshot.encode(live.state)["messages"]
            return result(True, "", messages=messages, sequence=live.state.seq)
        return result(True, "", **self.status(key))

    def status(self, key: str) -> dict[str, Any]:
        """Return what ``get_status`` reports about a session."""
        live = self.sessions[key]
        return {
            "sessionId": key,
            "status": live.state.status,
            "phase": live.state.phase,
            "sequence": live.state.seq,
            "queued": len(live.queue),
            "messages": len(live.state.messages),
            "connections": self.fanout.count(key),
            "model": self.model.name,
        }
