"""Every relative link in the docs leads to an existing file, and to an existing heading when it names one."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECKED = [*sorted((REPO / "docs").glob("*.md")), REPO / "README.md", REPO / "CONTRIBUTING.md"]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:id|name)=[\"']([^\"']+)[\"']", re.IGNORECASE)
# [text](target) and ![alt](target), with an optional "title"; the text may hold `code` or escapes.
_INLINE_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^\s)>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")


def unfenced_lines(text: str) -> list[tuple[int, str]]:
    """Return (line number, line) for each line outside fenced code blocks."""
    kept: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        opening = _FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = None
            continue
        if opening:
            fence = opening.group(1)
            continue
        kept.append((number, line))
    return kept


def prose_lines(text: str) -> list[tuple[int, str]]:
    """Return (line number, line) for each line outside fenced code blocks, with code spans blanked."""
    # A link written inside `code` is an example, not a link.
    return [(n, _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)) for n, line in unfenced_lines(text)]


def slug(heading: str) -> str:
    """Return the anchor GitHub gives a heading: its text, lower-cased, punctuation dropped, spaces as '-'."""
    text = re.sub(r"!?\[((?:[^\]\\]|\\.)*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = re.sub(r"<[^>]+>", "", text)  # so does inline HTML
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Return every anchor of a Markdown document: its headings' slugs (repeats numbered) and HTML ids."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in unfenced_lines(text):
        found.update(_HTML_ANCHOR.findall(line))
        heading = _HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(text: str) -> list[tuple[int, str]]:
    """Return (line number, target) for each link of ``text`` that points inside the repository."""
    found: list[tuple[int, str]] = []
    for number, line in prose_lines(text):
        targets = _INLINE_LINK.findall(line)
        reference = _REFERENCE.match(line)
        if reference:
            targets.append(reference.group(1))
        found += [(number, target) for target in targets if target and not _SCHEME.match(target)]
    return found


def broken_links(document: Path) -> list[str]:
    """Describe each relative link of ``document`` whose file or heading anchor does not exist."""
    text = document.read_text(encoding="utf-8")
    broken: list[str] = []
    for number, target in relative_links(text):
        path_part, _, anchor = target.partition("#")
        destination = (document.parent / unquote(path_part)).resolve() if path_part else document
        where = f"{document.name}:{number}: {target}"
        if not destination.exists():
            broken.append(f"{where}: no file {path_part}")
        elif anchor and destination.suffix == ".md":
            if unquote(anchor) not in anchors(destination.read_text(encoding="utf-8")):
                broken.append(f"{where}: {destination.name} has no heading #{anchor}")
    return broken


# -- the checks --------------------------------------------------------------------------------


@pytest.mark.parametrize("document", CHECKED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_and_heading(document: Path) -> None:
    """A link to a moved or renamed document or section is caught: the file and its heading must exist."""
    assert document.exists(), f"{document.relative_to(REPO)} is missing"
    broken = broken_links(document)
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_spec_links_to_its_companions() -> None:
    """The spec's links are really followed: it names its normative and informative companions by link."""
    targets = {target for _, target in relative_links((REPO / "docs" / "protocol.md").read_text("utf-8"))}
    for companion in ("widget-comm.md", "protocol-examples.md", "seeds.md", "conformance.md"):
        assert companion in targets, f"docs/protocol.md does not link to {companion}"
    contents = [target for target in targets if target.startswith("#")]
    assert len(contents) >= 10, "the contents links of docs/protocol.md were lost"


def test_a_broken_link_is_reported(tmp_path: Path) -> None:
    """A missing file or heading is reported, with its line; links in code and to the web are not checked."""
    (tmp_path / "other.md").write_text("# Other\n\n## 2. Links: the comm transport\n", encoding="utf-8")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Doc\n"
        "[ok](other.md#2-links-the-comm-transport) [ok](#doc) [web](https://example.org/x.md#nope)\n"
        "[gone](missing.md) [renamed](other.md#15-the-chat-widgets-comm-llmsock-widget1)\n"
        "`[in code](missing.md)`\n"
        "```\n[in a fence](missing.md)\n```\n"
        "[self](#no-such-heading)\n",
        encoding="utf-8",
    )
    assert broken_links(doc) == [
        "doc.md:3: missing.md: no file missing.md",
        "doc.md:3: other.md#15-the-chat-widgets-comm-llmsock-widget1: other.md has no heading"
        " #15-the-chat-widgets-comm-llmsock-widget1",
        "doc.md:8: #no-such-heading: doc.md has no heading #no-such-heading",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("15. The chat widget's comm, `llmsock-widget/1`", "15-the-chat-widgets-comm-llmsock-widget1"),
        ("1.2 `/sse`", "12-sse"),
        ("9.4 `get_history`", "94-get_history"),
        ("3. Subprotocols and dialect selection", "3-subprotocols-and-dialect-selection"),
        ("See [the spec](protocol.md) — here", "see-the-spec--here"),
    ],
)
def test_slugs_are_githubs(heading: str, anchor: str) -> None:
    """Anchors are computed as GitHub renders them, so a link that works there passes here."""
    assert slug(heading) == anchor


def test_repeated_headings_are_numbered() -> None:
    """A second heading with the same text gets GitHub's '-1' suffix."""
    assert anchors("# Examples\n\n## Examples\n\n```\n# not a heading\n```\n") == {"examples", "examples-1"}
