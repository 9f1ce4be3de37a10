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


def test_code_is_kept_literally() -> None:
    """Inline code and fenced blocks keep their text (they are shown literally anyway)."""
    text = "use `<b>` here\n\n```html\n<script>x()</script>\n```\nafter <i>"
    assert safe_markdown(text) == "use `<b>` here\n\n```html\n<script>x()</script>\n```\nafter &lt;i&gt;"


def test_unclosed_fence_runs_to_the_end() -> None:
    """A fence still streaming (not closed yet) is code up to the end of the text."""
    text = "see:\n```\n<div>\n"
    assert safe_markdown(text) == text
