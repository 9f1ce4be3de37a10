"""The builtin model: offline, deterministic, conversation-aware replies for demos and tests."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import random
import re
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Callable, Iterator, Literal

from ..errors import ModelFailure
from .base import FinishChunk, ModelChunk, ModelRequest, TextChunk, ToolCallChunk, UsageChunk, text_chunk

MAX_DIRECTIVE_TOKENS = 1_000_000
"""The largest count ``/long``, ``/error`` and ``/hold`` accept."""

_QUOTE_CHARS = 60
_SENTENCES_PER_PARAGRAPH = 4
# Unpaced streams still give the loop a turn this often, so one long reply cannot starve other sessions.
_YIELD_EVERY = 64

# A prose token is a word (with inner apostrophes) or one punctuation mark, each with its leading
# whitespace; the trailing ``\s+`` keeps the concatenation of all tokens equal to the text.
_PROSE_TOKEN = re.compile(r"\s*(?:\w+(?:['’]\w+)*|[^\w\s])|\s+")
_ECHO_TOKEN = re.compile(r"\s*\S+|\s+")
_COUNT = re.compile(r"[0-9]{1,7}")
_SLOW = re.compile(r"/slow[ \t]+(\S+)[ \t]*\n?(.*)", re.DOTALL)

_SUBJECTS = (
    "The server",
    "The widget",
    "Each token",
    "The stream",
    "Your notebook",
    "The hub",
    "This reply",
    "Every session",
    "The websocket",
    "The kernel",
    "A careful reader",
    "The builtin model",
)
_VERBS = ("keeps", "sends", "remembers", "renders", "carries", "checks", "replays", "counts", "delivers")
_OBJECTS = (
    "the conversation in order",
    "one small word at a time",
    "every delta to each open view",
    "the text exactly as written",
    "a steady pace without drifting",
    "the history of this session",
    "the usage at the very end",
    "what you asked a moment ago",
    "the same answer for the same question",
    "each turn from start to finish",
)
_TAILS = (
    "",
    "",
    "",
    ", so nothing gets lost",
    ", even after a reconnect",
    " without any network access",
    ", which keeps demos predictable",
    " while the notebook stays responsive",
)

_MARKDOWN = """\
# Builtin model demo

This reply shows what the chat view can render:

- a list item with a **bold** word
- an inline code span such as `llmsock.start()`
- plain text after the list

```python
def greet(name: str) -> str:
    return f"Hello, {name}!"
```

That is the whole demo."""

Kind = Literal["chat", "echo", "markdown", "long", "error", "hold", "tool", "tools", "shape"]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Directive:
    """What the prompt asks of the builtin model."""

    kind: Kind
    text: str  # the prompt the reply talks about, or the text to echo
    count: int = 0  # tokens for long/error/hold
    paced: bool = False  # whether /slow set tokens_per_second
    tokens_per_second: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class _Conversation:
    """What the builtin model knows about the conversation so far."""

    prompt: str
    turn: int
    first_prompt: str
    input_tokens: int
    system: str = ""  # the request's first system message, if it has one


class BuiltinModel:
    """Stream deterministic, offline replies that refer to the conversation.

    A normal prompt gets ``You said: "<prompt>".`` plus which turn this is (and, after the
    first turn, the first prompt), then filler sentences chosen by a hash of the prompt, until
    about ``default_tokens`` tokens.  The same request always gets the same reply.  A request
    with a system message gets one sentence more after that opening, quoting its first 60
    characters (``System prompt: "You are terse."``), so one can see it arrived.

    Directives, for demos and tests, start the prompt's first line:

    - ``/echo <text>``: reply with exactly ``<text>`` (all of it, later lines too), split on
      whitespace boundaries.
    - ``/long <n>``: reply with exactly ``n`` tokens (0 to 1,000,000).
    - ``/error [<n>]``: stream ``n`` tokens (default 5), then raise :class:`ModelFailure`
      with code ``model_error``.
    - ``/hold [<n>]``: stream ``n`` tokens (default 3), then wait until cancelled.
    - ``/slow <tokens_per_second> <rest>``: answer ``<rest>`` (which may hold another
      directive) at this pace; ``0`` means unlimited.
    - ``/markdown``: a fixed reply with a heading, a list, bold, inline code and a code block.
    - ``/shape <shape> <n>``: ``n`` tokens of Markdown that is hard to render, without a long
      prompt: a growing ``table``, one huge ``code`` block, a ``list`` nested up to eight deep,
      or ``unbroken`` words of 90 characters.
    - ``/tool <name> [<json arguments>]``: call that tool (one line per call, several lines for
      several calls); once the results are in, the reply says what each tool returned.
    - ``/tools``: list the tools the request offers.

    Unknown directives, and directives with a malformed count or pace, are normal prompts.
    ``options["maxTokens"]`` caps every reply; a reply cut short ends with
    ``FinishChunk(reason="length")``.
    """

    def __init__(
        self,
        *,
        tokens_per_second: float | None = 100.0,
        default_tokens: int = 60,
        name: str = "builtin",
        tools: bool = True,
    ) -> None:
        """Set the pace (``None`` or 0: unlimited), the usual reply length and the model's name.

        ``tools``: whether prompts that do not choose (``options.tools``) are offered the
        registered tools (``offers_tools``).

        Raises:
            ValueError: if the pace is negative or not finite, or ``default_tokens`` is negative.
        """
        if tokens_per_second is not None and not _is_pace(tokens_per_second):
            raise ValueError(f"tokens_per_second must be a finite number >= 0, not {tokens_per_second!r}")
        if default_tokens < 0:
            raise ValueError(f"default_tokens must be >= 0, not {default_tokens!r}")
        self.name = name
        self.tokens_per_second = tokens_per_second or None
        self.default_tokens = default_tokens
        self.offers_tools = bool(tools)

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Yield the reply's text tokens, then usage, then ``FinishChunk("length")`` if it was cut.

        Raises:
            ModelFailure: for ``/error``, after its tokens.
        """
        conversation = _read(request.messages)
        directive = _parse(conversation.prompt)
        results = _tool_results(request.messages)
        if directive.kind == "tool" and results is None:
            for index, (name, arguments) in enumerate(_tool_lines(directive.text), 1):
                yield ToolCallChunk(id=f"call_{conversation.turn}_{index}", name=name, arguments=arguments)
            yield UsageChunk(input_tokens=conversation.input_tokens, output_tokens=0)
            yield FinishChunk(reason="tool_calls")
            return
        if results is not None:
            chunks: Iterator[TextChunk] = iter(_chunks(results))
        elif directive.kind == "tools":
            names = [tool.get("function", {}).get("name", "?") for tool in request.tools]
            chunks = iter(_chunks("Tools I can call: " + (", ".join(names) or "none") + "."))
        else:
            chunks = _reply_chunks(directive, conversation, default_tokens=self.default_tokens)
        pace = _Pacer(directive.tokens_per_second if directive.paced else self.tokens_per_second)
        paced = pace.paced
        cap = _max_tokens(request.options)
        sent = 0
        for chunk in chunks:
            if cap is not None and sent >= cap:
                yield UsageChunk(input_tokens=conversation.input_tokens, output_tokens=sent)
                yield FinishChunk(reason="length")
                return
            if paced:
                await pace.wait(sent)
            elif sent % _YIELD_EVERY == _YIELD_EVERY - 1:  # at full speed: the loop gets a turn now and then
                await asyncio.sleep(0)
            yield chunk
            sent += 1
        if directive.kind == "error":
            raise ModelFailure(f"builtin model failed on purpose after {sent} tokens", code="model_error")
        if directive.kind == "hold":
            await asyncio.Event().wait()  # nothing sets it: only cancellation ends a held reply
        yield UsageChunk(input_tokens=conversation.input_tokens, output_tokens=sent)


class _Pacer:
    """Wait until each token is due, measured from the start so the pace does not drift."""

    def __init__(self, tokens_per_second: float | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._start = self._loop.time()
        self._interval = 1.0 / tokens_per_second if tokens_per_second else None

    @property
    def paced(self) -> bool:
        """Whether tokens wait for their time (False: as fast as the loop runs)."""
        return self._interval is not None

    async def wait(self, index: int) -> None:
        """Sleep until token ``index`` (0-based; the first is due at once) is due (only when paced)."""
        assert self._interval is not None
        due = self._start + index * self._interval
        await asyncio.sleep(max(0.0, due - self._loop.time()))


def _read(messages: tuple[dict[str, Any], ...]) -> _Conversation:
    """Return the current prompt, the turn number, the first prompt and the input word count."""
    prompts = [message.get("content") or "" for message in messages if message.get("role") == "user"]
    systems = [message.get("content") for message in messages if message.get("role") == "system"]
    return _Conversation(
        prompt=prompts[-1] if prompts else "",
        turn=max(1, len(prompts)),
        first_prompt=prompts[0] if prompts else "",
        input_tokens=sum(len(str(message.get("content") or "").split()) for message in messages),
        system=str(systems[0] or "") if systems else "",
    )


def _tool_lines(text: str) -> list[tuple[str, str]]:
    """Return ``(name, arguments JSON text)`` for each ``/tool`` line of a prompt."""
    calls = []
    for line in text.splitlines():
        parts = line.strip().split(None, 2)
        if len(parts) >= 2 and parts[0] == "/tool":
            calls.append((parts[1], parts[2] if len(parts) > 2 else "{}"))
    return calls


def _tool_results(messages: tuple[dict[str, Any], ...]) -> str | None:
    """Return a sentence per tool result if the request ends with tool results, else None."""
    tail = list(itertools.takewhile(lambda m: m.get("role") == "tool", reversed(messages)))
    if not tail:
        return None
    names = {
        call.get("id"): call.get("function", {}).get("name", "the tool")
        for message in messages
        for call in message.get("tool_calls") or ()
    }
    said = [
        f"{names.get(m.get('tool_call_id'), 'the tool')} returned {m.get('content')}." for m in reversed(tail)
    ]
    return "The tool " + " The tool ".join(said)


def _parse(prompt: str) -> _Directive:
    """Return the directive that starts ``prompt``'s first line, or a "chat" directive."""
    words = prompt.split("\n", 1)[0].split() if prompt.startswith("/") else []
    head = words[0] if words else ""
    arg = words[1] if len(words) > 1 else None
    if head == "/tool" and arg is not None:
        return _Directive(kind="tool", text=prompt)
    if head == "/tools":
        return _Directive(kind="tools", text=prompt)
    if head == "/echo":
        return _Directive(kind="echo", text=prompt[len("/echo ") :])
    if head == "/markdown":
        return _Directive(kind="markdown", text=prompt)
    if head == "/slow":
        return _parse_slow(prompt)
    if head == "/shape" and arg in SHAPES and len(words) == 3:
        count = _count(words[2])
        if count is not None:
            return _Directive(kind="shape", text=arg, count=count)
    defaults: dict[str, int | None] = {"/long": None, "/error": 5, "/hold": 3}
    if head in defaults:
        count = _count(arg) if arg is not None else defaults[head]
        if count is not None:
            kind: Kind = "long" if head == "/long" else "error" if head == "/error" else "hold"
            return _Directive(kind=kind, text=prompt, count=count)
    return _Directive(kind="chat", text=prompt)


def _parse_slow(prompt: str) -> _Directive:
    """Return the directive of ``/slow <pace> <rest>``: ``rest``'s, at that pace unless it sets its own."""
    match = _SLOW.fullmatch(prompt)
    rate = _pace(match.group(1)) if match else None
    if match is None or rate is None:
        return _Directive(kind="chat", text=prompt)
    inner = _parse(match.group(2))
    return inner if inner.paced else replace(inner, paced=True, tokens_per_second=rate or None)


def _count(word: str) -> int | None:
    """Return ``word`` as a token count, or None if it is not one in range."""
    if not _COUNT.fullmatch(word):
        return None
    count = int(word)
    return count if count <= MAX_DIRECTIVE_TOKENS else None


def _pace(word: str) -> float | None:
    """Return ``word`` as tokens per second (0 for unlimited), or None if it is not a valid pace."""
    try:
        rate = float(word)
    except ValueError:
        return None
    return rate if _is_pace(rate) else None


def _is_pace(rate: float) -> bool:
    """Return whether ``rate`` is a usable tokens-per-second value (0 for unlimited)."""
    return math.isfinite(rate) and rate >= 0


def _max_tokens(options: dict[str, Any]) -> int | None:
    """Return the ``maxTokens`` cap, ignoring values that are not counts."""
    cap = options.get("maxTokens")
    # bool is an int subclass; True is not a sensible cap.
    if isinstance(cap, int) and not isinstance(cap, bool) and cap >= 0:
        return cap
    return None


def _reply_chunks(
    directive: _Directive, conversation: _Conversation, *, default_tokens: int
) -> Iterator[TextChunk]:
    """Return the tokens of the whole natural reply as chunks (lazily: ``/long`` may be a million)."""
    if directive.kind == "echo":
        return map(text_chunk, _ECHO_TOKEN.findall(directive.text))
    if directive.kind == "markdown":
        return iter(_chunks(_MARKDOWN))
    if directive.kind == "shape":
        tokens = map(_ECHO_TOKEN.findall, SHAPES[directive.text]())
        return map(text_chunk, itertools.islice(itertools.chain.from_iterable(tokens), directive.count))
    pieces = _piece_chunks(directive.text, conversation)
    if directive.kind == "chat":
        return _whole_pieces(pieces, at_least=default_tokens)
    return itertools.islice(itertools.chain.from_iterable(pieces), directive.count)


def _whole_pieces(pieces: Iterator[list[TextChunk]], *, at_least: int) -> Iterator[TextChunk]:
    """Yield the tokens of whole pieces until there are at least ``at_least`` (and one piece)."""
    count = 0
    for chunks in pieces:
        yield from chunks
        count += len(chunks)
        if count >= at_least:
            return


def _piece_chunks(prompt: str, conversation: _Conversation) -> Iterator[list[TextChunk]]:
    """Yield the introduction's tokens, then each filler sentence's forever.

    A sentence is "<subject> <verb> <object><tail>.", its parts drawn by ``rng`` in that order.
    Each sentence after the first of a paragraph starts with a space, the first with a blank line.
    A sentence's parts never join into one token (each part after the first starts with a space
    or a mark), so its tokens are its parts' tokens, found once, and made chunks once (a chunk
    is a frozen value: one may be yielded any number of times): ``/long`` at full speed spent a
    tenth of its time in the tokenizer, and a twentieth making chunks. A test compares both ways
    for every sentence there is.
    """
    yield _chunks(_intro(prompt, conversation))
    rng = random.Random(_seed(f"{conversation.turn}\n{prompt}"))
    for index in itertools.count():
        subjects = _PARAGRAPH_SUBJECT_CHUNKS if index % _SENTENCES_PER_PARAGRAPH == 0 else _SUBJECT_CHUNKS
        subject = _pick_index(rng, subjects)
        verb = _pick_index(rng, _VERB_CHUNKS)
        obj = _pick_index(rng, _OBJECT_CHUNKS)
        tail = _pick_index(rng, _TAIL_CHUNKS)
        yield subjects[subject] + _VERB_CHUNKS[verb] + _OBJECT_CHUNKS[obj] + _TAIL_CHUNKS[tail]


def _intro(prompt: str, conversation: _Conversation) -> str:
    """Return the opening that quotes the prompt and places it in the conversation."""
    quoted = _shorten(prompt)
    said = f'You said: "{quoted}".' if quoted else "You sent an empty message."
    if conversation.turn == 1:
        return f"{said} This is the first turn of our conversation.{_system_said(conversation)}"
    first = _shorten(conversation.first_prompt)
    turn = f'This is turn {conversation.turn} of our conversation; earlier you asked "{first}".'
    return f"{said} {turn}{_system_said(conversation)}"


def _system_said(conversation: _Conversation) -> str:
    """Return the sentence that quotes the request's system prompt (with its leading space), or ""."""
    system = _shorten(conversation.system)
    return f' System prompt: "{system}".' if system else ""


def _shorten(text: str, limit: int = _QUOTE_CHARS) -> str:
    """Return ``text`` on one line, cut to ``limit`` characters (at a word boundary if one is near)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _pick_index(rng: random.Random, choices: tuple[list[TextChunk], ...]) -> int:
    """Return the index of one of ``choices``."""
    # Only Random.random() is guaranteed the same sequence across Python versions; choice() is not.
    return int(rng.random() * len(choices))


def _seed(text: str) -> int:
    """Return a seed that depends only on ``text`` (unlike ``hash()``, which varies per process)."""
    # surrogatepass: a prompt decoded from JSON may hold a lone surrogate, which plain UTF-8 rejects.
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big")


def _tokenize(text: str) -> list[str]:
    """Split prose into words and punctuation marks, each keeping its leading whitespace."""
    return _PROSE_TOKEN.findall(text)


def _chunks(text: str) -> list[TextChunk]:
    """Return the chunks of ``text``'s tokens (:func:`_tokenize`)."""
    return [text_chunk(token) for token in _tokenize(text)]


# The sentences' parts, tokenized once (see _piece_chunks), each with what goes before it.
_PARAGRAPH_SUBJECT_CHUNKS = tuple(_chunks("\n\n" + subject) for subject in _SUBJECTS)
_SUBJECT_CHUNKS = tuple(_chunks(" " + subject) for subject in _SUBJECTS)
_VERB_CHUNKS = tuple(_chunks(" " + verb) for verb in _VERBS)
_OBJECT_CHUNKS = tuple(_chunks(" " + obj) for obj in _OBJECTS)
_TAIL_CHUNKS = tuple(_chunks(tail + ".") for tail in _TAILS)


def _table_lines() -> Iterator[str]:
    """Yield a table's lines without end: its header, then rows (each line after the first starts a line)."""
    yield "| n | word | square |"
    yield "\n|---|---|---|"
    for n in itertools.count():
        yield f"\n| {n} | w{n % 97} | {n * n} |"


def _code_lines() -> Iterator[str]:
    """Yield one Python code block's lines, without end (the fence is left open)."""
    yield "Here is the code:\n\n```python"
    for n in itertools.count():
        yield f"\nvalue_{n} = compute(value_{n - 1}, {n})"


def _list_lines() -> Iterator[str]:
    """Yield a list's items, nested from zero to seven deep and back, without end."""
    for n in itertools.count():
        depth = n % 16 if n % 16 < 8 else 15 - n % 16
        yield f"{chr(10) if n else ''}{'  ' * depth}- item{n}"


def _unbroken_lines() -> Iterator[str]:
    """Yield words of 90 characters, without end."""
    for n in itertools.count():
        yield f"{' ' if n else ''}{n:08d}{'x' * 82}"


SHAPES: dict[str, Callable[[], Iterator[str]]] = {
    "table": _table_lines,
    "code": _code_lines,
    "list": _list_lines,
    "unbroken": _unbroken_lines,
}
"""The Markdown shapes ``/shape`` streams, by name: each makes its lines lazily and without end."""
