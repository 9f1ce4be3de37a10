"""The terminal chat on a real terminal (a pseudo-terminal): one prompt per line to type."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from llmsock_widget.server.thread import ServerThread
from tests.conftest import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]


class Terminal:
    """The master side of a pseudo-terminal: what the chat printed, read with a deadline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.screen = b""

    def type(self, text: bytes) -> None:
        os.write(self.fd, text)

    def wait_for(self, ending: bytes) -> bytes:
        """Read until the screen ends with ``ending``; return the screen."""
        deadline = time.monotonic() + TIMEOUT
        while not self.screen.endswith(ending):
            left = deadline - time.monotonic()
            assert left > 0, f"the terminal shows {self.screen!r}, not yet ending with {ending!r}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                self.screen += os.read(self.fd, 4096)
        return self.screen

    def drain(self) -> None:
        """Read what is left once the chat has exited (EIO: nothing holds the terminal any more)."""
        while select.select([self.fd], [], [], 0)[0]:
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.screen += chunk


def test_the_chat_shows_one_prompt_at_a_time(server: ServerThread) -> None:
    """Each line to type gets one "> ", also when the session's events arrive between answers."""
    master, slave = pty.openpty()
    env = {**os.environ, "LLMSOCK_TOKEN": server.token}
    command = [sys.executable, "-m", "llmsock_widget", "chat", "--url", server.url, "--session", "tty"]
    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    os.close(slave)
    terminal = Terminal(master)
    try:
        terminal.wait_for(b"> ")
        terminal.type(b"/echo first\n")
        terminal.wait_for(b"first\r\n> ")
        # The second line goes through only once the first turn's own events have come in.
        terminal.type(b"/echo second\n")
        terminal.wait_for(b"second\r\n> ")
        terminal.type(b"\x04")  # Ctrl-D: the end of input
        assert proc.wait(TIMEOUT) == 0
        terminal.drain()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        os.close(master)
        assert proc.stderr is not None
        proc.stderr.close()
    assert terminal.screen == b"> /echo first\r\nfirst\r\n> /echo second\r\nsecond\r\n> "
