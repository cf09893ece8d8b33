"""The files one stage writes for the next (best.json, registration.json, model_card.json) are read through their
settings classes: a malformed file is one line naming the file and the field, and nothing is guessed."""

from __future__ import annotations

import json

import pytest

from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.search.final_training import BestTrial
from exprfusion.tracking.packaging import CARD_FILE, read_card
from exprfusion.tracking.registration import RegistrationResult
from exprfusion.training.train_config import TrainConfig

REGISTRATION = {
    "run_id": "abc",
    "name": "exprfusion-fusion",
    "version": 3,
    "model_uri": "models:/exprfusion-fusion/3",
    "selection_macro_f1": 0.5,
    "corpus_hash": "ff",
    "promoted": True,
    "decision": "first champion",
    "validation_macro_f1": 0.55,
    "previous_champion_version": None,
    "previous_champion_selection_macro_f1": None,
}
BEST = {
    "model": FusionConfig().to_dict(),
    "train": TrainConfig().to_dict(),
    "normalisation_choice": {"chosen": "robust", "scores": {"robust": 0.5, "video": 0.4}},
    "metrics": {"macro_f1": 0.5, "best_epoch": 1},
    "history": [{"epoch": 0, "train_loss": 1.0, "lr": 1e-4, "seconds": 2.0, "metrics": {"macro_f1": 0.4}}],
    "parent_run_id": "p",
    "trials": 8,
}
CARD = {
    "name": None,
    "file": "model.pt",
    "sha256": "00ff",
    "format": "exprfusion-model/2",
    "class_names": ["Neutral"],
    "model_config": {},
    "inference": {"window": 32, "stride": 16, "median_kernel": 31},
    "training": {},
    "metrics": {"macro_f1": 0.5},
    "per_class_f1": {},
    "registry": {},
    "git_commit": None,
    "inputs": "features",
    "outputs": "labels",
}


def _write(path, values):
    path.write_text(json.dumps(values))
    return path


def _one_line(caught) -> str:
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_well_formed_files_read_back(tmp_path):
    assert RegistrationResult.read(_write(tmp_path / "r.json", REGISTRATION)).to_dict() == REGISTRATION
    # A file written before the selection score was named so: its macro_f1 was that score.
    older = {k: v for k, v in REGISTRATION.items() if "selection" not in k and k != "validation_macro_f1"}
    older.update(macro_f1=0.5, previous_champion_macro_f1=None)
    assert RegistrationResult.read(_write(tmp_path / "old.json", older)).to_dict() == {
        **REGISTRATION,
        "validation_macro_f1": None,
    }
    best = BestTrial.read(_write(tmp_path / "best.json", BEST))
    assert best.model == FusionConfig() and best.metrics["best_epoch"] == 1 and best.history[0].epoch == 0
    assert read_card(_write(tmp_path / CARD_FILE, CARD).parent).sha256 == "00ff"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({k: v for k, v in REGISTRATION.items() if k != "run_id"}, "run_id: is required"),
        ({**REGISTRATION, "version": "three"}, "version: must be a valid integer"),
        ({**REGISTRATION, "promoted": "yes"}, "promoted: must be a valid boolean, got 'yes'"),
        ({**REGISTRATION, "extra": 1}, "extra: unknown key"),
    ],
)
def test_a_malformed_registration_names_the_file_and_the_field(tmp_path, values, message):
    path = _write(tmp_path / "registration.json", values)
    with pytest.raises(InputError) as caught:
        RegistrationResult.read(path)
    assert _one_line(caught).startswith(f"{path}: {message}")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {**BEST["model"], "d_model": 0}}, "model.d_model: must be >= 1, got 0"),
        ({"train": {**BEST["train"], "epoch": 3}}, "train.epoch: unknown key"),
        ({"metrics": {"macro_f1": 0.5}}, "metrics.best_epoch must be the trial's best epoch"),
        ({"normalisation_choice": {"chosen": "video"}}, "normalisation_choice.scores: is required"),
    ],
)
def test_a_malformed_best_json_names_the_file_and_the_field(tmp_path, change, message):
    path = _write(tmp_path / "best.json", {**BEST, **change})
    with pytest.raises(InputError) as caught:
        BestTrial.read(path)
    assert _one_line(caught).startswith(f"{path}: {message}")
    with pytest.raises(MissingInputError, match="no search result; run the tune stage"):
        BestTrial.read(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({k: v for k, v in CARD.items() if k != "sha256"}, "sha256: is required"),
        ({**CARD, "metrics": [0.5]}, "metrics: must be a valid dictionary"),
        ({**CARD, "owner": "me"}, "owner: unknown key"),
    ],
)
def test_a_malformed_model_card_names_the_file_and_the_field(tmp_path, values, message):
    path = _write(tmp_path / CARD_FILE, values)
    with pytest.raises(InputError) as caught:
        read_card(tmp_path)
    assert _one_line(caught).startswith(f"{path}: {message}")
