"""The body reader's pure parts: what arrived together is joined, and a fast stream yields its loop."""

from __future__ import annotations

from llmsock_widget.models.base import FinishChunk, ReasoningChunk, TextChunk, ToolCallChunk, UsageChunk
from llmsock_widget.models.openai_body import YIELD_EVERY, Turn, merged


def test_runs_of_text_and_of_reasoning_are_joined_in_place() -> None:
    call = ToolCallChunk(id="c", name="t", arguments="{}")
    batch = [
        ReasoningChunk(text="Two "),
        ReasoningChunk(text="and two."),
        TextChunk(text="Fo"),
        TextChunk(text="ur."),
        call,
        TextChunk(text="Done"),
        UsageChunk(input_tokens=1, output_tokens=2),
        FinishChunk(reason="length"),
    ]
    assert merged(batch) == [
        ReasoningChunk(text="Two and two."),
        TextChunk(text="Four."),
        call,
        TextChunk(text="Done"),
        UsageChunk(input_tokens=1, output_tokens=2),
        FinishChunk(reason="length"),
    ]
    single = [TextChunk(text="a")]
    assert merged(single)[0] is single[0]  # a chunk alone is passed on as it is
    assert merged([]) == []


def test_a_fast_stream_yields_every_few_chunks() -> None:
    """However fast the chunks come, a turn is over within YIELD_EVERY of them (sooner if they
    took a millisecond), every time."""
    turn = Turn()
    for _ in range(5):
        assert any([turn.over() for _ in range(YIELD_EVERY)])
