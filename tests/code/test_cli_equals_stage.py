"""`exprfusion train --corpus C --out M` with no option trains the model the DVC train stage trains.

The stage runs the search first, so the comparison fixes the search's winner: a copy of params.yaml whose grid gives
each searched dimension one value (the library's default, the search's usual winner), from which the stage's own
code builds the configs: the search's base configs and a trial's (``search.trial.trial_configs``), ``best.json`` as
the search writes it for the winning trial, and the final configs of the train stage (``final_configs``, with
``train.overrides``). The command's configs are the ones it writes into the artefact. The control edits one value of
the copy by hand: the stage's configs must then differ, and the comparison must say where.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml
from factories import write_small_corpus
from typer.testing import CliRunner

from exprfusion.cli import app
from exprfusion.core.params import load_section
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.search.final_training import BestTrial, TrainStageParams, final_configs
from exprfusion.search.space import parse_tune_params
from exprfusion.search.trial import TrialContext, trial_configs
from exprfusion.search.tune_params import TuneParams
from exprfusion.training.train_config import TrainConfig

REPOSITORY = Path(__file__).resolve().parents[2]
WINNER = {"modality_dropout": 0.1, "d_model": 128, "n_layers": 2, "window_readout": "none"}


def params_with_the_winner_fixed(path: Path, edit=None) -> Path:
    """A copy of the repository's params.yaml whose grid is the single point ``WINNER``, edited by ``edit``."""
    params = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
    params["tune"]["grid"].update({key: [value] for key, value in WINNER.items()})
    if edit:
        edit(params)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def stage_configs(params_path: Path, widths: tuple[int, int]) -> tuple[dict, dict]:
    """The model and training configs the tune and train stages build from ``params_path`` for the winning point."""
    tune = load_section("tune", TuneParams, params_path)
    space, _ = parse_tune_params(tune.search_params())
    (point,) = [{key: values[0] for key, values in space.dimensions().items()}]
    # run_search's base configs: tune.model with the corpus's widths (ff_dim left to follow d_model), tune.train.
    base_model = FusionConfig.from_dict({**tune.model.to_dict(), "visual_dim": widths[0], "audio_dim": widths[1]})
    context = TrialContext("", "", base_model.to_dict(), tune.train.to_dict(), "", "", "")
    trial_model, _ = trial_configs(context, point)
    # best.json as the search writes it for the winner: the base configs with the point put in.
    best = BestTrial(
        model=trial_model,
        train=TrainConfig.from_dict(
            {**tune.train.to_dict(), **{k: v for k, v in point.items() if k in ("lr", "seed")}}
        ),
        metrics={"best_epoch": 0},
    )
    overrides = load_section("train", TrainStageParams, params_path).given_overrides()
    model, train = final_configs(best, overrides)
    return model.to_dict(), train.to_dict()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_small_corpus(tmp_path_factory.mktemp("cli_equals_stage") / "corpus")


@pytest.fixture(scope="module")
def cli_artefact(corpus) -> dict:
    """The artefact `exprfusion train` writes with no option but its corpus and output."""
    out = corpus.parent / "model.pt"
    result = CliRunner().invoke(app, ["train", "--corpus", str(corpus), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return torch.load(out, weights_only=True)


def _differences(stage: dict, command: dict) -> list[str]:
    return [
        f"{key}: {stage.get(key)!r} by the stage, {command.get(key)!r} by the command"
        for key in sorted(stage)
        if stage.get(key) != command.get(key)
    ]


def test_the_command_with_no_option_trains_the_stages_model(cli_artefact, tmp_path):
    stored_model = dict(cli_artefact["model_config"])
    widths = (stored_model["visual_dim"], stored_model["audio_dim"])
    stage_model, stage_train = stage_configs(params_with_the_winner_fixed(tmp_path / "params.yaml"), widths)
    command_train = cli_artefact["metadata"]["train_config"]
    # The artefact stores what training resolved from the data: normalisation auto chosen on the holdout, and the
    # positional table sized to the window (exprfusion.training.train.sized_config); the stage's trial resolves
    # the same before it trains.
    chosen = cli_artefact["metadata"]["normalisation_choice"]["chosen"]
    stage_model = {
        **stage_model,
        "normalisation": chosen,
        "max_len": max(stage_model["max_len"], stage_train["window"]),
    }
    assert _differences(stage_model, stored_model) == []
    assert _differences(stage_train, command_train) == []


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("model", "dropout", 0.2), ("train", "lr", 0.001), ("model", "joint_expert_weight", 2.0)],
)
def test_a_value_edited_in_the_params_copy_makes_the_configs_differ(cli_artefact, tmp_path, section, key, value):
    def edit(params):
        params["tune"][section][key] = value

    stored_model = dict(cli_artefact["model_config"])
    widths = (stored_model["visual_dim"], stored_model["audio_dim"])
    stage_model, stage_train = stage_configs(params_with_the_winner_fixed(tmp_path / "params.yaml", edit), widths)
    command = {
        "model": {**stored_model, "normalisation": "auto", "max_len": 1024},
        "train": cli_artefact["metadata"]["train_config"],
    }
    stage = {"model": stage_model, "train": stage_train}
    assert [line.split(":")[0] for line in _differences(stage[section], command[section])] == [key]


def test_an_override_of_the_train_stage_reaches_the_command_through_its_params(tmp_path):
    from exprfusion.search.params import PipelineParams, run_configs

    def edit(params):
        params["train"]["overrides"] = {"epochs": 5}

    path = params_with_the_winner_fixed(tmp_path / "params.yaml", edit)
    model, train = run_configs(PipelineParams.read(path))
    stage_model, stage_train = stage_configs(path, (model.visual_dim, model.audio_dim))
    assert train.epochs == stage_train["epochs"] == 5
    assert dataclasses.asdict(train) == stage_train and model.to_dict() == stage_model


def test_a_bad_set_value_is_one_line_naming_it(corpus, tmp_path):
    result = CliRunner().invoke(
        app, ["train", "--corpus", str(corpus), "--out", str(tmp_path / "m.pt"), "--set", "model.d_model=0"]
    )
    assert result.exit_code == 2
    assert result.output.strip() == "error: --set: model.d_model: must be >= 1, got 0"
    assert not (tmp_path / "m.pt").exists()
