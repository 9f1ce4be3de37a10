"""Render model output as HTML that is safe to show in a notebook cell.  Pure.

JupyterLab trusts what a running kernel displays, and a saved notebook is signed
as trusted: raw HTML in a ``text/markdown`` or ``text/html`` output is rendered
as it is and its scripts run, on every reopen.  Model output is untrusted, so it
is never handed to a front end's Markdown renderer (JupyterLab's marked parses
differently from any escaper we could write).  Instead, by construction:

1. invisible and direction-changing characters are made visible (``⟨U+202E⟩``);
2. a real CommonMark parser (markdown-it-py) with raw HTML disabled turns the
   text into HTML; images become plain links (nothing loads by itself);
3. a link (or an image's link) to a target other than http(s), mailto or a
   ``#fragment`` is shown as its label, in plain text (an ``<a>`` without its target
   would be a broken link in JupyterLab); then a maintained allow-list sanitizer
   (nh3, i.e. ammonia) keeps only the tags and attributes Markdown produces, and
   links only to those targets;
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

# Code points shown as ⟨U+XXXX⟩ instead of acting on the text around them: C0 controls but tab
# and newline (ESC starts ANSI sequences; CR LF becomes a newline), DEL and the C1 controls, the
# Arabic letter mark, the Mongolian vowel separator, zero-width spaces and joiners, the LRM/RLM
# marks, bidi embeddings, overrides and isolates, the word joiner and invisible operators, and
# the byte-order mark.  The widget uses the same list: tests/fixtures/text/invisible.json.
INVISIBLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x0008),
    (0x000B, 0x001F),
    (0x007F, 0x009F),
    (0x061C, 0x061C),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x2069),
    (0xFEFF, 0xFEFF),
)
_ZWJ = "\u200d"
_INVISIBLE = re.compile("\r\n|[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in INVISIBLE_RANGES) + "]")
# Emoji modifiers that may sit between a pictograph and the joiner: VS16 and the skin tones.
_MODIFIERS = {0xFE0F, *range(0x1F3FB, 0x1F400)}

_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "em", "strong", "s", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}}
_SAFE_URL = re.compile(r"(?i)(?:https?://|mailto:|#.)")
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

    CR LF becomes a newline.  A zero-width joiner stays only between two pictographs (the one
    before may carry VS16 or a skin tone), where it builds one emoji; anywhere else it is shown.
    """
    return _INVISIBLE.sub(_visible, text)


def _visible(match: re.Match[str]) -> str:
    char = match.group(0)
    if char == "\r\n":
        return "\n"
    if char == _ZWJ and _joins_emoji(match.string, match.start()):
        return char
    return f"⟨U+{ord(char):04X}⟩"


def _joins_emoji(text: str, at: int) -> bool:
    before = at - 1
    if before >= 0 and ord(text[before]) in _MODIFIERS:
        before -= 1
    after = at + 1
    return before >= 0 and after < len(text) and _pictographic(text[before]) and _pictographic(text[after])


def _pictographic(char: str) -> bool:
    # Extended_Pictographic, as blocks: misc. symbols and dingbats, and the emoji planes.
    code = ord(char)
    return 0x2600 <= code <= 0x27BF or 0x1F000 <= code <= 0x1FAFF


def _safe_url(value: str) -> bool:
    return _SAFE_URL.match(value.strip()) is not None


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "href":
        return value if _safe_url(value) else None
    return value


def _link_open(renderer: Any, tokens: Any, index: int, options: Any, env: Any) -> str:
    if _safe_url(tokens[index].attrGet("href") or ""):
        return str(renderer.renderToken(tokens, index, options, env))
    # Links do not nest in CommonMark: the next link_close is this link's.
    close = next(token for token in tokens[index + 1 :] if token.type == "link_close")
    close.meta["as_text"] = True
    return ""


def _link_close(renderer: Any, tokens: Any, index: int, options: Any, env: Any) -> str:
    if tokens[index].meta.get("as_text"):
        return ""
    return str(renderer.renderToken(tokens, index, options, env))


def _image_as_link(renderer: Any, tokens: Any, index: int, options: Any, env: Any) -> str:
    # An image would load by itself (a tracker, a request into the Jupyter API): link to it.
    token = tokens[index]
    label = escapeHtml(renderer.renderInlineAsText(token.children or [], options, env) or "image")
    src = token.attrGet("src") or ""
    return f'<a href="{escapeHtml(src)}">{label}</a>' if _safe_url(src) else label


def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.enable(["table", "strikethrough"])
    parser.add_render_rule("image", _image_as_link)
    parser.add_render_rule("link_open", _link_open)
    parser.add_render_rule("link_close", _link_close)
    return parser


_PARSER = _parser()
