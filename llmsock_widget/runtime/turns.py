"""Running turns: one at a time per session, the model streamed into events, tools in between.

A turn is: echo the user message and status ``generating`` (at once, as the
prompt is taken: :func:`open_turn`), save (so the prompt survives a crash),
``start``, then model steps: each streams deltas (and maybe reasoning and tool
calls); if the model called tools, they run (results become events and go back
to the model) and the next step starts, up to ``max_steps``.  Then ``end`` (or
``error``), status ``idle``, save.  Abort cancels the task that
runs the steps and ends the turn with ``finish_reason="aborted"``, keeping the
text it reached.  A pause holds the model at its next chunk, and holds the turn's
end if the model finishes meanwhile: a pause lasts until resume or abort.

Plain-function tools run on a worker thread (:mod:`.tools`), never on the server's
loop nor on the kernel's main thread, so a slow tool neither stalls other sessions
nor waits for the user's cells; ``async def`` tools run on the server's loop.  A call
of a tool registered with ``approval=True`` first asks the session's users
(``ToolApproval``) and waits, on a future the session keeps, for the first answer
or ``approval_timeout`` (``ToolApproved``); only an approved call runs.  A tool's
result that is not plain JSON is kept in ``TurnSettings.results`` by call id; the
model reads its summary.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Mapping

from ..aio import within
from ..core.events import (
    ModelEnd,
    ModelError,
    ModelReasoning,
    ModelStart,
    ModelUsage,
    ToolApproval,
    ToolApproved,
    ToolCall,
    ToolResult,
    UserMessage,
)
from ..core.session import history, replaced_from, tool_messages
from ..errors import ClientError, InvalidRequest, ModelFailure
from ..models.base import (
    ChatModel,
    FinishChunk,
    ModelChunk,
    ModelRequest,
    ReasoningChunk,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)
from ..tools import ToolOutcome, ToolRegistry, call_tool
from ..wire.protocol import SendPrompt, well_formed
from .live import LiveSession, Refuse
from .results import Results

log = logging.getLogger("llmsock")

Save = Callable[[LiveSession], Awaitable[object]]  # what it returns (saved or not) is not a turn's concern


@dataclass(frozen=True, kw_only=True)
class TurnSettings:
    """What a turn needs from the hub: the models, the tools, how to save, what to count.

    ``model`` answers a prompt that names none; ``models`` are those set up, by name, for
    one that does (``options.model``).
    """

    model: ChatModel
    save: Save
    models: Mapping[str, ChatModel] = field(default_factory=dict)
    on_turn: Callable[[], None] = lambda: None
    tools: ToolRegistry | None = None
    max_steps: int = 8  # model calls after the first that tool results may cause
    tool_timeout: float = 30.0
    approval_timeout: float = 120.0  # seconds a call that needs approval waits for it; then denied
    results: Results | None = None  # where the live objects tools return are kept, by call id


def new_id(prefix: str = "") -> str:
    """Return a fresh random id usable as a session, turn or message id."""
    return prefix + secrets.token_urlsafe(12)


async def run_turns(live: LiveSession, settings_now: Callable[[], TurnSettings], first: SendPrompt) -> None:
    """Answer ``first`` (whose turn :func:`open_turn` has opened), then the next prompts in order.

    The next prompt is one whose turn the hub opened while the last turn was being
    saved, else the first queued one.  Each turn asks ``settings_now()`` for its
    settings, so a model chosen while prompts wait is the one that answers them.
    """
    prompt: SendPrompt | None = first
    refuse: Refuse | None = None  # how to tell the sender of a queued prompt that it was refused
    try:
        while prompt is not None:
            settings = settings_now()
            try:
                if live.active is not prompt and not _open_queued(live, prompt, settings.models, refuse):
                    prompt, refuse = _next(live)
                    continue
                await run_turn(live, settings, prompt)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop the session: log it, close the turn, go on
                log.exception("llmsock: turn failed in session %s", live.key)
                if live.state.phase != "idle":
                    _fail(live, "internal_error", "internal error (see the kernel log)", True)
                    live.set_status("idle")
                if live.active is prompt:
                    live.take(None)
            settings.on_turn()
            prompt, refuse = _next(live)
    finally:
        live.worker_done()


def _next(live: LiveSession) -> tuple[SendPrompt | None, Refuse | None]:
    """Return the prompt to answer next (one opened while the last turn was saved, else the first queued)."""
    if live.active is not None:
        return live.active, None
    if live.queue:
        waiting = live.queue.pop(0)
        return waiting.prompt, waiting.refuse
    return None, None


def _open_queued(
    live: LiveSession, prompt: SendPrompt, models: Mapping[str, ChatModel], refuse: Refuse | None
) -> bool:
    """Open the turn of a prompt that waited; return False if it was refused (its sender is told)."""
    try:
        open_turn(live, prompt, models)
    except ClientError as exc:  # what it replaces went while it waited: no turn, the transcript untouched
        live.take(None)
        if refuse is not None:
            refuse(exc)
        return False
    return True


def open_turn(live: LiveSession, prompt: SendPrompt, models: Mapping[str, ChatModel]) -> None:
    """Take ``prompt`` and open its turn now: echo it and say ``generating``.

    Nothing here awaits, so a prompt taken while its frame is handled is in its turn
    before the next frame is read: an abort, a pause or a ``clear_history`` sent right
    after it sees the turn (protocol section 9.1).  A prompt that replaces a user message
    cuts the transcript there (the echo says how many messages went, section 9.8).
    ``models`` are the models set up, by name: a prompt naming another one is refused.

    Raises:
        InvalidRequest: the message it replaces is not in the transcript, or the model it names
            is not set up (nothing was taken).
    """
    _check_model(prompt.options.get("model"), models)
    replaced = _replaced(live, prompt.replaces)
    live.take(prompt)
    message_id = prompt.message_id or new_id("m-")
    live.begin_turn(message_id)
    live.emit(
        UserMessage(
            **live.stamp(),
            turn_id=new_id("t-"),
            text=prompt.text,
            message_id=message_id,
            options=prompt.options,
            replaces=prompt.replaces,
            replaced=replaced,
        )
    )
    live.set_status("generating")


def _check_model(name: str | None, models: Mapping[str, ChatModel]) -> None:
    """Refuse a prompt whose ``options.model`` is not a model set up in this server.

    Raises:
        InvalidRequest: no model of that name is set up; the message lists those that are.
    """
    if name is not None and name not in models:
        names = ", ".join(models) or "none"
        raise InvalidRequest(
            f"model {name!r} is not set up in this kernel (set up: {names}); use %llmsock model to add it"
        )


def chosen_model(settings: TurnSettings, prompt: SendPrompt) -> ChatModel:
    """Return the model that answers ``prompt``: the one it names if set up, else the default."""
    name = prompt.options.get("model")
    return settings.models.get(name, settings.model) if name is not None else settings.model


def system_messages(options: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the system message a prompt's ``system`` option gives its model request (none if empty)."""
    system = options.get("system")
    return [{"role": "system", "content": system}] if system else []


def _replaced(live: LiveSession, replaces: str | None) -> int:
    """Return how many messages a prompt replacing user message ``replaces`` removes (0: none).

    Raises:
        InvalidRequest: no user message of the transcript has that id.
    """
    if replaces is None:
        return 0
    messages = live.state.messages
    cut = replaced_from(messages, replaces)
    if cut is None:
        raise InvalidRequest(f"message {replaces!r} is not in the transcript: it cannot be replaced")
    return len(messages) - cut


async def run_turn(live: LiveSession, settings: TurnSettings, prompt: SendPrompt) -> None:
    """Run the turn :func:`open_turn` opened for ``prompt``; return when it has ended and been saved."""
    turn_id = live.turn_id
    message_id = live.message_id
    await settings.save(live)  # the prompt survives a crash during the answer
    settings = replace(settings, model=chosen_model(settings, prompt))
    if not live.aborting:  # an abort may come at any moment once the turn is open, even before this
        model = settings.model
        live.emit(ModelStart(**live.stamp(), turn_id=turn_id, model=model.name, message_id=message_id))
        stream = live.start_stream(_steps(live, settings, prompt))
        try:
            await asyncio.shield(stream)
        except asyncio.CancelledError:
            if not (stream.cancelled() and live.aborting):  # we are being cancelled, not aborted
                stream.cancel()
                raise
        finally:
            live.stream_done()
    if live.state.phase != "idle":  # aborted, before or during the stream
        _end(live, "aborted")
    live.release()
    live.set_status("idle")
    live.take(None)  # the turn is over for everyone; the save below is bookkeeping
    await settings.save(live)


def abort(live: LiveSession) -> bool:
    """Ask the running turn to end now, marked aborted; return False if none runs."""
    return live.abort()


async def _steps(live: LiveSession, settings: TurnSettings, prompt: SendPrompt) -> None:
    """Call the model, run the tools it asks for, call it again, until it answers."""
    tools = settings.tools
    schemas = offered_schemas(tools, settings.model, prompt.options.get("tools"))
    # Earlier answers' tool calls go as tool messages only beside tool definitions: a server
    # offered no tools may refuse them (strict chat templates, some providers).
    messages = system_messages(prompt.options) + history(live.state, native_tools=bool(schemas))
    usage = [0, 0]
    for step in range(settings.max_steps + 1):
        request = ModelRequest(
            messages=tuple(messages), options=prompt.options, tools=schemas, session_id=live.key
        )
        try:
            text, calls, finish = await _stream(live, settings.model, request, usage)
        except ModelFailure as exc:
            await live.unpaused()  # a pause lasts until resume or abort: the turn's end waits for it
            _fail(live, exc.code, exc.message, exc.recoverable)
            return
        except Exception as exc:
            log.exception("llmsock: model %s failed", settings.model.name)
            await live.unpaused()
            _fail(live, "model_error", f"the model raised {type(exc).__name__}", True)
            return
        if not calls or step == settings.max_steps:
            # The model finished while paused: the turn ends only once resumed (or aborted).
            await live.unpaused()
        if not calls:
            _end(live, finish)
            return
        if step == settings.max_steps:
            for call in calls:  # announced, never run: say so in their results
                message = f"not run: the turn reached its limit of {settings.max_steps} rounds of tool calls"
                _tool_result(
                    live, call, ToolOutcome(ok=False, error={"code": "tool_error", "message": message})
                )
            live.diagnose("warning", "tool_limit", f"stopped after {settings.max_steps} rounds of tool calls")
            _end(live, "stop")
            return
        offered = {schema["function"]["name"] for schema in schemas}
        for call in calls:
            await _run_tool(live, settings, tools if call.name in offered else None, call)
        done = {call.id for call in calls}
        records = tuple(r for r in live.state.current.tools if r.id in done) if live.state.current else ()
        messages += tool_messages(records, text)


def offered_schemas(
    tools: ToolRegistry | None, model: ChatModel, choice: bool | list[str] | None
) -> tuple[dict[str, Any], ...]:
    """Return the schemas of the tools a turn offers the model.

    ``choice`` is the prompt's ``tools`` option: ``True`` every registered tool, ``False`` none,
    a list those named, ``None`` the model's own setting (``offers_tools``; a model without one
    is offered every tool).
    """
    if tools is None:
        return ()
    if choice is None:
        choice = bool(getattr(model, "offers_tools", True))
    if choice is False:
        return ()
    return tuple(tools.schemas(None if choice is True else choice))


async def _stream(
    live: LiveSession, model: ChatModel, request: ModelRequest, usage: list[int]
) -> tuple[str, list[ToolCallChunk], str]:
    """Stream one model call into events; return its text, its tool calls and why it stopped."""
    step = _Step(live, usage)
    stream = model.stream(request)
    try:
        async for chunk in stream:
            if live.held:
                await live.unpaused()  # paused: hold the model where it is, lose nothing
            step.take(chunk)
    finally:
        # Close the model's stream even when cancelled while paused (an HTTP response must not linger).
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    return step.text, step.calls, step.finish


class _Step:
    """One model call's chunks turned into session events, with what the turn needs afterwards."""

    def __init__(self, live: LiveSession, usage: list[int]) -> None:
        self.live = live
        self.usage = usage  # running totals over the turn's steps: [input, output]
        self.pieces: list[str] = []  # the step's text, joined once at the end (not once per delta)
        self.calls: list[ToolCallChunk] = []
        self.finish = "stop"

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def take(self, chunk: ModelChunk) -> None:
        live = self.live
        if isinstance(chunk, TextChunk):  # the hot path: no dicts, nothing that reads the whole state
            text = chunk.text
            if text:
                if not text.isascii():
                    text = well_formed(text)  # what the model sends must fit every wire and file
                self.pieces.append(text)
                live.emit_delta(text)
            return
        ids: dict[str, Any] = {"turn_id": live.turn_id, "message_id": live.message_id}
        if isinstance(chunk, ReasoningChunk) and chunk.text:
            live.emit(ModelReasoning(**live.stamp(), **ids, text=well_formed(chunk.text)))
        elif isinstance(chunk, ToolCallChunk):
            chunk = replace(chunk, id=well_formed(chunk.id), name=well_formed(chunk.name))
            taken = {record.id for record in live.state.current.tools} if live.state.current else set()
            if chunk.id in taken or not chunk.id:  # some providers reuse ids across steps, or send none
                chunk = replace(chunk, id=f"{chunk.id or 'call'}-{len(taken) + 1}")
            # The tool gets the arguments as written (the strict parser refuses a lone surrogate);
            # the event and the history get them in a form every wire and file can hold.
            self.calls.append(chunk)
            shown = well_formed(chunk.arguments)
            live.emit(ToolCall(**live.stamp(), **ids, call_id=chunk.id, name=chunk.name, arguments=shown))
        elif isinstance(chunk, UsageChunk):
            self.usage[0] += chunk.input_tokens
            self.usage[1] += chunk.output_tokens
            live.emit(
                ModelUsage(**live.stamp(), **ids, input_tokens=self.usage[0], output_tokens=self.usage[1])
            )
        elif isinstance(chunk, FinishChunk) and chunk.reason == "length":
            self.finish = "length"


async def _run_tool(
    live: LiveSession, settings: TurnSettings, tools: ToolRegistry | None, call: ToolCallChunk
) -> None:
    if tools is None:
        message = f"unknown tool {call.name!r}: it is not offered in this turn"
        outcome = ToolOutcome(ok=False, error={"code": "unknown_tool", "message": message})
    else:
        tool = tools.get(call.name)
        refused = await _approval(live, settings, call) if tool is not None and tool.approval else None
        if refused is not None:
            outcome = ToolOutcome(ok=False, error={"code": "denied", "message": refused})
        else:
            outcome = await call_tool(tools, call.name, call.arguments, timeout=settings.tool_timeout)
    if outcome.value is not None and settings.results is not None:
        # The object for the user; the model read its summary.
        settings.results.keep(call.id, outcome.value, session=live.key)
    _tool_result(live, call, outcome)


async def _approval(live: LiveSession, settings: TurnSettings, call: ToolCallChunk) -> str | None:
    """Ask the session's users to approve ``call`` and wait; return None if approved, else why not.

    Any client of the session may answer (:meth:`LiveSession.approve`), the first answer wins;
    no answer within ``approval_timeout`` denies.  A stop while waiting tells the decision
    (``aborted``) and lets the cancellation through.
    """
    limit = settings.approval_timeout
    ids: dict[str, Any] = {"turn_id": live.turn_id, "message_id": live.message_id, "call_id": call.id}
    decision = live.expect_approval(call.id)
    live.emit(
        ToolApproval(
            **live.stamp(),
            **ids,
            name=call.name,
            arguments=well_formed(call.arguments),
            timeout_ms=int(limit * 1000),
        )
    )
    try:
        approved = await within(asyncio.shield(decision), limit)
    except asyncio.TimeoutError:
        if not decision.done() or decision.cancelled():
            live.emit(ToolApproved(**live.stamp(), **ids, name=call.name, approved=False, reason="timeout"))
            return f"the call was not approved within {limit:g} s"
        approved = decision.result()  # answered as the time ran out: the user was told it counted
    except asyncio.CancelledError:
        live.emit(ToolApproved(**live.stamp(), **ids, name=call.name, approved=False, reason="aborted"))
        raise
    finally:
        live.forget_approval(call.id)
    live.emit(ToolApproved(**live.stamp(), **ids, name=call.name, approved=approved, reason="user"))
    return None if approved else "the user denied this call"


def _tool_result(live: LiveSession, call: ToolCallChunk, outcome: ToolOutcome) -> None:
    live.emit(
        ToolResult(
            **live.stamp(),
            turn_id=live.turn_id,
            message_id=live.message_id,
            call_id=call.id,
            name=call.name,
            ok=outcome.ok,
            result=outcome.result,
            error=outcome.error,
            duration_ms=int(outcome.duration_ms),
        )
    )


def _end(live: LiveSession, reason: str) -> None:
    current = live.state.current
    live.emit(
        ModelEnd(
            **live.stamp(),
            turn_id=live.state.turn_id,
            message_id=live.message_id,
            finish_reason=reason,  # type: ignore[arg-type]
            text=current.text if current else "",
            usage=current.usage if current else None,
        )
    )


def _fail(live: LiveSession, code: str, message: str, recoverable: bool) -> None:
    current = live.state.current
    live.emit(
        ModelError(
            **live.stamp(),
            turn_id=live.state.turn_id,
            message_id=live.message_id,
            code=code,
            message=message,
            recoverable=recoverable,
            text=current.text if current else "",
        )
    )
