"""DVC stage `train`: the search's best configuration refit on every training video (or trained anew when
`train.overrides` moves results); write models/model.pt, log and register it."""

import sys
import time
from pathlib import Path

from exprfusion.core.atomic import write_json
from exprfusion.core.params import corpus_folder, load_section
from exprfusion.core.progress import progress_callback
from exprfusion.core.stage_runner import run_stage
from exprfusion.data.corpus import Corpus
from exprfusion.model.artifact import save_model
from exprfusion.search.final_training import BestTrial, TrainStageParams, train_final
from exprfusion.tracking.registry import log_and_register
from exprfusion.training.train import training_metadata

BEST = Path("reports/best.json")
MODEL = Path("models/model.pt")
REGISTRATION = Path("reports/registration.json")


def main() -> None:
    """Read best.json and the `train` params; train, save the artefact, log it to MLflow and register it."""
    params = load_section("train", TrainStageParams)
    best = BestTrial.read(BEST)
    for warning in best.selection_warnings:  # the search's, from best.json
        print(f"warning: {warning}", file=sys.stderr)
    corpus = Corpus(corpus_folder())
    started = time.time()  # the MLflow run's start: its duration is the training's
    with progress_callback("train") as update:
        final = train_final(corpus, best, params.given_overrides(), best_path=BEST, progress=update)
    print(final.how)
    result, train_config = final.result, final.config
    save_model(MODEL, result.model, train_config.inference(), training_metadata(result, train_config, corpus))
    if result.normalisation_choice:
        print(result.normalisation_choice.summary())
    registration = log_and_register(
        MODEL,
        result,
        result.model.config,
        train_config,
        corpus=corpus,
        parent_run_id=best.parent_run_id,
        registered_name=params.registered_name,
        experiment=params.experiment,
        start_time=started,
    )
    write_json(REGISTRATION, registration.to_dict())
    print(f"registered {registration.name} v{registration.version}: {registration.decision}")


if __name__ == "__main__":
    run_stage(main)
