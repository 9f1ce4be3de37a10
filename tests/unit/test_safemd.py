"""Model output shown as Markdown in a cell cannot inject HTML, scripts or unsafe links."""

from __future__ import annotations

import pytest

from llmsock_widget.safemd import safe_markdown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ('<img src=x onerror="alert(1)">', '&lt;img src=x onerror="alert(1)"&gt;'),
        ("a & b < c", "a &amp; b &lt; c"),
        ("[click](javascript:alert(1))", "[click](#)"),
        ("[x]( JavaScript:alert(1) )", "[x](#)"),
        ("[data](data:text/html,hi)", "[data](#)"),
        ("![pic](https://tracker.example/p.png)", "[pic](https://tracker.example/p.png)"),
        ("![](javascript:x)", "[image](#)"),
        ("[ok](https://example.com)", "[ok](https://example.com)"),
        ("[mail](mailto:a@b.c)", "[mail](mailto:a@b.c)"),
        ("**bold** and _it_", "**bold** and _it_"),
    ],
)
def test_prose_is_defused(text: str, expected: str) -> None:
    """HTML is escaped, javascript:/data: links go nowhere, images become links, Markdown stays."""
    assert safe_markdown(text) == expected


def test_fenced_code_is_kept_literally() -> None:
    """Fenced blocks keep their text (they are shown literally anyway); inline spans are escaped too."""
    text = "use `<b>` here\n\n```html\n<script>x()</script>\n```\nafter <i>"
    assert (
        safe_markdown(text) == "use `&lt;b&gt;` here\n\n```html\n<script>x()</script>\n```\nafter &lt;i&gt;"
    )


@pytest.mark.parametrize(
    "text",
    [
        "\\`<img src=x onerror=alert(1)>`",  # an escaped backtick is no code span
        "    ```\n<img src=x onerror=alert(1)>\n    ```",  # indented 4: not a fence
        "```\ncode\n```\n<img src=x onerror=alert(1)>\n```",  # after a closed fence: prose
    ],
    ids=["escaped-backtick", "indented-fence", "after-closed-fence"],
)
def test_fence_tricks_do_not_smuggle_html(text: str) -> None:
    """Raw HTML outside a real fenced block is escaped, whatever the backticks around it."""
    assert "<img" not in safe_markdown(text)


def test_unclosed_or_short_closed_fence_is_code_to_the_end() -> None:
    """A fence closed only by a shorter fence runs to the end, as in CommonMark: all of it is code."""
    text = "```\ncode\n``\n<img src=x>"
    assert safe_markdown(text) == text


def test_reference_definitions_are_defused() -> None:
    """A link reference definition to javascript: goes nowhere; an https one stays."""
    text = "[a][r] and [b][s]\n\n[r]: javascript:alert(1)\n[s]: https://example.com"
    assert safe_markdown(text) == "[a][r] and [b][s]\n\n[r]: #\n[s]: https://example.com"


def test_unclosed_fence_runs_to_the_end() -> None:
    """A fence still streaming (not closed yet) is code up to the end of the text."""
    text = "see:\n```\n<div>\n"
    assert safe_markdown(text) == text


def test_a_backtick_fence_with_a_backtick_in_its_info_string_is_no_fence() -> None:
    """CommonMark: "```x`" opens no code block, so what follows is prose and gets escaped."""
    text = "```x`\n<img src=x onerror=alert(1)>\n```"
    out = safe_markdown(text)
    assert "<img" not in out and "&lt;img" in out
    # A tilde fence may have backticks in its info string: it stays a code block, kept as is.
    kept = "~~~x`\n<b>code</b>\n~~~"
    assert safe_markdown(kept) == kept
