"""Run the notebooks under nbval the way Jupyter runs them: each kernel knows its notebook.

Jupyter Server starts a notebook's kernel with ``JPY_SESSION_NAME`` set to the notebook's
path (docs/configuration.md, section 6), and llmsock keeps chats next to that notebook.
nbval starts one kernel per notebook, in the setup of the notebook's first cell, from a
copy of this process's environment; so the variable is set around that setup and put back
after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

_VARIABLE = "JPY_SESSION_NAME"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Give the kernel that this cell's setup may start its notebook's path."""
    notebook = item.path
    if notebook.suffix != ".ipynb":
        yield
        return
    before = os.environ.get(_VARIABLE)
    os.environ[_VARIABLE] = str(notebook.resolve())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(_VARIABLE, None)
        else:
            os.environ[_VARIABLE] = before
