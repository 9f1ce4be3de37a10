"""ChatWidget's model settings are checked by the wire's own rule: the chat never sends a refused prompt."""

from __future__ import annotations

from typing import Any

import pytest
import traitlets

from llmsock_widget.notebook.widget import checked_setting


@pytest.mark.parametrize(
    ("name", "value", "kept"),
    [
        ("tools", ("a",), ["a"]),
        ("tools", True, True),
        ("tools", None, None),
        ("timeout", 1, 1.0),
        ("retries", 0, 0),
        ("temperature", 1, 1.0),
        ("max_tokens", 500, 500),
        ("system", "Be terse.", "Be terse."),
    ],
)
def test_a_good_setting_is_kept_as_the_wire_takes_it(name: str, value: Any, kept: Any) -> None:
    assert checked_setting(name, value) == kept


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("timeout", 0),
        ("timeout", True),
        ("timeout", 3601),
        ("retries", 2.0),
        ("retries", 11),
        ("tools", "all"),
        ("temperature", 2.5),
        ("max_tokens", 0),
        ("max_tokens", 1.5),
        ("system", 3),
        ("system", "x" * 32_769),
        ("model", ""),
    ],
)
def test_a_bad_setting_says_what_is_allowed(name: str, value: Any) -> None:
    with pytest.raises(traitlets.TraitError, match=r"or None for the model's setting; not "):
        checked_setting(name, value)


def test_a_bad_setting_is_said_with_the_python_name() -> None:
    with pytest.raises(traitlets.TraitError, match=r"ChatWidget.max_tokens must be"):
        checked_setting("max_tokens", 0)
