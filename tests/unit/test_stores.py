"""Tests of the session stores: keys, the memory store and the atomic JSON file store."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from llmsock_widget.core import snapshot
from llmsock_widget.core.session import InteractionState, Message, new_state
from llmsock_widget.errors import (
    CorruptSnapshot,
    InvalidSessionId,
    SnapshotVersionError,
    StoreConflict,
    StoreError,
)
from llmsock_widget.stores import JsonFileStore, MemoryStore, SessionId, SessionStore, resolve, session_key

IDS: list[SessionId] = [
    "abc",
    {"sessionId": "abc"},
    {"sessionId": "abc", "userId": "ann"},
    {"sessionId": "A-b_9", "userId": "U_1-x"},
]

BAD_IDS: list[Any] = [
    "../x",
    "a/b",
    "..",
    ".",
    "",
    "x" * 129,
    "a.b",
    "a\x00b",
    "a\\b",
    "abc\n",
    "caf\u00e9",
    "a~b",
    {"sessionId": "abc", "userId": "../u"},
    {"sessionId": "abc", "userId": ""},
    {"sessionId": "../abc", "userId": "ann"},
    {"userId": "ann"},
    {"sessionId": 5},
    5,
    None,
]


def _state(session_id: str = "abc", *, revision: int = 1, text: str = "hello") -> InteractionState:
    messages = (
        Message(id="t1:u", role="user", text=text, turn_id="t1", ts=1001),
        Message(
            id="t1:a",
            role="assistant",
            text="hi there",
            turn_id="t1",
            ts=1002,
            usage={"inputTokens": 3, "outputTokens": 2},
        ),
    )
    return replace(
        new_state(session_id, ts=1000, model="builtin"), revision=revision, seq=4, messages=messages
    )


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "sessions"


@pytest.fixture
def store(directory: Path) -> JsonFileStore:
    return JsonFileStore(directory)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# -- keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("session_id", "key"),
    [
        ("abc", "abc"),
        ({"sessionId": "abc"}, "abc"),
        ({"sessionId": "abc", "userId": None}, "abc"),
        ({"sessionId": "abc", "userId": "ann"}, "ann~abc"),
        ("x" * 128, "x" * 128),
    ],
)
def test_session_key_normalises(session_id: Any, key: str) -> None:
    """A valid id becomes ``sessionId`` or ``userId~sessionId``."""
    assert session_key(session_id) == key


@pytest.mark.parametrize("session_id", BAD_IDS, ids=repr)
def test_session_key_rejects_bad_ids(session_id: Any) -> None:
    """An id that could name a path, or is not a string/mapping, raises InvalidSessionId."""
    with pytest.raises(InvalidSessionId) as info:
        session_key(session_id)
    assert info.value.code == "invalid_session_id"
    assert len(info.value.message) < 200


@pytest.mark.parametrize("session_id", BAD_IDS, ids=repr)
def test_bad_ids_touch_no_file(tmp_path: Path, session_id: Any) -> None:
    """Every store operation refuses a bad id before touching the disk, inside or outside tmp_path."""
    outside = sorted(p.name for p in tmp_path.parent.iterdir())
    file_store = JsonFileStore(tmp_path / "sessions")
    memory = MemoryStore()
    calls: list[Callable[[], object]] = [
        lambda: file_store.save_sync(session_id, _state()),
        lambda: file_store.load_sync(session_id),
        lambda: file_store.delete_sync(session_id),
        lambda: asyncio.run(file_store.save(session_id, _state())),
        lambda: memory.save(session_id, _state()),
        lambda: memory.load(session_id),
        lambda: memory.delete(session_id),
    ]
    for call in calls:
        with pytest.raises(InvalidSessionId):
            call()
    assert list(tmp_path.rglob("*")) == []
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == outside
    assert memory.keys() == []


# -- both stores ------------------------------------------------------------------------


def test_stores_satisfy_the_protocol(store: JsonFileStore) -> None:
    """Both stores are SessionStores."""
    assert isinstance(MemoryStore(), SessionStore)
    assert isinstance(store, SessionStore)


@pytest.mark.parametrize("session_id", IDS, ids=repr)
def test_memory_round_trip(session_id: SessionId) -> None:
    """MemoryStore returns the state it was given, under the normalised key."""
    memory = MemoryStore()
    state = _state()
    assert memory.save(session_id, state) is True
    assert memory.load(session_id) == state
    assert memory.keys() == [session_key(session_id)]


@pytest.mark.parametrize("session_id", IDS, ids=repr)
def test_file_round_trip(store: JsonFileStore, directory: Path, session_id: SessionId) -> None:
    """JsonFileStore writes ``<key>.json`` with the snapshot text and loads the same state back."""
    state = _state()
    assert asyncio.run(store.save(session_id, state)) is True
    path = directory / f"{session_key(session_id)}.json"
    assert path.read_text(encoding="utf-8") == snapshot.dumps(state)
    assert asyncio.run(store.load(session_id)) == state
    assert _leftovers(directory) == []


def test_file_store_creates_nested_directory(tmp_path: Path) -> None:
    """A missing directory (and its parents) is created on the first save."""
    file_store = JsonFileStore(tmp_path / "a" / "b", fsync=False)
    file_store.save_sync("abc", _state())
    assert (tmp_path / "a" / "b" / "abc.json").is_file()


def test_long_user_and_session_ids_round_trip(store: JsonFileStore, directory: Path) -> None:
    """Two 128-character ids still fit a file name (the stem is hashed) and stay distinct."""
    first = {"sessionId": "s" * 128, "userId": "u" * 128}
    second = {"sessionId": "s" * 127 + "t", "userId": "u" * 128}
    store.save_sync(first, _state(text="first"))
    store.save_sync(second, _state(text="second"))
    assert store.load_sync(first) == _state(text="first")
    assert store.load_sync(second) == _state(text="second")
    assert all(len(p.name) <= 255 for p in directory.iterdir())


def test_user_and_plain_ids_are_distinct() -> None:
    """The same sessionId under a userId is a different session."""
    memory = MemoryStore()
    memory.save("abc", _state(text="plain"))
    memory.save({"sessionId": "abc", "userId": "ann"}, _state(text="ann's"))
    assert memory.load("abc") == _state(text="plain")
    assert memory.keys() == ["abc", "ann~abc"]


def test_missing_id_loads_none(store: JsonFileStore) -> None:
    """Loading an id never saved returns None, even before the directory exists."""
    assert MemoryStore().load("nobody") is None
    assert asyncio.run(store.load("nobody")) is None


def test_delete(store: JsonFileStore, directory: Path) -> None:
    """Delete removes the session and reports whether it existed."""
    memory = MemoryStore()
    memory.save("abc", _state())
    assert memory.delete("abc") is True
    assert memory.delete("abc") is False
    assert memory.load("abc") is None

    store.save_sync("abc", _state())
    assert asyncio.run(store.delete("abc")) is True
    assert asyncio.run(store.delete("abc")) is False
    assert store.load_sync("abc") is None
    assert list(directory.iterdir()) == []


def test_memory_revision_conflict() -> None:
    """MemoryStore refuses a save whose revision is not newer than the stored one."""
    memory = MemoryStore()
    memory.save("abc", _state(revision=2))
    for stale in (2, 1, 0):
        with pytest.raises(StoreConflict):
            memory.save("abc", _state(revision=stale, text="stale"))
    assert memory.load("abc") == _state(revision=2)
    assert memory.save("abc", _state(revision=3)) is True


def test_file_revision_conflict(store: JsonFileStore) -> None:
    """A stale save from a second store object keeps the newer stored transcript instead of replacing it."""
    store.save_sync("abc", _state(revision=2))
    other = JsonFileStore(store.directory)
    for stale in (2, 1):
        assert asyncio.run(other.save("abc", _state(revision=stale, text="stale"))) is True
        loaded = store.load_sync("abc")
        assert loaded is not None and loaded.messages == _state(revision=2).messages
        assert loaded.revision > 2
    other.save_sync("abc", _state(revision=9))
    assert store.load_sync("abc") == _state(revision=9)


def test_concurrent_saves_never_interleave(store: JsonFileStore, directory: Path) -> None:
    """Saves of one key racing in worker threads never interleave: each is taken whole, none is refused."""

    async def race() -> list[object]:
        saves = [store.save("abc", _state(revision=n, text=f"r{n}")) for n in range(1, 21)]
        return await asyncio.gather(*saves, return_exceptions=True)

    results = asyncio.run(race())
    assert all(r is True for r in results)
    loaded = store.load_sync("abc")
    assert loaded is not None and loaded.revision >= 20
    assert replace(loaded, revision=1) in [_state(revision=1, text=f"r{n}") for n in range(1, 21)]
    assert _leftovers(directory) == []


def test_resolve_accepts_sync_and_async_results(store: JsonFileStore) -> None:
    """``resolve`` lets one caller drive a sync store and an async store alike."""

    async def round_trip(any_store: SessionStore) -> InteractionState | None:
        assert await resolve(any_store.save("abc", _state())) is True
        return await resolve(any_store.load("abc"))

    assert asyncio.run(round_trip(MemoryStore())) == _state()
    assert asyncio.run(round_trip(store)) == _state()


# -- corrupt and foreign files ----------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b'{"schema": 1, not json',
        snapshot.dumps(_state()).encode()[:-7],
        b'{"schema":1,"sessionId":"abc","seq":\xff\xfe\x00garbage',
        b'{"schema": 1, "sessionId": 5}',
        b'{"schema": [1, 2, 3]}',
    ],
    ids=["bad-json", "truncated", "not-utf8", "malformed", "bad-schema"],
)
def test_corrupt_file_is_moved_aside(store: JsonFileStore, directory: Path, content: bytes) -> None:
    """An unreadable snapshot is renamed to ``<key>.json.corrupt-1``, reported, and a fresh save works."""
    directory.mkdir()
    (directory / "abc.json").write_bytes(content)
    with pytest.raises(CorruptSnapshot) as info:
        store.load_sync("abc")
    moved = directory / "abc.json.corrupt-1"
    assert info.value.moved_to == str(moved)
    assert moved.read_bytes() == content
    assert str(directory) not in info.value.message
    assert store.load_sync("abc") is None

    store.save_sync("abc", _state(revision=1))
    assert store.load_sync("abc") == _state(revision=1)


def test_corrupt_files_get_unique_names(store: JsonFileStore, directory: Path) -> None:
    """A second corrupt snapshot of a key does not overwrite the first one moved aside."""
    directory.mkdir()
    for n, content in enumerate([b'{"schema": "first"', b'{"schema": "second"'], start=1):
        (directory / "abc.json").write_bytes(content)
        with pytest.raises(CorruptSnapshot) as info:
            asyncio.run(store.load("abc"))
        assert info.value.moved_to == str(directory / f"abc.json.corrupt-{n}")
    assert (directory / "abc.json.corrupt-1").read_bytes() == b'{"schema": "first"'
    assert (directory / "abc.json.corrupt-2").read_bytes() == b'{"schema": "second"'


def test_save_over_corrupt_file_moves_it_aside(store: JsonFileStore, directory: Path) -> None:
    """A save that finds a corrupt snapshot keeps it aside and writes the new state."""
    directory.mkdir()
    (directory / "abc.json").write_bytes(b'{"schema":1,oops')
    store.save_sync("abc", _state(revision=1))
    assert (directory / "abc.json.corrupt-1").read_bytes() == b'{"schema":1,oops'
    assert store.load_sync("abc") == _state(revision=1)


def test_newer_schema_is_left_in_place(store: JsonFileStore, directory: Path) -> None:
    """A snapshot from a newer llmsock raises SnapshotVersionError and is neither moved nor overwritten."""
    directory.mkdir()
    newer = json.dumps({**snapshot.encode(_state()), "schema": snapshot.SCHEMA + 1}).encode()
    (directory / "abc.json").write_bytes(newer)
    with pytest.raises(SnapshotVersionError):
        store.load_sync("abc")
    with pytest.raises(SnapshotVersionError):
        store.save_sync("abc", _state(revision=99))
    assert (directory / "abc.json").read_bytes() == newer
    assert sorted(p.name for p in directory.iterdir()) == ["abc.json"]


# -- failed writes ------------------------------------------------------------------------


def test_crash_between_write_and_rename_keeps_old_snapshot(
    store: JsonFileStore, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the rename fails after the temp file is written, the old snapshot stays and the temp file goes."""
    store.save_sync("abc", _state(revision=1))

    def failing_replace(src: Any, dst: Any, **dir_fds: Any) -> None:
        raise OSError(errno.EIO, "Input/output error", str(dst))

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StoreError) as info:
        store.save_sync("abc", _state(revision=2, text="lost"))
    monkeypatch.undo()
    assert "Input/output error" in info.value.message
    assert str(directory) not in info.value.message
    assert store.load_sync("abc") == _state(revision=1)
    assert _leftovers(directory) == []


def test_disk_full_keeps_old_snapshot(store: JsonFileStore, directory: Path) -> None:
    """A write that the OS refuses midway (file size limit, like a full disk) leaves the old file intact."""
    resource = pytest.importorskip("resource")
    if not hasattr(signal, "SIGXFSZ"):
        pytest.skip("no SIGXFSZ on this platform")
    store.save_sync("abc", _state(revision=1))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip("file size hard limit too low to test")
    # Ignoring SIGXFSZ turns "over the limit" into an EFBIG error instead of killing the process.
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(StoreError) as info:
            store.save_sync("abc", _state(revision=2, text="x" * 20_000))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert info.value.code == "store_error"
    assert isinstance(info.value.__cause__, OSError)
    assert store.load_sync("abc") == _state(revision=1)
    assert _leftovers(directory) == []


def test_directory_at_session_path_is_refused(store: JsonFileStore, directory: Path) -> None:
    """A directory where the session file should be is reported as a StoreError, never replaced."""
    (directory / "abc.json").mkdir(parents=True)
    with pytest.raises(StoreError, match="not a regular file"):
        store.load_sync("abc")
    with pytest.raises(StoreError):
        store.save_sync("abc", _state())
    assert (directory / "abc.json").is_dir()
    assert _leftovers(directory) == []


def test_fifo_at_session_path_is_refused_without_blocking(store: JsonFileStore, directory: Path) -> None:
    """A FIFO planted at the session path is refused instead of blocking the load."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    directory.mkdir()
    os.mkfifo(directory / "abc.json")
    with pytest.raises(StoreError, match="not a regular file"):
        store.load_sync("abc")


# -- symlinks -------------------------------------------------------------------------------


def _symlink(link: Path, target: Path) -> None:
    try:
        link.symlink_to(target)
    except (OSError, NotImplementedError):
        pytest.skip("cannot create symlinks here")


def test_symlinked_session_file_is_refused(store: JsonFileStore, directory: Path, tmp_path: Path) -> None:
    """A session file that is a symlink is neither read, written through, nor deleted."""
    directory.mkdir()
    outside = tmp_path / "outside.json"
    outside.write_text(snapshot.dumps(_state(revision=1, text="outside")), encoding="utf-8")
    before = outside.read_bytes()
    _symlink(directory / "abc.json", outside)
    with pytest.raises(StoreError, match="symlink"):
        store.load_sync("abc")
    with pytest.raises(StoreError, match="symlink"):
        asyncio.run(store.save("abc", _state(revision=5)))
    with pytest.raises(StoreError, match="symlink"):
        store.delete_sync("abc")
    assert outside.read_bytes() == before
    assert (directory / "abc.json").is_symlink()
    assert _leftovers(directory) == []


def test_dangling_symlink_is_refused(store: JsonFileStore, directory: Path, tmp_path: Path) -> None:
    """A symlink to a missing file is refused, and the file it names is not created."""
    directory.mkdir()
    target = tmp_path / "planted.json"
    _symlink(directory / "abc.json", target)
    with pytest.raises(StoreError, match="symlink"):
        store.load_sync("abc")
    with pytest.raises(StoreError, match="symlink"):
        store.save_sync("abc", _state())
    assert not target.exists()
