"""Make model output safe to show as Markdown in a notebook output.  Pure.

JupyterLab trusts the Markdown a running kernel displays: raw HTML in it is
rendered as HTML and its scripts run.  Model output is untrusted, so before it
is displayed, HTML outside fenced code blocks is escaped (it shows as text),
links (inline and reference definitions) may only go to http(s)/mailto/#, and
images become plain links (no request leaves the page on its own).  Fenced
blocks are kept as they are, since their content is shown literally anyway.
"""

from __future__ import annotations

import re

# A fenced block: a fence indented at most 3 spaces (more makes it indented code, which is
# escaped like prose), closed by a fence of the same character at least as long, or running
# to the end.  Inline code spans are escaped too: telling a real span from an escaped
# backtick needs a full CommonMark parser, and "&lt;" shown in a span is a small price.
# CommonMark: the info string of a backtick fence holds no backtick (else it is no fence).
_CODE = re.compile(
    r"^ {0,3}(?:(`{3,})[^`\n]*|(~{3,})[^\n]*)\n.*?(?:^ {0,3}(?:\1`*|\2~*)[ \t]*$|\Z)", re.M | re.S
)
_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
# A link reference definition: [label]: target
_REFERENCE = re.compile(r"^( {0,3}\[[^\]\n]+\]:[ \t]*)(<?)(\S+)", re.M)
# [label](target rest): the target may hold balanced parentheses, as in javascript:alert(1).
_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\(\s*((?:[^()\s]|\([^()\s]*\))*)([^)]*)\)")
_SAFE_SCHEME = re.compile(r"(?i)(https?:|mailto:|#)")


def safe_markdown(text: str) -> str:
    """Return ``text`` with raw HTML escaped, unsafe links defused and images made links (code kept)."""
    out = []
    last = 0
    for match in _CODE.finditer(text):
        out.append(_prose(text[last : match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_prose(text[last:]))
    return "".join(out)


def _prose(text: str) -> str:
    return _REFERENCE.sub(_reference, _LINK.sub(_link, text.translate(_HTML)))


def _reference(match: re.Match[str]) -> str:
    head, _, target = match.groups()
    return match.group(0) if _SAFE_SCHEME.match(target) else f"{head}#"


def _link(match: re.Match[str]) -> str:
    bang, label, target, rest = match.groups()
    if not _SAFE_SCHEME.match(target):
        return f"{bang}[{label}](#)" if not bang else f"[{label or 'image'}](#)"
    if bang:  # an image would load by itself: show a link to it instead
        return f"[{label or 'image'}]({target}{rest})"
    return match.group(0)
