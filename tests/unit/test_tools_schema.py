"""Tests for llmsock_widget.tools schema generation from signatures, hints and docstrings."""

from __future__ import annotations

import enum
import math
from typing import Annotated, Any, Dict, List, Literal, Optional, Sequence, Tuple, Union

import pytest

from llmsock_widget.tools import tool_schema
from llmsock_widget.tools.docstrings import parse_docstring


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


def parameters(fn: Any, **options: Any) -> dict[str, Any]:
    """Return the ``parameters`` object of ``fn``'s schema."""
    schema: dict[str, Any] = tool_schema(fn, **options)["function"]["parameters"]
    return schema


def property_for(hint: Any) -> dict[str, Any]:
    """Return the schema of one parameter ``x`` whose hint is the object ``hint``."""

    def fn(x):  # type: ignore[no-untyped-def]
        return x

    fn.__annotations__ = {"x": hint}
    prop: dict[str, Any] = parameters(fn)["properties"]["x"]
    return prop


# -- the whole schema ------------------------------------------------------------------------


def test_schema_has_the_openai_function_shape() -> None:
    """A schema is {"type": "function", "function": {name, description, parameters}} with a closed object."""

    def add(a: int, b: int = 1) -> int:
        """Add two numbers."""
        return a + b

    assert tool_schema(add) == {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "default": 1}},
                "required": ["a"],
                "additionalProperties": False,
            },
        },
    }


def test_name_and_description_can_be_given() -> None:
    """name= and description= replace the function's name and docstring summary."""

    def add(a: int) -> int:
        """Add."""
        return a

    schema = tool_schema(add, name="plus-one", description="Add one.")["function"]
    assert (schema["name"], schema["description"]) == ("plus-one", "Add one.")


def test_function_without_docstring_has_empty_description() -> None:
    """A function without a docstring gets the empty description."""

    def bare() -> None:
        return None

    assert tool_schema(bare)["function"]["description"] == ""


def test_hints_are_read_under_future_annotations() -> None:
    """String annotations (this module uses ``from __future__ import annotations``) are resolved."""

    def fn(a: int | None, b: list[str]) -> None:
        return None

    props = parameters(fn)["properties"]
    assert props["a"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert props["b"] == {"type": "array", "items": {"type": "string"}}


# -- one hint at a time ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (Any, {}),
        (object, {}),
        (Optional[int], {"anyOf": [{"type": "integer"}, {"type": "null"}]}),  # noqa: UP045 - the spelling under test
        (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
        (Union[int, str], {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        (Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}),
        (Literal[1, 2, 3], {"type": "integer", "enum": [1, 2, 3]}),
        (Literal["a", 1], {"enum": ["a", 1]}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (List[str], {"type": "array", "items": {"type": "string"}}),
        (Sequence[float], {"type": "array", "items": {"type": "number"}}),
        (list, {"type": "array"}),
        (tuple[str, ...], {"type": "array", "items": {"type": "string"}}),
        (Tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
        (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
        (Dict[str, Any], {"type": "object", "additionalProperties": {}}),
        (dict, {"type": "object"}),
        (list[int | None], {"type": "array", "items": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}),
        (Color, {"type": "string", "enum": ["red", "blue"]}),
        (Level, {"type": "integer", "enum": [1, 2]}),
        (Annotated[int, "How many."], {"type": "integer", "description": "How many."}),
    ],
    ids=lambda value: repr(value) if not isinstance(value, dict) else "",
)
def test_hint_gives_schema(hint: Any, expected: dict[str, Any]) -> None:
    """Each supported hint maps to its JSON schema."""
    assert property_for(hint) == expected


def test_unannotated_parameter_accepts_anything() -> None:
    """A parameter without a hint has the empty schema (any JSON value)."""

    def fn(x):  # type: ignore[no-untyped-def]
        return x

    assert parameters(fn)["properties"]["x"] == {}


@pytest.mark.parametrize(
    "hint",
    [set[int], tuple[int, str], dict[int, str], bytes, complex, type, Literal[1.5j]],
    ids=repr,
)
def test_unsupported_hint_is_refused(hint: Any) -> None:
    """A hint JSON cannot express is a TypeError naming the parameter."""
    with pytest.raises(TypeError, match="parameter 'x'"):
        property_for(hint)


def test_unresolvable_forward_reference_is_refused() -> None:
    """A hint naming something that does not exist is a TypeError, not a NameError."""

    def fn(x: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
        return None

    with pytest.raises(TypeError, match="type hints"):
        tool_schema(fn)


# -- required and defaults ------------------------------------------------------------------------


def test_optional_and_defaults_are_not_required() -> None:
    """Optional (both spellings) and defaulted parameters are left out of required."""

    def fn(a: int, b: Optional[int], c: str | None, d: int = 2, e: Any = None) -> None:  # noqa: UP045 - the spelling under test
        return None

    assert parameters(fn)["required"] == ["a"]


def test_json_defaults_are_shown() -> None:
    """A JSON-serializable default appears as "default"; an Enum default as its value; others are left out."""

    def fn(
        a: int = 3, b: tuple[int, ...] = (1, 2), c: Color = Color.BLUE, d: Any = object(), e: float = math.nan
    ):
        return None

    props = parameters(fn)["properties"]
    assert (props["a"]["default"], props["b"]["default"], props["c"]["default"]) == (3, [1, 2], "blue")
    assert "default" not in props["d"]
    assert "default" not in props["e"]


# -- refusals ------------------------------------------------------------------------------------


def test_star_args_are_refused() -> None:
    """*args cannot be described to a model: TypeError."""

    def fn(*values: int) -> None:
        return None

    with pytest.raises(TypeError, match=r"\*values"):
        tool_schema(fn)


def test_star_kwargs_are_refused() -> None:
    """**kwargs cannot be described to a model: TypeError."""

    def fn(a: int, **extra: int) -> None:
        return None

    with pytest.raises(TypeError, match=r"\*\*extra"):
        tool_schema(fn)


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "dot.ted", "new\n", "naïve"])
def test_bad_names_are_refused(name: str) -> None:
    """A name outside [a-zA-Z0-9_-]{1,64} is a ValueError."""
    with pytest.raises(ValueError, match="not allowed"):
        tool_schema(lambda: None, name=name)


def test_lambda_needs_a_name() -> None:
    """A lambda's own name "<lambda>" is refused; with name= it is fine."""
    with pytest.raises(ValueError, match="name="):
        tool_schema(lambda: None)
    assert tool_schema(lambda: None, name="noop")["function"]["name"] == "noop"


def test_good_names_are_accepted() -> None:
    """Letters, digits, '_' and '-' up to 64 characters are accepted."""
    for name in ("a", "get-time_2", "x" * 64):
        assert tool_schema(lambda: None, name=name)["function"]["name"] == name


def test_non_callable_is_refused() -> None:
    """Something that is not callable is a TypeError."""
    with pytest.raises(TypeError, match="callable"):
        tool_schema(42)  # type: ignore[arg-type]


def test_callable_object_uses_its_call_signature() -> None:
    """A callable object is described by its __call__ (hints and parameters, without self)."""

    class Scale:
        """Scale a number."""

        def __call__(self, value: float, factor: int = 2) -> float:
            return value * factor

    params = parameters(Scale(), name="scale")
    assert params["properties"] == {"value": {"type": "number"}, "factor": {"type": "integer", "default": 2}}


# -- docstrings ------------------------------------------------------------------------------------


def google(city: str, days: int = 1) -> None:
    """Look up the weather for a city,
    over the next few days.

    This second paragraph is not part of the description.

    Args:
        city (str): The city's name,
            as in "Paris".
        days: How many days to cover.

    Returns:
        Nothing.
    """


def numpy_style(city: str, days: int = 1) -> None:
    """Look up the weather.

    Parameters
    ----------
    city : str
        The city's name,
        as in "Paris".
    days : int, optional
        How many days to cover.

    Returns
    -------
    None
    """


def sphinx(city: str, days: int = 1) -> None:
    """Look up the weather.

    :param city: The city's name,
        as in "Paris".
    :param int days: How many days to cover.
    :returns: Nothing.
    """


@pytest.mark.parametrize("fn", [google, numpy_style, sphinx], ids=["google", "numpy", "sphinx"])
def test_parameter_descriptions_from_docstring(fn: Any) -> None:
    """Google, NumPy and Sphinx docstrings give each parameter its description, continuation lines joined."""
    props = parameters(fn)["properties"]
    assert props["city"]["description"] == 'The city\'s name, as in "Paris".'
    assert props["days"]["description"] == "How many days to cover."


def test_description_is_the_first_paragraph() -> None:
    """The description is the docstring's first paragraph with its lines joined."""
    expected = "Look up the weather for a city, over the next few days."
    assert tool_schema(google)["function"]["description"] == expected


@pytest.mark.parametrize("fn", [numpy_style, sphinx], ids=["numpy", "sphinx"])
def test_description_stops_at_a_section(fn: Any) -> None:
    """The summary stops before the first section even without a blank line in other styles."""
    assert tool_schema(fn)["function"]["description"] == "Look up the weather."


def test_summary_stops_at_a_section_without_blank_line() -> None:
    """A section header right after the first line ends the summary."""
    doc = parse_docstring("Do it.\nArgs:\n    x: The x.\n")
    assert (doc.summary, doc.params) == ("Do it.", {"x": "The x."})


def test_numpy_shared_entry_and_other_sections() -> None:
    """A NumPy "x, y : int" entry describes both; other sections are not read as parameters."""
    doc = parse_docstring(
        "Sum.\n\nParameters\n----------\nx, y : int\n    Addends.\n\nReturns\n-------\nint\n    The sum.\n"
    )
    assert doc.params == {"x": "Addends.", "y": "Addends."}


def test_annotated_description_wins_over_docstring() -> None:
    """An Annotated description is kept; the docstring does not replace it."""

    def fn(x: Annotated[int, "From the hint."]) -> None:
        """Do it.

        Args:
            x: From the docstring.
        """

    assert parameters(fn)["properties"]["x"]["description"] == "From the hint."
