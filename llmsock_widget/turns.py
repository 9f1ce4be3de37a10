"""Running turns: one at a time per session, the model streamed into events.

A turn is: echo the user message, status ``generating``, save (so the prompt
survives a crash), ``start``, the model's deltas and usage, then ``end`` (or
``error``), status ``idle``, save.  Abort cancels the model's task and ends the
turn with ``finish_reason="aborted"``, keeping the text it reached.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Awaitable, Callable

from .errors import ModelFailure
from .events import ModelDelta, ModelEnd, ModelError, ModelStart, ModelUsage, UserMessage
from .live import LiveSession
from .models.base import ChatModel, FinishChunk, ModelRequest, TextChunk, UsageChunk
from .protocol import SendPrompt
from .session import history

log = logging.getLogger("llmsock")

Save = Callable[[LiveSession], Awaitable[None]]
OnTurn = Callable[[], None]


def new_id(prefix: str = "") -> str:
    """Return a fresh random id usable as a session, turn or message id."""
    return prefix + secrets.token_urlsafe(12)


async def run_turns(
    live: LiveSession, model: ChatModel, save: Save, first: SendPrompt, on_turn: OnTurn
) -> None:
    """Answer ``first``, then the session's queued prompts in order, until none is left."""
    prompt: SendPrompt | None = first
    try:
        while prompt is not None:
            live.active = prompt
            try:
                await run_turn(live, model, save, prompt)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop the session: log it, close the turn, go on
                log.exception("llmsock: turn failed in session %s", live.key)
                if live.state.phase != "idle":
                    _fail(live, "internal_error", "internal error (see the kernel log)", True)
                    live.set_status("idle")
            live.active = None
            on_turn()
            prompt = live.queue.popleft() if live.queue else None
    finally:
        live.active = None
        live.worker = None


async def run_turn(live: LiveSession, model: ChatModel, save: Save, prompt: SendPrompt) -> None:
    """Run one turn for ``prompt``; return when it has ended and been saved."""
    turn_id = new_id("t-")
    live.message_id = message_id = prompt.message_id or new_id("m-")
    live.aborting = False
    live.running.set()
    live.emit(
        UserMessage(
            **live.stamp(), turn_id=turn_id, text=prompt.text, message_id=message_id, options=prompt.options
        )
    )
    live.set_status("generating")
    await save(live)  # the prompt survives a crash during the answer
    if not live.aborting:
        live.emit(ModelStart(**live.stamp(), turn_id=turn_id, model=model.name, message_id=message_id))
        request = ModelRequest(
            messages=tuple(history(live.state)), options=prompt.options, session_id=live.key
        )
        live.stream = asyncio.get_running_loop().create_task(_pump(live, model, request))
        try:
            await asyncio.shield(live.stream)
        except asyncio.CancelledError:
            if not (live.stream.cancelled() and live.aborting):  # we are being cancelled, not aborted
                live.stream.cancel()
                raise
        finally:
            live.stream = None
    if live.state.phase != "idle":  # aborted, before or during the stream
        current = live.state.current
        live.emit(
            ModelEnd(
                **live.stamp(),
                turn_id=turn_id,
                finish_reason="aborted",
                message_id=message_id,
                text=current.text if current else "",
                usage=current.usage if current else None,
            )
        )
    live.running.set()
    live.set_status("idle")
    live.active = None  # the turn is over for everyone; the save below is bookkeeping
    await save(live)


def abort(live: LiveSession) -> bool:
    """Ask the running turn to end now, marked aborted; return False if none runs."""
    if live.state.phase == "idle":
        return False
    live.aborting = True
    live.running.set()
    if live.stream is not None:
        live.stream.cancel()
    return True


async def _pump(live: LiveSession, model: ChatModel, request: ModelRequest) -> None:
    turn_id, message_id = live.state.turn_id, live.message_id
    finish = "stop"
    try:
        async for chunk in model.stream(request):
            if not live.running.is_set():
                await live.running.wait()  # paused: hold the model where it is, lose nothing
            if isinstance(chunk, TextChunk):
                if chunk.text:
                    live.emit(
                        ModelDelta(**live.stamp(), turn_id=turn_id, text=chunk.text, message_id=message_id)
                    )
            elif isinstance(chunk, UsageChunk):
                live.emit(
                    ModelUsage(
                        **live.stamp(),
                        turn_id=turn_id,
                        message_id=message_id,
                        input_tokens=chunk.input_tokens,
                        output_tokens=chunk.output_tokens,
                    )
                )
            elif isinstance(chunk, FinishChunk) and chunk.reason == "length":
                finish = "length"
    except ModelFailure as exc:
        _fail(live, exc.code, exc.message, exc.recoverable)
        return
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("llmsock: model %s failed", model.name)
        _fail(live, "model_error", f"the model raised {type(exc).__name__}", True)
        return
    current = live.state.current
    live.emit(
        ModelEnd(
            **live.stamp(),
            turn_id=turn_id,
            message_id=message_id,
            finish_reason="length" if finish == "length" else "stop",
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
