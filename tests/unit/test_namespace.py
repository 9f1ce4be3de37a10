"""The names a user means: mentions and the model's list_variables show the same ones."""

from __future__ import annotations

import json
from typing import Any

from llmsock_widget.notebook import mentions
from llmsock_widget.notebook.kerneltools import KernelTools
from llmsock_widget.notebook.namespace import copy_of, is_user_variable


def test_mentions_and_list_variables_offer_the_same_names() -> None:
    """A rebound IPython name is the user's in both; _-names, modules and IPython's own in neither."""
    exit_ = object()
    own = {"In": [""], "Out": {}, "exit": exit_, "quit": exit_}
    names: dict[str, Any] = {
        **own,
        "rows": [1],
        "Out": 5,
        "_x": 1,
        "json": json,
        "df": {"a": 1},
        3: "odd key",
    }
    hidden = dict(own)
    listed = [
        v["name"] for v in KernelTools(lambda: names, hidden=lambda: hidden).list_variables()["variables"]
    ]
    offered = [n["name"] for n in mentions.completions("", copy_of(names), hidden)]
    assert listed == offered == ["df", "Out", "rows"]


def test_without_ipythons_record_its_names_are_still_hidden() -> None:
    """A namespace without user_ns_hidden (a plain dict) still hides In, Out, exit, quit, get_ipython."""
    assert not is_user_variable("In", [""], {})
    assert not is_user_variable("get_ipython", print, {})
    assert is_user_variable("Input", [""], {})
