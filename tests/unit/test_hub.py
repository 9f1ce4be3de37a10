"""The hub on its own event loop, without sockets: queueing, eviction, counters, error text."""

from __future__ import annotations

import asyncio
from typing import Any

from llmsock_widget.core.events import ErrorReply, Event, ModelEnd, ModelError, ModelStart
from llmsock_widget.core.session import InvalidTransition
from llmsock_widget.errors import wire_error
from llmsock_widget.models import BuiltinModel
from llmsock_widget.runtime.hub import Hub
from llmsock_widget.stores import MemoryStore
from llmsock_widget.wire.protocol import Control, SendPrompt
from tests.conftest import TIMEOUT


def make_hub(**options: Any) -> Hub:
    return Hub(store=MemoryStore(), model=BuiltinModel(tokens_per_second=None), **options)


async def until(events: list[Event], count: int, kind: type | tuple[type, ...]) -> None:
    """Wait until ``events`` holds ``count`` events of ``kind``."""

    async def poll() -> None:
        while sum(isinstance(e, kind) for e in events) < count:
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), TIMEOUT)


def test_burst_on_idle_session_counts_queue_right() -> None:
    """Two prompts at once with max_queue=1: the first runs, the second waits; no queue_full."""

    async def scenario() -> list[Event]:
        hub = make_hub(max_queue=1)
        seen: list[Event] = []
        key, detach, _ = await hub.attach("burst", seen.append)
        hub.handle(key, SendPrompt(text="one", message_id="a"), seen.append)
        hub.handle(key, SendPrompt(text="two", message_id="b"), seen.append)
        hub.handle(key, SendPrompt(text="three", message_id="c"), seen.append)  # over the cap
        await until(seen, 2, ModelEnd)
        await detach()
        return seen

    seen = asyncio.run(scenario())
    errors = [e for e in seen if isinstance(e, ErrorReply)]
    assert [e.code for e in errors] == ["queue_full"] and errors[0].request_id == "c"
    ends = [e for e in seen if isinstance(e, ModelEnd)]
    assert [e.message_id for e in ends] == ["a", "b"]
    notes = [e.message for e in seen if getattr(e, "code", None) == "queued"]
    assert notes == ["prompt queued; 1 waiting"]


def test_session_left_after_clear_history_is_evicted_once_saved() -> None:
    """A session whose last viewer leaves while its save runs is dropped from memory after the save."""

    async def scenario() -> tuple[int, bool]:
        hub = make_hub()
        seen: list[Event] = []
        key, detach, _ = await hub.attach("evict", seen.append)
        hub.handle(key, SendPrompt(text="hi"), seen.append)
        await until(seen, 1, ModelEnd)
        while hub.sessions[key].worker is not None:
            await asyncio.sleep(0)
        hub.handle(key, Control(action="clear_history"), seen.append)
        live = hub.sessions[key]
        await detach()
        await asyncio.gather(*live.tasks)
        await asyncio.sleep(0)  # the done-callbacks of the save task run on the next loop turn
        stored = hub.store.load(key)
        return len(hub.sessions), stored is not None and stored.messages == ()

    remaining, cleared_and_saved = asyncio.run(scenario())
    assert remaining == 0
    assert cleared_and_saved


def test_turn_counter_counts_each_turn() -> None:
    """turns_run grows by one per finished turn, also while more prompts wait."""

    async def scenario() -> list[int]:
        hub = make_hub()
        seen: list[Event] = []
        counts: list[int] = []
        key, detach, _ = await hub.attach("count", lambda e: (seen.append(e), counts.append(hub.turns_run)))
        hub.handle(key, SendPrompt(text="/long 50", message_id="a"), seen.append)
        hub.handle(key, SendPrompt(text="/long 50", message_id="b"), seen.append)
        await until(seen, 2, (ModelEnd, ModelError))
        first_end = next(i for i, e in enumerate(seen) if isinstance(e, ModelEnd))
        second_start = next(i for i, e in enumerate(seen) if getattr(e, "message_id", "") == "b")
        await detach()
        return [counts[first_end], counts[second_start], hub.turns_run]

    during_first, when_second_starts, total = asyncio.run(scenario())
    assert during_first == 0 and when_second_starts == 1 and total == 2


def test_internal_errors_never_carry_their_text_to_the_wire() -> None:
    """Our bugs (internal_error) are reported without their message; client errors keep theirs."""
    code, message, _ = wire_error(InvalidTransition("event seq 3 does not follow 5"))
    assert code == "internal_error" and "seq" not in message
    code, message, _ = wire_error(RuntimeError("/home/ann/.secrets"))
    assert code == "internal_error" and "secrets" not in message


def test_model_switched_while_prompts_wait_answers_them() -> None:
    """A model set while a prompt waits in the queue is the one that answers it."""

    async def scenario() -> list[str]:
        hub = make_hub()
        seen: list[Event] = []
        key, detach, _ = await hub.attach("switch", seen.append)
        hub.handle(key, SendPrompt(text="/long 200", message_id="a"), seen.append)
        hub.handle(key, SendPrompt(text="hello", message_id="b"), seen.append)
        await until(seen, 1, ModelStart)  # the first turn runs with the first model
        hub.model = BuiltinModel(tokens_per_second=None, name="second")
        await until(seen, 2, ModelEnd)
        await detach()
        return [e.model for e in seen if isinstance(e, ModelStart)]

    assert asyncio.run(scenario()) == ["builtin", "second"]
