"""DVC stage `tune`: the hyper-parameter search (Ray Tune, one MLflow child run per trial) → best.json, trials.csv.

Ray keeps its experiment state under `ray_results/` (not a DVC output): an interrupted search resumes from there.
"""

from pathlib import Path

from exprfusion.core.params import corpus_folder, load_section
from exprfusion.core.progress import progress_callback
from exprfusion.core.stage_runner import run_stage
from exprfusion.search.tune import run_search, write_best
from exprfusion.search.tune_params import TuneParams

BEST = Path("reports/best.json")
TRIALS = Path("reports/trials.csv")
RAY_STORAGE = Path("ray_results")


def main() -> None:
    """Read the `tune` params, run the search, write the best configs and the trials table."""
    params = load_section("tune", TuneParams)
    with progress_callback("tune") as update:
        result = run_search(
            corpus_folder(),
            params.search_params(),
            params.model.to_dict(),
            params.train.to_dict(),
            storage=RAY_STORAGE,
            experiment=params.experiment,
            progress=update,
        )
    if result.normalisation_choice:
        print(result.normalisation_choice.summary())
    write_best(result, BEST)
    result.trials.to_csv(TRIALS, index=False)
    print(f"best of {len(result.trials)} trials: {result.best_metrics}; wrote {BEST} and {TRIALS}")


if __name__ == "__main__":
    run_stage(main)
