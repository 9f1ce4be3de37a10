"""Render model output as HTML that is safe to show in a notebook cell.  Pure.

JupyterLab trusts what a running kernel displays, and a saved notebook is signed
as trusted: raw HTML in a ``text/markdown`` or ``text/html`` output is rendered
as it is and its scripts run, on every reopen.  Model output is untrusted, so it
is never handed to a front end's Markdown renderer (JupyterLab's marked parses
differently from any escaper we could write).  Instead, by construction:

1. invisible and direction-changing characters are made visible (``⟨U+202E⟩``);
2. a real CommonMark parser (markdown-it-py) with raw HTML disabled turns the
   text into HTML; images become plain links (nothing loads by itself);
3. a maintained allow-list sanitizer (nh3, i.e. ammonia) keeps only the tags and
   attributes Markdown produces, and links only to http(s), mailto or ``#``;
4. the result is wrapped in an element that MathJax skips, so ``$…$`` in an
   answer cannot become a TeX ``\\href``.

The display carries this HTML and the plain text; never Markdown.
"""

from __future__ import annotations

import re
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

__all__ = ["INVISIBLE_RANGES", "neutralize", "render_answer"]

# Code points shown as ⟨U+XXXX⟩ instead of acting on the text around them: C0 and C1 controls
# (but tab, newline and carriage return; ESC starts ANSI sequences), bidi embeddings, overrides,
# isolates and marks, zero-width spaces and joiners, the word joiner and invisible operators, and
# the byte-order mark.  The shared list is tests/fixtures/text/invisible.json (the widget uses it too).
INVISIBLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00, 0x08),
    (0x0B, 0x0C),
    (0x0E, 0x1F),
    (0x7F, 0x9F),
    (0x061C, 0x061C),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x2069),
    (0xFEFF, 0xFEFF),
)
_ZWJ = 0x200D
_INVISIBLE = re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in INVISIBLE_RANGES) + "]")

_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "s", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}}
_SAFE_URL = re.compile(r"(?i)(?:https?://|mailto:|#)")
_WRAPPER = '<div class="llmsock-answer tex2jax_ignore mathjax_ignore">{}</div>'


def render_answer(text: str) -> str:
    """Return ``text`` (Markdown from an untrusted model) as sanitized HTML for a notebook output."""
    html = _PARSER.render(neutralize(text))
    clean = nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        attribute_filter=_keep_attribute,
        filter_style_properties={"text-align"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return _WRAPPER.format(clean)


def neutralize(text: str) -> str:
    """Return ``text`` with every invisible or direction-changing character shown as ``⟨U+XXXX⟩``.

    A zero-width joiner stays only between two pictographic characters, where it builds one
    emoji (a family, a profession); anywhere else it is shown too.
    """
    return _INVISIBLE.sub(_visible, text)


def _visible(match: re.Match[str]) -> str:
    char = match.group(0)
    if ord(char) == _ZWJ and _joins_emoji(match.string, match.start()):
        return char
    return f"⟨U+{ord(char):04X}⟩"


def _joins_emoji(text: str, at: int) -> bool:
    before = text[at - 1] if at > 0 else ""
    after = text[at + 1] if at + 1 < len(text) else ""
    return _pictographic(before) and _pictographic(after)


def _pictographic(char: str) -> bool:
    # Emoji presentation selector, the pictograph blocks, and the misc. symbols and dingbats.
    return bool(char) and (
        char == "\ufe0f" or 0x1F000 <= ord(char) <= 0x1FAFF or 0x2600 <= ord(char) <= 0x27BF
    )


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "href":
        return value if _SAFE_URL.match(value.strip()) else None
    return value


def _image_as_link(renderer: Any, tokens: Any, index: int, options: Any, env: Any) -> str:
    # An image would load by itself (a tracker, a request into the Jupyter API): link to it.
    token = tokens[index]
    label = renderer.renderInlineAsText(token.children or [], options, env) or "image"
    return f'<a href="{escapeHtml(token.attrGet("src") or "")}">{escapeHtml(label)}</a>'


def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.enable(["table", "strikethrough"])
    parser.add_render_rule("image", _image_as_link)
    return parser


_PARSER = _parser()
