"""The ablation: the paper's rows (modality, modality dropout p, width d, depth l) and the levers for real features.

The lever rows change one setting of the fusion row each: no feature normalisation (``norm=none``), each video's mean
subtracted before standardising (``norm=video``), the median and interquartile range (``norm=robust``), per-branch
auxiliary losses (``aux=0.3``), modality dropout that mostly hides the face (``drop=face``), class weights
(``cw=0.5``), stronger weight decay (``wd=0.2``), windows of 128 frames instead of 32 (``w=128``), selection on the
validation split instead of a training holdout (``sel=val``), the selection run's own model instead of the refit on
the whole training split (``refit=off``), the linear window readout beside the deep path (``readout=both``), the
class-balanced linear experts, fitted by L-BFGS (``experts=audio``: the audio expert alone, for faceless windows;
``experts=fitted``: both), and the normalisation chosen on the holdout (``norm=auto``). Rows of options measured and
removed (input dropout and noise, mixup, the joint expert trained by SGD) stay in the results files of
``benchmarks/results/``.

Every run trains the fusion Transformer with the same data and schedule. For each run the table shows:
- macro-F1 after voting + median filtering, and accuracy;
- macro-F1 after voting alone, and for a single pass;
- macro-F1 with 50 % of the validation face frames masked (in bursts).
The last row is the logistic-regression baseline of `exprfusion.evaluation.baseline` (fitted once per corpus, the best
of its
visual, audio and both inputs), scored the same way: ±15-frame probability smoothing in place of voting + median,
per frame in the single-pass column. Four checks follow the table: fusion beats the baseline, fusion beats the best
single modality, voting + median beats a single pass, and at 50 % missing faces p=0.1 loses less than p=0.

    python benchmarks/ablation.py                        # default corpus, every row, 8 epochs
    python benchmarks/ablation.py --rows fusion visual audio p=0 --epochs 4 --corpus data/corpus
    python benchmarks/ablation.py --corpus data/corpus --results ablation.jsonl   # resumable: finished rows kept
    python benchmarks/ablation.py --profile realistic --seeds 3 --results benchmarks/results/ablation_realistic.jsonl
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from exprfusion.data.corpus import Corpus
from exprfusion.data.split_tensors import load_split, training_splits
from exprfusion.evaluation.baseline import MODALITIES, BaselineConfig, fit_baseline, load_training_frames
from exprfusion.evaluation.metrics import accuracy, macro_f1
from exprfusion.evaluation.plots import plot_ablation
from exprfusion.evaluation.scoring import robustness_scores, score_split
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.training.train import train_model
from exprfusion.training.train_config import TrainConfig

BEST = {"fusion": "gated", "modality_dropout": 0.1, "d_model": 256, "n_layers": 3}
ROWS: dict[str, dict] = {
    "fusion": BEST,
    "visual": {**BEST, "fusion": "visual"},
    "audio": {**BEST, "fusion": "audio"},
    "p=0": {**BEST, "modality_dropout": 0.0},
    "p=0.2": {**BEST, "modality_dropout": 0.2},
    "d=512": {**BEST, "d_model": 512, "n_heads": 8},
    "l=2": {**BEST, "n_layers": 2},
    "l=4": {**BEST, "n_layers": 4},
    "norm=none": {**BEST, "normalisation": "none"},
    "norm=video": {**BEST, "normalisation": "video"},
    "norm=robust": {**BEST, "normalisation": "robust"},
    "aux=0.3": {**BEST, "aux_loss_weight": 0.3},
    "drop=face": {**BEST, "modality_dropout": 0.3, "visual_drop_share": 1.0},
    "cw=0.5": BEST,
    "wd=0.2": BEST,
    "w=128": BEST,
    "sel=val": BEST,
    "refit=off": BEST,
    "readout=both": {**BEST, "window_readout": "both"},
    "experts=audio": {**BEST, "audio_expert_weight": 8.0},
    "experts=fitted": {**BEST, "joint_expert_weight": 4.0, "audio_expert_weight": 8.0},
    "norm=auto": {**BEST, "normalisation": "auto"},
}
# Training settings a row changes (every other row trains with the paper's schedule, TrainConfig.paper()).
TRAIN_ROWS: dict[str, dict] = {
    "cw=0.5": {"class_weight_power": 0.5},
    "wd=0.2": {"weight_decay": 0.2},
    "w=128": {"window": 128},
    "sel=val": {"selection": "validation"},
    "refit=off": {"refit": False},
}


def run_row(name: str, corpus: str, train_settings: dict, seed: int, threads: int) -> dict:
    """Train one configuration on ``corpus`` and measure it (runs in a worker process; splits cached per process)."""
    torch.set_num_threads(threads)
    splits = training_splits(corpus)
    config = TrainConfig.from_dict({**train_settings, **TRAIN_ROWS.get(name, {}), "seed": seed})
    started = time.perf_counter()
    result = train_model(None, FusionConfig.paper(**ROWS[name]), config, splits=splits)
    seconds = time.perf_counter() - started
    val = splits[1]
    # The evaluate stage's scores: the served pipeline, voting alone, a single pass, and 50 % of the faces hidden.
    scores = score_split(result.model, val, config.inference(), single_pass=True)
    hidden = robustness_scores(result.model, val, config.inference(), [0.5, 1.0], seed=seed)
    metrics = {key: value for key, value in scores.metrics.items() if key != "per_class_f1"}
    return {
        "row": name,
        "seed": seed,
        **metrics,
        "missing_50": hidden["0.5"],
        "missing_100": hidden["1.0"],
        "seconds": seconds,
        "best_epoch": result.best_epoch,
    }


def baseline_row(corpus: str, mask_seed: int = 0) -> dict:
    """The baseline on ``corpus``'s validation split (once per corpus): the best of its three inputs, scored like a run.

    ``macro_f1`` and ``accuracy`` after smoothing; ``macro_f1_frame`` per frame, unsmoothed; ``missing_50`` with half
    the faces hidden (bursts seeded by ``mask_seed``); ``seconds`` to fit and score the three; ``scores`` all three.
    """
    config = BaselineConfig()
    started = time.perf_counter()
    training = load_training_frames(Corpus(corpus), config)
    val = load_split(corpus, "validation")
    truth = val.labels.numpy()
    fitted = {modality: fit_baseline(training, modality, config) for modality in MODALITIES}
    scores = {modality: macro_f1(truth, model.predict(val, config.smoothing)) for modality, model in fitted.items()}
    seconds = time.perf_counter() - started
    best = max(MODALITIES, key=lambda modality: scores[modality])
    labels = fitted[best].predict(val, config.smoothing)
    return {
        "row": "baseline",
        "modality": best,
        "scores": scores,
        "macro_f1": scores[best],
        "accuracy": accuracy(truth, labels),
        "macro_f1_frame": macro_f1(truth, fitted[best].predict(val, 0)),
        "missing_50": macro_f1(truth, fitted[best].predict(val.with_faces_masked(0.5, mask_seed), config.smoothing)),
        "missing_100": scores["audio"],  # with no face at all, the reference is the audio-only baseline
        "seconds": seconds,
    }


def load_results(path: Path | None, epochs: int) -> list[dict]:
    """Rows already measured with the same number of epochs (a rerun with ``--results`` skips them)."""
    if path is None or not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if row.get("epochs") == epochs]


MEASURES = ("macro_f1", "accuracy", "macro_f1_voting", "macro_f1_frame", "missing_50", "missing_100", "seconds")


def summarise(results: list[dict], order: list[str]) -> dict[str, dict]:
    """Median of each measure over seeds, per row, in ``order``.

    ``loss_50`` is the F1 a run loses when half its faces are hidden, taken within each run (same model, same
    masks) before the median, with its smallest and largest value over seeds in ``loss_50_range``.
    """
    summary = {}
    for name in order:
        runs = [r for r in results if r["row"] == name]
        if runs:
            losses = [r["macro_f1"] - r["missing_50"] for r in runs]
            summary[name] = {key: statistics.median(r[key] for r in runs) for key in MEASURES}
            summary[name].update(
                seeds=len(runs), loss_50=statistics.median(losses), loss_50_range=(min(losses), max(losses))
            )
    return summary


def markdown_table(summary: dict[str, dict], epochs: int, seeds: int) -> str:
    """The results as a Markdown table."""
    lines = [
        "| run | fusion | p | d | l | macro-F1 | accuracy | F1 voting | F1 single pass "
        "| F1 @ 50 % faces missing | F1, no face | train time | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in summary.items():
        if name == "baseline":
            lines.append(
                f"| baseline | logistic regression ({m['modality']}) | – | – | – | {m['macro_f1']:.3f} "
                f"| {m['accuracy']:.3f} | – | {m['macro_f1_frame']:.3f} | {m['missing_50']:.3f} "
                f"| {m['missing_100']:.3f} (audio) | {m['seconds']:.0f} s (3 fits) | – |"
            )
            continue
        c = {**FusionConfig.paper().to_dict(), **ROWS[name]}
        lines.append(
            f"| {name} | {c['fusion']} | {c['modality_dropout']} | {c['d_model']} | {c['n_layers']} "
            f"| {m['macro_f1']:.3f} | {m['accuracy']:.3f} | {m['macro_f1_voting']:.3f} | {m['macro_f1_frame']:.3f} "
            f"| {m['missing_50']:.3f} | {m['missing_100']:.3f} | {m['seconds'] / 60:.1f} min | {m['seeds']} |"
        )
    lines.append(
        f"\n{epochs} epochs; each figure is the median over the row's seeds (column `seeds`: every seed recorded, "
        f"{seeds} or more); measured {datetime.date.today().isoformat()}."
    )
    if "baseline" in summary:
        scores = ", ".join(f"{name} {score:.3f}" for name, score in summary["baseline"]["scores"].items())
        lines.append(
            f"Baseline: per-frame logistic regression, probabilities averaged over ±15 frames (macro-F1 {scores}; "
            "the row shows the best; its voting column has no counterpart, its single pass is per frame)."
        )
    return "\n".join(lines)


def claims(summary: dict[str, dict]) -> list[str]:
    """The paper's three claims and the margin over the baseline, checked on the measured rows that are present."""
    out = []
    if {"fusion", "baseline"} <= summary.keys():
        fusion, baseline = summary["fusion"]["macro_f1"], summary["baseline"]["macro_f1"]
        out.append(
            f"fusion {fusion:.3f} beats the baseline ({summary['baseline']['modality']} logistic regression) "
            f"{baseline:.3f} by {fusion - baseline:+.3f}: {fusion > baseline}"
        )
    if {"fusion", "baseline"} <= summary.keys():
        no_face, audio = summary["fusion"]["missing_100"], summary["baseline"]["missing_100"]
        out.append(
            f"with every face hidden, fusion {no_face:.3f} reaches the audio-only baseline {audio:.3f}: "
            f"{no_face >= audio}"
        )
    if {"fusion", "visual", "audio"} <= summary.keys():
        best_single = max(summary["visual"]["macro_f1"], summary["audio"]["macro_f1"])
        ok = summary["fusion"]["macro_f1"] > best_single
        out.append(f"fusion {summary['fusion']['macro_f1']:.3f} > best single modality {best_single:.3f}: {ok}")
    if "fusion" in summary:
        f = summary["fusion"]
        ok = f["macro_f1"] > f["macro_f1_frame"]
        out.append(f"voting + median {f['macro_f1']:.3f} > single pass {f['macro_f1_frame']:.3f}: {ok}")
    if {"fusion", "p=0"} <= summary.keys():
        fusion, plain = summary["fusion"], summary["p=0"]
        ok = fusion["loss_50"] < plain["loss_50"]
        spread = " ".join(
            f"{name} {low:.3f}..{high:.3f}"
            for name, (low, high) in (("p=0.1", fusion["loss_50_range"]), ("p=0", plain["loss_50_range"]))
        )
        out.append(
            f"F1 lost at 50 % missing faces: p=0.1 {fusion['loss_50']:.3f} < p=0 {plain['loss_50']:.3f}: {ok}"
            + (f" (over seeds: {spread})" if min(fusion["seeds"], plain["seeds"]) > 1 else "")
        )
    return out


def main() -> None:
    """Run the selected rows (in parallel worker processes) and print the table and the claims."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="corpus folder (default: generate --profile with seed 0)")
    parser.add_argument("--profile", default="default", help="synthetic profile to generate when no --corpus")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="rows trained at once, each on cpus/jobs threads")
    parser.add_argument("--results", type=Path, help="JSON lines of finished rows; a rerun skips the rows in it")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument("--plot", type=Path, help="also draw the table as grouped bars in this PNG")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.corpus
        if root is None:
            from exprfusion.sources.synthetic import generate_corpus

            root = Path(tmp) / "corpus"
            generate_corpus(root, profile=args.profile, seed=0)
        baseline = baseline_row(str(root))
        print(f"baseline ({baseline['modality']}): macro-F1 {baseline['macro_f1']:.3f} ({baseline['seconds']:.0f} s)")
        settings = TrainConfig.paper(epochs=args.epochs, patience=args.epochs).to_dict()
        results = load_results(args.results, args.epochs)
        done = {(r["row"], r["seed"]) for r in results}
        todo = [(name, seed) for name in args.rows for seed in range(args.seeds) if (name, seed) not in done]
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
        print(f"{len(todo)} run(s) to train, {len(done)} already measured; {args.jobs} at once x {threads} thread(s)")
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
            futures = [pool.submit(run_row, name, str(root), settings, seed, threads) for name, seed in todo]
            for future in as_completed(futures):
                result = {**future.result(), "epochs": args.epochs}
                results.append(result)
                if args.results:
                    with args.results.open("a") as stream:
                        stream.write(json.dumps(result) + "\n")
                print(
                    f"{result['row']:<8} seed {result['seed']}: macro-F1 {result['macro_f1']:.3f}  single pass "
                    f"{result['macro_f1_frame']:.3f}  @50% faces missing {result['missing_50']:.3f}  "
                    f"({result['seconds']:.0f} s)",
                    flush=True,
                )
    summary = {**summarise(results, args.rows), "baseline": baseline}
    table = markdown_table(summary, args.epochs, args.seeds)
    print()
    print(table)
    print()
    for line in claims(summary):
        print(line)
    if args.out:
        args.out.write_text(table + "\n\n" + "\n".join(f"- {line}" for line in claims(summary)) + "\n")
    if args.plot:
        corpus_name = args.corpus or f"the {args.profile} synthetic corpus"
        title = f"Ablation on {corpus_name} ({args.epochs} epochs, {datetime.date.today()})"
        print(f"wrote {plot_ablation(summary, args.plot, title)}")


if __name__ == "__main__":
    main()
