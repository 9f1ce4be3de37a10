"""A real ``redis-server`` process on a free loopback port, with a random password and no persistence.

Used by ``python -m benchmarks redis`` and by the tests' fixture (tests/redisserver.py), so both
start Redis the same way.  Nothing here fakes Redis: without the ``redis-server`` binary,
:class:`RedisProcess` raises :class:`RedisUnavailable` saying how to install it.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

MISSING_SERVER = "redis-server is not installed (apt-get install redis-server; scripts/test.sh installs it)"


class RedisUnavailable(RuntimeError):
    """``redis-server`` is missing, exited at start, or did not answer PING in time."""


class RedisProcess:
    """A ``redis-server`` process: ``url`` carries its password; ``stop``/``start`` keep the port."""

    def __init__(self, folder: Path, *, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable(MISSING_SERVER)
        self.binary = binary
        self.folder = folder
        self.timeout = timeout
        self.password = secrets.token_urlsafe(16)
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.url_with(self.password)

    def url_with(self, password: str) -> str:
        """Return this server's URL with ``password`` (a wrong one, to test refusals)."""
        return f"redis://:{password}@127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RedisUnavailable("redis-server is not running")
        return self.proc.pid

    def start(self) -> RedisProcess:
        """Start the server; return once it answers PING (within ``timeout``)."""
        command = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--requirepass", self.password,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.folder),
            "--logfile", str(self.folder / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self._wait_until_ready()
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL past ``timeout``) and wait for it."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def client(self) -> Any:
        """Return a synchronous redis client of this server (to look at keys, INFO, MEMORY USAGE)."""
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=self.timeout)

    def _wait_until_ready(self) -> None:
        import redis

        assert self.proc is not None
        deadline = time.monotonic() + self.timeout
        client = redis.Redis.from_url(
            self.url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout
        )
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RedisUnavailable(
                        f"redis-server on port {self.port} did not answer PING in {self.timeout:g} s"
                    )
                try:  # waiting on the process (not a sleep): it may have exited, e.g. port taken
                    code = self.proc.wait(0.02)
                except subprocess.TimeoutExpired:
                    continue
                log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                raise RedisUnavailable(f"redis-server exited with {code}:\n{log}")
        finally:
            client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
