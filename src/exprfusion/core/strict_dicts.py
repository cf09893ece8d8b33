"""Settings from plain dicts (params.yaml, JSON, MLflow) where a misspelt key is an error, never silently ignored."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

from exprfusion.core.errors import InputError

T = TypeVar("T")


def reject_unknown_keys(values: Mapping[str, Any], known: Iterable[str], what: str, *, path: str = "") -> None:
    """Raise :class:`InputError` naming every key of ``values`` outside ``known`` (or ``values`` if not a mapping).

    Args:
        values: the settings.
        known: the keys they may have.
        what: whose keys they are, for the message (e.g. ``"tune params"``).
        path: where ``values`` sit in a nested file (e.g. ``"data.import"``); each unknown key is then named by its
            full dotted path (``data.import.bogus``).
    """
    if not isinstance(values, Mapping):
        raise InputError(f"{path or what} must be a mapping of keys to values, got {values!r}")
    known = {str(key) for key in known}
    unknown = sorted({str(key) for key in values} - known)
    if unknown:
        named = [f"{path}.{key}" if path else key for key in unknown]
        raise InputError(f"unknown {what} {named}; known: {sorted(known)}")


def dataclass_from_dict(cls: type[T], values: Mapping[str, Any], what: str, *, path: str = "") -> T:
    """Build the dataclass ``cls`` from ``values``: missing keys take their defaults, unknown keys raise.

    ``what`` and ``path`` name the settings in the error, as in :func:`reject_unknown_keys`.
    """
    reject_unknown_keys(values, (field.name for field in fields(cls)), what, path=path)
    return cls(**values)
