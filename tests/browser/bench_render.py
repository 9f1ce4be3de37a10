"""Benchmark: how fast the chat widget renders a long streamed answer in real JupyterLab.

Run: ``python -m tests.browser.bench_render [--tokens 10000] [--repeat 3] [--frontend lab]``

Not a test (pytest does not collect it).  It starts JupyterLab (or Notebook 7) with the same
harness as the browser tests, opens a notebook with a chat widget in Debian's chromium, sends
``/slow 0 /long N`` (the builtin model, unpaced) and records, in the page, the time and the
answer's length at every DOM change of the transcript.  It prints, per transport:

* time to first text, and time until the answer shows ``complete``;
* DOM updates while streaming, and the longest gap between two of them (a stall);
* characters rendered per second.
"""

from __future__ import annotations

import argparse
import itertools
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

_RECORD = """(log) => {
    const t0 = performance.now();
    const seen = [];
    window.__render = {t0, seen};
    new MutationObserver(() => {
        const answers = log.querySelectorAll('[data-role="assistant"]');
        const last = answers[answers.length - 1];
        if (!last) return;
        const body = last.querySelector('.llmsock-body') || last;
        seen.push([performance.now() - t0, body.textContent.length, last.getAttribute('data-status')]);
    }).observe(log, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def one_run(page: Page, chat: Chat, tokens: int, index: int) -> dict[str, Any]:
    chat.transcript.evaluate(_RECORD)
    chat.send(f"/slow 0 /long {tokens}")
    expect(chat.answer(index)).to_have_attribute("data-status", "complete", timeout=300_000)
    seen = page.evaluate("window.__render.seen")
    streaming = [s for s in seen if s[2] == "streaming" and s[1] > 0]
    done = next(s for s in seen if s[2] == "complete")
    times = [s[0] for s in streaming] + [done[0]]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {
        "first_text_ms": streaming[0][0] if streaming else done[0],
        "complete_ms": done[0],
        "updates": len(streaming),
        "longest_gap_ms": max(gaps) if gaps else 0.0,
        "chars": done[1],
        "chars_per_s": done[1] / (done[0] / 1000) if done[0] else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frontend", choices=("lab", "notebook"), default="lab")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="llmsock-render-"))
    jupyter = JupyterServer(
        frontend=args.frontend, root_dir=base / "root", home=base / "home", log_path=base / "jupyter.log"
    ).start(timeout=120)
    rows = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            for transport in ("direct", "comm"):
                context = browser.new_context(viewport=VIEWPORT)
                page = context.new_page()
                cells = [
                    f"import os\nos.environ['LLMSOCK_TRANSPORT'] = {transport!r}\n%load_ext llmsock",
                    "from llmsock_widget import ChatWidget\nChatWidget()",
                ]
                notebook = Notebook.open(page, jupyter, f"render-{transport}.ipynb", cells)
                notebook.run_cells(0, 1)
                chat = Chat(notebook.output(1).locator(".llmsock-chat"))
                chat.wait_until_open(transport, timeout=60)
                chat.send("warm up")
                expect(chat.answer(0)).to_have_attribute("data-status", "complete", timeout=60_000)
                runs = [one_run(page, chat, args.tokens, i + 1) for i in range(args.repeat)]
                rows.append((transport, runs))
                context.close()
                jupyter.shutdown_kernels()
            browser.close()
    finally:
        jupyter.stop(timeout=30)
    print(f"render benchmark: {args.frontend}, /slow 0 /long {args.tokens}, median of {args.repeat} runs")
    header = [
        "transport",
        "first text ms",
        "complete ms",
        "DOM updates",
        "longest gap ms",
        "chars",
        "chars/s",
    ]
    print("  ".join(header))
    for transport, runs in rows:

        def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return float(statistics.median(r[key] for r in runs))

        values = [
            transport,
            f"{med('first_text_ms'):.0f}",
            f"{med('complete_ms'):.0f}",
            f"{med('updates'):.0f}",
            f"{med('longest_gap_ms'):.0f}",
            f"{med('chars'):.0f}",
            f"{med('chars_per_s'):,.0f}",
        ]
        print("  ".join(values))
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"(took {time.monotonic() - started:.0f} s)")
    raise SystemExit(code)
