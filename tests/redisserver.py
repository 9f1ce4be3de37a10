"""A real ``redis-server`` for the tests: on a free loopback port, with a password, in a temp folder;
and a real Redis Cluster of three of them (``redis_cluster``), started only by the tests that ask.

One server is shared by the whole run (``redis_server``, session scope) and each test gets
keys of its own through a fresh prefix (``redis_prefix``), which keeps the suite fast.
Tests never fake Redis: if ``redis-server`` is not installed they fail and say how to get
it (``scripts/test.sh`` and CI install Debian's package).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.redisprocess import RedisClusterProcess, RedisProcess, RedisUnavailable
from tests.conftest import TIMEOUT


@contextlib.contextmanager
def _needs_redis() -> Iterator[None]:
    """Fail (not skip) the test that needs redis-server where it is missing, saying how to get it."""
    try:
        yield
    except RedisUnavailable as exc:
        pytest.fail(f"the Redis tests need a real redis-server: {exc}", pytrace=False)


class RedisServer(RedisProcess):
    """The tests' redis-server: ``RedisProcess`` with the run's TIMEOUT."""

    def __init__(self, folder: Path) -> None:
        with _needs_redis():
            super().__init__(folder, timeout=TIMEOUT)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server shared by the run, with a random password; stopped at the end."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class RedisCluster(RedisClusterProcess):
    """The tests' Redis Cluster: three primaries, with the run's TIMEOUT."""

    def __init__(self, folder: Path) -> None:
        with _needs_redis():
            super().__init__(folder, timeout=TIMEOUT)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A real Redis Cluster (three redis-server processes) shared by the run; stopped at the end."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of the test's own, so tests sharing the server never see each other's keys."""
    return f"t{secrets.token_hex(6)}"
