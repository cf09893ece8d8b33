"""The search on a real local Ray and a real sqlite MLflow store: child runs per grid point, best.json, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from factories import write_learnable_corpus, write_small_corpus

from exprfusion.core.errors import InputError
from exprfusion.data.corpus import Corpus
from exprfusion.model.fusion_config import PAPER_MODEL
from exprfusion.search.space import parse_tune_params
from exprfusion.search.tune import run_search, write_best
from exprfusion.tracking import runs as tracking

pytestmark = pytest.mark.integration

# The paper's model (global standardisation, no auxiliary heads or linear experts), small: the tests steer what its
# trials learn (an untrained trial must score below a learning one, which the fitted experts would level).
MODEL = {**PAPER_MODEL, "d_model": 16, "n_layers": 1, "n_heads": 2}
# One point; the window readout is not searched (left out, it would take the pipeline's [none, both]).
GRID = {"modality_dropout": [0.0], "d_model": [16], "n_layers": [1], "window_readout": None}
TRAIN = {"epochs": 2, "batch_size": 4, "window": 16, "stride": 8, "eval_stride": 8, "median_kernel": 3, "lr": 3e-3}
RESUME_SCRIPT = """
import json, sys
from exprfusion.search.tune import run_search
corpus, tune_params, model, train, storage = json.loads(sys.argv[1])
run_search(corpus, tune_params, model, train, storage=storage, experiment="resume")
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tune") / "corpus"
    return write_small_corpus(root)


@pytest.fixture(scope="module")
def learnable_corpus(tmp_path_factory) -> Path:
    """A corpus whose classes shift the features: one epoch at a working learning rate beats an untrained model."""
    return write_learnable_corpus(tmp_path_factory.mktemp("tune") / "learnable")


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory) -> Iterator[str]:
    """One sqlite store for the module (creating its tables costs seconds); each test uses its own experiment."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(tracking.TRACKING_URI_ENV, uri)
        tracking.configure_mlflow("setup")
        yield uri


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for the module's in-process searches (run_search uses a running Ray and leaves it running)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _runs(experiment: str) -> tuple[list, list]:
    """The (parent runs, child runs) of an experiment."""
    client = tracking.client()
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    return [run for run in runs if run not in children], children


def _history(run_id: str, key: str = "epoch_macro_f1") -> list[int]:
    return sorted(metric.step for metric in tracking.client().get_metric_history(run_id, key))


def test_unknown_and_invalid_tune_params_are_rejected():
    with pytest.raises(InputError, match=r"^tune\.dmodel, tune\.shceduler: unknown key; known: \["):
        parse_tune_params({"dmodel": [16], "shceduler": "asha"})
    with pytest.raises(InputError, match=r"^tune\.grid\.modality_dropout\.1: must be <= 1\.0, got 1\.5$"):
        parse_tune_params({"grid": {**GRID, "modality_dropout": [0.1, 1.5]}})
    with pytest.raises(InputError, match=r"^tune\.search\.scheduler: must be one of 'asha', 'successive_halving'"):
        parse_tune_params({"grid": GRID, "search": {"scheduler": "hyperband"}})
    with pytest.raises(InputError, match="given twice"):
        parse_tune_params({"grid": {"d_model": [16]}, "d_model": [32]})
    with pytest.raises(InputError, match=r"tune\.layers: unknown key"):
        run_search("unused", {"layers": [1]}, MODEL, TRAIN, storage="unused")


def test_a_searched_dimension_left_out_takes_the_pipelines_grid():
    space, _ = parse_tune_params({"grid": {"d_model": [16]}})
    default, _ = parse_tune_params({})
    assert space.d_model == [16] and space.modality_dropout == default.modality_dropout == [0.1, 0.3]
    assert default.n_trials() == 8, "the 8 points of params.yaml's grid"


def test_search_space_grid_and_random():
    grid = {"modality_dropout": [0.0, 0.1, 0.15, 0.2], "d_model": [256, 512], "n_layers": [1, 2], "lr": ["1e-3", 3e-3]}
    grid["window_readout"] = None
    space, settings = parse_tune_params({"grid": grid, "search": {}})
    assert space.n_trials() == 4 * 2 * 2 * 2
    assert space.param_space()["lr"] == {"grid_search": [1e-3, 3e-3]}, "YAML strings such as 1e-3 are numbers"
    assert settings.scheduler == "successive_halving" and settings.cpus_per_trial == 1
    random_space, _ = parse_tune_params({**GRID, "mode": "random", "num_samples": 5, "lr": {"low": 1e-4, "high": 1e-2}})
    assert random_space.n_trials() == 5
    assert 1e-4 <= random_space.param_space()["lr"].sample() <= 1e-2


def test_the_window_readout_is_an_optional_searched_dimension():
    space, _ = parse_tune_params({"grid": {**GRID, "window_readout": ["none", "both"]}})
    assert space.n_trials() == 2 * parse_tune_params({"grid": GRID})[0].n_trials()
    assert space.param_space()["window_readout"] == {"grid_search": ["none", "both"]}
    with pytest.raises(InputError, match=r"tune\.grid\.window_readout\.0: must be one of 'none', 'audio' or 'both'"):
        parse_tune_params({"grid": {**GRID, "window_readout": ["linear"]}})


def test_trial_resources_follow_the_cluster():
    _, settings = parse_tune_params({**GRID, "cpus_per_trial": 2, "gpus_per_trial": 0.25})
    assert settings.trial_resources({"CPU": 16.0}) == ({"cpu": 2, "gpu": 0}, 8), "no GPU asked where there is none"
    assert settings.trial_resources({"CPU": 16.0, "GPU": 1.0}) == ({"cpu": 2, "gpu": 0.25}, 8)
    assert settings.trial_resources({"CPU": 1.0})[1] == 1
    _, capped = parse_tune_params({**GRID, "max_concurrent_trials": 3})
    assert capped.trial_resources({"CPU": 16.0})[1] == 3


def test_tracking_uri_and_params(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(tracking.TRACKING_URI_ENV, raising=False)
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv(tracking.TRACKING_URI_ENV, "sqlite:///stores/runs.db")
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/stores/runs.db", "made absolute for trials"
    params = tracking.flatten_params({"modality_dropout": 0.1, "d_model": 32, "n_layers": 2}, {"lr": 1e-3})
    assert params == {"model.modality_dropout": 0.1, "model.d_model": 32, "model.n_layers": 2, "train.lr": 1e-3}


@pytest.mark.slow
def test_grid_search_logs_one_child_run_per_point(corpus, mlflow_uri, local_ray, tmp_path):
    tune_params = {"grid": {**GRID, "modality_dropout": [0.0, 0.2], "d_model": [16, 32]}}
    tune_params["search"] = {"scheduler": "none"}
    seen = []
    result = run_search(
        corpus,
        tune_params,
        MODEL,
        TRAIN,
        storage=tmp_path / "ray",
        experiment="grid",
        progress=lambda *a: seen.append(a),
    )

    parents, children = _runs("grid")
    assert [parent.info.run_id for parent in parents] == [result.parent_run_id]
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["corpus_hash"] == Corpus(corpus).content_hash()
    assert parent.data.tags["search_mode"] == "grid" and parent.data.tags["scheduler"] == "none"
    points = {
        tuple(run.data.params[f"model.{key}"] for key in ("modality_dropout", "d_model", "n_layers"))
        for run in children
    }
    assert points == {("0.0", "16", "1"), ("0.0", "32", "1"), ("0.2", "16", "1"), ("0.2", "32", "1")}
    assert len(children) == 4
    for child in children:
        assert child.info.status == "FINISHED"
        assert _history(child.info.run_id) == [0, 1], "epoch_macro_f1 logged once per epoch, step = epoch"
        assert "selection_macro_f1" in child.data.metrics

    frame = result.trials
    assert len(frame) == 4 and set(frame["status"]) == {"completed"} and set(frame["epochs_run"]) == {2}
    assert result.total_trial_epochs == 8
    best_row = frame.loc[frame["macro_f1"].idxmax()]
    assert result.best_metrics["macro_f1"] == pytest.approx(best_row["macro_f1"])
    assert result.best_model_config["d_model"] == best_row["d"]
    assert result.best_model_config["modality_dropout"] == best_row["p"]
    assert result.best_model_config["visual_dim"] == 8, "feature widths come from the corpus"
    assert seen[-1] == (4, 4)

    best = json.loads(write_best(result, tmp_path / "reports" / "best.json").read_text())
    assert set(best) == {"model", "train", "normalisation_choice", "metrics", "history", "parent_run_id", "trials",
                         "selection_split", "selection_warnings"}  # fmt: skip
    assert best["normalisation_choice"] is None, "a set normalisation is not chosen"
    assert best["parent_run_id"] == result.parent_run_id and best["trials"] == 4
    assert best["train"]["epochs"] == 2 and best["model"]["n_layers"] == 1
    # The best trial's epochs as its child run logged them: what the train stage records when it refits the trial.
    best_child = next(
        child
        for child in children
        if (child.data.params["model.modality_dropout"], child.data.params["model.d_model"])
        == (str(best_row["p"]), str(best_row["d"]))
    )
    logged = tracking.client().get_metric_history(best_child.info.run_id, "epoch_macro_f1")
    assert [report["epoch"] for report in best["history"]] == [0, 1]
    assert [report["metrics"]["macro_f1"] for report in best["history"]] == pytest.approx(
        [metric.value for metric in sorted(logged, key=lambda metric: metric.step)]
    )
    assert max(report["metrics"]["macro_f1"] for report in best["history"]) == pytest.approx(
        best["metrics"]["macro_f1"]
    )


def _run_until_first_trial_finishes(arguments: list, timeout: float = 300) -> None:
    """Run a search in a subprocess and SIGKILL it (and its Ray) once the driver reports a finished trial."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("RAY_ADDRESS", None)
    process = subprocess.Popen(
        [sys.executable, "-c", RESUME_SCRIPT, json.dumps(arguments)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    deadline, lines = time.monotonic() + timeout, []
    try:
        for line in process.stderr:
            lines.append(line)
            if line.startswith("trial 1/2") or time.monotonic() > deadline:
                break
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert any(line.startswith("trial 1/2") for line in lines), "".join(lines[-40:])


@pytest.mark.slow
def test_killed_search_resumes_without_rerunning_finished_trials(corpus, mlflow_uri, local_ray, tmp_path):
    # One trial at a time, so the kill lands while the second trial is pending or mid-way; no early stopping (the
    # default, successive halving, refuses a cap below the grid: its paused trials would hold the cap).
    tune_params = {**GRID, "modality_dropout": [0.0, 0.2], "max_concurrent_trials": 1, "scheduler": "none"}
    train = {**TRAIN, "epochs": 3}
    storage = tmp_path / "ray"
    _run_until_first_trial_finishes([str(corpus), tune_params, MODEL, train, str(storage)])

    parents, children = _runs("resume")
    finished = {run.info.run_id for run in children if run.info.status == "FINISHED"}
    assert len(parents) == 1 and len(finished) == 1

    result = run_search(corpus, tune_params, MODEL, train, storage=storage, experiment="resume", resume=True)

    parents_after, children_after = _runs("resume")
    assert result.parent_run_id == parents[0].info.run_id, "the restored search keeps its parent run"
    assert [run.info.run_id for run in parents_after] == [result.parent_run_id]
    assert len(children_after) == 2, "no child run is duplicated by the restore"
    assert len({run.data.tags["trial_id"] for run in children_after}) == 2
    for run_id in finished:
        assert _history(run_id) == [0, 1, 2], "the finished trial was not trained again"
    assert all(run.info.status == "FINISHED" for run in children_after)
    assert len(result.trials) == 2 and set(result.trials["epochs_run"]) == {3}
    assert sorted(result.trials["p"]) == [0.0, 0.2]


@pytest.mark.slow
def test_asha_stops_the_trial_that_cannot_learn_and_closes_its_child_run(
    learnable_corpus, mlflow_uri, local_ray, tmp_path
):
    """Two grid points, run one after the other: lr 3e-3 learns the planted signal, lr 1e-12 moves no weight.

    ASHA (grace period 1, reduction factor 2, max_t 3 epochs) has rungs at epochs 1 and 2. The learning trial runs
    first and, alone at each rung, is never stopped. The second trial reaches rung 1 with its untrained score,
    below the first trial's score there (the rung's median of one value), so ASHA stops it after one epoch.
    """
    tune_params = {
        "grid": {**GRID, "lr": [3e-3, 1e-12]},
        "search": {"scheduler": "asha", "grace_period": 1, "reduction_factor": 2, "max_concurrent_trials": 1},
    }
    train = {**TRAIN, "epochs": 3, "batch_size": 8}
    result = run_search(learnable_corpus, tune_params, MODEL, train, storage=tmp_path / "ray", experiment="asha")

    frame = result.trials.set_index("lr")
    assert frame.loc[3e-3, "epochs_run"] == 3 and frame.loc[3e-3, "status"] == "completed"
    assert frame.loc[1e-12, "epochs_run"] < 3 and frame.loc[1e-12, "status"] == "stopped"
    assert frame.loc[1e-12, "macro_f1"] < frame.loc[3e-3, "macro_f1"]
    assert result.total_trial_epochs == 3 + frame.loc[1e-12, "epochs_run"]

    parents, children = _runs("asha")
    assert [parent.info.run_id for parent in parents] == [result.parent_run_id]
    child = {run.data.tags["trial_id"]: run for run in children}
    assert sorted(child) == sorted(frame["trial_id"])
    stopped, completed = child[frame.loc[1e-12, "trial_id"]], child[frame.loc[3e-3, "trial_id"]]
    assert stopped.info.status == "FINISHED", "the driver closes the run of a trial the scheduler stopped"
    assert stopped.data.tags["stopped_by"] == "scheduler"
    assert len(_history(stopped.info.run_id)) < 3
    assert completed.info.status == "FINISHED" and completed.data.tags["stopped_by"] == "max_epochs"
    assert _history(completed.info.run_id) == [0, 1, 2]


@pytest.mark.slow
def test_a_search_on_a_two_video_holdout_warns_that_selection_cannot_choose(mlflow_uri, local_ray, tmp_path, capsys):
    """Six 60-frame training videos, 30 % held out: a holdout of 2 videos. Every trial stays the same initial model
    (learning rate 1e-9), so nothing tells the trials apart; the search prints so and best.json records it."""
    corpus = write_small_corpus(tmp_path / "corpus", n_train=6)
    tune_params = {"grid": {**GRID, "modality_dropout": [0.0, 0.2]}, "search": {"scheduler": "none"}}
    train = {**TRAIN, "epochs": 1, "lr": 1e-9, "holdout_fraction": 0.3, "selection": "holdout"}
    result = run_search(corpus, tune_params, MODEL, train, storage=tmp_path / "ray", experiment="small-holdout")
    assert result.selection_split is not None and result.selection_split.videos == 2
    [warning] = [line for line in result.selection_warnings if "between the trials" in line]
    score = result.trials["macro_f1"].iloc[0]
    assert "the holdout (2 videos" in warning and f"same score, {score:.4f}" in warning
    assert "selection cannot choose between the trials" in " ".join(capsys.readouterr().err.split())
    best = json.loads(write_best(result, tmp_path / "best.json").read_text())
    assert best["selection_warnings"] == result.selection_warnings and best["selection_split"]["videos"] == 2
