"""The chat widget's accessibility in a real browser: axe-core, live regions, contrast, keyboard.

axe-core (js/node_modules/axe-core, pinned in js/package.json) runs on the widget alone (every
``.llmsock-chat`` root: the front end's own page is not ours) with the WCAG 2.0/2.1 A and AA rules
and axe's best practices, in the states a user meets: the empty chat; a Markdown answer (a table,
lists, code) and an answer with tool calls, every disclosure open; an answer streaming; an error
and a stopped answer; in the light and the dark theme. A violation of impact serious or critical
fails the test; every violation found, of any impact, is printed in the failure and written to
test-artifacts/browser/*-axe.json.

axe does not measure every text: never a placeholder, nor text drawn by ``::before``, and it
reports text over a background it cannot resolve as undecided. The status line, the notes, the
markers, the error line, the settings' labels and the placeholders are therefore also measured
here, from their computed colours, against WCAG AA's 4.5:1 (*-contrast.json).

A streaming answer is checked as a screen reader gets it (chromium's accessibility tree, over the
DevTools protocol), and every control from the keyboard alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.conftest import TIMEOUT

from .chat import Chat
from .conftest import ARTIFACTS, artifact_name
from .jupyter_process import JupyterServer
from .notebook import Notebook

pytestmark = pytest.mark.browser

OpenNotebook = Callable[[list[str]], Notebook]
Screenshot = Callable[..., Path]

AXE = Path(__file__).resolve().parents[2] / "js" / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
FAILING_IMPACTS = {"serious", "critical"}
AA_CONTRAST = 4.5
THEMES = "@jupyterlab/apputils-extension:themes"
THEME_NAMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}

LOAD = "%load_ext llmsock"
WIDGET = "from llmsock_widget import ChatWidget\nChatWidget()"
# Everything the renderer draws: a heading, a table, nested lists, inline and block code, a quote
# and a link.
RICH = """## Results

| name | value |
|------|------:|
| alpha | 1 |
| beta | 22 |

- the first item, with `inline code`
- the second item
  1. a nested step
  2. another one

```python
def double(x: int) -> int:
    return x * 2  # twice as much
```

> A quoted line, and [a link](https://example.com/docs)."""

# Two calls of the builtin calculator: one answers, one fails (steps.js paints both, folded).
TOOLS = '/tool calculate {"expression": "6 * 7"}\n/tool calculate {"expression": "1 / 0"}'

# An answer that streams for minutes (two words a second) inside a code block wider than the
# chat (it scrolls sideways), whose buttons wait for the block to end.
STREAMING = "/slow 2 /echo ```python\nwide = '" + "x" * 300 + "'\n" + "y = 1\n" * 200 + "```"

# Run axe on the widget's roots; return its violations and the contrast checks it could not decide.
# Both front ends give <body> overflow: hidden and no height (the shell is absolutely positioned),
# and axe takes an element outside an overflow: hidden ancestor's box for hidden, positioned or
# not (axe-core issue 4539): it would skip every text of the page in its colour-contrast rule.
# For the run, <body> covers the viewport, as it does to the eye.
_RUN_AXE = """async (tags) => {
    const body = document.body.style;
    const height = body.minHeight;
    body.minHeight = '100vh';
    let result;
    try {
        result = await axe.run('.llmsock-chat', {
            runOnly: {type: 'tag', values: tags},
            resultTypes: ['violations', 'incomplete'],
        });
    } finally {
        body.minHeight = height;
    }
    const brief = (items) => items.map((rule) => ({
        id: rule.id, impact: rule.impact, help: rule.help,
        nodes: rule.nodes.map((node) => ({
            target: node.target.join(' '), impact: node.impact,
            summary: node.failureSummary || '', html: node.html.slice(0, 200)})),
    }));
    return {
        violations: brief(result.violations),
        incomplete: brief(result.incomplete.filter((rule) => rule.id === 'color-contrast')),
        passed: result.passes.map((rule) => ({id: rule.id, nodes: rule.nodes.length})),
    };
}"""

# The contrast of an element's text (or its placeholder) with the background it is drawn on: the
# first opaque background of it and its ancestors, with the translucent ones above composited.
_CONTRAST = """(el, pseudo) => {
    // Any CSS colour (rgb(), color(srgb ...) from color-mix()) as the browser paints it.
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = 1;
    const ctx = canvas.getContext('2d', {willReadFrequently: true});
    const parse = (text) => {
        ctx.clearRect(0, 0, 1, 1);
        ctx.fillStyle = text;
        ctx.fillRect(0, 0, 1, 1);
        const [r, g, b, a] = ctx.getImageData(0, 0, 1, 1).data;
        return {r, g, b, a: a / 255};
    };
    const over = (top, bottom) => ({
        r: top.r * top.a + bottom.r * (1 - top.a),
        g: top.g * top.a + bottom.g * (1 - top.a),
        b: top.b * top.a + bottom.b * (1 - top.a), a: 1});
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
        const bg = parse(getComputedStyle(node).backgroundColor);
        if (bg && bg.a > 0) { layers.push(bg); if (bg.a >= 1) break; }
    }
    let background = {r: 255, g: 255, b: 255, a: 1};
    for (const layer of layers.reverse()) background = over(layer, background);
    const style = getComputedStyle(el, pseudo || null);
    const text = parse(style.color);
    const fg = over({...text, a: text.a * Number(style.opacity || 1)}, background);
    const lum = (c) => {
        const ch = [c.r, c.g, c.b].map((v) => v / 255).map(
            (v) => v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
        return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2];
    };
    const [hi, lo] = [lum(fg), lum(background)].sort((a, b) => b - a);
    const css = (c) => `rgb(${[c.r, c.g, c.b].map(Math.round).join(', ')})`;
    return {ratio: (hi + 0.05) / (lo + 0.05), color: css(fg), background: css(background)};
}"""


def open_chat(open_notebook: OpenNotebook) -> tuple[Notebook, Chat]:
    """Open a notebook [load, chat]; run both; wait until the chat is open."""
    notebook = open_notebook([LOAD, WIDGET])
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    chat.wait_until_open()
    return notebook, chat


def run_axe(page: Page) -> dict[str, list[dict[str, Any]]]:
    """Run axe-core on the page's chat widgets; return its violations and undecided contrasts."""
    assert AXE.exists(), f"no {AXE}: run 'npm ci' in js/ (axe-core is one of its devDependencies)"
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result: dict[str, list[dict[str, Any]]] = page.evaluate(_RUN_AXE, AXE_TAGS)
    return result


def describe(violations: list[dict[str, Any]]) -> str:
    """One line per violating node: the state, the rule, its impact, the element and why."""
    lines = []
    for rule in violations:
        for node in rule["nodes"]:
            impact = node["impact"] or rule["impact"]
            lines.append(
                f"[{rule['state']}] {rule['id']} ({impact}) {node['target']}: {flat(node['summary'])}"
            )
    return "\n".join(lines)


def flat(text: str) -> str:
    """``text`` on one line."""
    return " ".join(text.split())


def contrast(chat: Chat, selector: str, pseudo: str = "") -> dict[str, Any]:
    """The contrast ratio of the first ``selector`` in the chat (or its ``pseudo`` element)."""
    element = chat.root.locator(selector).first
    expect(element).to_be_visible()
    result: dict[str, Any] = element.evaluate(_CONTRAST, pseudo)
    return result


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_axe_finds_no_serious_violation_in_any_state_of_the_chat(
    request: pytest.FixtureRequest,
    open_notebook: OpenNotebook,
    jupyter: JupyterServer,
    screenshot: Screenshot,
    theme: str,
) -> None:
    """Empty, a rich answer with the disclosures open, an error and a stop: no serious violation."""
    jupyter.put_setting(THEMES, {"theme": THEME_NAMES[theme]}, TIMEOUT)
    try:
        notebook, chat = open_chat(open_notebook)
        page = notebook.page
        if theme == "dark":
            expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false")
        found: dict[str, dict[str, list[dict[str, Any]]]] = {}

        found["empty"] = run_axe(page)
        screenshot(chat.root, f"{theme}-empty")

        # A rich answer, an answer with a tool call that worked and one that failed; every
        # disclosure open; a draft in the box (Send enabled).
        chat.send(f"/echo {RICH}")
        chat.wait_for_answer(0)
        expect(chat.code_toolbar(0, 0)).to_be_visible()
        chat.send(TOOLS)
        chat.wait_for_answer(1)
        tools = chat.answer(1).locator("details.llmsock-tool")
        expect(tools).to_have_count(2)
        for index in range(2):
            tools.nth(index).locator("summary").click()
        for role in ("details", "settings"):
            disclosure = chat.root.locator(f'details[data-role="{role}"]')
            disclosure.locator("summary").click()
            expect(disclosure).to_have_attribute("open", "")
        chat.message_box.fill("a draft")
        expect(chat.send_button).to_be_enabled()
        found["answers"] = run_axe(page)
        screenshot(chat.root, f"{theme}-answers")

        # An answer streaming (Stop enabled), then stopped; an answer that failed.
        chat.message_box.fill("")
        chat.send("/error 3")
        chat.wait_for_answer(2, status="error")
        chat.send(STREAMING)
        expect(chat.answer(3).locator("pre")).to_contain_text("wide =")
        expect(chat.stop_button).to_be_enabled()
        found["streaming"] = run_axe(page)
        chat.stop_button.click()
        chat.wait_for_answer(3, status="aborted")
        found["error-stopped"] = run_axe(page)
        screenshot(chat.root, f"{theme}-error-stopped")
    finally:
        jupyter.put_setting(THEMES, {"theme": THEME_NAMES["light"]}, TIMEOUT)

    stem = artifact_name(request.node, jupyter.frontend)
    (ARTIFACTS / f"{stem}-{theme}-axe.json").write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    violations = [rule | {"state": state} for state, result in found.items() for rule in result["violations"]]
    serious = [rule for rule in violations if rule["impact"] in FAILING_IMPACTS]
    assert not serious, f"axe ({theme} theme) found serious or critical violations:\n{describe(violations)}"


# The quiet text of the widget, which axe may leave undecided or not see: (name, selector, pseudo).
QUIET_TEXT = [
    ("status line", ".llmsock-status", ""),
    ("details summary", ".llmsock-more > summary", ""),
    ("settings summary", ".llmsock-settings > summary", ""),
    ("connection detail", '[data-role="connection-detail"]', ""),
    ("store line", '[data-role="store"]', ""),
    ("queued note", ".llmsock-info", ""),
    ("stopped marker", ".llmsock-marker", ""),
    ("error line", ".llmsock-error", ""),
    ("code language", ".llmsock-code-lang", ""),
    ("settings label", ".llmsock-field > label", ""),
    ("settings note", ".llmsock-settings-note", ""),
    ("message box placeholder", ".llmsock-input", "::placeholder"),
    ("settings placeholder", ".llmsock-number", "::placeholder"),
]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_quiet_text_meets_wcag_aa_contrast(
    request: pytest.FixtureRequest,
    open_notebook: OpenNotebook,
    jupyter: JupyterServer,
    screenshot: Screenshot,
    theme: str,
) -> None:
    """The status line, notes, markers and placeholders: at least 4.5:1 against their background."""
    jupyter.put_setting(THEMES, {"theme": THEME_NAMES[theme]}, TIMEOUT)
    try:
        _, chat = open_chat(open_notebook)
        chat.send("/echo ```python\nx = 1\n```")
        chat.wait_for_answer(0)
        chat.send("/error 1")
        chat.wait_for_answer(1, status="error")
        chat.send("/hold 3")  # a running answer, a prompt queued behind it, then Stop
        expect(chat.answer(2).locator(".llmsock-body")).not_to_be_empty()
        chat.send("/echo after the stop")
        expect(chat.root.locator(".llmsock-info")).to_contain_text("queued")
        measured = {"queued note": contrast(chat, ".llmsock-info")}
        chat.stop_button.click()
        chat.wait_for_answer(2, status="aborted")
        chat.wait_for_answer(3)
        for role in ("details", "settings"):
            chat.root.locator(f'details[data-role="{role}"] > summary').click()
        for name, selector, pseudo in QUIET_TEXT:
            if name not in measured:
                measured[name] = contrast(chat, selector, pseudo)
        screenshot(chat.root, theme)
    finally:
        jupyter.put_setting(THEMES, {"theme": THEME_NAMES["light"]}, TIMEOUT)
    stem = artifact_name(request.node, jupyter.frontend)
    (ARTIFACTS / f"{stem}-{theme}-contrast.json").write_text(
        json.dumps(measured, indent=2) + "\n", encoding="utf-8"
    )
    report = "\n".join(
        f"{name}: {m['ratio']:.2f}:1 ({m['color']} on {m['background']})" for name, m in measured.items()
    )
    low = [name for name, m in measured.items() if m["ratio"] < AA_CONTRAST]
    assert not low, f"below {AA_CONTRAST}:1 in the {theme} theme: {low}\n{report}"


# Record, from now on, what the widget's live regions would announce: every node added and every
# text changed inside a live region (role log or status, or aria-live other than "off") while no
# aria-busy="true" element held it back; and every aria-busy value the last answer takes, with
# its data-status. A batch of records is read backwards from the answer's current aria-busy, so
# each change is judged by the value the answer had when it was made.
_WATCH_LIVE = """(root) => {
    const seen = {announced: [], busy: []};
    window.__llmsockLive = seen;
    const answers = root.querySelectorAll('[data-role="assistant"]');
    const answer = answers[answers.length - 1];
    const inLiveRegion = (el) => {
        const region = el && el.closest('[aria-live], [role="log"], [role="status"]');
        return region !== null && region.getAttribute('aria-live') !== 'off';
    };
    new MutationObserver((records) => {
        let busy = answer.getAttribute('aria-busy');
        const status = answer.getAttribute('data-status');
        const busyValues = [];
        for (const record of [...records].reverse()) {
            if (record.type === 'attributes') {
                if (record.target === answer) { busyValues.unshift([busy, status]); busy = record.oldValue; }
                continue;
            }
            // aria-relevant "additions text": added nodes and changed text are read, removals not.
            const changed = record.type === 'characterData' ? [record.target] : [...record.addedNodes];
            for (const node of changed) {
                const el = node.nodeType === 1 ? node : node.parentElement;
                const heldBack = (answer.contains(el) && busy === 'true')
                    || (el && el.closest('[aria-busy="true"]') !== null);
                if (el && inLiveRegion(el) && !heldBack)
                    seen.announced.push((node.outerHTML || node.textContent).slice(0, 200));
            }
        }
        seen.busy.push(...busyValues);
    }).observe(root, {subtree: true, childList: true, characterData: true, attributes: true,
                      attributeFilter: ['aria-busy'], attributeOldValue: true});
}"""


def accessibility_properties(page: Page, element: Locator) -> dict[str, Any]:
    """The role and properties chromium gives ``element`` in the tree a screen reader reads."""
    session = page.context.new_cdp_session(page)
    try:
        element.evaluate("el => { window.__llmsockProbe = el; }")
        handle = session.send("Runtime.evaluate", {"expression": "window.__llmsockProbe"})
        node = session.send("DOM.describeNode", {"objectId": handle["result"]["objectId"]})["node"]
        tree = session.send(
            "Accessibility.getPartialAXTree",
            {"backendNodeId": node["backendNodeId"], "fetchRelatives": False},
        )
    finally:
        session.detach()
    ax = tree["nodes"][0]
    properties = {item["name"]: item["value"].get("value") for item in ax.get("properties", [])}
    return {"role": ax.get("role", {}).get("value"), "name": (ax.get("name") or {}).get("value")} | properties


def test_a_streaming_answer_is_announced_once_politely_not_token_by_token(
    open_notebook: OpenNotebook,
) -> None:
    """The transcript is a polite log; the streaming answer is busy until it completes, then read."""
    notebook, chat = open_chat(open_notebook)
    page = notebook.page
    chat.send("/slow 40 /long 120")  # three seconds of answer, one word every 25 ms
    answer = chat.answer(0)
    expect(answer.locator(".llmsock-body")).to_contain_text(re.compile(r"\w+ \w+"))
    chat.root.evaluate(_WATCH_LIVE)

    log = accessibility_properties(page, chat.transcript)
    assert log["role"] == "log" and log["name"] == "Conversation", log
    assert (log["live"], log["relevant"], log["atomic"]) == ("polite", "additions text", False), log
    streaming = accessibility_properties(page, answer)
    assert streaming.get("busy") in (True, 1), (
        f"a streaming answer is not busy to assistive technology: {streaming}"
    )
    expect(answer).to_have_attribute("aria-busy", "true")
    expect(answer).to_have_attribute("data-status", "streaming")

    chat.wait_for_answer(0)
    expect(answer).to_have_attribute("aria-busy", "false")
    assert accessibility_properties(page, answer).get("busy") in (None, False, 0)
    seen = page.evaluate("window.__llmsockLive")
    # Busy through every render of the stream (each frame sets it again), not busy once: at the end.
    values = [value for i, value in enumerate(seen["busy"]) if i == 0 or seen["busy"][i - 1] != value]
    assert values == [["true", "streaming"], ["false", "complete"]], values
    assert len(seen["busy"]) > 10, f"the answer was rendered only {len(seen['busy'])} times"
    # Nothing a live region would read out while the answer streamed, but the finished answer.
    assert seen["announced"] == [], seen["announced"]


# The focused element, if it is in the chat: how a user would name it, and whether it shows that
# it has the focus (an outline, or the box shadow the message box uses instead).
_FOCUSED = """(root) => {
    const el = document.activeElement;
    if (!el || !root.contains(el)) return null;
    const style = getComputedStyle(el);
    const ring = (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0)
        || style.boxShadow !== 'none';
    const name = el.getAttribute('aria-label') || el.textContent.trim().slice(0, 40);
    return {tag: el.tagName.toLowerCase(), name, ring, visible: el.matches(':focus-visible')};
}"""


def tab_through(chat: Chat, start: Locator, limit: int = 60) -> list[dict[str, Any]]:
    """Focus ``start``, press Tab until the focus leaves the chat; return each focused control."""
    start.focus()
    page = chat.root.page
    # Back and forth: ``start`` focused by the keyboard, as :focus-visible tells apart.
    page.keyboard.press("Tab")
    page.keyboard.press("Shift+Tab")
    expect(start).to_be_focused()
    order = [chat.root.evaluate(_FOCUSED)]
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = chat.root.evaluate(_FOCUSED)
        if focused is None:
            return order
        order.append(focused)
    raise AssertionError(f"Tab did not leave the chat after {limit} presses: {order}")


def test_every_control_is_reached_by_tab_shows_its_focus_and_works_from_the_keyboard(
    open_notebook: OpenNotebook, jupyter: JupyterServer, screenshot: Screenshot
) -> None:
    """Tab visits the transcript, the steps, the code buttons, the box, Send and the disclosures in
    order, each with a focus ring; Enter and Space work them; Tab reaches Stop while it streams."""
    notebook, chat = open_chat(open_notebook)
    page = notebook.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=jupyter.base_url)
    chat.send(TOOLS)
    chat.wait_for_answer(0)
    chat.send("/echo ```python\nprint('hi')\n```")
    chat.wait_for_answer(1)
    chat.message_box.fill("a draft")  # Send is enabled (a disabled button is not in the order)

    order = tab_through(chat, chat.transcript)
    names = [item["name"] for item in order]
    wanted = ["Conversation", "calculate", "Copy code", "Message", "Send", "details", "settings"]
    positions = []
    for name in wanted:
        hits = [i for i, item in enumerate(names) if name in item]
        assert hits, f"Tab never reaches {name!r}: {names}"
        positions.append(hits[0])
    assert positions == sorted(positions), f"focus order is not {wanted}: {names}"
    no_ring = [item for item in order if not (item["visible"] and item["ring"])]
    assert not no_ring, f"focused by the keyboard without a visible focus ring: {no_ring}"

    # Space and Enter work the disclosures.
    for role, key in (("details", " "), ("settings", "Enter")):
        disclosure = chat.root.locator(f'details[data-role="{role}"]')
        disclosure.locator("summary").focus()
        page.keyboard.press(key)
        expect(disclosure).to_have_attribute("open", "")
    # The settings' fields follow their summary in the order, each with its ring.
    order = tab_through(chat, chat.root.locator('details[data-role="settings"] > summary'))
    fields = [item for item in order if item["tag"] in ("select", "input", "textarea")]
    assert len(fields) >= 3 and all(item["ring"] for item in fields), order
    tool = chat.answer(0).locator("details.llmsock-tool").first
    tool.locator("summary").focus()
    page.keyboard.press(" ")
    expect(tool).to_have_attribute("open", "")
    # Enter on Copy copies.
    chat.code_toolbar(1, 0).get_by_role("button", name="Copy code").focus()
    page.keyboard.press("Enter")
    expect(chat.code_note(1, 0)).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "print('hi')"
    screenshot(chat.root, "keyboard")

    # Space on Send sends; while the answer streams, Tab from the box reaches Stop; Enter stops.
    chat.message_box.fill("/hold 3")
    chat.message_box.focus()
    page.keyboard.press("Tab")
    expect(chat.send_button).to_be_focused()
    page.keyboard.press(" ")
    expect(chat.messages("user")).to_have_count(3)
    expect(chat.answer(2).locator(".llmsock-body")).not_to_be_empty()
    chat.message_box.focus()
    page.keyboard.press("Tab")
    expect(chat.stop_button).to_be_focused()
    assert chat.root.evaluate(_FOCUSED)["ring"], "Stop shows no focus ring"
    page.keyboard.press("Enter")
    chat.wait_for_answer(2, status="aborted")
