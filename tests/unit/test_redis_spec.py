"""Naming a Redis store: URLs shown without their password, specs, settings, and no import of redis."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmsock_widget.notebook import storage
from llmsock_widget.notebook.settings import Settings
from llmsock_widget.stores import RedisStore
from llmsock_widget.stores.redis import shown_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://ann:s3cret@host:6380/2", "rediss://ann:***@host:6380/2"),
        ("redis://ann@host", "redis://ann@host"),
        ("redis://host:6379/0?password=s3cret#x", "redis://host:6379/0"),
        ("redis://:p@ss:s3cret@host/0", "redis://:***@host/0"),  # the last @ ends the user part
        ("s3cret@host", "host"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert shown_url(url) == shown
    assert "s3cret" not in shown


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://:s3cret@host:notaport", "not a Redis URL: redis://:***@host:notaport"),
        ("http://x", "not a Redis URL: http://x; use redis:// or rediss:// (TLS)"),
        ("redis://:s3cret@/0", "no host in the Redis URL redis://:***@/0"),
        ("redis://:s3cret@host:6379/db1", "the database of the Redis URL redis://:***@host:6379/db1"),
    ],
)
def test_a_bad_url_is_a_value_error_that_shows_no_password(url: str, says: str) -> None:
    with pytest.raises(ValueError) as info:
        RedisStore(url)
    assert says in str(info.value) and "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"prefix": "a{b}"}, "prefix"),
        ({"prefix": ""}, "prefix"),
        ({"prefix": "a*"}, "prefix"),
        ({"ttl": 0}, "ttl"),
        ({"timeout": -1}, "timeout"),
    ],
)
def test_a_prefix_ttl_or_timeout_that_would_break_keys_is_refused(options: dict, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        RedisStore("redis://127.0.0.1:6379/0", **options)


def test_the_store_shows_no_password_in_its_repr_or_description() -> None:
    store = RedisStore("redis://:s3cret@10.0.0.5:6379/1", prefix="team", ttl=3600)
    assert repr(store) == "RedisStore('redis://:***@10.0.0.5:6379/1', prefix='team', ttl=3600)"
    assert storage.describe_store(store) == (
        "Redis at redis://:***@10.0.0.5:6379/1 (keys team:{<session>}:snapshot)"
    )
    assert store.key_of({"sessionId": "abc", "userId": "ann"}) == "team:{ann~abc}:snapshot"


def test_llmsock_redis_url_is_read_by_settings_and_never_shown() -> None:
    """The variable is read (trimmed; empty is unset) and kept out of the settings' repr."""
    settings = Settings.from_environ({"LLMSOCK_REDIS_URL": " redis://:s3cret@h:1/0 "})
    assert settings.redis_url == "redis://:s3cret@h:1/0"
    assert "s3cret" not in repr(settings)
    assert Settings.from_environ({"LLMSOCK_REDIS_URL": " "}).redis_url is None


def test_llmsock_redis_url_makes_redis_the_default_unless_llmsock_store_names_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LLMSOCK_STORE", raising=False)
    monkeypatch.setenv("LLMSOCK_REDIS_URL", "redis://127.0.0.1:1/0")
    assert storage.default_spec() == "redis"
    monkeypatch.setenv("LLMSOCK_STORE", "memory")
    assert storage.default_spec() == "memory"
    monkeypatch.delenv("LLMSOCK_REDIS_URL")
    monkeypatch.delenv("LLMSOCK_STORE")
    assert storage.default_spec() == "memory"  # not a notebook's kernel: as before


def test_the_bare_redis_spec_needs_llmsock_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMSOCK_REDIS_URL", raising=False)
    with pytest.raises(ValueError) as info:
        storage.make_store("redis")
    assert str(info.value).startswith("unknown llmsock store 'redis' (LLMSOCK_REDIS_URL is not set); use ")


def test_an_unknown_spec_with_a_password_is_shown_without_it() -> None:
    with pytest.raises(ValueError) as info:
        storage.make_store("redis+sentinel://:s3cret@host/0")
    assert "s3cret" not in str(info.value)
    assert "unknown llmsock store 'redis+sentinel://:***@host/0'; use notebook, memory, file" in str(
        info.value
    )


def test_importing_the_package_and_its_stores_does_not_import_redis() -> None:
    """Nothing of redis loads unless a Redis store makes a client (the ``redis`` extra is optional)."""
    code = (
        "import sys, llmsock_widget, llmsock_widget.stores, llmsock_widget.stores.redis\n"
        "from llmsock_widget.stores.redis import RedisStore\n"
        "RedisStore('redis://127.0.0.1:6379/0')\n"
        "print(sorted(m for m in sys.modules if m == 'redis' or m.startswith('redis.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_without_the_redis_package_a_redis_store_says_which_extra_to_install() -> None:
    """As if ``redis`` were not installed: RedisStore and the spec say ``pip install 'llmsock[redis]'``."""
    code = (
        "import sys\n"
        "class Missing:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] == 'redis':\n"
        "            raise ModuleNotFoundError(name, name=name)\n"
        "sys.meta_path.insert(0, Missing())\n"
        "from llmsock_widget.notebook.storage import make_store\n"
        "from llmsock_widget.stores.redis import RedisStore\n"
        "for attempt in (lambda: RedisStore('redis://h:1/0'), lambda: make_store('redis://h:1/0')):\n"
        "    try:\n"
        "        attempt()\n"
        "    except (ImportError, ValueError) as exc:\n"
        "        print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        "ImportError the Redis store needs the redis package: pip install 'llmsock[redis]'",
        "ValueError the Redis store needs the redis package: pip install 'llmsock[redis]'",
    ]


def test_a_redis_spec_is_pinged_unless_check_is_false() -> None:
    """Nothing listens on the port: the spec is refused naming the URL, or made without asking."""
    import socket

    from llmsock_widget.errors import StoreError

    with socket.socket() as sock:  # bound, never listening: a connection there is refused
        sock.bind(("127.0.0.1", 0))
        url = f"redis://:s3cret@127.0.0.1:{sock.getsockname()[1]}/0"
        with pytest.raises(StoreError) as info:
            storage.make_store(url)
        made = storage.make_store(url, check=False)
    assert info.value.message == f"Redis at {shown_url(url)} is unavailable: connection refused"
    assert isinstance(made, RedisStore) and made.shown_url == shown_url(url)
