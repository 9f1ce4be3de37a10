"""A real ``redis-server`` for the tests: on a free loopback port, with a password, in a temp folder.

One server is shared by the whole run (``redis_server``, session scope) and each test gets
keys of its own through a fresh prefix (``redis_prefix``), which keeps the suite fast.
Tests never fake Redis: if ``redis-server`` is not installed they fail and say how to get
it (``scripts/test.sh`` and CI install Debian's package).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TIMEOUT

MISSING = (
    "redis-server is not installed: the Redis tests need a real one "
    "(apt-get install redis-server; scripts/test.sh installs it)"
)


class RedisServer:
    """A ``redis-server`` process: ``url`` carries its password; ``stop``/``start`` keep the port."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(MISSING, pytrace=False)
        self.binary = binary
        self.folder = folder
        self.password = secrets.token_urlsafe(16)
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def url_with(self, password: str) -> str:
        """Return the URL with another password (to test a wrong one)."""
        return f"redis://:{password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and return once it answers PING (bounded by TIMEOUT)."""
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

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL past TIMEOUT) and wait for it."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def client(self) -> Any:
        """Return a synchronous redis client of this server (for a test to look at the keys)."""
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=TIMEOUT)

    def _wait_until_ready(self) -> None:
        import redis

        assert self.proc is not None
        deadline = time.monotonic() + TIMEOUT
        client = redis.Redis.from_url(self.url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis-server on port {self.port} did not answer PING in {TIMEOUT} s")
                try:  # waiting on the process (not a sleep): it may have exited, e.g. port taken
                    code = self.proc.wait(0.02)
                except subprocess.TimeoutExpired:
                    continue
                log = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {code}:\n{log}")
        finally:
            client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server shared by the run, with a random password; stopped at the end."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of the test's own, so tests sharing the server never see each other's keys."""
    return f"t{secrets.token_hex(6)}"
