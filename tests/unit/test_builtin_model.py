"""Tests for llmsock_widget.models.builtin: the offline, deterministic BuiltinModel."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
from typing import Any

import pytest

from llmsock_widget.errors import ModelFailure
from llmsock_widget.models import (
    BuiltinModel,
    ChatModel,
    FinishChunk,
    ModelChunk,
    ModelRequest,
    TextChunk,
    UsageChunk,
    builtin,
)
from tests.conftest import TIMEOUT

# Long enough for an unpaced reply to reach its hold many times over; only used to show it stays held.
HELD = 0.05


def request(*prompts: str, **options: Any) -> ModelRequest:
    """Return a request whose user turns are ``prompts``, with a short assistant answer between them."""
    messages: list[dict[str, str]] = []
    for index, prompt in enumerate(prompts):
        if index:
            messages.append({"role": "assistant", "content": f"answer {index}"})
        messages.append({"role": "user", "content": prompt})
    return ModelRequest(messages=tuple(messages), options=options)


async def gather(model: BuiltinModel, req: ModelRequest) -> list[ModelChunk]:
    """Return every chunk the model streams for ``req``."""
    return [chunk async for chunk in model.stream(req)]


def collect(req: ModelRequest, **settings: Any) -> list[ModelChunk]:
    """Return every chunk an unpaced BuiltinModel streams for ``req``."""
    settings.setdefault("tokens_per_second", None)
    return asyncio.run(gather(BuiltinModel(**settings), req))


def texts(chunks: list[ModelChunk]) -> list[str]:
    """Return the text of the TextChunks in ``chunks``."""
    return [chunk.text for chunk in chunks if isinstance(chunk, TextChunk)]


def tail(chunks: list[ModelChunk]) -> list[ModelChunk]:
    """Return the chunks after the text."""
    return [chunk for chunk in chunks if not isinstance(chunk, TextChunk)]


def test_is_a_chat_model_named_builtin() -> None:
    """BuiltinModel satisfies the ChatModel protocol and carries its name."""
    model = BuiltinModel()
    assert isinstance(model, ChatModel)
    assert model.name == "builtin"
    assert BuiltinModel(name="demo").name == "demo"


@pytest.mark.parametrize("settings", [{"tokens_per_second": -1.0}, {"default_tokens": -1}])
def test_rejects_negative_settings(settings: dict[str, Any]) -> None:
    """A negative pace or default length is refused at construction."""
    with pytest.raises(ValueError):
        BuiltinModel(**settings)


def test_same_request_same_reply() -> None:
    """Two runs of the same request, on separate models, stream identical chunks."""
    req = request("What is a websocket?", "And a kernel?")
    assert collect(req) == collect(req)


def test_different_prompts_get_different_filler() -> None:
    """The filler is seeded by the prompt, so different prompts read differently after the quote."""
    first = "".join(texts(collect(request("apples")))).split("\n\n", 1)[1]
    second = "".join(texts(collect(request("oranges")))).split("\n\n", 1)[1]
    assert first != second


def test_first_turn_quotes_the_prompt() -> None:
    """The first reply quotes the prompt and says it is the first turn."""
    reply = "".join(texts(collect(request("Hello there, model"))))
    assert reply.startswith('You said: "Hello there, model". This is the first turn')


def test_later_turn_mentions_turn_number_and_first_prompt() -> None:
    """A third-turn reply quotes the prompt, names turn 3 and recalls the first prompt."""
    reply = "".join(texts(collect(request("Tell me about sockets", "go on", "and the widget?"))))
    assert 'You said: "and the widget?"' in reply
    assert "turn 3" in reply
    assert 'earlier you asked "Tell me about sockets"' in reply


def test_long_prompt_is_shortened_in_the_quote() -> None:
    """A long, multi-line prompt is quoted on one line and cut to about 60 characters."""
    prompt = "word " * 40 + "\nsecond line"
    reply = "".join(texts(collect(request(prompt))))
    quoted = re.match(r'You said: "([^"]*)"', reply)
    assert quoted is not None
    assert len(quoted.group(1)) <= 60
    assert quoted.group(1).endswith("…")
    assert "\n" not in quoted.group(1)


def test_tokens_are_words_or_punctuation() -> None:
    """Each token is a word with its leading whitespace or one punctuation mark; the first has no space."""
    tokens = texts(collect(request("Is this prose?", "Yes, it's prose.")))
    assert not tokens[0][0].isspace()
    assert all(re.fullmatch(r"\s*(\w+('\w+)*|[^\w\s])", token) for token in tokens)


def test_natural_length_is_about_default_tokens() -> None:
    """Without maxTokens the reply ends at a sentence just past default_tokens."""
    tokens = texts(collect(request("hi"), default_tokens=80))
    assert 80 <= len(tokens) < 80 + 30
    assert tokens[-1] == "."


def test_usage_counts_input_words_and_output_tokens() -> None:
    """Usage counts the words of all messages in and the text tokens out, after the text."""
    chunks = collect(request("one two three", "four five"))  # plus "answer 1" between them
    assert tail(chunks) == [UsageChunk(input_tokens=7, output_tokens=len(texts(chunks)))]
    assert isinstance(chunks[-1], UsageChunk)


def test_max_tokens_cuts_exactly_and_finishes_with_length() -> None:
    """maxTokens caps the text tokens exactly and a cut reply ends with FinishChunk("length")."""
    natural = texts(collect(request("hello")))
    chunks = collect(request("hello", maxTokens=7))
    assert texts(chunks) == natural[:7]
    assert tail(chunks) == [UsageChunk(input_tokens=1, output_tokens=7), FinishChunk(reason="length")]


def test_max_tokens_not_reached_has_no_finish() -> None:
    """A reply exactly as long as maxTokens, or shorter, ends without a FinishChunk."""
    natural = len(texts(collect(request("hello"))))
    for cap in (natural, natural + 1):
        chunks = collect(request("hello", maxTokens=cap))
        assert len(texts(chunks)) == natural
        assert not any(isinstance(chunk, FinishChunk) for chunk in chunks)


def test_echo_reproduces_text_exactly() -> None:
    """/echo streams its text, later lines and HTML included, so the tokens join to it exactly."""
    payload = "# Title\n\n<script>alert(1)</script>\n  indented  **bold** `code`\n\ttab end \n"
    chunks = collect(request("/echo " + payload))
    tokens = texts(chunks)
    assert "".join(tokens) == payload
    assert len(tokens) > 1
    assert all(tokens)
    assert tail(chunks) == [
        UsageChunk(input_tokens=len(("/echo " + payload).split()), output_tokens=len(tokens))
    ]


def test_echo_respects_max_tokens() -> None:
    """An /echo longer than maxTokens is cut and finishes with "length"."""
    chunks = collect(request("/echo a b c d", maxTokens=2))
    assert texts(chunks) == ["a", " b"]
    assert chunks[-1] == FinishChunk(reason="length")


def test_long_gives_exactly_n_tokens() -> None:
    """/long 5000 streams exactly 5000 tokens and ends without a FinishChunk."""
    chunks = collect(request("/long 5000"))
    assert len(texts(chunks)) == 5000
    assert tail(chunks) == [UsageChunk(input_tokens=2, output_tokens=5000)]


def test_long_is_capped_by_max_tokens() -> None:
    """/long is still capped by maxTokens."""
    chunks = collect(request("/long 500", maxTokens=10))
    assert len(texts(chunks)) == 10
    assert chunks[-1] == FinishChunk(reason="length")


def test_error_fails_after_n_tokens() -> None:
    """/error 3 streams three tokens, then raises ModelFailure with code model_error."""
    received: list[ModelChunk] = []

    async def run() -> None:
        async for chunk in BuiltinModel(tokens_per_second=None).stream(request("/error 3")):
            received.append(chunk)

    with pytest.raises(ModelFailure) as failure:
        asyncio.run(run())
    assert failure.value.code == "model_error"
    assert "after 3 tokens" in failure.value.message
    assert len(received) == 3
    assert all(isinstance(chunk, TextChunk) for chunk in received)


def test_error_cut_by_max_tokens_ends_with_length() -> None:
    """/error whose tokens exceed maxTokens ends by length before it can fail."""
    chunks = collect(request("/error 5", maxTokens=2))
    assert len(texts(chunks)) == 2
    assert chunks[-1] == FinishChunk(reason="length")


def test_hold_streams_n_tokens_then_waits_until_cancelled() -> None:
    """/hold 2 streams two tokens, then stays held until its task is cancelled, leaving nothing behind."""

    async def run() -> None:
        stream = BuiltinModel(tokens_per_second=None).stream(request("/hold 2"))
        received: list[ModelChunk] = []

        async def consume() -> None:
            async for chunk in stream:
                received.append(chunk)

        task = asyncio.create_task(consume())
        # The timeout only proves the hold: unpaced, the task reaches it before any timer can fire.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(task, HELD)  # cancels the task on timeout
        assert task.cancelled()
        assert len(received) == 2
        assert all(isinstance(chunk, TextChunk) for chunk in received)
        with pytest.raises(StopAsyncIteration):  # the generator has finished, not just paused
            await anext(stream)
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(run())


def test_cancel_mid_stream_stops_at_once() -> None:
    """Cancelling the task iterating a paced stream ends the generator while it waits for a token."""

    async def run() -> None:
        stream = BuiltinModel(tokens_per_second=1.0).stream(request("/long 100"))
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in stream:
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), TIMEOUT)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(run())


def test_pace_spaces_tokens_from_the_start() -> None:
    """At 200 tokens per second, 20 tokens take at least 19/200 s of loop time."""

    async def run() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        chunks = await gather(BuiltinModel(tokens_per_second=200.0), request("/long 20"))
        assert len(texts(chunks)) == 20
        return loop.time() - start

    assert asyncio.run(run()) >= 0.09


def test_slow_overrides_the_pace_and_answers_the_rest() -> None:
    """/slow paces an unpaced model and the rest of the prompt, directive or not, is answered."""

    async def run() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        chunks = await gather(
            BuiltinModel(tokens_per_second=None), request("/slow 200 /echo " + "w " * 19 + "w")
        )
        assert "".join(texts(chunks)) == "w " * 19 + "w"
        return loop.time() - start

    assert asyncio.run(run()) >= 0.09
    reply = "".join(texts(collect(request("/slow 0 how are you?"))))
    assert reply.startswith('You said: "how are you?"')


def test_unlimited_pace_streams_many_tokens_and_shares_the_loop() -> None:
    """Unpaced, 10,000 tokens stream to the end and other tasks on the loop still get turns."""

    async def run() -> tuple[int, int]:
        turns = 0

        async def ticker() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        # This task does not yield before or after gather(), so every ticker turn is one the stream gave.
        ticking = asyncio.create_task(ticker())
        chunks = await gather(BuiltinModel(tokens_per_second=None), request("/long 10000"))
        ticking.cancel()
        return len(texts(chunks)), turns

    count, turns = asyncio.run(run())
    assert count == 10_000
    assert turns > 1


def test_markdown_demo_reply() -> None:
    """/markdown streams a heading, a list, bold, inline code and a fenced python block."""
    reply = "".join(texts(collect(request("/markdown"))))
    assert reply.startswith("# ")
    assert "\n- " in reply
    assert re.search(r"\*\*\w+\*\*", reply)
    assert re.search(r"[^`]`[^`\n]+`[^`]", reply)
    assert "```python\n" in reply and reply.count("```") == 2


@pytest.mark.parametrize(
    "prompt", ["/frobnicate now", "/long lots", "/long 2000000", "/slow fast hi", "/hold on"]
)
def test_unknown_or_malformed_directive_is_a_normal_prompt(prompt: str) -> None:
    """Unknown directives and directives with a bad count or pace get the normal quoted reply."""
    chunks = collect(request(prompt))
    assert "".join(texts(chunks)).startswith(f'You said: "{prompt}"')
    assert not any(isinstance(chunk, FinishChunk) for chunk in chunks)


def test_lone_surrogate_prompt_is_answered() -> None:
    """A prompt holding a lone surrogate (possible from JSON) still gets a deterministic reply."""
    req = request("bad \ud800 text")
    assert collect(req) == collect(req)


@pytest.mark.parametrize("shape", ["table", "code", "list", "unbroken"])
def test_shape_streams_n_tokens_of_its_markdown(shape: str) -> None:
    """/shape <shape> <n> streams exactly n tokens, each one word, of Markdown of that shape."""
    chunks = collect(request(f"/shape {shape} 3000"))
    tokens = texts(chunks)
    assert len(tokens) == 3000
    assert all(token.strip() for token in tokens)
    assert tail(chunks) == [UsageChunk(input_tokens=3, output_tokens=3000)]
    lines = "".join(tokens).split("\n")
    if shape == "table":
        assert lines[:2] == ["| n | word | square |", "|---|---|---|"]
        assert lines[2:5] == ["| 0 | w0 | 0 |", "| 1 | w1 | 1 |", "| 2 | w2 | 4 |"]
    elif shape == "code":
        assert lines[:3] == ["Here is the code:", "", "```python"]
        assert lines[4] == "value_1 = compute(value_0, 1)"
    elif shape == "list":
        depths = [(len(line) - len(line.lstrip())) // 2 for line in lines]
        assert depths[:17] == [0, 1, 2, 3, 4, 5, 6, 7, 7, 6, 5, 4, 3, 2, 1, 0, 0]
        assert all(line.lstrip().startswith("- item") for line in lines)
    else:
        words = "".join(tokens).split(" ")
        assert all(len(word) == 90 for word in words)


def test_shape_is_lazy_up_to_a_million_tokens() -> None:
    """/shape with a million tokens is allowed and cut by maxTokens like any reply."""
    chunks = collect(request("/shape table 1000000", maxTokens=50))
    assert len(texts(chunks)) == 50
    assert chunks[-1] == FinishChunk(reason="length")


@pytest.mark.parametrize(
    "prompt", ["/shape", "/shape table", "/shape circle 10", "/shape table 1x", "/shape table 5 6"]
)
def test_a_malformed_shape_is_a_normal_prompt(prompt: str) -> None:
    """An unknown shape, or a missing or bad count, gets the normal reply that quotes the prompt."""
    assert "".join(texts(collect(request(prompt)))).startswith(f'You said: "{prompt}"')


def test_every_sentence_is_tokenized_from_its_parts_as_the_tokenizer_splits_it_whole() -> None:
    parts = itertools.product(
        enumerate(builtin._SUBJECTS),
        enumerate(builtin._VERBS),
        enumerate(builtin._OBJECTS),
        enumerate(builtin._TAILS),
    )
    checked = 0
    for (s, subject), (v, verb), (o, obj), (t, tail) in parts:
        sentence = f"{subject} {verb} {obj}{tail}."
        rest = builtin._VERB_CHUNKS[v] + builtin._OBJECT_CHUNKS[o] + builtin._TAIL_CHUNKS[t]
        assert builtin._tokenize("\n\n" + sentence) == texts(builtin._PARAGRAPH_SUBJECT_CHUNKS[s] + rest)
        assert builtin._tokenize(" " + sentence) == texts(builtin._SUBJECT_CHUNKS[s] + rest)
        checked += 1
    assert checked == 12 * 9 * 10 * 8


def sentence(rng: random.Random) -> str:
    """Return one filler sentence as the builtin model draws it, written whole."""

    def pick(choices: tuple[str, ...]) -> str:
        return choices[int(rng.random() * len(choices))]

    parts = (pick(builtin._SUBJECTS), pick(builtin._VERBS), pick(builtin._OBJECTS))
    return " ".join(parts) + pick(builtin._TAILS) + "."


@pytest.mark.parametrize("prompt", ["/long 3000", "hello", "a\nb", "é" * 80])
def test_a_reply_is_its_introduction_and_sentences_as_drawn_and_tokenized_whole(prompt: str) -> None:
    conversation = builtin._read(request(prompt).messages)
    rng = random.Random(builtin._seed(f"{conversation.turn}\n{prompt}"))
    whole = [builtin._intro(prompt, conversation)] + [
        ("\n\n" if index % builtin._SENTENCES_PER_PARAGRAPH == 0 else " ") + sentence(rng)
        for index in range(300)
    ]
    expected = [token for piece in whole for token in builtin._tokenize(piece)]
    got = list(
        itertools.islice(
            itertools.chain.from_iterable(builtin._piece_chunks(prompt, conversation)), len(expected)
        )
    )
    assert texts(got) == expected
