"""The pipeline's values are the library's defaults: every value params.yaml states equals its schema's default.

params.yaml keeps stating each value (DVC tracks them per stage); the settings classes own them. Each section is
validated through its schema and compared with the schema built from nothing, field by field, so a value changed
in either place names the key that differs. The control edits one value of a copy of the file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from exprfusion.core.settings import dump
from exprfusion.search.params import PipelineParams

REPOSITORY = Path(__file__).resolve().parents[2]
SECTIONS = tuple(field.name for field in dataclasses.fields(PipelineParams))


def _flat(values: Any, prefix: str = "") -> dict[str, Any]:
    """``{dotted key: value}`` of nested mappings (lists are values)."""
    if not isinstance(values, dict):
        return {prefix: values}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def differences_from_the_defaults(path: Path) -> dict[str, list[str]]:
    """Per section, each dotted key whose value in the file differs from the schema's default."""
    stated = dump(PipelineParams.read(path))
    defaults = dump(PipelineParams())
    found = {}
    for section in SECTIONS:
        given, default = _flat(stated[section], section), _flat(defaults[section], section)
        found[section] = [
            f"{key}: {given.get(key)!r} in the file, {default.get(key)!r} by default"
            for key in sorted(set(given) | set(default))
            if given.get(key) != default.get(key)
        ]
    return found


def _states_every_value(path: Path) -> list[str]:
    """The keys of the schema the file leaves out (it must state each value, for DVC)."""
    stated = _flat(yaml.safe_load(path.read_text()))
    defaults = _flat(dump(PipelineParams()))
    searched_or_derived = ("tune.grid.lr", "tune.grid.seed", "tune.search.max_concurrent_trials")
    return sorted(key for key in defaults if key not in stated and not key.startswith(searched_or_derived))


@pytest.mark.parametrize("section", SECTIONS)
def test_each_value_of_params_yaml_is_the_schema_default(section):
    assert differences_from_the_defaults(REPOSITORY / "params.yaml")[section] == []


def test_params_yaml_states_the_values_the_pipeline_uses():
    missing = _states_every_value(REPOSITORY / "params.yaml")
    # The model's feature widths and class count come from the data, its positional table from the window, the
    # search's base model's searched width, depth and dropout from the grid; the rest must be stated.
    from_elsewhere = {
        "tune.model.visual_dim",
        "tune.model.audio_dim",
        "tune.model.n_classes",
        "tune.model.d_model",
        "tune.model.n_layers",
        "tune.model.modality_dropout",
    }
    assert set(missing) <= from_elsewhere, sorted(set(missing) - from_elsewhere)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("tune", ("train", "epochs"), 12),
        ("tune", ("model", "normalisation"), "global"),
        ("evaluate", ("baseline", "smoothing"), 7),
        ("data", ("media", "visual", "batch_size"), 8),
        ("package", ("smoke_frames",), 128),
    ],
)
def test_a_value_edited_in_a_copy_is_named_as_a_difference(tmp_path, section, key, value):
    params = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
    group = params[section]
    for name in key[:-1]:
        group = group[name]
    group[key[-1]] = value
    copy = tmp_path / "params.yaml"
    copy.write_text(yaml.safe_dump(params, sort_keys=False))
    found = differences_from_the_defaults(copy)
    assert [line.split(":")[0] for line in found[section]] == [".".join((section, *key))]
    assert all(not lines for name, lines in found.items() if name != section)
