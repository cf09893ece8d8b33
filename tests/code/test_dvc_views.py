"""DVC's views read at a glance, through the real `dvc` on a scratch repository holding the project's dvc.yaml and
params.yaml: `dvc metrics show` of the metrics.json the evaluate stage writes fits 160 columns, and `make exp-show`
shows only the searched params and the headline scores."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from factories import write_small_corpus

from exprfusion.evaluation.evaluate import EvaluateConfig, evaluate_model
from exprfusion.model.artifact import save_model
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.training.train_config import TrainConfig

REPOSITORY = Path(__file__).resolve().parents[2]
DVC = str(Path(sys.executable).with_name("dvc"))
WIDTH = 160  # columns of the widest line `dvc metrics show` may print
INFERENCE = TrainConfig(window=16, stride=8, eval_stride=8, median_kernel=3).inference()


def _run(repo: Path, *command: str) -> str:
    env = {**os.environ, "COLUMNS": "1000", "DVC_NO_ANALYTICS": "1"}  # wide enough that nothing is cut
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _git(repo: Path, *args: str) -> str:
    return _run(repo, "git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git and DVC repository with the project's pipeline files and the metrics.json the evaluate stage wrote for
    an untrained tiny model on a small corpus."""
    folder = tmp_path_factory.mktemp("views")
    corpus = write_small_corpus(folder / "corpus")
    model = FusionTransformer(FusionConfig.paper(visual_dim=8, audio_dim=6, d_model=16, n_layers=1, n_heads=2))
    path = save_model(folder / "model.pt", model.eval(), INFERENCE)
    repo = folder / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPOSITORY / name, repo / name)
    evaluate_model(
        path,
        corpus,
        metrics_path=repo / "reports" / "metrics.json",
        plots_dir=folder / "plots",
        config=EvaluateConfig(timeline_videos=0, device="cpu"),
    )
    _git(repo, "init", "-q")
    _run(repo, DVC, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "scratch")
    return repo


def test_dvc_metrics_show_fits_160_columns(repo):
    lines = _run(repo, DVC, "metrics", "show").splitlines()
    headline = json.loads((repo / "reports" / "metrics.json").read_text())
    assert lines[0].split() == ["Path", *sorted(headline)], "one column per headline score, nothing else"
    assert max(len(line) for line in lines) <= WIDTH, lines
    # The widest values the headline's 4 decimals allow, in every column, still fit.
    metrics = repo / "reports" / "metrics.json"
    metrics.write_text(json.dumps(dict.fromkeys(headline, -0.1234)))
    assert max(len(line) for line in _run(repo, DVC, "metrics", "show").splitlines()) <= WIDTH
    metrics.write_text(json.dumps(headline))
    # Control: the whole report (what metrics.json held before the headline scores were split off) is far wider.
    whole = repo / "reports" / "whole.json"
    shutil.copy(repo / "reports" / "evaluation.json", whole)
    assert max(len(line) for line in _run(repo, DVC, "metrics", "show", str(whole)).splitlines()) > WIDTH
    whole.unlink()


def test_make_exp_show_shows_the_searched_params_and_the_headline_scores(repo):
    columns = _run(REPOSITORY, "make", "-s", "--eval", "exp-columns: ; @printf '%s' '$(EXP_COLUMNS)'", "exp-columns")
    header = next(csv.reader(io.StringIO(_run(repo, DVC, "exp", "show", "--csv", "--drop", ".*", "--keep", columns))))
    headline = json.loads((repo / "reports" / "metrics.json").read_text())
    searched = yaml.safe_load((repo / "params.yaml").read_text())["tune"]["grid"]
    assert header == ["Experiment", "Created", *headline, *(f"tune.grid.{key}" for key in searched)]
    # Control: without the filter the table also holds every other param and every dependency.
    everything = next(csv.reader(io.StringIO(_run(repo, DVC, "exp", "show", "--csv"))))
    assert {"tune.model.n_heads", "tune.train.lr", "evaluate.seed", "data/corpus"} <= set(everything)
