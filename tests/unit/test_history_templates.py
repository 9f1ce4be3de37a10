"""history() gives what strict chat templates (Gemma's, Mistral's) accept, whatever became of the turns.

The rules, as llama.cpp's Jinja templates enforce them: after an optional first system message
the roles alternate user, assistant, user, ...; an assistant message with ``tool_calls`` is
followed by one ``tool`` message per call, in order, then by an assistant message; every
``content`` is a string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from llmsock_widget.core.events import (
    HistoryCleared,
    ModelDelta,
    ModelEnd,
    ModelError,
    ModelStart,
    ToolCall,
    ToolResult,
    UserMessage,
)
from llmsock_widget.core.session import InteractionState, Message, ToolRecord, apply, history, new_state
from tests.fakeopenai import gemma_refusal

SID = "s1"


def template_problems(messages: list[dict[str, Any]]) -> list[str]:
    """Return every rule of strict chat templates that ``messages`` break (none: accepted)."""
    problems: list[str] = []
    body = messages[1:] if messages and messages[0].get("role") == "system" else messages
    expect = "user"  # what may come next: "user", "assistant", or "tool" (after tool calls)
    pending: list[str] = []  # the ids of the calls still waiting for their tool message
    for index, message in enumerate(body):
        role, content = message.get("role"), message.get("content")
        if not isinstance(content, str):
            problems.append(f"message {index} ({role}) has content {content!r}, not a string")
        if role == "system":
            problems.append(f"a system message at {index}, not first")
        elif pending:
            if role != "tool" or message.get("tool_call_id") != pending[0]:
                problems.append(f"message {index} is {role}, not the tool message of call {pending[0]}")
            else:
                pending.pop(0)
                expect = "tool" if pending else "assistant"
        elif role == "tool":
            problems.append(f"a tool message at {index} answers no call")
        elif role != expect and not (expect == "tool" and role == "assistant"):
            problems.append(f"message {index} is {role} where {expect} must come")
        elif role == "user":
            expect = "assistant"
        elif message.get("tool_calls"):
            pending = [call["id"] for call in message["tool_calls"]]
            expect = "tool"
        else:
            expect = "user"
    if pending:
        problems.append(f"calls {pending} have no tool message")
    if expect == "tool":
        problems.append("the last tool message is not followed by an assistant message")
    return problems


# -- sessions built through the reducer, turn by turn -----------------------------------------


@dataclass(frozen=True)
class Turn:
    """What becomes of one prompt."""

    start: bool  # the model started (else the turn ended before it)
    texts: tuple[str, ...]  # deltas before the tools
    tools: tuple[str, ...]  # the outcome of each call: "ok", "fail" or "running"
    after: tuple[str, ...]  # deltas after the tools
    end: str  # "stop", "length", "aborted" or "error"


class Builder:
    """Apply events to a session the way the turn runner does."""

    def __init__(self) -> None:
        self.state: InteractionState = new_state(SID, ts=1)
        self.turns = 0

    def emit(self, cls: type, **fields: Any) -> None:
        fields.setdefault("turn_id", self.state.turn_id)
        self.state = apply(
            self.state, cls(session_id=SID, seq=self.state.seq + 1, ts=self.state.seq + 2, **fields)
        )

    def prompt(self, text: str) -> None:
        self.turns += 1
        self.emit(UserMessage, turn_id=f"t{self.turns}", text=text, message_id=f"m{self.turns}")

    def turn(self, turn: Turn) -> None:
        self.prompt(f"prompt {self.turns + 1}")
        if turn.start:
            self.emit(ModelStart, model="m")
            for piece in turn.texts:
                self.emit(ModelDelta, text=piece)
            for n, outcome in enumerate(turn.tools):
                call_id = f"c{self.turns}-{n}"
                self.emit(ToolCall, call_id=call_id, name="calculate", arguments='{"expression": "1+1"}')
                if outcome != "running":
                    error = None if outcome == "ok" else {"code": "tool_error", "message": "boom"}
                    self.emit(
                        ToolResult,
                        call_id=call_id,
                        name="calculate",
                        ok=outcome == "ok",
                        result=2,
                        error=error,
                    )
            for piece in turn.after:
                self.emit(ModelDelta, text=piece)
        text = self.state.current.text if self.state.current else ""
        if turn.end == "error":
            self.emit(
                ModelError, code="connection_error", message="could not connect to 127.0.0.1:9", text=text
            )
        else:
            self.emit(ModelEnd, finish_reason=turn.end, text=text)

    def clear(self) -> None:
        self.emit(HistoryCleared, turn_id=None)


pieces = st.lists(st.sampled_from(["", "Hel", "lo", " ", "\n"]), max_size=3).map(tuple)
turns = st.builds(
    Turn,
    start=st.booleans(),
    texts=pieces,
    tools=st.lists(st.sampled_from(["ok", "fail", "running"]), max_size=3).map(tuple),
    after=pieces,
    end=st.sampled_from(["stop", "length", "aborted", "error"]),
).filter(lambda t: t.start or not (t.texts or t.tools or t.after))
# A tool still running when the answer ended was cut by an abort or a failure, never a finish.
turns = turns.filter(lambda t: "running" not in t.tools or t.end in ("aborted", "error"))
sessions = st.lists(st.one_of(turns, st.just("clear")), max_size=8)


def build(plan: list[Turn | str]) -> Builder:
    builder = Builder()
    for item in plan:
        if isinstance(item, Turn):
            builder.turn(item)
        else:
            builder.clear()
    return builder


@settings(max_examples=200, deadline=None)
@given(sessions)
def test_every_session_gives_a_history_strict_templates_accept(plan: list[Turn | str]) -> None:
    """After any mix of answered, stopped, failed, cut and tool-calling turns, and clears, the next
    prompt's history obeys every template rule and keeps one answer per prompt."""
    builder = build(plan)
    builder.prompt("next")
    sent = history(builder.state)
    assert template_problems(sent) == []
    assert sent[-1] == {"role": "user", "content": "next"}
    prompts = [m for m in builder.state.messages if m.role == "user"]
    assert [m["content"] for m in sent if m["role"] == "user"] == [m.text for m in prompts]
    if not any(isinstance(t, Turn) and t.tools for t in plan):
        assert gemma_refusal(sent) is None  # Gemma's own rule, which knows no tools


@settings(max_examples=100, deadline=None)
@given(sessions)
def test_an_idle_session_ends_with_an_answer(plan: list[Turn | str]) -> None:
    """Between turns the history is whole turns: it ends with an assistant message (or is empty)."""
    sent = history(build(plan).state)
    assert template_problems(sent) == []
    assert not sent or (sent[-1]["role"] == "assistant" and "tool_calls" not in sent[-1])


# -- any transcript at all (a merged or cut snapshot) -----------------------------------------

records = st.builds(
    ToolRecord,
    id=st.sampled_from(["a", "b", "c"]),
    name=st.just("t"),
    arguments=st.just("{}"),
    status=st.sampled_from(["complete", "error"]),
    result=st.one_of(st.none(), st.integers(), st.text(max_size=3)),
)
transcript_messages = st.builds(
    Message,
    id=st.just("x"),
    role=st.sampled_from(["user", "assistant"]),
    text=st.sampled_from(["", "hi", " "]),
    turn_id=st.just("t"),
    ts=st.just(0),
    status=st.sampled_from(["complete", "aborted", "error", "length"]),
    error=st.one_of(st.none(), st.just({"code": "timeout", "message": "sent nothing for 8 seconds"})),
    tools=st.lists(records, max_size=2, unique_by=lambda r: r.id).map(tuple),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(transcript_messages, max_size=10))
def test_any_transcript_gives_a_history_strict_templates_accept(messages: list[Message]) -> None:
    """Even prompts in a row, or an answer with no prompt before it, give an alternating history."""
    state = InteractionState(session_id=SID, messages=tuple(messages))
    assert template_problems(history(state)) == []


# -- what the model is told about an answer without text --------------------------------------


def test_a_failed_turn_keeps_the_roles_alternating_and_says_why() -> None:
    """A connection error before the first token: the next prompt follows a note naming the error."""
    builder = Builder()
    builder.turn(Turn(start=False, texts=(), tools=(), after=(), end="error"))
    builder.prompt("again")
    assert history(builder.state) == [
        {"role": "user", "content": "prompt 1"},
        {"role": "assistant", "content": "(no answer: could not connect to 127.0.0.1:9)"},
        {"role": "user", "content": "again"},
    ]


def test_a_stop_before_the_first_token_keeps_the_roles_alternating() -> None:
    """A Stop before any text: the answer is a note that it was stopped, not left out."""
    builder = Builder()
    builder.turn(Turn(start=True, texts=(), tools=(), after=(), end="aborted"))
    builder.prompt("again")
    assert history(builder.state)[1] == {"role": "assistant", "content": "(no answer: it was stopped)"}
    assert builder.state.messages[1].status == "aborted"  # the transcript says "(stopped)"


def test_an_empty_answer_at_the_token_limit_says_so() -> None:
    """finish_reason "length" with no text: the note names the token limit."""
    builder = Builder()
    builder.turn(Turn(start=True, texts=(), tools=(), after=(), end="length"))
    assert history(builder.state)[-1] == {
        "role": "assistant",
        "content": "(no answer: the model reached its token limit)",
    }


def test_partial_text_is_kept_as_the_user_saw_it() -> None:
    """A stopped or failed answer with text is given with that text, no note added."""
    builder = Builder()
    builder.turn(Turn(start=True, texts=("Once", " upon"), tools=(), after=(), end="aborted"))
    builder.turn(Turn(start=True, texts=("Half",), tools=(), after=(), end="error"))
    assert [m["content"] for m in history(builder.state) if m["role"] == "assistant"] == ["Once upon", "Half"]


def test_tool_calls_are_followed_by_their_results_then_an_answer() -> None:
    """An answer stopped while its tool ran: calls, results (the stopped one as an error), a note."""
    builder = Builder()
    builder.turn(Turn(start=True, texts=(), tools=("ok", "running"), after=(), end="aborted"))
    sent = history(builder.state)
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "assistant"]
    assert sent[1]["content"] == "" and [c["id"] for c in sent[1]["tool_calls"]] == ["c1-0", "c1-1"]
    assert sent[2] == {"role": "tool", "tool_call_id": "c1-0", "content": "2"}
    assert '"aborted"' in sent[3]["content"]
    assert sent[4] == {"role": "assistant", "content": "(no answer: it was stopped)"}


def test_prompts_in_a_row_get_a_note_between_them() -> None:
    """A prompt with no recorded answer (a merged or repaired snapshot) is followed by a note."""
    prompts = tuple(Message(id=f"m{i}", role="user", text=f"p{i}", turn_id=f"t{i}", ts=i) for i in (1, 2))
    state = InteractionState(session_id=SID, messages=prompts)
    assert history(state) == [
        {"role": "user", "content": "p1"},
        {"role": "assistant", "content": "(no answer)"},
        {"role": "user", "content": "p2"},
    ]


def test_the_checker_refuses_what_the_old_history_sent() -> None:
    """The rules catch two prompts in a row, a None content, and a tool call left unanswered."""
    user = {"role": "user", "content": "a"}
    assert template_problems([user, user])
    assert template_problems([user, {"role": "assistant", "content": None}])
    calls = [{"id": "c", "type": "function", "function": {"name": "t", "arguments": "{}"}}]
    assert template_problems([user, {"role": "assistant", "content": "", "tool_calls": calls}, user])
    assert (
        gemma_refusal([user, user]) == "Conversation roles must alternate user/assistant/user/assistant/..."
    )


# -- a request that offers no tools: earlier tool calls said in words --------------------------


@settings(max_examples=200, deadline=None)
@given(sessions)
def test_without_tools_every_session_gives_what_gemma_accepts(plan: list[Turn | str]) -> None:
    """Offered no tools, the history has no tool messages at all, so a template that knows no tools
    (Gemma's) accepts it whatever the earlier turns called, and the calls are not forgotten."""
    builder = build(plan)
    builder.prompt("next")
    sent = history(builder.state, native_tools=False)
    assert gemma_refusal(sent) is None and template_problems(sent) == []
    assert all(set(m) == {"role", "content"} for m in sent)
    called = sum(len(m.tools) for m in builder.state.messages)
    assert sum(m["content"].count("calculate(") for m in sent if m["role"] == "assistant") == called


def test_without_tools_a_call_and_its_result_become_words_before_the_answer() -> None:
    """A tool round trip, then a model offered no tools: one assistant message says the call,
    its result and the answer; a failed call says why it failed."""
    builder = Builder()
    builder.turn(Turn(start=True, texts=(), tools=("ok", "fail"), after=("It is 2.",), end="stop"))
    builder.prompt("and now?")
    assert history(builder.state, native_tools=False) == [
        {"role": "user", "content": "prompt 1"},
        {
            "role": "assistant",
            "content": '(tool calls: calculate({"expression": "1+1"}) returned 2; '
            'calculate({"expression": "1+1"}) failed: boom)\n\nIt is 2.',
        },
        {"role": "user", "content": "and now?"},
    ]
