"""The whole DVC pipeline on the tiny profile, in a throwaway git copy of the repository: a real `dvc repro`.

Every stage runs; MLflow holds the search (a parent run, one child per grid point) and a champion model; a second
`dvc repro` reruns nothing; a changed `tune` param reruns tune and what follows, never corpus or validate.

The full `dvc repro` runs once per module; the tests only read that repository. A test that runs commands which may
change it works in its own copy (``Project.copy_to``), so the tests pass in any order.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from factories import copy_repository
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from exprfusion.data.corpus import Corpus, feature_path
from exprfusion.sources.synthetic import generate_corpus

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).resolve().parents[2]
STAGES = ("corpus", "validate", "tune", "train", "evaluate", "package")
GRID = {"modality_dropout": [0.0, 0.2], "d_model": [16], "n_layers": [1], "window_readout": None}  # two points
TINY_TRAIN = {
    "epochs": 2,
    "batch_size": 8,
    "lr": 0.003,
    "window": 32,
    "stride": 16,
    "eval_stride": 16,
    "median_kernel": 5,
    "patience": 4,
    "seed": 0,
    "device": "cpu",
}


def _tiny_params(path: Path) -> None:
    """The tiny corpus, a two-point grid of tiny models, two epochs."""
    params = yaml.safe_load(path.read_text())
    params["data"]["synthetic"]["profile"] = "tiny"
    params["validate"]["min_class_frames"] = 0  # the tiny profile's train split lacks Disgust and Fear
    params["tune"]["grid"] = GRID
    params["tune"]["search"].update(scheduler="none", cpus_per_trial=1)
    params["tune"]["model"] = {"n_heads": 2, "dropout": 0.1, "fusion": "gated"}
    params["tune"]["train"] = TINY_TRAIN
    params["train"]["overrides"] = {"epochs": 2}
    params["evaluate"]["timeline_videos"] = 1
    params["package"]["smoke_frames"] = 40
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo, check=True)


class Project:
    """The temporary repository and the environment its commands run in."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            # The stages run the copy's code (the code DVC hashes), not the checkout the environment was built from.
            "PYTHONPATH": str(root / "src"),
            # `dvc exp run` commits each experiment to a git ref: it needs an identity.
            "GIT_AUTHOR_NAME": "exprfusion tests",
            "GIT_AUTHOR_EMAIL": "tests@example.org",
            "GIT_COMMITTER_NAME": "exprfusion tests",
            "GIT_COMMITTER_EMAIL": "tests@example.org",
        }
        self.first_repro = ""

    def run(self, *command: str, timeout: int = 600) -> str:
        """Run a command in the repository; fail with its output if it fails; return stdout and stderr."""
        done = subprocess.run(
            command, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{' '.join(command)} failed ({done.returncode}):\n{output[-6000:]}"
        return output

    def copy_to(self, target: Path) -> Project:
        """A copy of the whole repository (git, DVC cache, MLflow store and artefacts, Ray results) at ``target``.

        The MLflow store records absolute artefact locations; they are moved to the copy's own folder, so runs made
        in the copy never write into this repository.
        """
        shutil.copytree(self.root, target, symlinks=True)
        _relocate_paths(target / "mlflow.db", str(self.root), str(target))
        copy = Project(target)
        copy.first_repro = self.first_repro
        return copy


def _relocate_paths(database: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in every text column of an sqlite database (the MLflow store's artefact paths)."""
    with sqlite3.connect(database) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in connection.execute(f'PRAGMA table_info("{table}")').fetchall():
                name, kind = column[1], column[2].upper()
                if "CHAR" in kind or "TEXT" in kind or "CLOB" in kind:
                    connection.execute(
                        f'UPDATE "{table}" SET "{name}" = REPLACE("{name}", ?, ?) WHERE instr("{name}", ?) > 0',
                        (old, new, old),
                    )


def test_validate_stage_names_the_damaged_video(tmp_path):
    """The real stage script on a corpus with one altered feature file: exit status 2, the video named."""
    generate_corpus(tmp_path / "corpus", profile="tiny", seed=0)
    sections = {
        "data": {"out": "corpus"},
        "validate": {"required_splits": ["train", "validation"], "verify_hashes": True, "min_class_frames": 0},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(sections))
    stage = [sys.executable, str(REPOSITORY / "pipelines" / "validate.py")]
    passed = subprocess.run(stage, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert passed.returncode == 0, passed.stderr
    video = Corpus(tmp_path / "corpus").videos("train")[1]
    damaged = feature_path(tmp_path / "corpus", "audio", video)
    damaged.write_bytes(damaged.read_bytes()[:-2] + b"\x00\x01")
    failed = subprocess.run(stage, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert failed.returncode == 2
    assert video in failed.stdout + failed.stderr and "Traceback" not in failed.stderr
    report = json.loads((tmp_path / "reports" / "validation.json").read_text())
    assert not report["ok"] and any(video in problem for problem in report["problems"])


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    """A git copy of the repository with tiny params, after one full `dvc repro`; tests must leave it as it is."""
    root = tmp_path_factory.mktemp("pipeline")
    copy_repository(root)
    _tiny_params(root / "params.yaml")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "tiny pipeline")
    project = Project(root)
    project.first_repro = project.run("dvc", "repro")
    return project


@pytest.mark.slow
def test_every_stage_runs_and_writes_its_outputs(project):
    for stage in STAGES:
        assert f"Running stage '{stage}'" in project.first_repro
    for output in (
        "reports/validation.json",
        "reports/best.json",
        "reports/trials.csv",
        "models/model.pt",
        "reports/metrics.json",
        "reports/evaluation.json",
        "reports/plots/robustness.json",
        "reports/plots/confusion_matrix.png",
        "models/package/model_card.json",
    ):
        assert (project.root / output).is_file(), output
    lock = yaml.safe_load((project.root / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)


@pytest.mark.slow
def test_mlflow_holds_the_search_and_a_champion(project):
    client = MlflowClient(tracking_uri=project.tracking_uri)
    experiment = client.get_experiment_by_name("exprfusion")
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if run.info.run_name.startswith("search-")]
    assert len(parents) == 1
    children = [run for run in runs if run.data.tags.get(MLFLOW_PARENT_RUN_ID) == parents[0].info.run_id]
    keys = ("model.modality_dropout", "model.d_model", "model.n_layers")
    points = sorted(tuple(run.data.params[key] for key in keys) for run in children)
    assert points == [("0.0", "16", "1"), ("0.2", "16", "1")]

    champion = client.get_model_version_by_alias("exprfusion-fusion", "champion")
    final = client.get_run(champion.run_id)
    assert final.data.tags["tune_parent_run_id"] == parents[0].info.run_id
    assert final.data.tags["promoted"] == "true"
    lock = yaml.safe_load((project.root / "dvc.lock").read_text())
    assert final.data.tags["dvc_corpus_md5"] == lock["stages"]["corpus"]["outs"][0]["md5"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project.root, capture_output=True, text=True).stdout
    assert final.data.tags["git_commit"] == head.strip()
    assert 0.0 <= final.data.metrics["validation_macro_f1"] <= 1.0
    robustness = client.get_metric_history(final.info.run_id, "robustness_macro_f1")
    assert sorted(metric.step for metric in robustness) == [0, 25, 50, 75, 100], "percent of faces hidden"
    # The train stage took over the best trial's selection: its epochs are on the final run, and it only refit.
    best = json.loads((project.root / "reports" / "best.json").read_text())
    assert "refit the search's best trial on every training video" in project.first_repro
    logged = client.get_metric_history(final.info.run_id, "epoch_macro_f1")
    assert [metric.step for metric in logged] == [report["epoch"] for report in best["history"]] == [0, 1]
    plots = {entry.path for entry in client.list_artifacts(final.info.run_id, "plots")}
    assert {"plots/confusion_matrix.png", "plots/robustness.png"} <= plots


@pytest.mark.slow
def test_metrics_plots_and_experiments_are_shown(project):
    metrics = project.run("dvc", "metrics", "show")
    assert "accuracy" in metrics and "macro_f1" in metrics
    experiments = project.run("dvc", "exp", "show", "--csv", "--no-pager")
    assert "macro_f1" in experiments.splitlines()[0]
    project.run("dvc", "plots", "show", "-o", str(project.root / ".dvc" / "tmp" / "plots"))


@pytest.mark.slow
def test_second_repro_reruns_nothing(project, tmp_path):
    output = project.copy_to(tmp_path / "repo").run("dvc", "repro")
    assert "Running stage" not in output
    assert "Data and pipelines are up to date" in output


@pytest.mark.slow
def test_changed_tune_param_reruns_tune_and_what_follows_only(project, tmp_path):
    project = project.copy_to(tmp_path / "repo")
    params = yaml.safe_load((project.root / "params.yaml").read_text())
    params["tune"]["train"]["lr"] = 0.002
    (project.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = project.run("dvc", "status")
    assert "tune:" in status and "corpus:" not in status and "validate:" not in status
    output = project.run("dvc", "repro")
    for stage in ("corpus", "validate"):
        assert f"Stage '{stage}' didn't change" in output
    for stage in ("tune", "train", "evaluate", "package"):
        assert f"Running stage '{stage}'" in output


@pytest.mark.slow
def test_exp_run_sets_a_tune_param_and_reruns_from_tune(project, tmp_path):
    project = project.copy_to(tmp_path / "repo")
    output = project.run("dvc", "exp", "run", "-S", "tune.train.lr=0.001")
    for stage in ("corpus", "validate"):
        assert f"Running stage '{stage}'" not in output
    for stage in ("tune", "train", "evaluate", "package"):
        assert f"Running stage '{stage}'" in output
    assert yaml.safe_load((project.root / "params.yaml").read_text())["tune"]["train"]["lr"] == 0.001
    table = list(csv.DictReader(io.StringIO(project.run("dvc", "exp", "show", "--csv", "--no-pager"))))
    assert table and {"tune.train.lr", "macro_f1"} <= table[0].keys()
    experiment = next(row for row in table if row["tune.train.lr"] == "0.001")
    assert 0.0 <= float(experiment["macro_f1"]) <= 1.0
