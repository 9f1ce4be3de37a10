"""A real ``redis-server`` process on a free loopback port, with a random password and no persistence,
and a real Redis Cluster of three such processes (:class:`RedisClusterProcess`).

Used by ``python -m benchmarks redis`` and by the tests' fixtures (tests/redisserver.py), so both
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

    def __init__(
        self, folder: Path, *, timeout: float = 10.0, password: str | None = None, cluster: bool = False
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable(MISSING_SERVER)
        self.binary = binary
        self.folder = folder
        self.timeout = timeout
        self.password = password or secrets.token_urlsafe(16)
        self.cluster = cluster  # a node of a Redis Cluster (see RedisClusterProcess)
        self.port = _free_port()
        # A node's cluster bus port (by default port + 10000, past 65535 for half the free ports).
        self.bus_port = _free_port() if cluster else 0
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
        if self.cluster:
            command += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.folder / "nodes.conf"),
                "--cluster-port", str(self.bus_port),
                "--masterauth", self.password,
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


class RedisClusterProcess:
    """A Redis Cluster of ``nodes`` primaries (no replicas), each a :class:`RedisProcess` with the
    same password; the 16,384 slots split evenly. ``url`` is ``redis+cluster://`` to the first."""

    def __init__(self, folder: Path, *, nodes: int = 3, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.password = secrets.token_urlsafe(16)
        self.nodes = []
        for number in range(nodes):
            (folder / f"node{number}").mkdir(parents=True, exist_ok=True)
            self.nodes.append(
                RedisProcess(folder / f"node{number}", timeout=timeout, password=self.password, cluster=True)
            )

    @property
    def url(self) -> str:
        return f"redis+cluster://:{self.password}@127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> RedisClusterProcess:
        """Start every node, give each its slots, introduce them; return once the cluster is ok."""
        clients: list[Any] = []
        try:
            for node in self.nodes:
                node.start()
                clients.append(node.client())
            share = SLOTS // len(clients)
            for number, client in enumerate(clients):
                last = SLOTS - 1 if number == len(clients) - 1 else (number + 1) * share - 1
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", number * share, last)
            for node in self.nodes[1:]:
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.bus_port)
            self._wait_until_ok(clients)
        except BaseException:
            self.stop()
            raise
        finally:
            for client in clients:
                client.close()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def client(self) -> Any:
        """Return a synchronous cluster client (to look at keys)."""
        import redis

        return redis.RedisCluster.from_url(self.nodes[0].url, socket_timeout=self.timeout)

    def _wait_until_ok(self, clients: list[Any]) -> None:
        """Wait until every node says ``cluster_state:ok`` (the nodes learn of each other by gossip)."""
        deadline = time.monotonic() + self.timeout
        first = self.nodes[0].proc
        assert first is not None
        while not all(b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO") for client in clients):
            if time.monotonic() > deadline:
                raise RedisUnavailable(f"the Redis Cluster was not ok within {self.timeout:g} s")
            try:  # waiting on a node's process (not a sleep): it may have exited
                code = first.wait(0.02)
            except subprocess.TimeoutExpired:
                continue
            raise RedisUnavailable(f"a Redis Cluster node exited with {code}")


SLOTS = 16_384  # a Redis Cluster's hash slots


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
