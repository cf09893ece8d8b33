"""What a user reads in MLflow after a search, the final training and its evaluation, through MLflow's API on a real
sqlite store, a real local Ray and a real (tiny) model: the documented metric names only, the grid on the search's
run, each trial's headline its best holdout epoch, no validation score before the final model, the robustness curve
as one metric's steps, the registered version's two scores named apart, and the work's durations."""

from __future__ import annotations

import json
import time

import pytest
import ray
from factories import write_learnable_corpus

from exprfusion.data.corpus import Corpus
from exprfusion.evaluation.evaluate import EvaluateConfig, evaluate_model
from exprfusion.model.artifact import save_model
from exprfusion.search.final_training import train_final
from exprfusion.search.tune import run_search, write_best
from exprfusion.tracking import runs as tracking
from exprfusion.tracking.metric_names import robustness_curve
from exprfusion.tracking.registry import log_and_register, log_evaluation

pytestmark = pytest.mark.integration

# The base model says d_model 32 and 2 layers; the grid searches d 16 and l 1 only, so no trial uses the base values.
MODEL = {"d_model": 32, "n_layers": 2, "n_heads": 2, "dropout": 0.1}
GRID = {"modality_dropout": [0.0, 0.3], "d_model": [16], "n_layers": [1], "window_readout": None}
# Successive halving over two trials: both train epoch 1, the better goes on to epoch 2, the other is stopped.
SEARCH = {"scheduler": "successive_halving", "grace_period": 1, "reduction_factor": 2}
TRAIN = {"epochs": 2, "batch_size": 8, "window": 16, "stride": 8, "eval_stride": 8, "median_kernel": 3, "lr": 3e-3}
EVALUATE = EvaluateConfig(robustness_fractions=[0.0, 0.5, 1.0], timeline_videos=0, device="cpu")
HEADLINE = {"selection_macro_f1", "selection_macro_f1_lo", "selection_macro_f1_hi"}
HISTORIES = {"epoch_macro_f1", "train_loss", "lr"}
TRIAL_METRICS = HEADLINE | HISTORIES | {"best_epoch"}
REPORTED = {
    f"{name}{end}" for name in ("validation_macro_f1", "baseline_macro_f1", "margin") for end in ("", "_lo", "_hi")
}
FINAL_METRICS = TRIAL_METRICS | REPORTED | {"robustness_macro_f1", "robustness_auc"}


def _steps(client, run_id: str, key: str) -> dict[int, float]:
    history = client.get_metric_history(run_id, key)
    assert len({metric.step for metric in history}) == len(history), f"{key}: one entry per step"
    return {metric.step: metric.value for metric in history}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One search, the final training and its evaluation, logged to one sqlite store; yields what they returned."""
    folder = tmp_path_factory.mktemp("reading")
    corpus = Corpus(write_learnable_corpus(folder / "corpus", n_train=6))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv(tracking.TRACKING_URI_ENV, f"sqlite:///{folder / 'mlflow.db'}")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            search = run_search(
                corpus.root, {"grid": GRID, "search": SEARCH}, MODEL, TRAIN, storage=folder / "ray", experiment="read"
            )
        finally:
            ray.shutdown()
        best_path = write_best(search, folder / "best.json")
        started = time.time()
        final = train_final(corpus, json.loads(best_path.read_text()), best_path=best_path)
        trained_s = time.time() - started
        model_path = save_model(folder / "model.pt", final.result.model, final.config.inference())
        registration = log_and_register(
            model_path,
            final.result,
            final.result.model.config,
            final.config,
            corpus=corpus,
            parent_run_id=search.parent_run_id,
            experiment="read",
            start_time=started,
        )
        report = evaluate_model(
            model_path, corpus, metrics_path=folder / "metrics.json", plots_dir=folder / "plots", config=EVALUATE
        )
        log_evaluation(registration.run_id, report, folder / "plots")
        yield {
            "client": tracking.client(),
            "search": search,
            "final": final,
            "registration": registration,
            "report": report,
            "started": started,
            "trained_s": trained_s,
        }


@pytest.mark.slow
def test_the_search_run_holds_the_grid_once_and_no_value_no_trial_used(tracked):
    client, search = tracked["client"], tracked["search"]
    params = client.get_run(search.parent_run_id).data.params
    assert params["grid.modality_dropout"] == "[0.0, 0.3]"
    assert params["grid.d_model"] == "[16]" and params["grid.n_layers"] == "[1]"
    assert params["search.scheduler"] == "successive_halving" and params["model.dropout"] == "0.1"
    assert params["train.lr"] == "0.003" and params["train.refit"] == "False", "the trials' own values"
    # The base d_model 32 and 2 layers, and the unset ff_dim, were used by no trial: not logged.
    for unused in ("model.d_model", "model.n_layers", "model.modality_dropout", "model.ff_dim"):
        assert unused not in params, unused
    # One name per setting: no alias (p, d, l), every name in one of the four groups.
    assert {key.split(".")[0] for key in params} == {"grid", "search", "model", "train"}
    children = client.search_runs(
        [client.get_run(search.parent_run_id).info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{search.parent_run_id}'",
    )
    assert len(children) == 2
    for child in children:
        assert set(child.data.params) == {"model.modality_dropout", "model.d_model", "model.n_layers", "model.ff_dim"}
        assert child.data.params["model.ff_dim"] == "64", "4 * the trial's d_model 16"


@pytest.mark.slow
def test_each_trial_headlines_its_best_holdout_epoch_and_scores_no_validation(tracked):
    client, search = tracked["client"], tracked["search"]
    experiment = client.get_run(search.parent_run_id).info.experiment_id
    children = client.search_runs([experiment], filter_string=f"tags.`mlflow.parentRunId` = '{search.parent_run_id}'")
    # Control: one trial went on to epoch 2 and the other was stopped (closed by the search, not the trial itself).
    assert sorted(child.data.tags["stopped_by"] for child in children) == ["max_epochs", "scheduler"]
    for child in children:
        metrics = child.data.metrics
        assert set(metrics) == TRIAL_METRICS, "the documented names; no validation score, no per-class F1"
        epochs = _steps(client, child.info.run_id, "epoch_macro_f1")
        best_epoch = int(metrics["best_epoch"])
        assert metrics["selection_macro_f1"] == epochs[best_epoch] == max(epochs.values())
        assert metrics["selection_macro_f1_lo"] <= metrics["selection_macro_f1"] <= metrics["selection_macro_f1_hi"]
        # The run ends with its work: at its last epoch's log, not when the search got round to closing it.
        last_logged = max(m.timestamp for m in client.get_metric_history(child.info.run_id, "epoch_macro_f1"))
        assert last_logged <= child.info.end_time
        if child.data.tags["stopped_by"] == "scheduler":
            assert child.info.end_time == last_logged
    parent = client.get_run(search.parent_run_id).data.metrics
    assert parent["selection_macro_f1"] == max(child.data.metrics["selection_macro_f1"] for child in children)
    assert parent["selection_macro_f1"] == search.best_metrics["macro_f1"]
    assert parent["trial_epochs"] == 3 and set(parent) == HEADLINE | {"best_epoch", "trial_epochs"} | {
        key for key in parent if key.startswith("normalisation_")
    }


@pytest.mark.slow
def test_the_final_run_reads_its_scores_under_the_documented_names(tracked):
    client, registration, report = tracked["client"], tracked["registration"], tracked["report"]
    run = client.get_run(registration.run_id)
    metrics = run.data.metrics
    assert set(metrics) == FINAL_METRICS
    assert metrics["validation_macro_f1"] == report["macro_f1"]
    assert [metrics["validation_macro_f1_lo"], metrics["validation_macro_f1_hi"]] == report["macro_f1_ci"]
    assert metrics["margin"] == report["baseline"]["margin"]
    assert [metrics["margin_lo"], metrics["margin_hi"]] == report["baseline"]["margin_ci"]
    # The robustness curve: one metric, one step per hidden-face share (percent hidden), the report's scores.
    assert _steps(client, run.info.run_id, "robustness_macro_f1") == {
        0: report["robustness"]["0.0"], 50: report["robustness"]["0.5"], 100: report["robustness"]["1.0"]
    }  # fmt: skip
    # The selection run's epochs, and the winning trial's headline, carried onto the final run.
    selection = tracked["search"].best_metrics
    assert metrics["selection_macro_f1"] == selection["macro_f1"]
    assert [metrics["selection_macro_f1_lo"], metrics["selection_macro_f1_hi"]] == selection["macro_f1_ci"]
    assert _steps(client, run.info.run_id, "epoch_macro_f1") == {
        report.epoch: report.metrics["macro_f1"] for report in tracked["search"].best_history
    }
    # Its duration is the training's, not the few seconds of logging after it.
    assert run.info.start_time == int(tracked["started"] * 1000)
    assert (run.info.end_time - run.info.start_time) / 1000 >= tracked["trained_s"]


@pytest.mark.slow
def test_the_registered_version_names_its_two_scores_and_the_decision_reads_plainly(tracked):
    client, registration, report = tracked["client"], tracked["registration"], tracked["report"]
    tags = client.get_model_version(registration.name, str(registration.version)).tags
    assert float(tags["selection_macro_f1"]) == tracked["search"].best_metrics["macro_f1"]
    # The validation score measured at training equals the evaluation's, computed apart from it.
    assert float(tags["validation_macro_f1"]) == pytest.approx(report["macro_f1"], abs=1e-12)
    assert tags["selection_macro_f1"] != tags["validation_macro_f1"], "control: the two scores differ here"
    assert "macro_f1" not in tags
    assert registration.decision == "first champion" and registration.promoted
    run_tags = client.get_run(registration.run_id).data.tags
    assert run_tags["champion_decision"] == "first champion" and run_tags["promoted"] == "true"


def test_a_robustness_share_off_the_whole_percents_is_refused():
    assert robustness_curve({"robustness": {"1.0": 0.2, "0.0": 0.5, "0.25": 0.4}}) == [(0, 0.5), (25, 0.4), (100, 0.2)]
    with pytest.raises(ValueError, match="distinct whole percents"):
        robustness_curve({"robustness": {"0.001": 0.5, "0.002": 0.4}})
