"""Settings from plain dicts (params.yaml, JSON, MLflow) where a misspelt key is an error, never silently ignored."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def reject_unknown_keys(values: Mapping[str, Any], known: Iterable[str], what: str) -> None:
    """Raise ``ValueError`` naming every key of ``values`` outside ``known`` (``what`` says whose keys they are)."""
    known = set(known)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known: {sorted(known)}")


def dataclass_from_dict(cls: type[T], values: Mapping[str, Any], what: str) -> T:
    """Build the dataclass ``cls`` from ``values``: missing keys take their defaults, unknown keys raise."""
    reject_unknown_keys(values, (field.name for field in fields(cls)), what)
    return cls(**values)
