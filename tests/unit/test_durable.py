"""The one atomic write: all or nothing, inside the folder it was given, never through a link."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from llmsock_widget.stores.durable import write_atomically


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("by_fd", [False, True], ids=["path", "dir_fd"])
def test_replaces_the_contents_and_leaves_no_temp_file(tmp_path: Path, by_fd: bool) -> None:
    """A write swaps the whole file for the new bytes and leaves nothing else in the folder."""
    (tmp_path / "a.json").write_bytes(b"old")
    fd = os.open(tmp_path, os.O_RDONLY) if by_fd else None
    try:
        write_atomically(tmp_path, "a.json", b"new", dir_fd=fd)
    finally:
        if fd is not None:
            os.close(fd)
    assert (tmp_path / "a.json").read_bytes() == b"new"
    assert _temp_files(tmp_path) == []


def test_a_failed_check_writes_nothing(tmp_path: Path) -> None:
    """When the last check refuses, the old file stays as it was and the temp file is gone."""
    (tmp_path / "a.ipynb").write_bytes(b"old")

    def changed() -> None:
        raise RuntimeError("changed meanwhile")

    with pytest.raises(RuntimeError, match="changed meanwhile"):
        write_atomically(tmp_path, "a.ipynb", b"new", check=changed)
    assert (tmp_path / "a.ipynb").read_bytes() == b"old"
    assert _temp_files(tmp_path) == []


@pytest.mark.skipif(os.open not in os.supports_dir_fd, reason="needs dir_fd")
def test_writes_in_the_opened_folder_even_after_its_path_changes(tmp_path: Path) -> None:
    """With a folder descriptor the write lands in that folder, not in whatever its old path names now."""
    (tmp_path / "store").mkdir()
    fd = os.open(tmp_path / "store", os.O_RDONLY)
    try:
        (tmp_path / "store").rename(tmp_path / "moved")
        (tmp_path / "store").mkdir()  # a stand-in planted at the old path
        write_atomically(tmp_path / "store", "a.json", b"new", dir_fd=fd)
    finally:
        os.close(fd)
    assert (tmp_path / "moved" / "a.json").read_bytes() == b"new"
    assert list((tmp_path / "store").iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_link_at_the_target_is_replaced_not_followed(tmp_path: Path) -> None:
    """A symlink planted where the file goes is swapped for the file; what it points at is untouched."""
    (tmp_path / "elsewhere").write_bytes(b"precious")
    (tmp_path / "a.json").symlink_to(tmp_path / "elsewhere")
    write_atomically(tmp_path, "a.json", b"new")
    assert not (tmp_path / "a.json").is_symlink()
    assert (tmp_path / "a.json").read_bytes() == b"new"
    assert (tmp_path / "elsewhere").read_bytes() == b"precious"


def test_keeps_the_exact_mode_it_is_given(tmp_path: Path) -> None:
    """A rewritten file gets the permission bits it had (the notebook's), not the temp file's 0600."""
    write_atomically(tmp_path, "a.ipynb", b"{}", mode=0o644)
    assert stat.S_IMODE((tmp_path / "a.ipynb").stat().st_mode) == 0o644
