"""A fresh widget's first comm request, sent to a subshell while a CPU-bound cell runs, is answered at once.

ipykernel 7.4 sends a comm's incoming messages to the subshell the comm last published from,
whatever subshell the front end named: a widget made in a cell published its ``comm_open`` from
the main shell, so without the widget's own routing its first request would wait for the busy
cell, and so would every request after a cell changes one of its traits.
"""

from __future__ import annotations

import ipykernel
import pytest

from tests.conftest import BUSY_CELL as BUSY

from .conftest import Kernel, text_of
from .test_comm_subshell import Views, create_subshell, view_says
from .test_mentions import reply_to

SETUP = (
    "data = [1, 2, 3]\n"
    "from llmsock_widget import ChatWidget\n"
    "w = ChatWidget(session='first')\n"
    "print(w.comm.comm_id)"
)


def complete_during_a_busy_cell(kernel: Kernel, views: Views, subshell: str, request_id: str) -> None:
    """Ask for completions on ``subshell`` while a busy cell runs; the answer must not wait for it."""
    views.cell, views.cell_id = [], kernel.submit(BUSY)
    kernel.stream_until(views.cell_id, "busy")
    view_says(kernel, views.comm_id, subshell, {"type": "complete", "prefix": "d", "id": request_id})
    completions = views.wait_for(reply_to(request_id), f"the completions {request_id}")
    assert completions["names"] == [{"name": "data", "kind": "list"}]
    assert not views.cell_done() and "done" not in views.cell_text(), "the answer waited for the cell"
    kernel.manager.interrupt_kernel()  # end the busy cell now rather than when its clock runs out
    kernel.collect(views.cell_id)


def test_first_request_of_a_fresh_widget_is_answered_while_a_cpu_bound_cell_runs(kernel: Kernel) -> None:
    if int(ipykernel.__version__.split(".")[0]) < 7:
        pytest.skip(f"ipykernel {ipykernel.__version__} has no subshells (ipykernel 7+ has)")
    kernel.run("%load_ext llmsock")
    comm_id = text_of(kernel.run(SETUP)).strip().splitlines()[-1]
    subshell = create_subshell(kernel)
    views = Views(kernel, comm_id)

    # The widget has never answered on the subshell: its first request comes during the busy cell.
    complete_during_a_busy_cell(kernel, views, subshell, "r1")

    # A cell changes a synced trait: the widget publishes from the main shell again.
    kernel.run("w.temperature = 0.5")
    complete_during_a_busy_cell(kernel, views, subshell, "r2")

    # After a kernel restart JupyterLab still names the old kernel's subshell: the kernel has no
    # such subshell, so the message goes where the kernel would send it (not refused, unanswered).
    stale = "not-a-subshell-of-this-kernel"
    view_says(kernel, comm_id, stale, {"type": "complete", "prefix": "d", "id": "r3"})
    completions = views.wait_for(reply_to("r3"), "the completions r3")
    assert completions["names"] == [{"name": "data", "kind": "list"}]
