"""The chat view's requests about the kernel (``complete``, ``describe``, ``explain``) in a real kernel.

Sent as JupyterLab 4.4+ sends widget comm messages, to a kernel subshell, while a CPU-bound cell
holds the main thread: the answers must come without waiting for the cell.
"""

from __future__ import annotations

from typing import Any

import ipykernel
import pytest

from llmsock_widget.notebook.explain import NO_ERROR
from tests.conftest import BUSY_CELL as BUSY

from .conftest import Kernel, text_of
from .test_comm_subshell import Views, create_subshell, events, view_says

SECRET = "sk-live-0123456789abcdefghij"
SETUP = (
    "import pandas as pd\n"
    "df = pd.DataFrame({'city': ['Oslo', 'Lima', 'Pune'], 'temp': [4.5, 19.0, 31.25]})\n"
    f"api_key = {SECRET!r}\n"
    "data = [1, 2, 3]\n"
    "from llmsock_widget import ChatWidget\n"
    "w = ChatWidget(session='mentions')\n"
    "print(w.comm.comm_id)"
)
FAILING = "def ratio(total, count):\n    return total / count\n\nratio(10, 0)\n"


def reply_to(request_id: str) -> Any:
    return lambda message: message.get("id") == request_id


def said(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in events(message) if e.get("type") == kind]


def test_mentions_and_explain_answer_while_a_cpu_bound_cell_runs(kernel: Kernel) -> None:
    if int(ipykernel.__version__.split(".")[0]) < 7:
        pytest.skip(f"ipykernel {ipykernel.__version__} has no subshells (ipykernel 7+ has)")
    kernel.run("%load_ext llmsock")
    kernel.run("%llmsock model builtin")
    comm_id = text_of(kernel.run(SETUP)).strip().splitlines()[-1]
    subshell = create_subshell(kernel)
    views = Views(kernel, comm_id)

    # Nothing has failed yet: the kernel says so, and sends nothing to the model.
    view_says(kernel, comm_id, subshell, {"type": "explain", "id": "e0"})
    assert views.wait_for(reply_to("e0"), "the refusal") == {
        "type": "explained",
        "id": "e0",
        "ok": False,
        "message": NO_ERROR,
    }

    view_says(kernel, comm_id, subshell, {"kind": "link", "link": "v1", "session": "mentions"})
    views.wait_for(lambda m: m.get("kind") == "linked", "linked")
    failing = kernel.submit(FAILING)
    kernel.collect(failing)

    views.cell_id = kernel.submit(BUSY)
    kernel.stream_until(views.cell_id, "busy")  # no widget message comes meanwhile: read the cell's

    view_says(kernel, comm_id, subshell, {"type": "complete", "prefix": "d", "id": "r1"})
    completions = views.wait_for(reply_to("r1"), "the completions")
    assert completions["type"] == "completions"
    assert completions["names"] == [{"name": "data", "kind": "list"}, {"name": "df", "kind": "DataFrame"}]

    view_says(kernel, comm_id, subshell, {"type": "describe", "name": "df", "id": "r2"})
    described = views.wait_for(reply_to("r2"), "the description of df")
    assert described["ok"] is True and described["name"] == "df"
    assert "DataFrame" in described["text"] and "3 rows" in described["text"]
    assert "Oslo" in described["text"] and "temp" in described["text"]

    view_says(kernel, comm_id, subshell, {"type": "describe", "name": "api_key", "id": "r3"})
    masked = views.wait_for(reply_to("r3"), "the description of api_key")
    assert masked["ok"] is True and "masked" in masked["text"] and SECRET not in masked["text"]

    view_says(kernel, comm_id, subshell, {"type": "describe", "name": "nothing", "id": "r4"})
    unknown = views.wait_for(reply_to("r4"), "the refusal of an unknown name")
    assert unknown["ok"] is False and "nothing" in unknown["message"]

    # Explain: the last error goes to the widget's session as a prompt; its answer streams to the view.
    view_says(kernel, comm_id, subshell, {"type": "explain", "id": "e1"})
    assert views.wait_for(reply_to("e1"), "the explain's answer") == {
        "type": "explained",
        "id": "e1",
        "ok": True,
        "message": "",
    }
    prompt = views.wait_for(lambda m: bool(said(m, "message")), "the explain prompt")
    [message] = said(prompt, "message")
    assert message["text"].startswith("Explain this error and how to fix it.")
    assert "ZeroDivisionError: division by zero" in message["text"]
    assert "->    2 |     return total / count" in message["text"]
    views.wait_for(lambda m: bool(said(m, "delta")), "the answer's first delta")
    assert not views.cell_done() and "done" not in views.cell_text(), "the answers waited for the cell"

    kernel.manager.interrupt_kernel()  # end the busy cell now rather than when its clock runs out


def test_a_cell_prompt_and_chat_send_attach_their_mentions_as_the_widget_does(kernel: Kernel) -> None:
    """``%%llmsock`` and ``Chat.send`` send the summaries of the variables a prompt mentions (the
    builtin model's ``/echo`` shows what it received); a secret-looking one is masked."""
    kernel.run("%load_ext llmsock")
    kernel.run(SETUP.rsplit("from llmsock_widget", 1)[0])
    cell = text_of(kernel.run("%%llmsock cellmentions\n/echo what is in @df and @api_key, @everyone?"))
    assert "Context `@df`:" in cell and "| 2 | Pune | 31.25 |" in cell, cell
    assert "Context `@api_key`:" in cell and "masked" in cell and SECRET not in cell
    assert "@everyone" in cell and "Context `@everyone`" not in cell  # not a variable: plain text
    sent = text_of(
        kernel.run(
            "import llmsock_widget\n"
            "print(llmsock_widget.Chat('chatmentions').send('/echo sum of @data').result(30).text)"
        )
    )
    assert "Context `@data`:" in sent and "list, len 3" in sent, sent
