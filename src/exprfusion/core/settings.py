"""Typed settings: each setting declared once, with its type, bounds and default, and checked on construction.

Every settings class of the library (the configs of the model, training, evaluation, extraction and search, the
sections of ``params.yaml``, the files one stage writes for the next) is a pydantic dataclass declared with
:func:`settings`: unknown keys are refused, bounds are ``Annotated[int, Field(ge=1)]``, choices are ``Literal``, and
``dataclasses.asdict``, ``replace`` and ``fields`` keep working. A bad key or value, at any depth, is one
:class:`~exprfusion.core.errors.InputError` line naming its dotted path::

    FusionConfig.d_model: must be >= 1, got 0                   (constructing the class)
    params.yaml: tune.model.d_model: must be >= 1, got 0        (validate(..., where="params.yaml", path="tune.model"))
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pydantic
from pydantic import ConfigDict, Strict, TypeAdapter, ValidationError

from exprfusion.core.errors import InputError

T = TypeVar("T")

SETTINGS_CONFIG = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)
# A yes/no setting: true or false only (a lax bool would read "yes", "off" or 1 as one).
Flag = typing.Annotated[bool, Strict()]

# How each kind of pydantic error reads; ``{name}`` fields come from the error's context.
_MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "literal_error": "must be one of {expected}",
    "too_short": "must hold at least {min_length} item(s)",
    "too_long": "must hold at most {max_length} item(s)",
    "missing": "is required",
    "missing_argument": "is required",
}
_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")
_NO_VALUE = ("missing", "missing_argument", "value_error", "assertion_error", *_UNKNOWN)


def settings(cls: type[T] | None = None, *, frozen: bool = False) -> Any:
    """Make ``cls`` a settings class: a pydantic dataclass that forbids unknown keys and raises ``InputError``.

    Use as ``@settings`` or ``@settings(frozen=True)``. A cross-field check belongs in ``__post_init__`` (raise
    ``ValueError`` with the message; the path is added).
    """

    def wrap(target: type[T]) -> type[T]:
        built = pydantic.dataclasses.dataclass(target, config=SETTINGS_CONFIG, frozen=frozen)
        validated_init = built.__init__

        @functools.wraps(validated_init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                validated_init(self, *args, **kwargs)
            except ValidationError as error:
                raise InputError(describe(error, built, path=built.__name__)) from None

        built.__init__ = __init__
        return built

    return wrap if cls is None else wrap(cls)


@functools.cache
def _adapter(schema: Any) -> TypeAdapter:
    return TypeAdapter(schema)


def validate(schema: type[T], values: Any, *, where: str = "", path: str = "") -> T:
    """``values`` (a mapping read from a file, a flag, JSON) validated into ``schema``.

    Args:
        schema: a settings class (or any type pydantic validates).
        values: what was read.
        where: the file (or option) the values come from, which the error names first (``params.yaml``).
        path: where ``values`` sit in it (``tune.model``); each bad key is named by its full dotted path.

    Raises:
        InputError: one line naming ``where`` and the dotted path of every bad key or value.
    """
    try:
        return _adapter(schema).validate_python(values)
    except ValidationError as error:
        message = describe(error, schema, path=path)
        raise InputError(f"{where}: {message}" if where else message) from None


def dump(value: Any) -> Any:
    """Plain Python values (dicts, lists, numbers, strings) of a settings object, as ``dataclasses.asdict`` gives
    them, for JSON, YAML and MLflow; aliased fields (``import``) keep their aliases."""
    return _adapter(type(value)).dump_python(value, by_alias=True, mode="json")


def describe(
    error: ValidationError, schema: Any = None, *, path: str = "", name: Callable[[tuple], str] | None = None
) -> str:
    """One line for ``error``: ``<dotted path>: <what is wrong>, got <value>`` per problem, joined by ``; ``.

    ``name`` turns a problem's location into what the line calls it (default: ``path`` and the location, dotted).
    """
    lines = []
    for problem in error.errors(include_url=False):
        location = [str(part) for part in problem["loc"]]
        where = name(problem["loc"]) if name else ".".join(part for part in (path, *location) if part)
        kind = problem["type"]
        if kind in _UNKNOWN:
            known = _known_keys(schema, problem["loc"][:-1])
            text = "unknown key" + (f"; known: {known}" if known else "")
        elif kind in _MESSAGES:
            text = _MESSAGES[kind].format(**{k: v for k, v in (problem.get("ctx") or {}).items()})
        elif kind in ("value_error", "assertion_error"):
            text = problem["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        else:
            text = problem["msg"].replace("Input should be", "must be", 1)
        if kind not in _NO_VALUE:
            text += f", got {problem['input']!r}"
        lines.append(f"{where}: {text}" if where else text)
    return "; ".join(lines)


def _known_keys(schema: Any, location: tuple) -> list[str] | None:
    """The keys a settings class at ``location`` inside ``schema`` accepts (None where that cannot be told)."""
    current = schema
    for part in location:
        current = _field_type(current, part)
        if current is None:
            return None
    fields = _fields_of(current)
    return sorted(fields) if fields else None


def _fields_of(schema: Any) -> dict[str, Any] | None:
    """``{key: type}`` of a settings class (pydantic dataclass or model), by alias where one is set."""
    declared = getattr(schema, "__pydantic_fields__", None)
    if not declared:
        return None
    return {info.alias or name: info.annotation for name, info in declared.items()}


def _field_type(schema: Any, part: Any) -> Any:
    """The type found at key or index ``part`` of ``schema`` (unwrapping ``X | None``, lists and mappings)."""
    fields = _fields_of(schema)
    if fields is not None:
        return _unwrap(fields.get(str(part)))
    args = [arg for arg in typing.get_args(schema) if arg is not type(None)]
    origin = typing.get_origin(schema)
    if origin in (list, tuple, set, frozenset) and args:
        return _unwrap(args[0])
    if origin in (dict, Mapping) and len(args) == 2:
        return _unwrap(args[1])
    return None


def _unwrap(annotation: Any) -> Any:
    """``X`` of ``X | None`` and of ``Annotated[X, ...]``; anything else as it is."""
    while True:
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is typing.Annotated:
            annotation = args[0]
        elif origin in (typing.Union, types.UnionType):
            others = [arg for arg in args if arg is not type(None)]
            if len(others) != 1:
                return annotation
            annotation = others[0]
        else:
            return annotation


@functools.cache
def partial(schema: type) -> type[pydantic.BaseModel]:
    """A model of any of ``schema``'s settings (``train.overrides``): each checked as ``schema`` checks it, unknown
    keys refused; ``instance.model_dump(exclude_unset=True)`` gives the ones set."""
    fields = {
        name: (
            info.rebuild_annotation(),
            pydantic.Field(default_factory=info.default_factory) if info.default_factory is not None else info.default,
        )
        for name, info in schema.__pydantic_fields__.items()
    }
    return pydantic.create_model(f"Partial{schema.__name__}", __base__=_Given, **fields)


class _Given(pydantic.BaseModel):
    """A model that reads and dumps only the keys it was given (the base of :func:`partial`)."""

    model_config = SETTINGS_CONFIG

    @pydantic.model_serializer(mode="wrap")
    def _given_only(self, handler: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if key in self.model_fields_set}
