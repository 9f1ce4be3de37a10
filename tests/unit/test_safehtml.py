"""Model output shown in a cell cannot run script, load anything or hide text: safe by construction.

The HTML that ``%%llmsock`` and ``ask()`` display is audited the way JupyterLab renders a trusted
``text/html`` output: parsed by a browser's HTML algorithm (jsdom, js/tools/audit-html.mjs) and
walked for elements, attributes and URLs outside the allow-list.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsock_widget.notebook.answer import _bundle
from llmsock_widget.wire.safehtml import INVISIBLE_RANGES, neutralize, render_answer

ROOT = Path(__file__).resolve().parents[2]
AUDIT = ROOT / "js" / "tools" / "audit-html.mjs"
INVISIBLE_FIXTURE = ROOT / "tests" / "fixtures" / "text" / "invisible.json"

IMG = "<img src=x onerror=alert(1)>"
# Each of these reached JupyterLab's marked as live HTML or a live javascript: link (B1, B2).
HOSTILE = {
    "fence-closed-by-tilde": f"```\nx\n```~\n{IMG}\n```",
    "tilde-fence-closed-by-backtick": f"~~~\nx\n~~~`\n{IMG}\n~~~",
    "fence-in-list-item": f"- a\n  ```\n{IMG}\n  ```",
    "fence-in-numbered-item": f"1. a\n   ```\n{IMG}\n   ```",
    "script-in-list-fence": "- a\n  ```\n<script>alert(1)</script>\n  ```",
    "escaped-backtick": f"\\`{IMG}`",
    "indented-fence": f"    ```\n{IMG}\n    ```",
    "after-closed-fence": f"```\ncode\n```\n{IMG}\n```",
    "nested-brackets-link": "[a [b] c](javascript:alert(1))",
    "code-span-label": "[`]`](javascript:alert(1))",
    "label-over-two-lines": "[a\nb](javascript:alert(1))",
    "reference-on-next-line": "[x][r]\n\n[r]:\n  javascript:alert(1)",
    "escaped-bracket-reference": "[x][a\\]b]\n\n[a\\]b]: javascript:alert(1)",
    "autolink": "<javascript:alert(1)>",
    "data-link": "[d](data:text/html,<script>alert(1)</script>)",
    "image": "![x](https://tracker.example/p.png)",
    "html-comment": "<!-- x --><img src=x onerror=alert(1)>",
    "html-block": "<div onmouseover=alert(1)>\n\nhi\n\n</div>",
    "entity-scheme": "[x](&#106;avascript:alert(1))",
    "tex-href": "$\\href{javascript:alert(1)}{click}$",
}


@pytest.fixture(scope="module")
def audit() -> Iterator[object]:
    """A browser-grade HTML parser in a node process: audit(html) -> findings."""
    node = shutil.which("node")
    if node is None or not (ROOT / "js" / "node_modules" / "jsdom").exists():
        pytest.fail("the audit needs node and js/node_modules (cd js && npm ci)")
    # The context closes both pipes and waits for node: an open pipe would be collected later,
    # as an unclosed file, in whichever test runs then.
    with subprocess.Popen(
        [node, str(AUDIT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT / "js"
    ) as process:
        assert process.stdin is not None and process.stdout is not None

        def run(html: str) -> list[str]:
            process.stdin.write(json.dumps(html) + "\n")  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]
            return list(json.loads(process.stdout.readline()))  # type: ignore[union-attr]

        yield run
        process.stdin.close()
        process.wait(timeout=30)


def test_the_audit_catches_what_it_looks_for(audit: object) -> None:
    """The auditor itself flags a raw element, a handler and a javascript: URL (it can fail)."""
    findings = audit(f'<p onclick="x">a</p>{IMG}<a href="javascript:x">y</a>')  # type: ignore[operator]
    assert "element <img>" in findings
    assert "attribute onclick on <p>" in findings
    assert "href javascript:x" in findings


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_answers_render_inert(text: str, audit: object) -> None:
    """Each known break renders with no raw element, no event handler, no unsafe URL."""
    assert audit(render_answer(text)) == []  # type: ignore[operator]


def test_raw_html_is_shown_as_text() -> None:
    """The user still sees what the model wrote: the tag appears as text, not as an element."""
    html = render_answer(f"look: {IMG}")
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img" not in html


def test_markdown_still_renders() -> None:
    """Emphasis, code, lists, tables and safe links are kept; images become links to their URL."""
    html = render_answer(
        "**bold** `x<y`\n\n- one\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n\n"
        "[ok](https://example.com) ![pic](https://example.com/p.png)\n\n```py\nprint('<b>')\n```"
    )
    assert "<strong>bold</strong>" in html and "<code>x&lt;y</code>" in html
    assert "<li>one</li>" in html and '<td style="text-align:right">2</td>' in html
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">ok</a>' in html
    assert '<a href="https://example.com/p.png" rel="noopener noreferrer nofollow">pic</a>' in html
    assert "<pre><code>print('&lt;b&gt;')\n</code></pre>" in html


def test_a_link_to_an_unsafe_target_is_plain_text(audit: object) -> None:
    """A link whose target is dropped shows its label as text, not as a dead link (JupyterLab 404s it)."""
    html = render_answer(
        "[rel](foo/bar) [**bold**](/files/secret) ![pic](data/p.png) [far](//evil.example/x) "
        "[none](#) <ftp://example.com/f> [ok](#usage) [web](https://example.com)"
    )
    assert "<a" not in html.replace('<a href="#usage"', "").replace('<a href="https://example.com"', "")
    assert '<p>rel <strong>bold</strong> pic far none ftp://example.com/f <a href="#usage"' in html
    assert 'href="#"' not in html
    assert audit(html) == []  # type: ignore[operator]


def test_math_is_not_typeset() -> None:
    """The answer sits in an element MathJax skips, so TeX in it cannot make links."""
    assert render_answer("$x$").startswith('<div class="llmsock-answer tex2jax_ignore mathjax_ignore">')


def test_a_cell_answer_is_never_markdown() -> None:
    """The display carries sanitized HTML and plain text only: no front end Markdown renderer runs."""
    assert set(_bundle(f"# hi {IMG}")) == {"text/html", "text/plain"}


def test_bidi_override_is_shown() -> None:
    """A right-to-left override cannot make gnp.exe look like exe.png (B13)."""
    assert neutralize("\u202egnp.exe") == "⟨U+202E⟩gnp.exe"
    assert "⟨U+202E⟩gnp.exe" in render_answer("\u202egnp.exe")


def test_ansi_and_zero_width_are_shown() -> None:
    """An ANSI colour sequence and a zero-width space are visible; an emoji's joiner is kept."""
    assert neutralize("\x1b[31mred") == "⟨U+001B⟩[31mred"
    assert neutralize("pay\u200bpal") == "pay⟨U+200B⟩pal"
    family = "👨\u200d👩\u200d👧"
    assert neutralize(family) == family
    assert neutralize("a\u200db") == "a⟨U+200D⟩b"
    assert neutralize("👍🏽\u200d🔥") == "👍🏽\u200d🔥"  # a skin tone may sit before the joiner
    assert neutralize("one\r\ntwo\rthree") == "one\ntwo⟨U+000D⟩three"


def test_every_listed_invisible_code_point_is_neutralized() -> None:
    """Every code point of the list shared with the widget is shown as ⟨U+XXXX⟩, in prose and code."""
    ranges = [tuple(r) for r in json.loads(INVISIBLE_FIXTURE.read_text())["ranges"]]
    assert ranges == list(INVISIBLE_RANGES)
    for start, end in ranges:
        for code in range(start, end + 1):
            text = f"a{chr(code)}b"
            assert neutralize(text) == f"a⟨U+{code:04X}⟩b"
            assert chr(code) not in render_answer(f"```\n{text}\n```")


# Markdown built from the pieces that broke regex escapers: fences of both kinds and lengths,
# list and quote markers, indentation, brackets, link targets, raw HTML and entities.
_PIECES = st.sampled_from(
    [
        "```", "~~~", "````", "`", "~", "\n", "\n\n", "  ", "   ", "    ", "- ", "1. ", "> ", "* ",
        "[", "]", "(", ")", "![", "]:", "\\", "*", "_", "|", "---", "&", "&#106;", "&lt;", '"', "'",
        ":", "<", ">", "x", "a b", "javascript:alert(1)", "data:text/html,x", "JaVaScRiPt:x",
        "https://example.com", IMG, "<script>alert(1)</script>", "<a href=javascript:alert(1)>",
        "<svg onload=alert(1)>", "<!--", "-->", "<![CDATA[", "<style>", "\u202e", "$", "\\href{x}",
    ]
)  # fmt: skip


@settings(max_examples=400, derandomize=True, deadline=None)
@given(st.lists(_PIECES, max_size=40).map("".join))
def test_generated_markdown_renders_inert(audit: object, text: str) -> None:
    """Any mix of those pieces renders with no raw element, handler or unsafe URL."""
    assert audit(render_answer(text)) == []  # type: ignore[operator]
