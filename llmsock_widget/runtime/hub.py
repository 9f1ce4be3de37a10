"""The coordinator on the server loop: command -> session -> model -> events -> fan-out.

The hub owns the live sessions.  It decides with the pure core (``session.apply``),
and acts through ports: a :class:`~llmsock_widget.stores.SessionStore` to load and
save, a :class:`~llmsock_widget.models.ChatModel` to answer, a
:class:`~llmsock_widget.fanout.Fanout` to deliver.  It knows nothing of Tornado,
sockets or dialects: connections subscribe with a callback and send commands.

All methods run on the server's event loop (one thread), so the hub needs no locks.
Turns of one session run one at a time, in arrival order (:mod:`.turns`); a prompt
that arrives while a turn runs waits in a bounded queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any, Callable

from ..core import snapshot
from ..core.commands import Notice
from ..core.events import (
    ControlResult,
    ErrorReply,
    Event,
    HistoryCleared,
    Level,
    ModelEnd,
    Pong,
    Reply,
    SessionEvent,
    SessionReady,
)
from ..core.session import InteractionState, Message, new_state
from ..errors import (
    ClientError,
    CorruptSnapshot,
    InvalidRequest,
    LlmsockError,
    QueueFull,
    StoreConflict,
    wire_error,
)
from ..models.base import ChatModel
from ..models.builtin import BuiltinModel
from ..stores.base import Merged, SessionStore, resolve, session_key
from ..tools import ToolRegistry
from ..wire.protocol import APPROVAL_ACTION, Approve, Command, Control, Ping, SendPrompt
from .fanout import DeliverDelta, Fanout, LocalFanout, Unsubscribe
from .live import LiveSession, Waiting
from .replay import ReplayLog
from .results import Results
from .sharing import Alone, Sharing, Submitted
from .turns import TurnSettings, new_id, open_turn, run_turns

log = logging.getLogger("llmsock")

ReplyTo = Callable[[Reply], None]

__all__ = ["Hub", "new_id", "now_ms"]


READ_ONLY = ("get_history", "get_status")  # controls any server answers from its own copy
PARKED_SESSIONS = 256  # evicted sessions whose recent events are kept for resuming
HISTORY_CACHE_SESSIONS = 16  # sessions whose encoded transcript is kept for get_history


def now_ms() -> int:
    """Return the wall clock in milliseconds (the hub's default clock)."""
    return time.time_ns() // 1_000_000  # integers only: half the cost of int(time.time() * 1000)


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
        tools: ToolRegistry | None = None,
        max_steps: int = 8,
        tool_timeout: float = 30.0,
        pause_timeout: float | None = 600.0,
        approval_timeout: float = 120.0,
        sharing: Sharing | None = None,
    ) -> None:
        self.store = store
        self.pause_timeout = pause_timeout
        # The models set up, by name: the default one and builtin always among them.  Replaced,
        # never changed in place, so a turn that took it keeps a registry that does not move.
        self.models: dict[str, ChatModel] = {} if model.name == "builtin" else {"builtin": BuiltinModel()}
        self._model = model
        self.model = model
        self.fanout: Fanout = fanout if fanout is not None else LocalFanout()
        self.clock = clock
        if max_steps < 0 or not tool_timeout > 0 or not approval_timeout > 0:
            raise ValueError("max_steps must be >= 0, tool_timeout and approval_timeout > 0")
        self.approval_timeout = approval_timeout
        # The live objects tools returned, by call id (the last 100): the user's, never the wire's.
        self.results = Results()
        self.max_queue = max_queue
        self.tools = tools
        self.max_steps = max_steps
        self.tool_timeout = tool_timeout
        self.sessions: dict[str, LiveSession] = {}
        self.epoch = new_id("e-")  # a new one each run: a client resuming from another run must reload
        # How sessions opened from now on are shared with other servers (Alone: with none).
        self.sharing: Sharing = sharing if sharing is not None else Alone(self.epoch)
        self._parked: dict[str, ReplayLog] = {}  # recent events of evicted sessions, oldest first
        self._loading: dict[str, asyncio.Future[LiveSession]] = {}
        self._saving_soon: set[str] = set()  # sessions whose save is on its way (_save_soon)
        # session -> (its transcript, that transcript encoded): see _history
        self._histories: dict[str, tuple[tuple[Message, ...], list[dict[str, Any]]]] = {}
        self.turns_run = 0

    # -- models --------------------------------------------------------------------

    @property
    def model(self) -> ChatModel:
        """The default model: it answers prompts that name none (``options.model``)."""
        return self._model

    @model.setter
    def model(self, model: ChatModel) -> None:
        # Set up under its name (replacing a model of that name), and the default from now on.
        self.models = {**self.models, model.name: model}
        self._model = model

    def model_names(self) -> list[str]:
        """Return the names of the models set up: the default first, then the others as set up."""
        return [self._model.name, *(name for name in self.models if name != self._model.name)]

    # -- connections ---------------------------------------------------------------

    async def attach(
        self,
        session_id: str | None,
        deliver: Callable[[Event], None],
        *,
        resume: tuple[str, int] | None = None,
        max_replay: int | None = None,
        delta: DeliverDelta | None = None,
    ) -> tuple[str, Unsubscribe, SessionReady]:
        """Subscribe ``deliver`` to a session (a new one if ``session_id`` is None).

        ``deliver`` first gets the :class:`SessionReady` announcement, then, if ``resume``
        (``(epoch, last seq applied)``) can be honoured (and they take at most about
        ``max_replay`` characters on the wire),
        the events the client missed, then
        the session's events as they happen, in order, with nothing between.  Returns the
        session id, an async ``detach`` to call when the connection closes, and the ready.
        ``delta``, if given, takes the session's streamed deltas in ``deliver``'s place, as
        their fields (:data:`~.fanout.DeliverDelta`): no event is made for it.

        Raises:
            InvalidSessionId: ``session_id`` is not a valid id.
            StoreError, SnapshotVersionError: the session could not be loaded.
            Whatever ``deliver`` raises for the ready or a replayed event, once it is unsubscribed.
        """
        key = new_id() if session_id is None else session_key(session_id)
        live, created = await self._get(key, fresh=session_id is None)
        if resume is not None and resume[0] == live.link.epoch and resume[1] > live.seq:
            await live.link.reach(resume[1])  # the client came from a server that was ahead of ours
        unsubscribe = await self.fanout.subscribe(key, deliver, delta)
        live.add_subscriber()
        # From here to the last replayed event nothing awaits, so no live event can slip in between.
        same_run = resume is not None and resume[0] == live.link.epoch and session_id is not None
        missed = live.missed(resume[1]) if resume is not None and same_run else None
        if missed is not None and max_replay is not None and _weight(missed) > max_replay:
            missed = None  # more than the connection can take at once: the client reloads instead
        ready = replace(
            self.ready(key, created=created),
            resumed=None if resume is None else missed is not None,
            replayed=len(missed or ()),
        )
        try:
            deliver(ready)
            for event in missed or ():
                deliver(event)
        except BaseException:
            # The connection could not take its ready or replay: it never attached, so it must
            # not stay subscribed (each failed resume would leave one more subscriber behind).
            await unsubscribe()
            live.remove_subscriber()
            self._maybe_evict(live)
            raise
        notes: list[tuple[Level, str, str]] = [
            ("warning", code, message) for code, message in live.take_notes()
        ]
        notes += _store_notes(self.store, key)
        if notes:  # what loading (and the store) found is said once somebody listens (after their ready)
            live.spawn(self._tell(live, notes), then=lambda: self._maybe_evict(live))
        return key, Attachment(self, live, unsubscribe), ready

    async def _detach(self, live: LiveSession, unsubscribe: Unsubscribe) -> None:
        """An attached connection left: unsubscribe it, and evict its session if nobody else uses it."""
        await unsubscribe()
        live.remove_subscriber()
        self._maybe_evict(live)

    def ready(self, key: str, *, created: bool = False) -> SessionReady:
        """Return the ready announcement for a connection on session ``key``."""
        state = self.sessions[key].state
        return SessionReady(
            session_id=key,
            seq=state.seq,
            status=state.status,
            ts=self.clock(),
            created=created,
            epoch=self.sessions[key].link.epoch,
        )

    def handle(self, session_id: str, command: Command, reply: ReplyTo) -> None:
        """Act on a command from a connection attached to ``session_id``; never blocks.

        Failures the peer can fix go back through ``reply`` as an ErrorReply.
        """
        request_id = getattr(command, "request_id", None) or getattr(command, "message_id", None)
        live = self.sessions.get(session_id)
        if live is None:
            reply(
                ErrorReply(
                    code="invalid_request",
                    message="not attached to a session",
                    ts=self.clock(),
                    request_id=request_id,
                    refused=command.kind,
                )
            )
            return
        if isinstance(command, Ping):
            reply(Pong(ts=self.clock(), request_id=command.request_id, data=command.data))
        elif isinstance(command, Control) and command.action in READ_ONLY:
            self._act(live, command, reply)  # answered from this server's copy of the session
        else:  # it changes the session: the server that runs the session acts on it
            live.link.submit(command, reply)

    def _act(self, live: LiveSession, command: Submitted, reply: ReplyTo) -> None:
        """Act on ``command`` here, where the session's turns run (or a read-only control)."""
        try:
            if isinstance(command, SendPrompt):
                self._enqueue(live, command, reply)
            elif isinstance(command, Control):
                reply(self._control(live, command))
            elif isinstance(command, Approve):
                reply(self._approve(live, command))
            elif isinstance(command, Notice):
                live.diagnose(command.level, command.code, command.message)  # type: ignore[arg-type]
                if not live.in_turn:  # a turn saves at its end
                    self._save_soon(live)
        except LlmsockError as exc:
            if not isinstance(exc, ClientError):
                log.exception("llmsock: command failed in session %s", live.key)
            reply(self._refusal(command, exc))

    def _refusal(self, command: Command | Notice, exc: LlmsockError) -> ErrorReply:
        """Return the error reply that refuses ``command`` for ``exc``."""
        request_id = getattr(command, "request_id", None) or getattr(command, "message_id", None)
        code, message, recoverable = wire_error(exc)
        return ErrorReply(
            code=code,
            message=message,
            ts=self.clock(),
            recoverable=recoverable,
            request_id=request_id,
            refused=command.kind,
        )

    async def close(self, timeout: float = 5.0) -> None:
        """End every running turn as aborted and save it (used when the server stops)."""
        workers = []
        for live in self.sessions.values():
            live.queue.clear()
            live.abort()
            if live.worker is not None:
                workers.append(live.worker)
        if workers:
            _, late = await asyncio.wait(workers, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        pending = [task for live in self.sessions.values() for task in live.tasks]
        await asyncio.gather(*pending, return_exceptions=True)
        await self.sharing.aclose()  # the events of the turns just ended reach the other servers

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
        notes: list[tuple[str, str]] = []
        try:
            if fresh:
                state, saved_seq, notes = new_state(key, ts=self.clock(), model=self.model.name), 0, []
            else:
                state, saved_seq, notes = await self._load(key)
            live = LiveSession(
                key=key,
                state=state,
                publish=self.fanout.publish,
                clock=self.clock,
                saved_seq=saved_seq,
                notes=notes,
            )
            parked = self._parked.pop(key, None)
            if parked:
                live.restore_recent(parked)
            # Joined before it is visible: it then holds what other servers did with it meanwhile.
            live.link = await self.sharing.join(key, _Member(self, live), self.fanout)
            live.publish = live.link.publish
            # A link that can publish a delta as its fields (not Redis, which stores events).
            live.publish_delta = getattr(live.link, "publish_delta", None)
            if live.link.runs_here and not fresh:
                self._close_cut_turn(live)
            self.sessions[key] = live
            future.set_result(live)
            return live, saved_seq == 0 and state.seq == 0
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: the caller re-raises it
            raise
        finally:
            del self._loading[key]

    async def _load(self, key: str) -> tuple[InteractionState, int, list[tuple[str, str]]]:
        """Return the stored state (repaired if a crash cut a turn), its stored seq, and notes."""
        notes: list[tuple[str, str]] = []
        try:
            state = await resolve(self.store.load(key))
        except CorruptSnapshot as exc:
            log.warning("llmsock: session %s had a corrupt snapshot (moved to %s)", key, exc.moved_to)
            kept = "set aside" if exc.moved_to else "left in place"  # a file not ours is never moved
            notes.append(("corrupt_snapshot", f"the saved session could not be read and was {kept}: {exc}"))
            state = None
        if state is not None and state.session_id != key:
            notes.append(("corrupt_snapshot", f"the stored snapshot belongs to session {state.session_id!r}"))
            # Keep its revision, so our next save may replace it.
            state = replace(new_state(key, ts=self.clock(), model=self.model.name), revision=state.revision)
            return state, 0, notes
        if state is None:
            return new_state(key, ts=self.clock(), model=self.model.name), 0, notes
        # A turn left open is closed once the session is joined: it may still run on another server.
        return state, state.seq, notes

    def _close_cut_turn(self, live: LiveSession) -> bool:
        """End, marked aborted, a turn that a server which stopped or died left open; say if one was.

        Called where the session runs: on loading it, and when this server takes it over.
        """
        state = live.state
        if live.active is not None or (state.phase == "idle" and state.status == "idle"):
            return False
        if state.phase != "idle":
            current = state.current
            live.emit(
                ModelEnd(
                    **live.stamp(),
                    turn_id=state.turn_id,
                    finish_reason="aborted",
                    text=current.text if current else "",
                    usage=current.usage if current else None,
                )
            )
            live.notes.append(
                ("recovered", "the last turn was interrupted when its server stopped; it is marked aborted")
            )
        if live.state.status != "idle":
            live.set_status("idle")
        return True

    async def _take_over(self, live: LiveSession) -> None:
        """Run a session whose last runner went away: close the turn it left open, and save."""
        # Our copy's revision is the one this server last saved: the last runner's may be newer.
        revision_of = getattr(self.store, "revision", None)
        if callable(revision_of):
            revision = await resolve(revision_of(live.key))
        else:
            stored = await resolve(self.store.load(live.key))
            revision = stored.revision if stored is not None else 0
        if revision > live.state.revision:
            live.adopt_revision(revision)
        if self._close_cut_turn(live):
            notes: list[tuple[Level, str, str]] = [
                ("warning", code, message) for code, message in live.take_notes()
            ]
            await self._tell(live, notes)

    async def _tell(self, live: LiveSession, notes: list[tuple[Level, str, str]]) -> None:
        for level, code, message in notes:
            live.link.submit(Notice(level=level, code=code, message=message), _ignore)
        if live.unsaved and not live.in_turn:
            self._save_soon(live)

    def _save_soon(self, live: LiveSession) -> None:
        """Save the session in a moment: the notices (and the like) of this loop step, in one save."""
        if live.key in self._saving_soon:
            return
        self._saving_soon.add(live.key)

        async def save() -> None:
            self._saving_soon.discard(live.key)  # what comes during the save is saved by another
            await self._save(live)

        live.spawn(save(), then=lambda: self._settle(live))

    async def _save(self, live: LiveSession) -> bool:
        """Save the session's state; return whether the store took it.

        Only the server that runs the session saves it: another one's copy may lag behind.
        """
        if not live.link.runs_here:
            return True
        async with live.save_lock:  # saves of one session never overlap, so revisions never race
            base = live.state
            state = replace(base, revision=base.revision + 1)
            try:
                stored = await resolve(self.store.save(live.key, state))
            except StoreConflict as exc:
                live.diagnose("error", "store_conflict", f"session not saved: {exc.message}")
                return False
            except Exception as exc:  # the store failed: keep the state in memory, say so, retry next save
                log.warning("llmsock: could not save session %s: %s", live.key, exc)
                message = exc.message if isinstance(exc, LlmsockError) else type(exc).__name__
                live.diagnose("error", "store_error", f"session not saved: {message}")
                return False
            live.mark_saved(state, base)
            if isinstance(stored, Merged):  # another process saves this session too: both kept
                live.diagnose("warning", "store_conflict", stored.message)
            for level, code, message in _store_notes(self.store, live.key):
                live.diagnose(level, code, message)
            return True

    def notify(self, key: str, level: Level, code: str, message: str) -> int:
        """Post a diagnostic into the open session ``key``; return how many subscribers it reached.

        Not part of the transcript.  Outside a turn the session is saved at once: the notice
        moved its sequence on, and a session with unsaved events never leaves memory (a turn
        saves at its end).  Nothing happens (0) when the session is not open.
        """
        live = self.sessions.get(key)
        if live is None:
            return 0
        live.link.submit(Notice(level=level, code=code, message=message), _ignore)
        return max(live.subscribers, 0)

    async def save_all(self) -> int:
        """Save every open session now, as after a turn; return how many were saved."""
        saved = 0
        for live in list(self.sessions.values()):
            saved += await self._save(live)
        return saved

    def _maybe_evict(self, live: LiveSession) -> None:
        # A session nobody watches and nothing runs on lives on in the store only,
        # unless the store has not got its latest state (a failed save): then keep it here.
        idle = live.worker is None and not live.tasks and not live.in_turn
        if live.subscribers <= 0 and idle and not live.unsaved and self.sessions.get(live.key) is live:
            del self.sessions[live.key]
            live.link.leave()
            # Keep its last events a while, so a client whose socket dropped as the turn ended
            # can still resume when it comes back (the state itself is in the store).
            self._parked[live.key] = live.recent
            while len(self._parked) > PARKED_SESSIONS:
                self._parked.pop(next(iter(self._parked)))

    # -- commands ------------------------------------------------------------------

    def _enqueue(self, live: LiveSession, prompt: SendPrompt, reply: ReplyTo) -> None:
        if live.active is None and not live.queue:
            # No turn is open (at most the last one is being saved): open this one before this
            # returns, so the next frame's control (an abort, a pause) finds its turn.
            try:
                open_turn(live, prompt, self.models)
            except BaseException:
                live.take(None)
                raise
            if live.worker is None:
                live.start_worker(prompt, self._work(live, prompt))
            return  # else the worker answers it once the last turn is saved
        if len(live.queue) >= self.max_queue:
            raise QueueFull(f"the queue of this session is full ({self.max_queue} prompts); try again later")
        # A prompt that replaces a message is checked when its turn starts (what it replaces may go
        # while it waits): its sender is told then if it is refused.
        live.queue.append(Waiting(prompt, lambda exc: reply(self._refusal(prompt, exc))))
        live.diagnose("info", "queued", f"prompt queued; {len(live.queue)} waiting")

    async def _work(self, live: LiveSession, first: SendPrompt) -> None:
        await run_turns(live, self._settings, first)
        self._settle(live)

    def _settle(self, live: LiveSession) -> None:
        """Nothing more to do here for now: let another server run the session, or let it go."""
        if not live.in_turn and live.worker is None:
            live.link.settled()
        self._maybe_evict(live)

    def _settings(self) -> TurnSettings:
        return TurnSettings(
            model=self.model,
            models=self.models,
            save=self._save,
            on_turn=self._count_turn,
            tools=self.tools,
            max_steps=self.max_steps,
            tool_timeout=self.tool_timeout,
            approval_timeout=self.approval_timeout,
            results=self.results,
        )

    def _count_turn(self) -> None:
        self.turns_run += 1

    def _control(self, live: LiveSession, command: Control) -> ControlResult:
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
            return (
                result(True, "turn aborted") if live.abort() else result(False, "nothing to abort: no turn")
            )
        if action == "pause":
            if not live.pause():  # the lifecycle allows a pause only while a turn runs, once
                if live.state.phase == "idle":
                    return result(False, "nothing to pause: no answer is streaming")
                ending = "nothing to pause: the turn is ending"
                return result(False, ending if live.aborting else "already paused")
            if self.pause_timeout is not None:
                # A paused answer holds the model's stream open: end it if nobody resumes it.
                turn = live.state.turn_id
                asyncio.get_running_loop().call_later(self.pause_timeout, self._pause_expired, live, turn)
            return result(True, "paused")
        if action == "resume":
            return result(True, "resumed") if live.resume() else result(False, "not paused")
        if action == "clear_history":
            self._clear(live)
            return result(True, "history cleared")
        if action == "get_history":
            # Everything a late viewer needs to catch up: the transcript, the answer streaming now
            # (or null), and the seq it is exact at; later events have a higher seq.
            messages, current = self._history(live)
            return result(
                True,
                "",
                messages=messages,
                current=current,
                sequence=live.state.seq,
                status=live.state.status,
                settings=dict(live.state.settings),  # the last prompt's: a view restores its own from it
            )
        return result(True, "", **self.status(live.key))

    def _approve(self, live: LiveSession, command: Approve) -> ControlResult:
        """Pass the user's decision to the tool call waiting for it; ok false if none waits."""
        ok = live.approve(command.call_id, command.approved)
        if ok:
            message = "approved" if command.approved else "denied"
        else:
            message = f"no tool call {command.call_id!r} is waiting for approval"
        return ControlResult(
            action=APPROVAL_ACTION,
            ok=ok,
            ts=self.clock(),
            request_id=command.request_id,
            message=message,
            data={"toolCallId": command.call_id, "approved": command.approved},
        )

    def _clear(self, live: LiveSession) -> int:
        """Clear the session's history and save it; return how many messages went.

        Raises:
            InvalidRequest: a turn is running or prompts wait.
        """
        if live.in_turn:
            raise InvalidRequest("cannot clear history while a turn is running; abort it first")
        count = len(live.state.messages)
        live.emit(HistoryCleared(**live.stamp()))
        live.spawn(self._save(live), then=lambda: self._settle(live))
        return count

    async def clear(self, session_id: str) -> int:
        """Clear session ``session_id``'s history as ``clear_history`` does; return how many messages went.

        A session that is not open is loaded for it; one with no messages is left as it is (0).
        Every connection on the session gets the ``cleared`` event.

        Raises:
            InvalidSessionId: not a valid session id.
            InvalidRequest: a turn is running or prompts wait.
            StoreError, SnapshotVersionError: the session could not be loaded.
        """
        live, _ = await self._get(session_key(session_id), fresh=False)
        try:
            if not live.link.runs_here and not live.in_turn:  # the server that runs it clears it
                live.link.submit(Control(action="clear_history"), _ignore)
                return len(live.state.messages)
            return self._clear(live) if live.state.messages or live.in_turn else 0
        finally:
            self._maybe_evict(live)  # a session loaded only for this leaves memory again (once saved)

    def _history(self, live: LiveSession) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Return the transcript and the streaming answer encoded, the transcript cached.

        While the transcript is the same tuple, the same list is returned, so the edge
        can encode it to JSON once for every request (:mod:`.historyframes`).
        """
        state = live.state
        cached = self._histories.get(live.key)
        if cached is None or cached[0] is not state.messages:
            cached = (state.messages, snapshot.encode(replace(state, current=None))["messages"])
            self._histories[live.key] = cached
            while len(self._histories) > HISTORY_CACHE_SESSIONS:
                self._histories.pop(next(iter(self._histories)))
        current = snapshot.encode(replace(state, messages=()))["current"]
        return cached[1], current

    def _pause_expired(self, live: LiveSession, turn: str | None) -> None:
        if not live.held or live.state.turn_id != turn or live.state.phase == "idle":
            return  # resumed, or another turn by now
        live.diagnose(
            "warning", "pause_timeout", f"the answer was paused for {self.pause_timeout:g} s: stopped"
        )
        live.abort()

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
            "messageCount": len(live.state.messages),  # seed 004's name
            "lastActivity": live.state.updated_at,  # the time of the session's last event (ms)
            "connections": self.fanout.count(key),
            "model": self.model.name,
            "models": self.model_names(),
        }


def _weight(events: list[SessionEvent]) -> int:
    """Return about how many characters ``events`` take on the wire (an upper-bound estimate)."""
    total = 0
    for event in events:
        body = getattr(event, "text", "") or ""
        extra = getattr(event, "result", None) or getattr(event, "arguments", "") or ""
        total += 300 + len(body) + len(str(extra))
    return total


def _store_notes(store: SessionStore, key: str) -> list[tuple[Level, str, str]]:
    """Return what the store has to tell the session's chat (NotebookStore.take_notes: its size cap)."""
    take = getattr(store, "take_notes", None)
    return [(note.level, note.code, note.message) for note in take(key)] if callable(take) else []


def _ignore(reply: Reply) -> None:
    """The reply to a command of the server's own (a notice): nobody waits for it."""


class _Member:
    """One open session as its link sees it (:class:`~.sharing.Member`)."""

    __slots__ = ("_hub", "_live")

    def __init__(self, hub: Hub, live: LiveSession) -> None:
        self._hub = hub
        self._live = live

    @property
    def seq(self) -> int:
        return self._live.seq

    @property
    def turn_open(self) -> bool:
        return self._live.state.phase != "idle"

    def remember(self, events: list[SessionEvent]) -> None:
        kept = ReplayLog()
        for event in events:
            kept.append(event)
        self._live.restore_recent(kept)

    def recent_after(self, seq: int) -> list[SessionEvent]:
        recent = self._live.recent
        return recent.after(max(seq, recent.first_seq - 1)) if recent else []

    def follow(self, event: SessionEvent) -> None:
        live = self._live
        live.follow(event)
        if live.state.phase == "idle" and live.subscribers <= 0:
            self._hub._maybe_evict(live)

    def act(self, command: Submitted, reply: ReplyTo) -> None:
        self._hub._act(self._live, command, reply)

    async def take_over(self) -> None:
        await self._hub._take_over(self._live)

    def busy(self) -> bool:
        live = self._live
        return live.worker is not None or bool(live.queue) or live.active is not None


class Attachment:
    """A connection's hold on its session: awaiting it detaches (the ``detach`` of :meth:`Hub.attach`).

    An object with three slots rather than a closure, as the fan-out's :class:`~.fanout.Subscription`:
    an idle connection keeps it for as long as it is open.
    """

    __slots__ = ("_hub", "_live", "_unsubscribe")

    def __init__(self, hub: Hub, live: LiveSession, unsubscribe: Unsubscribe) -> None:
        self._hub = hub
        self._live = live
        self._unsubscribe = unsubscribe

    async def __call__(self) -> None:
        await self._hub._detach(self._live, self._unsubscribe)
