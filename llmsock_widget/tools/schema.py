"""Python function -> OpenAI function-tool schema, and the argument checks that match it.

One walk over each parameter's type hint gives both the JSON schema the model
sees and the check that the model's arguments must pass, so the two cannot
drift apart.  Pure: nothing here calls the function.

=============================  ===========================================================
hint                           schema
=============================  ===========================================================
``str`` ``int`` ``float``      ``{"type": "string" | "integer" | "number" | "boolean"}``
``bool``
``Literal["a", "b"]``          ``{"type": "string", "enum": ["a", "b"]}`` (ints too)
an ``enum.Enum`` subclass      the enum of its values; the function gets the member
``list[X]`` ``tuple[X, ...]``  ``{"type": "array", "items": X}``; a tuple arrives as a tuple
``dict[str, X]``               ``{"type": "object", "additionalProperties": X}``
``X | None``, ``Optional[X]``  ``{"anyOf": [X, {"type": "null"}]}``, not required
``X | Y``                      ``{"anyOf": [X, Y]}``
``Annotated[X, "text"]``       X, with ``"text"`` as its description
none, ``Any``, ``object``      ``{}`` (any JSON value)
=============================  ===========================================================
"""

from __future__ import annotations

import collections.abc
import enum
import functools
import inspect
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Union

from .docstrings import parse_docstring

Check = Callable[[Any, str], Any]
"""``check(value, path)`` returns the value the function gets, or raises :class:`InvalidArgument`."""

_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_NO_DEFAULT = inspect.Parameter.empty
_JSON_TYPES = {type(None): "null", bool: "boolean", int: "integer", float: "number", str: "string"}
_CONTAINERS: dict[type, str] = {list: "array", dict: "object"}
_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


class InvalidArgument(ValueError):
    """The model's arguments do not match the tool's schema; the message names the parameter."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolSpec:
    """A function's tool schema and how to turn checked arguments into a call.

    ``optional`` parameters have no default but accept None, so a missing one is passed as None.
    ``positional`` lists the positional-only parameters in order, each with its default (or
    ``inspect.Parameter.empty``).
    """

    name: str
    schema: dict[str, Any]
    checks: Mapping[str, Check]
    required: frozenset[str]
    optional: frozenset[str]
    positional: tuple[tuple[str, Any], ...] = ()

    def bind(self, arguments: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Check ``arguments`` (a decoded JSON object) and return ``(args, kwargs)`` for the call.

        Raises:
            InvalidArgument: a required argument is missing, an unknown one is given, or one has
                the wrong JSON type; the message names the parameter.
        """
        self.check_names(arguments)
        values = {key: self.checks[key](value, f"argument {key!r}") for key, value in arguments.items()}
        values.update({key: None for key in self.optional if key not in values})
        args: list[Any] = []
        for key, default in self.positional:
            args.append(values.pop(key) if key in values else default)
        return args, values

    def check_names(self, arguments: Mapping[str, Any], *, closed: bool = True) -> None:
        """Refuse a missing required argument, and (if ``closed``) an argument no parameter names.

        Raises:
            InvalidArgument: naming the first such argument.
        """
        if closed:
            unexpected = sorted(set(arguments) - set(self.checks))
            if unexpected:
                raise InvalidArgument(f"unexpected argument {_short(unexpected[0])}")
        missing = sorted(self.required - set(arguments))
        if missing:
            raise InvalidArgument(f"missing required argument {missing[0]!r}")


def tool_schema(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> dict[str, Any]:
    """Return the OpenAI function-tool schema of ``fn``.

    Args:
        fn: A function (sync or async) whose parameters have the hints listed in this module.
        name: The tool's name; ``fn.__name__`` when not given. Must match ``[a-zA-Z0-9_-]{1,64}``.
        description: The tool's description; the docstring's first paragraph when not given.

    Raises:
        TypeError: ``fn`` takes ``*args`` or ``**kwargs``, or a hint cannot be expressed in JSON.
        ValueError: the name is not allowed.
    """
    return describe(fn, name=name, description=description).schema


def describe(fn: Callable[..., Any], *, name: str | None = None, description: str | None = None) -> ToolSpec:
    """Return the schema of ``fn`` together with its argument checks (see :func:`tool_schema`)."""
    if not callable(fn):
        raise TypeError(f"a tool must be callable, not {type(fn).__name__}")
    target = fn.func if isinstance(fn, functools.partial) else fn
    tool_name = name if name is not None else getattr(target, "__name__", type(fn).__name__)
    if not isinstance(tool_name, str) or not _NAME.fullmatch(tool_name):
        raise ValueError(
            f"tool name {_short(tool_name)} is not allowed: use 1 to 64 letters, digits, '_' or '-'"
            " (pass name=... to register a lambda or a callable object)"
        )
    docs = parse_docstring(inspect.getdoc(target))
    hints = _hints_of(fn, target, tool_name)
    properties: dict[str, Any] = {}
    checks: dict[str, Check] = {}
    required: list[str] = []
    optional: list[str] = []
    positional: list[tuple[str, Any]] = []
    for param in _signature_of(fn, tool_name).parameters.values():
        where = f"parameter {param.name!r} of tool {tool_name!r}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            star = "*" if param.kind is param.VAR_POSITIONAL else "**"
            raise TypeError(f"{where}: {star}{param.name} cannot be described to a model; name each one")
        hint = hints.get(param.name, Any)
        schema, checks[param.name] = _describe_type(hint, where)
        properties[param.name] = _property(schema, docs.params.get(param.name), param.default)
        if param.default is _NO_DEFAULT:
            (optional if _accepts_none(hint) else required).append(param.name)
        if param.kind is param.POSITIONAL_ONLY:
            positional.append((param.name, None if param.default is _NO_DEFAULT else param.default))
    parameters = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    text = docs.summary if description is None else description
    return ToolSpec(
        name=tool_name,
        schema={
            "type": "function",
            "function": {"name": tool_name, "description": text, "parameters": parameters},
        },
        checks=checks,
        required=frozenset(required),
        optional=frozenset(optional),
        positional=tuple(positional),
    )


def _signature_of(fn: Callable[..., Any], tool_name: str) -> inspect.Signature:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError) as exc:  # some builtins have no readable signature
        raise TypeError(f"cannot read the signature of tool {tool_name!r}: {exc}") from exc


def _hints_of(fn: Callable[..., Any], target: Any, tool_name: str) -> dict[str, Any]:
    if not (inspect.isfunction(target) or inspect.ismethod(target) or inspect.isbuiltin(target)):
        target = type(fn).__call__  # a callable object: its __call__ has the hints
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:  # NameError for an unresolvable forward reference, TypeError for odd objects
        raise TypeError(f"cannot read the type hints of tool {tool_name!r}: {exc}") from exc


def _property(schema: dict[str, Any], description: str | None, default: Any) -> dict[str, Any]:
    prop = dict(schema)
    if description and "description" not in prop:
        prop["description"] = description
    if default is not _NO_DEFAULT:
        try:
            value = default.value if isinstance(default, enum.Enum) else default
            prop["default"] = json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError):
            pass  # a default the model cannot see is still a default
    return prop


def _accepts_none(hint: Any) -> bool:
    if typing.get_origin(hint) is typing.Annotated:
        return _accepts_none(typing.get_args(hint)[0])
    return _is_union(hint) and type(None) in typing.get_args(hint)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType)


def _describe_type(hint: Any, where: str) -> tuple[dict[str, Any], Check]:
    """Return the JSON schema of ``hint`` and the check for values of it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        schema, check = _describe_type(args[0], where)
        text = next((m for m in hint.__metadata__ if isinstance(m, str)), None)
        return ({**schema, "description": text} if text else schema), check
    if hint is Any or hint is object or hint is inspect.Parameter.empty:
        return {}, _accept
    if hint is type(None):
        return {"type": "null"}, _scalar_check(type(None), "null")
    if isinstance(hint, type) and hint in _SCALARS:
        return {"type": _SCALARS[hint]}, _scalar_check(hint, _SCALARS[hint])
    if _is_union(hint):
        return _describe_union(args, where)
    if origin is Literal:
        return _describe_choices(list(args), list(args), where)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        members = list(hint)
        return _describe_choices([m.value for m in members], members, where)
    if hint in (list, tuple) or origin in (list, tuple, collections.abc.Sequence):
        return _describe_array(hint, origin, args, where)
    if hint is dict or origin in (dict, collections.abc.Mapping):
        return _describe_object(args, where)
    raise TypeError(
        f"{where}: the type hint {hint!r} cannot be described to a model; use str, int, float, bool,"
        " Literal, an Enum, list[X], tuple[X, ...], dict[str, X], an Optional of these, or no hint"
    )


def _describe_union(args: tuple[Any, ...], where: str) -> tuple[dict[str, Any], Check]:
    parts = [_describe_type(arg, where) for arg in args if arg is not type(None)]
    nullable = len(parts) < len(args)
    if any(schema == {} for schema, _ in parts):
        return {}, _accept
    if nullable and len(parts) == 1:
        schema, inner = parts[0]

        def check_optional(value: Any, path: str) -> Any:
            return None if value is None else inner(value, path)

        return {"anyOf": [schema, {"type": "null"}]}, check_optional
    schemas = [schema for schema, _ in parts] + ([{"type": "null"}] if nullable else [])
    checks = [check for _, check in parts]

    def check_union(value: Any, path: str) -> Any:
        if value is None and nullable:
            return None
        for check in checks:
            try:
                return check(value, path)
            except InvalidArgument:
                continue
        raise _wrong(path, " or ".join(_label(s) for s in schemas), value)

    return {"anyOf": schemas}, check_union


def _describe_choices(values: list[Any], results: list[Any], where: str) -> tuple[dict[str, Any], Check]:
    kinds = {type(value) for value in values}
    if not kinds <= set(_JSON_TYPES):
        raise TypeError(f"{where}: choices must be strings, numbers, booleans or None, not {values!r}")
    schema: dict[str, Any] = {"enum": values}
    if len(kinds) == 1:
        schema = {"type": _JSON_TYPES[kinds.pop()], "enum": values}
    # ``True == 1``: a choice matches only a value of its own JSON type.
    table = [(type(value), value, result) for value, result in zip(values, results, strict=True)]

    def check_choice(value: Any, path: str) -> Any:
        for kind, choice, result in table:
            if type(value) is kind and value == choice:
                return result
        raise InvalidArgument(f"{path}: expected one of {values!r}, got {_short(value)}")

    return schema, check_choice


def _describe_array(
    hint: Any, origin: Any, args: tuple[Any, ...], where: str
) -> tuple[dict[str, Any], Check]:
    is_tuple = tuple in (hint, origin)
    if is_tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
        raise TypeError(f"{where}: fixed-length tuples cannot be described; use tuple[X, ...] or list[X]")
    items, item_check = _describe_type(args[0], where) if args else ({}, _accept)
    schema: dict[str, Any] = {"type": "array", "items": items} if args else {"type": "array"}

    def check_array(value: Any, path: str) -> Any:
        if not isinstance(value, list):
            raise _wrong(path, "array", value)
        checked = [item_check(item, f"{path}[{index}]") for index, item in enumerate(value)]
        return tuple(checked) if is_tuple else checked

    return schema, check_array


def _describe_object(args: tuple[Any, ...], where: str) -> tuple[dict[str, Any], Check]:
    if args and args[0] is not str:
        raise TypeError(f"{where}: JSON object keys are strings; use dict[str, X]")
    values, value_check = _describe_type(args[1], where) if args else ({}, _accept)
    schema: dict[str, Any] = (
        {"type": "object", "additionalProperties": values} if args else {"type": "object"}
    )

    def check_object(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise _wrong(path, "object", value)
        return {key: value_check(item, f"{path}[{key!r}]") for key, item in value.items()}

    return schema, check_object


def _accept(value: Any, path: str) -> Any:
    return value


def _scalar_check(kind: Any, label: str) -> Check:
    def check(value: Any, path: str) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise _wrong(path, label, value)
        if isinstance(value, kind):
            return value
        if kind is float and isinstance(value, int):
            return value
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)  # models write 3.0 for 3
        raise _wrong(path, label, value)

    return check


def _label(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return f"one of {schema['enum']!r}"
    return str(schema.get("type", "any value"))


def _wrong(path: str, expected: str, value: Any) -> InvalidArgument:
    got = _JSON_TYPES.get(type(value)) or _CONTAINERS.get(type(value)) or type(value).__name__
    return InvalidArgument(f"{path}: expected {expected}, got {got}")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
