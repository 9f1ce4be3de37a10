"""Planted links and foreign files in a store folder never send chats elsewhere or get renamed (B6)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from llmsock_widget.core import snapshot
from llmsock_widget.core.session import InteractionState, new_state
from llmsock_widget.errors import CorruptSnapshot, StoreError
from llmsock_widget.stores import JsonFileStore, jsonfile
from llmsock_widget.stores.notebook import NotebookStore

UNRELATED = b"my own notes, not a chat\n"


def _state(revision: int = 1) -> InteractionState:
    return replace(new_state("default", ts=1_700_000_000_000, model="builtin"), revision=revision)


def _symlink(link: Path, target: Path) -> None:
    try:
        link.symlink_to(target, target_is_directory=True)
    except (OSError, NotImplementedError):
        pytest.skip("cannot create symlinks here")


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the notebook's, holding an unrelated ``analysis/default.json``."""
    folder = tmp_path / "elsewhere"
    (folder / "analysis").mkdir(parents=True)
    (folder / "analysis" / "default.json").write_bytes(UNRELATED)
    return folder


@pytest.fixture
def notebook_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def test_a_planted_llmsock_link_sends_nothing_outside(notebook_dir: Path, outside: Path) -> None:
    """A `.llmsock` symlink next to the notebook is refused: nothing is read, written or renamed outside."""
    _symlink(notebook_dir / ".llmsock", outside)
    before = _tree(outside)
    store = JsonFileStore(notebook_dir / ".llmsock" / "analysis", fsync=False)
    with pytest.raises(StoreError, match=r"\.llmsock is a symlink"):
        store.save_sync("default", _state())
    with pytest.raises(StoreError, match=r"\.llmsock is a symlink"):
        store.load_sync("default")
    with pytest.raises(StoreError, match=r"\.llmsock is a symlink"):
        store.delete_sync("default")
    assert _tree(outside) == before


def test_a_planted_notebook_folder_link_sends_nothing_outside(notebook_dir: Path, outside: Path) -> None:
    """A `.llmsock/<notebook>` symlink is refused the same way, with the link named in the error."""
    (notebook_dir / ".llmsock").mkdir()
    _symlink(notebook_dir / ".llmsock" / "analysis", outside / "analysis")
    before = _tree(outside)
    store = JsonFileStore(notebook_dir / ".llmsock" / "analysis", fsync=False)
    with pytest.raises(StoreError, match=r"\.llmsock/analysis is a symlink; refusing to follow it"):
        store.save_sync("default", _state())
    assert _tree(outside) == before


def test_the_notebook_store_refuses_a_planted_link_and_says_so(notebook_dir: Path, outside: Path) -> None:
    """The kernel's default store fails the save with a clear error (the chat stays in memory)."""
    _symlink(notebook_dir / ".llmsock", outside)
    before = _tree(outside)
    store = NotebookStore(notebook_dir / ".llmsock" / "analysis")
    with pytest.raises(StoreError, match="symlink"):
        asyncio.run(store.save("default", _state()))
    assert asyncio.run(store.load("default")) == _state()  # kept in this kernel
    assert _tree(outside) == before


def test_an_unrelated_file_is_never_renamed_or_replaced(tmp_path: Path) -> None:
    """A `default.json` llmsock did not write is left as it is; loading and saving say so instead."""
    (tmp_path / "default.json").write_bytes(UNRELATED)
    store = JsonFileStore(tmp_path, fsync=False)
    with pytest.raises(CorruptSnapshot, match="not an llmsock snapshot; left as it is") as loaded:
        store.load_sync("default")
    assert loaded.value.moved_to is None
    with pytest.raises(CorruptSnapshot, match="not an llmsock snapshot"):
        store.save_sync("default", _state())
    assert _tree(tmp_path) == {"default.json": UNRELATED}


def test_a_folder_the_user_names_may_itself_be_a_link(tmp_path: Path) -> None:
    """`file:DIR` where DIR is a symlink the user made still works: only folders below it are checked."""
    real = tmp_path / "disk" / "chats"
    real.mkdir(parents=True)
    _symlink(tmp_path / "chats", real)
    store = JsonFileStore(tmp_path / "chats", fsync=False)
    store.save_sync("default", _state())
    assert store.load_sync("default") == _state()
    assert (real / "default.json").is_file()


def test_the_trusted_root_is_the_folder_holding_llmsock() -> None:
    """Everything from `.llmsock` down is checked; a folder without one is trusted as named."""
    assert jsonfile.default_root(Path("/nb/.llmsock/analysis")) == Path("/nb")
    assert jsonfile.default_root(Path(".llmsock/sessions")) == Path(".")
    assert jsonfile.default_root(Path("/data/chats")) == Path("/data/chats")


def test_a_planted_link_does_not_stop_the_notebooks_copy_from_restoring(
    notebook_dir: Path, outside: Path
) -> None:
    """With `.llmsock` planted, the chat offered from the notebook's metadata still comes back."""
    _symlink(notebook_dir / ".llmsock", outside)
    before = _tree(outside)
    store = NotebookStore(notebook_dir / ".llmsock" / "analysis")
    offered = replace(_state(revision=3), model="from the notebook")
    assert store.offer("default", snapshot.encode(offered)) == "kept"
    assert asyncio.run(store.load("default")) == offered
    assert _tree(outside) == before
