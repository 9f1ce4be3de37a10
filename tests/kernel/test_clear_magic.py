"""``%llmsock clear [SESSION]`` in a real kernel: the chat empties, every view is told, a turn refuses it."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TIMEOUT

from .conftest import Kernel, start_kernel, stop_kernel, text_of

ASK = "__import__('llmsock_widget').ask({prompt!r}, display=False).text"

# A view of the default session, as a chat widget has one: a subscriber that keeps what it is sent.
VIEW = (
    "from llmsock_widget.notebook import kernel as _k\n"
    "from llmsock_widget.wire.protocol import Control, SendPrompt\n"
    "_s = _k.current_server()\n"
    "_seen = []\n"
    "_attached = _s.submit(_s.hub.attach('default', _seen.append)).result(10)\n"
    "async def _idle():  # the session's last turn has ended and been saved\n"
    "    worker = _s.hub.sessions['default'].worker\n"
    "    if worker is not None:\n"
    "        await worker\n"
    "_s.submit(_idle()).result(10)"
)


def said(kernel: Kernel, code: str) -> str:
    """Run ``code``; return what it showed, stripped."""
    return text_of(kernel.run(code)).strip()


def failure(kernel: Kernel, code: str) -> str:
    """Run ``code``, which must fail; return what it wrote to stderr."""
    msg_id = kernel.submit(code)
    messages = kernel.collect(msg_id)
    reply = kernel.client.get_shell_msg(timeout=TIMEOUT)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kernel.client.get_shell_msg(timeout=TIMEOUT)
    assert reply["content"]["status"] == "error"
    assert not [m for m in messages if m["msg_type"] == "error"]  # one line, no traceback
    return "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"
    )


def test_clear_empties_the_chat_and_every_view_sees_it(tmp_path: Path) -> None:
    kernel = start_kernel(tmp_path, LLMSOCK_STORE="memory")
    try:
        kernel.run("%load_ext llmsock")
        kernel.run("%llmsock model builtin:0")
        kernel.value(ASK.format(prompt="my cat is called Miso"))
        kernel.value(ASK.format(prompt="and my dog is called Rex"))
        kernel.run(VIEW)
        assert said(kernel, "%llmsock clear") == "cleared 4 messages of session 'default'"
        assert kernel.value("[type(e).__name__ for e in _seen].count('HistoryCleared')") == 1
        # The model no longer sees the earlier turns.
        answer = kernel.value(ASK.format(prompt="what is my cat called?"))
        assert "This is the first turn of our conversation." in answer and "Miso" not in answer
        # The magic's current session, or a named one.
        assert said(kernel, "%llmsock clear elsewhere") == "session 'elsewhere' has no messages"
        kernel.run("%llmsock new quiet")
        assert said(kernel, "%llmsock clear") == "session 'quiet' has no messages"
        assert said(kernel, "%llmsock clear default") == "cleared 2 messages of session 'default'"
    finally:
        stop_kernel(kernel)


def test_clear_is_refused_while_a_turn_runs(tmp_path: Path) -> None:
    kernel = start_kernel(tmp_path, LLMSOCK_STORE="memory")
    try:
        kernel.run("%load_ext llmsock")
        kernel.run("%llmsock model builtin:0")
        kernel.value(ASK.format(prompt="hello"))
        kernel.run(VIEW)
        # A turn that holds until stopped; the clear below reaches the loop after it (same queue).
        kernel.run("_s.call_soon(_s.hub.handle, 'default', SendPrompt(text='/hold 2'), _seen.append)")
        stderr = failure(kernel, "%llmsock clear")
        assert "%llmsock: session 'default' was not cleared: a turn is running: stop it first" in stderr
        assert "Traceback" not in stderr
        kernel.run("_s.call_soon(_s.hub.handle, 'default', Control(action='abort'), _seen.append)")
        kernel.run("_s.submit(_idle()).result(10)")
        assert said(kernel, "%llmsock clear") == "cleared 4 messages of session 'default'"
        stderr = failure(kernel, "%llmsock clean")
        assert "try: status, chat, model, new, store, save, clear, stop" in stderr
    finally:
        stop_kernel(kernel)
