"""A prompt chooses its tools, the model's timeout and its retries; a model says whether it offers tools."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmsock_widget.core.commands import SendPrompt
from llmsock_widget.errors import InvalidFrame
from llmsock_widget.models import BuiltinModel, resolve_model
from llmsock_widget.models.openai_compat import OpenAICompatModel
from llmsock_widget.notebook import extension
from llmsock_widget.runtime.turns import offered_schemas
from llmsock_widget.tools import default_registry
from llmsock_widget.wire import protocol


def decode(options: dict[str, Any], dialect: str = "envelope") -> dict[str, Any]:
    frame = {"type": "user_message", "id": "u1", "data": {"text": "hi", "options": options}}
    command = protocol.decode(json.dumps(frame), dialect)  # type: ignore[arg-type]
    assert isinstance(command, SendPrompt)
    return command.options


@pytest.mark.parametrize("dialect", ["envelope", "typed"])
def test_tools_timeout_and_retries_are_read(dialect: str) -> None:
    assert decode({"tools": True, "timeout": 2.5, "retries": 0}, dialect) == {
        "tools": True,
        "timeout": 2.5,
        "retries": 0,
    }
    assert decode({"tools": False, "timeout": 30}, dialect) == {"tools": False, "timeout": 30.0}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "options.timeout must be a number of seconds above 0, at most 3600"),
        ({"timeout": 3601}, "options.timeout must be"),
        ({"timeout": True}, "options.timeout must be"),
        ({"timeout": "5"}, "options.timeout must be"),
        ({"retries": -1}, "options.retries must be an integer from 0 to 10"),
        ({"retries": 11}, "options.retries must be"),
        ({"retries": 1.0}, "options.retries must be"),
        ({"tools": "calculate"}, "options.tools must be true, false or a list of tool names"),
        ({"tools": [1]}, "options.tools must be"),
    ],
)
def test_a_bad_option_is_refused_and_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidFrame) as caught:
        decode(options)
    assert caught.value.message.startswith(message)


def names(schemas: tuple[dict[str, Any], ...]) -> list[str]:
    return [s["function"]["name"] for s in schemas]


def test_an_openai_model_offers_no_tools_unless_configured_or_asked() -> None:
    """Tools go out where the user enabled them: for the model, or for the prompt."""
    tools = default_registry()
    plain = OpenAICompatModel(model="m", base_url="http://127.0.0.1:9/v1")
    enabled = OpenAICompatModel(model="m", base_url="http://127.0.0.1:9/v1", tools=True)
    assert offered_schemas(tools, plain, None) == ()
    assert names(offered_schemas(tools, enabled, None)) == ["get_current_time", "calculate"]
    assert names(offered_schemas(tools, plain, True)) == ["get_current_time", "calculate"]
    assert names(offered_schemas(tools, plain, ["calculate"])) == ["calculate"]
    assert offered_schemas(tools, enabled, False) == ()
    assert offered_schemas(None, enabled, True) == ()


def test_the_builtin_model_offers_its_tools_unless_told_not_to() -> None:
    tools = default_registry()
    assert names(offered_schemas(tools, BuiltinModel(), None)) == ["get_current_time", "calculate"]
    assert offered_schemas(tools, resolve_model("builtin", tools=False), None) == ()
    with pytest.raises(ValueError, match="the builtin model takes no options but tools"):
        resolve_model("builtin", timeout=3)


def test_a_prompt_sets_the_models_timeout_and_retries_for_itself() -> None:
    model = OpenAICompatModel(model="m", base_url="http://127.0.0.1:9/v1", timeout=60, max_retries=2)
    assert model._limits({}) == model._limits({"timeout": None})
    limits = model._limits({"timeout": 1.5, "retries": 0})
    assert (limits.timeout, limits.connect, limits.retries) == (1.5, 1.5, 0)
    limits = model._limits({"retries": 5})
    assert (limits.timeout, limits.connect, limits.retries) == (60, 5.0, 5)


@pytest.mark.parametrize(
    ("line", "session", "options"),
    [
        ("", "default", {}),
        ("team", "team", {}),
        ("--no-tools", "default", {"tools": False}),
        ("team --tools", "team", {"tools": True}),
        (
            "--tools calculate,get_current_time --timeout 30",
            "default",
            {
                "tools": ["calculate", "get_current_time"],
                "timeout": 30.0,
            },
        ),
        ("--retries 0 --tools", "default", {"retries": 0, "tools": True}),
    ],
)
def test_the_cell_magic_reads_a_prompts_options(line: str, session: str, options: dict[str, Any]) -> None:
    assert extension._cell_options(line.split()) == (session, options)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--timeout", "unknown or incomplete option '--timeout'"),
        ("--retries many", "--retries takes a whole number, not 'many'"),
        ("--tool", "unknown or incomplete option '--tool'"),
    ],
)
def test_the_cell_magic_names_a_bad_option(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        extension._cell_options(line.split())


def test_the_model_magic_turns_tools_on_and_off() -> None:
    assert extension._model_options(["openai:m", "--tools", "--retries", "0"]) == (
        "openai:m",
        {"tools": True, "max_retries": 0},
    )
    assert extension._model_options(["builtin", "--no-tools"]) == ("builtin", {"tools": False})
