"""Read a function's summary and parameter descriptions from its docstring.

Three styles are understood, and may even be mixed in one docstring::

    Google                    NumPy                      Sphinx
    Args:                     Parameters                 :param x: The x.
        x (int): The x.       ----------                 :param int y: The y,
        y: The y,             x : int                        on two lines.
            on two lines.         The x.
                              y
                                  The y.

The summary is the first paragraph: the lines before the first blank line or
section, joined with single spaces.  Pure: text in, text out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_GOOGLE_HEADER = re.compile(
    r"(?:Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters):",
)
_GOOGLE_ENTRY = re.compile(r"\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:(.*)")
_NUMPY_RULE = re.compile(r"-{3,}")
_NUMPY_PARAM_SECTIONS = frozenset({"Parameters", "Other Parameters", "Keyword Arguments"})
_NUMPY_ENTRY = re.compile(r"(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?::.*)?")
_SPHINX_ENTRY = re.compile(
    r":(?:param|parameter|arg|argument|key|keyword)\s+(?:[^:]*?\s+)?\*{0,2}(\w+)\s*:(.*)",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Docstring:
    """What a tool schema needs from a docstring."""

    summary: str = ""
    params: dict[str, str] = field(default_factory=dict)


def parse_docstring(doc: str | None) -> Docstring:
    """Return the summary and the parameter descriptions of a cleaned docstring (``inspect.getdoc``)."""
    if not doc:
        return Docstring()
    lines = doc.expandtabs().splitlines()
    params: dict[str, str] = {}
    _read_google(lines, params)
    _read_numpy(lines, params)
    _read_sphinx(lines, params)
    return Docstring(summary=_summary(lines), params={k: _squash(v) for k, v in params.items() if v.strip()})


def _summary(lines: list[str]) -> str:
    taken: list[str] = []
    for index, line in enumerate(lines):
        text = line.strip()
        if not text:
            if taken:
                break
            continue
        if _starts_section(lines, index):
            break
        taken.append(text)
    return " ".join(taken)


def _starts_section(lines: list[str], index: int) -> bool:
    text = lines[index].strip()
    if _GOOGLE_HEADER.fullmatch(text) or re.fullmatch(r"(?:Returns|Raises|Yields|Examples?|Notes?):", text):
        return True
    if text.startswith(":"):
        return True
    return index + 1 < len(lines) and bool(_NUMPY_RULE.fullmatch(lines[index + 1].strip()))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _squash(text: str) -> str:
    return " ".join(text.split())


def _read_google(lines: list[str], params: dict[str, str]) -> None:
    for index, line in enumerate(lines):
        if not _GOOGLE_HEADER.fullmatch(line.strip()):
            continue
        header_indent = _indent(line)
        entry_indent: int | None = None
        current: str | None = None
        for body in lines[index + 1 :]:
            if not body.strip():
                continue
            indent = _indent(body)
            if indent <= header_indent:
                break  # the next section
            if entry_indent is None:
                entry_indent = indent
            if indent <= entry_indent:
                match = _GOOGLE_ENTRY.fullmatch(body.strip())
                if match:
                    current = match[1]
                    params[current] = match[2]
                else:
                    current = None
            elif current is not None:
                params[current] += " " + body.strip()


def _read_numpy(lines: list[str], params: dict[str, str]) -> None:
    index = 0
    while index + 1 < len(lines):
        header = lines[index]
        is_header = _NUMPY_RULE.fullmatch(lines[index + 1].strip())
        if not (is_header and header.strip() in _NUMPY_PARAM_SECTIONS):
            index += 1
            continue
        header_indent = _indent(header)
        current: list[str] = []
        index += 2
        while index < len(lines):
            body = lines[index]
            if index + 1 < len(lines) and _NUMPY_RULE.fullmatch(lines[index + 1].strip()):
                break  # the next section's header
            if body.strip():
                if _indent(body) <= header_indent:
                    match = _NUMPY_ENTRY.fullmatch(body.strip())
                    current = [n.strip().lstrip("*") for n in match[1].split(",")] if match else []
                    params.update({name: "" for name in current})
                else:
                    for name in current:
                        params[name] += " " + body.strip()
            index += 1


def _read_sphinx(lines: list[str], params: dict[str, str]) -> None:
    current: str | None = None
    for line in lines:
        text = line.strip()
        match = _SPHINX_ENTRY.fullmatch(text)
        if match:
            current = match[1]
            params[current] = match[2]
        elif text.startswith(":") or not text or _indent(line) == 0:
            current = None  # another field, a blank line or unindented prose ends the entry
        elif current is not None:
            params[current] += " " + text
