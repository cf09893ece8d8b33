"""Early stopping against the full grid: the best macro-F1 each search finds and the trial-epochs each spends.

Every search runs the same grid with the same training settings on the same corpus (by default the ``default``
synthetic profile, generated into a temporary folder), on one local Ray: the full grid, then each early-stopping
scheduler (synchronous successive halving and ASHA by default) once per reduction factor. Training patience is set
to the epoch count, so the full grid trains every point to the end and the scheduler is the only early stopping. The
goal: a scheduler finds a configuration within 0.01 macro-F1 of the grid's best for at most 40 % of the grid's
trial-epochs. Successive halving's trial-epochs follow from the grid alone (every rung keeps ceil(n / factor));
ASHA's depend on the order trials happen to reach its rungs.

    python benchmarks/tune_efficiency.py                                  # the paper's 24-point grid, 12 epochs
    python benchmarks/tune_efficiency.py --d-model 32 64 --n-layers 1 2 --reduction-factor 3 4 --corpus data/corpus
    python benchmarks/tune_efficiency.py --schedulers successive_halving  # leave ASHA out
    python benchmarks/tune_efficiency.py --modality-dropout 0.1 0.3 --d-model 128 --n-layers 1 2 \
        --window-readout none both --epochs 2 --grace-period 1 --corpus data/corpus   # params.yaml's grid
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from pathlib import Path

from exprfusion.search.tune import SearchResult, ray_session, run_search
from exprfusion.tracking import runs as tracking

GOAL_F1_GAP = 0.01
GOAL_EPOCH_SHARE = 0.40


def timed_search(corpus: Path, grid: dict, search: dict, train: dict, storage: Path, name: str):
    """Run one search; return its result and wall seconds."""
    started = time.perf_counter()
    result = run_search(
        corpus, {"grid": grid, "search": search}, {"n_heads": 4}, train, storage=storage, experiment=name, resume=False
    )
    return result, time.perf_counter() - started


def describe(label: str, result: SearchResult, seconds: float, grid_epochs: int) -> str:
    """One line of the comparison table."""
    model = result.best_model_config
    point = f"p={model['modality_dropout']} d={model['d_model']} l={model['n_layers']}"
    share = result.total_trial_epochs / grid_epochs
    return (
        f"| {label} | {result.best_metrics['macro_f1']:.4f} | {point} | {result.total_trial_epochs} "
        f"({share:.0%}) | {seconds / 60:.1f} min |"
    )


def main() -> None:
    """Run the full grid, then each scheduler on the same grid (once per reduction factor); print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="corpus folder (default: generate the default profile)")
    parser.add_argument("--modality-dropout", type=float, nargs="+", default=[0.0, 0.1, 0.15, 0.2])
    parser.add_argument("--d-model", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--n-layers", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--window-readout", nargs="+", help="also search the window readout (none | audio | both)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--grace-period", type=int, default=2)
    parser.add_argument("--reduction-factor", type=int, nargs="+", default=[3], help="one search per value")
    parser.add_argument(
        "--schedulers", nargs="+", default=["successive_halving", "asha"], choices=["successive_halving", "asha"]
    )
    parser.add_argument("--cpus-per-trial", type=float, default=1)
    parser.add_argument("--out", type=Path, help="also write the results here (JSON)")
    args = parser.parse_args()

    grid = {"modality_dropout": args.modality_dropout, "d_model": args.d_model, "n_layers": args.n_layers}
    grid["window_readout"] = args.window_readout  # None: not searched
    train = {"epochs": args.epochs, "patience": args.epochs}
    resources = {"cpus_per_trial": args.cpus_per_trial}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault(tracking.TRACKING_URI_ENV, f"sqlite:///{Path(tmp) / 'mlflow.db'}")
        corpus = args.corpus
        if corpus is None:
            from exprfusion.sources.synthetic import generate_corpus

            corpus = Path(tmp) / "corpus"
            generate_corpus(corpus, profile="default", seed=0)
        storage = Path(tmp) / "ray"
        with ray_session():
            search = {"scheduler": "none", **resources}
            full, full_seconds = timed_search(corpus, grid, search, train, storage, "tune-benchmark-grid")
            early = {}
            for scheduler in args.schedulers:
                for factor in args.reduction_factor:
                    search = {"scheduler": scheduler, "grace_period": args.grace_period, "reduction_factor": factor}
                    early[scheduler, factor] = timed_search(
                        corpus, grid, {**search, **resources}, train, storage, f"tune-{scheduler}-{factor}"
                    )

    grid_epochs = full.total_trial_epochs
    print()
    print("| search | best macro-F1 | best point | trial-epochs | wall time |")
    print("|---|---|---|---|---|")
    print(describe("full grid", full, full_seconds, grid_epochs))
    names = {"asha": "ASHA", "successive_halving": "successive halving"}
    for (scheduler, factor), (result, seconds) in early.items():
        print(describe(f"{names[scheduler]} (grace {args.grace_period}, rf {factor})", result, seconds, grid_epochs))
    print(f"\n{len(full.trials)} points, {args.epochs} epochs, measured {datetime.date.today().isoformat()}.")
    for (scheduler, factor), (result, _) in early.items():
        gap = full.best_metrics["macro_f1"] - result.best_metrics["macro_f1"]
        share = result.total_trial_epochs / grid_epochs
        print(
            f"{names[scheduler]} rf {factor}: within {GOAL_F1_GAP} macro-F1 of the grid best: {gap <= GOAL_F1_GAP} "
            f"(gap {gap:+.4f}); "
            f"trial-epochs <= {GOAL_EPOCH_SHARE:.0%} of the grid's: {share <= GOAL_EPOCH_SHARE} ({share:.0%})"
        )
    if args.out:
        searches = {"grid": (full, full_seconds), **{f"{s}_rf{f}": pair for (s, f), pair in early.items()}}
        payload = {
            "grid": grid,
            "epochs": args.epochs,
            "grace_period": args.grace_period,
            "searches": {
                name: {
                    "best": result.best_metrics,
                    "trial_epochs": result.total_trial_epochs,
                    "seconds": seconds,
                    "trials": result.trials.to_dict(orient="records"),
                }
                for name, (result, seconds) in searches.items()
            },
        }
        args.out.write_text(json.dumps(payload, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
