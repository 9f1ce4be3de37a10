"""Benchmark: how fast the chat widget renders a long streamed answer in real JupyterLab.

Run: ``python -m tests.browser.bench_render [--transport direct proxy comm]
[--tokens 1000 10000 50000 100000] [--shape prose table code deeplist unbroken] [--repeat 3]``

Not a test (pytest does not collect it).  It starts JupyterLab (or Notebook 7) with the same
harness as the browser tests, opens a notebook with a chat widget in Debian's chromium for each
transport, and has the builtin model stream each shape of text unpaced: ``prose`` is
``/slow 0 /long N``; the other shapes are ``/slow 0 /shape SHAPE N`` (docs/configuration.md): a
big ``table``, one huge ``code`` block, a ``deeplist`` nested eight deep, and ``unbroken`` words
of 90 characters, each N deltas long.

In the page it records the time and the answer's length at every DOM change of the transcript,
the gaps between animation frames and the longest 'longtask' (PerformanceObserver).  It prints,
per transport, shape and length (median of the runs, and the spread of ``complete``):

* time to first text, time until the answer shows ``complete``, and ``answer ms``: from the
  moment the answer appeared to ``complete``;
* DOM updates while streaming, and the longest gap between two of them;
* the longest main-thread stall once the answer is on the page: the longest gap between two
  animation frames, and the longest task the browser reported;
* characters rendered per second, and the load average when the row was measured.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect, sync_playwright

from .chat import Chat
from .conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT
from .jupyter_process import JupyterServer
from .notebook import Notebook

TRANSPORTS = ("direct", "proxy", "comm")
SHAPES = ("prose", "table", "code", "deeplist", "unbroken")

_RECORD = """(log, index) => {
    const t0 = performance.now();
    const seen = [];
    const stall = {frame: 0, task: 0, last: t0, running: true};
    const render = {t0, seen, stall, answerAt: null, tasks: [], complete: false};
    window.__render = render;
    const tick = (now) => {
        // Counted once the answer is on the page: before it the page lays out the prompt.
        if (render.answerAt !== null) stall.frame = Math.max(stall.frame, now - stall.last);
        stall.last = now;
        if (stall.running) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    try {
        const tasks = new PerformanceObserver((list) => {
            const seen = render.tasks;
            for (const entry of list.getEntries()) seen.push([entry.startTime, entry.duration]);
        });
        tasks.observe({type: 'longtask'});
        render.observer = tasks;
    } catch (error) {
        stall.task = -1;  // no longtask support: the frame gap is the measure
    }
    // This run's own record (an observer of an earlier run must not touch it), stopped by _STOP.
    render.mutations = new MutationObserver(() => {
        const answers = log.querySelectorAll('[data-role="assistant"]');
        const last = answers[index];
        if (!last) return;  // the answer this run waits for is not there yet
        if (render.answerAt === null) render.answerAt = performance.now();
        const body = last.querySelector('.llmsock-body') || last;
        const status = last.getAttribute('data-status');
        seen.push([performance.now() - t0, body.textContent.length, status]);
        if (status === 'complete') render.complete = true;
    });
    render.mutations.observe(log, {subtree: true, childList: true, characterData: true, attributes: true});
}"""

_TYPE = """(box, text) => {
    box.value = text;
    box.dispatchEvent(new Event('input', {bubbles: true}));
}"""

# One more frame after the answer completed, then stop the monitors and hand back what they saw.
_STOP = """() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => {
    const render = window.__render;
    render.stall.running = false;
    render.mutations.disconnect();
    if (render.observer) {
        const left = render.observer.takeRecords();
        for (const entry of left) render.tasks.push([entry.startTime, entry.duration]);
        render.observer.disconnect();
    }
    // Tasks that ended after the answer appeared (a task that was running then is counted too).
    const from = render.answerAt ?? render.t0;
    const task = render.tasks.filter(([start, duration]) => start + duration >= from)
        .reduce((longest, [, duration]) => Math.max(longest, duration), 0);
    resolve({seen: render.seen, frame: render.stall.frame, task: render.stall.task < 0 ? -1 : task,
             answerAt: from - render.t0});
})))"""


# The builtin model's /shape for each shape the benchmark names.
_SHAPE = {"table": "table", "code": "code", "deeplist": "list", "unbroken": "unbroken"}


def prompt_for(shape: str, deltas: int) -> str:
    """Return the prompt that streams ``deltas`` deltas of ``shape``, unpaced."""
    if shape == "prose":
        return f"/slow 0 /long {deltas}"
    return f"/slow 0 /shape {_SHAPE[shape]} {deltas}"


def one_run(page: Page, chat: Chat, prompt: str, index: int) -> dict[str, Any]:
    """Send ``prompt``, wait for answer ``index`` to complete; return what the page measured."""
    # Typing 100 KiB into the box through the keyboard would take longer than the answer.
    chat.message_box.evaluate(_TYPE, prompt)
    expect(chat.send_button).to_be_enabled()
    chat.transcript.evaluate(_RECORD, index)
    chat.send_button.click()
    # Waited for in the page by the observer's flag, polled cheaply: a Playwright assertion that
    # retries snapshots the page's accessibility tree each time, a long task of its own.
    page.wait_for_function("() => window.__render.complete === true", polling=50, timeout=300_000)
    measured = page.evaluate(_STOP)
    seen = measured["seen"]
    streaming = [s for s in seen if s[2] == "streaming" and s[1] > 0]
    done = next(s for s in seen if s[2] == "complete")
    times = [s[0] for s in streaming] + [done[0]]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {
        "first_text_ms": streaming[0][0] if streaming else done[0],
        "complete_ms": done[0],
        "answer_ms": done[0] - measured["answerAt"],
        "updates": len(streaming),
        "longest_gap_ms": max(gaps) if gaps else 0.0,
        "frame_stall_ms": measured["frame"],
        "longtask_ms": measured["task"],
        "chars": done[1],
        "chars_per_s": done[1] / (done[0] / 1000) if done[0] else 0.0,
        "load": os.getloadavg()[0],
    }


def run_transport(
    browser: Any, jupyter: JupyterServer, transport: str, cases: list[tuple[str, int, str]], repeat: int
) -> list[tuple[str, str, int, list[dict[str, Any]]]]:
    """Open a notebook on ``transport``; measure each case ``repeat`` times in a chat of its own.

    A chat of its own per case: what the page does per turn for the session's whole history
    (the notebook's copy of the chat) then does not grow from one case to the next.
    """
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    cells = [
        f"import os\nos.environ['LLMSOCK_TRANSPORT'] = {transport!r}\n%load_ext llmsock",
        "from llmsock_widget import ChatWidget\nChatWidget(session='warm-up')",
    ]
    cells += [f"ChatWidget(session='{shape}-{deltas}')" for shape, deltas, _ in cases]
    notebook = Notebook.open(page, jupyter, f"render-{transport}.ipynb", cells)
    notebook.run_cells(0, 1)
    chat = Chat(notebook.output(1).locator(".llmsock-chat"))
    chat.wait_until_open(transport, timeout=60)
    chat.send("warm up")
    expect(chat.answer(0)).to_have_attribute("data-status", "complete", timeout=60_000)
    rows = []
    for cell, (shape, deltas, prompt) in enumerate(cases, start=2):
        notebook.run_cell(cell)
        chat = Chat(notebook.output(cell).locator(".llmsock-chat"))
        chat.wait_until_open(transport, timeout=60)
        runs = [one_run(page, chat, prompt, index) for index in range(repeat)]
        rows.append((transport, shape, deltas, runs))
        print_row(rows[-1], flush=True)
    context.close()
    jupyter.shutdown_kernels()
    return rows


HEADER = (
    "transport  shape     deltas   chars    first ms  complete ms (min-max)   answer ms  updates  gap ms"
    "  frame stall ms  longtask ms  chars/s     load"
)


def print_row(row: tuple[str, str, int, list[dict[str, Any]]], *, flush: bool = False) -> None:
    """Print one row: the medians of its runs, the spread of ``complete``, and the load."""
    transport, shape, deltas, runs = row

    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    complete = [r["complete_ms"] for r in runs]
    spread = f"{med('complete_ms'):,.0f} ({min(complete):,.0f}-{max(complete):,.0f})"
    print(
        f"{transport:<10} {shape:<9} {deltas:>7,} {med('chars'):>8,.0f} {med('first_text_ms'):>8,.0f}"
        f"  {spread:<22} {med('answer_ms'):>9,.0f} {med('updates'):>8,.0f} {med('longest_gap_ms'):>7,.0f}"
        f" {med('frame_stall_ms'):>15,.0f} {med('longtask_ms'):>12,.0f} {med('chars_per_s'):>10,.0f}"
        f"  {min(r['load'] for r in runs):.2f}-{max(r['load'] for r in runs):.2f}",
        flush=flush,
    )


def main() -> int:
    """Measure every transport, shape and length asked for; print a table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--transport", nargs="+", choices=TRANSPORTS, default=list(TRANSPORTS))
    parser.add_argument("--tokens", nargs="+", type=int, default=[1_000, 10_000, 50_000, 100_000])
    parser.add_argument("--shape", nargs="+", choices=SHAPES, default=["prose"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frontend", choices=("lab", "notebook"), default="lab")
    args = parser.parse_args()
    cases = []
    for shape in args.shape:
        for deltas in args.tokens:
            cases.append((shape, deltas, prompt_for(shape, deltas)))
    print(f"render benchmark: {args.frontend}, median of {args.repeat} runs after a warm-up")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(HEADER, flush=True)
    base = Path(tempfile.mkdtemp(prefix="llmsock-render-"))
    jupyter = JupyterServer(
        frontend=args.frontend, root_dir=base / "root", home=base / "home", log_path=base / "jupyter.log"
    ).start(timeout=120)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            for transport in args.transport:
                run_transport(browser, jupyter, transport, cases, args.repeat)
            browser.close()
    finally:
        jupyter.stop(timeout=30)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"(took {time.monotonic() - started:.0f} s)")
    raise SystemExit(code)
