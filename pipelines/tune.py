"""DVC stage `tune`: the hyper-parameter search (Ray Tune, one MLflow child run per trial) → best.json, trials.csv.

Ray keeps its experiment state under `ray_results/` (not a DVC output): an interrupted search resumes from there.
"""

from pathlib import Path

from exprfusion.core.params import load_section
from exprfusion.core.progress import progress_callback
from exprfusion.core.stage_runner import run_stage
from exprfusion.search.tune import run_search, write_best

BEST = Path("reports/best.json")
TRIALS = Path("reports/trials.csv")
RAY_STORAGE = Path("ray_results")


def main() -> None:
    """Read the `tune` params, run the search, write the best configs and the trials table."""
    params = load_section("tune")
    with progress_callback("tune") as update:
        result = run_search(
            load_section("data")["out"],
            {**params["grid"], **params["search"]},
            params["model"],
            params["train"],
            storage=RAY_STORAGE,
            experiment=params["experiment"],
            progress=update,
        )
    if result.normalisation_choice:
        print(result.normalisation_choice.summary())
    write_best(result, BEST)
    result.trials.to_csv(TRIALS, index=False)
    print(f"best of {len(result.trials)} trials: {result.best_metrics}; wrote {BEST} and {TRIALS}")


if __name__ == "__main__":
    run_stage(main)
