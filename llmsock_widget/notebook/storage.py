"""Where this kernel keeps chats: the notebook it runs for, its sidecar folder, store specs.

These functions hold no state: the kernel's runtime (``kernel.py``) makes its store
with :func:`make_store`, and ``%llmsock store`` and ``llmsock_widget.set_store``
name stores with the same specs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..stores import JsonFileStore, MemoryStore, SessionStore
from ..stores.notebook import NotebookStore
from .settings import Settings


def notebook_path() -> Path | None:
    """Return the ``.ipynb`` this kernel runs for, when the front end said which.

    Jupyter Server gives the kernel ``JPY_SESSION_NAME`` (the notebook's path under
    the server's root; the kernel starts in the notebook's directory); VS Code sets
    ``__vsc_ipynb_file__``.  Colab, nbclient and papermill say nothing: None.
    """
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a dependency
        shell = None
    vscode = shell.user_ns.get("__vsc_ipynb_file__") if shell is not None else None
    for candidate in (vscode, Settings.current().jupyter_notebook):
        if isinstance(candidate, str) and candidate.endswith(".ipynb"):
            path = Path(candidate)
            if not path.is_absolute():
                path = Path.cwd() / path.name
            return path
    return None


def make_store(spec: str) -> SessionStore:
    """Return the store ``spec`` names: ``notebook``, ``memory``, ``file`` or ``file:<directory>``.

    ``notebook`` keeps sessions in the notebook's metadata through the front-end
    plugin, falling back to files in ``.llmsock/<notebook name>/`` next to the
    notebook; ``file`` uses that same directory (or the one given).
    """
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    notebook = notebook_path()
    if kind == "memory" and not arg:
        return MemoryStore()
    if kind == "file":
        return JsonFileStore(Path(arg).expanduser() if arg else sidecar_dir(notebook))
    if kind == "notebook" and not arg:
        reader = None
        if notebook is not None:
            reader = _saved_session_reader(notebook)
        return NotebookStore(sidecar_dir(notebook), read_saved=reader)
    raise ValueError(f"unknown llmsock store {spec!r}; use notebook, memory, file or file:<directory>")


def sidecar_dir(notebook: Path | None) -> Path:
    """Return where sessions are kept next to ``notebook`` (``.llmsock/<its name>/``)."""
    if notebook is None:
        return Path.cwd() / ".llmsock" / "sessions"
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", notebook.stem)
    if stem.strip(".") == "":  # "", ".", "..": never a path out of .llmsock/
        stem = "notebook"
    return notebook.parent / ".llmsock" / stem


def describe_store(store: SessionStore) -> str:
    """Say in words where ``store`` keeps sessions."""
    if isinstance(store, NotebookStore):
        return store.where
    if isinstance(store, JsonFileStore):
        return f"files in {store.directory}"
    if isinstance(store, MemoryStore):
        return "memory (lost when the kernel stops)"
    return type(store).__name__


def _saved_session_reader(notebook: Path) -> Any:
    def read(key: str) -> Any:
        if not notebook.is_file():
            return None
        from .notebookfile import read_sessions  # nbformat loads only when a saved notebook is read

        return read_sessions(notebook).sessions.get(key)

    return read
