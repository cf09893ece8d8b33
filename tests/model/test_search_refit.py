"""The train stage's model from a search's winner: the trial's selection taken over, refit on every training video."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest
import torch
from factories import make_learnable_record

from exprfusion.core.errors import InputError
from exprfusion.data.corpus import Corpus
from exprfusion.data.corpus_writer import CorpusWriter
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.search.final_training import train_final
from exprfusion.training.train import train_model
from exprfusion.training.train_config import TrainConfig

MODEL = FusionConfig.paper(d_model=16, n_layers=1, n_heads=2, modality_dropout=0.1)
TRAIN = TrainConfig(
    epochs=3, batch_size=8, window=16, eval_stride=4, median_kernel=3, lr=3e-3, selection="holdout", refit=True
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    root = tmp_path_factory.mktemp("search_refit") / "corpus"
    with CorpusWriter(root) as writer:
        for number, name in enumerate(("a", "b", "c", "d", "e")):
            writer.add(make_learnable_record(name, "train", n=100, seed=number))
        writer.add(make_learnable_record("v", "validation", n=96, seed=50))
    return Corpus(root)


@pytest.fixture(scope="module")
def full_run(corpus):
    """The reference: train_model's own selection run on the holdout, then its refit on every training video."""
    return train_model(corpus, MODEL, TRAIN)


def _best_json(result, train: TrainConfig = TRAIN) -> dict:
    """What the tune stage writes for a winning trial that ran as ``result``'s selection run did."""
    return {
        "model": MODEL.to_dict(),
        "train": train.to_dict(),
        "metrics": {**result.best_metrics, "best_epoch": result.best_epoch},
        "history": [asdict(report) for report in result.history],
        "parent_run_id": None,
    }


def test_taking_over_the_selection_gives_the_model_of_a_full_run(corpus, full_run):
    assert full_run.refit and full_run.best_epoch >= 0
    final = train_final(corpus, _best_json(full_run))
    assert final.reused_selection
    epochs = full_run.best_epoch + 1
    assert f"for {epochs} epoch{'' if epochs == 1 else 's'} (its holdout chose epoch {epochs}" in final.how
    reference, refit = full_run.model.state_dict(), final.result.model.state_dict()
    assert reference.keys() == refit.keys()
    for name, value in reference.items():
        torch.testing.assert_close(refit[name], value, rtol=0, atol=0, msg=name)
    assert final.result.validation_metrics["macro_f1"] == full_run.validation_metrics["macro_f1"]
    assert final.result.prediction_prior == full_run.prediction_prior
    assert final.result.best_epoch == full_run.best_epoch and final.result.refit
    assert final.result.best_metrics["macro_f1"] == full_run.best_metrics["macro_f1"]
    assert [report.metrics for report in final.result.history] == [report.metrics for report in full_run.history]


def test_the_searchs_normalisation_choice_reaches_the_result(corpus, full_run):
    # The search resolves `normalisation: auto` once, before its trials, and best.json records how; the trial's
    # model config then holds the resolved value, so the train stage's result must carry the search's decision.
    decided = {"chosen": MODEL.normalisation, "scores": {MODEL.normalisation: 0.5, "video": 0.25}}
    best = _best_json(full_run) | {"normalisation_choice": decided}
    for overrides in (None, {"epochs": 2}):  # the refit of the trial, and a run of its own
        choice = train_final(corpus, best, overrides).result.normalisation_choice
        assert (choice.chosen, choice.scores) == (MODEL.normalisation, {MODEL.normalisation: 0.5, "video": 0.25})
    assert train_final(corpus, _best_json(full_run)).result.normalisation_choice is None  # a set normalisation
    best["normalisation_choice"] = {"chosen": "video"}
    with pytest.raises(InputError, match=r"best\.json: normalisation_choice\.scores: is required"):
        train_final(corpus, best)


def test_overrides_that_only_move_the_run_keep_the_selection(corpus, full_run):
    final = train_final(corpus, _best_json(full_run), {"device": "cpu", "eval_batch_size": 16})
    assert final.reused_selection and final.config.eval_batch_size == 16


def test_an_override_that_moves_results_trains_with_a_selection_of_its_own(corpus, full_run):
    best = _best_json(full_run)
    best["metrics"]["best_epoch"] = 0  # what the trial chose: the run of its own must not take it
    final = train_final(corpus, best, {"epochs": 2})
    assert not final.reused_selection
    assert "epochs=3 in the search, 2 here" in final.how
    assert len(final.result.history) == 2, "its own selection run, over its own epochs"
    assert final.config.epochs == 2


def test_a_trial_selected_on_validation_is_not_taken_over(corpus, full_run):
    validation_selected = replace(TRAIN, selection="validation")
    final = train_final(corpus, _best_json(full_run, validation_selected))
    assert not final.reused_selection and "selects on validation" in final.how
    assert not final.result.refit


def test_a_malformed_search_result_names_its_file(corpus, full_run):
    best = _best_json(full_run)
    del best["metrics"]["best_epoch"]
    with pytest.raises(InputError, match=r"reports/best\.json: metrics\.best_epoch must be the trial's best epoch"):
        train_final(corpus, best, best_path="reports/best.json")
    with pytest.raises(InputError, match=r"train\.overrides"):
        train_final(corpus, _best_json(full_run), {"epoch": 2})
