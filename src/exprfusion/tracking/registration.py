"""The registration of a trained model (``reports/registration.json``): what the train stage registered, read back by
the evaluate and package stages."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from exprfusion.core.errors import InputError
from exprfusion.core.settings import Flag, settings, validate

# Keys of registration.json written before the selection score was named so (both held the holdout score).
LEGACY_KEYS = {"macro_f1": "selection_macro_f1", "previous_champion_macro_f1": "previous_champion_selection_macro_f1"}


@settings(frozen=True)
class RegistrationResult:
    """What :func:`log_and_register` did: the run, the new version, and whether it became the champion.

    The train stage writes it as ``reports/registration.json``; the evaluate and package stages read it back
    (:meth:`read`).
    """

    run_id: str
    name: str
    version: int
    model_uri: str
    selection_macro_f1: float  # the holdout score that chose the model: what the champion rule compares
    corpus_hash: str
    promoted: Flag
    decision: str  # in plain words: "first champion", "beat v3 by 0.0120 (...)", "kept v3: ..."
    validation_macro_f1: float | None = None  # the reported score, measured once after training
    previous_champion_version: int | None = None
    previous_champion_selection_macro_f1: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON reports)."""
        return asdict(self)

    @classmethod
    def read(cls, path: str | Path) -> RegistrationResult:
        """The registration a ``registration.json`` holds; an unreadable or malformed file is an ``InputError``
        naming the file and the field."""
        path = Path(path)
        try:
            values = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise InputError(f"{path}: cannot read the registration ({error}); rerun the train stage") from None
        if isinstance(values, dict):  # a file written before the selection score was named so
            for old, new in LEGACY_KEYS.items():
                if old in values and new not in values:
                    values[new] = values.pop(old)
        return validate(cls, values, where=str(path))
