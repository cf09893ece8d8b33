"""Model commands: ``train``, ``evaluate`` and ``predict``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from exprfusion.cli.app import app, clean_errors
from exprfusion.core.errors import InputError
from exprfusion.core.progress import console


def _given(**options: Any) -> dict[str, Any]:
    """The options the user set: unset ones (None) are left to the library's defaults."""
    return {key: value for key, value in options.items() if value is not None}


def _scores_text(metrics: dict[str, float]) -> str:
    """Validation scores on one line: macro-F1 (voting + median), voting only, single pass when known, accuracy."""
    single_pass = f", single pass {metrics['macro_f1_frame']:.4f}" if "macro_f1_frame" in metrics else ""
    return (
        f"macro-F1 {metrics['macro_f1']:.4f} (voting {metrics['macro_f1_voting']:.4f}{single_pass})  "
        f"accuracy {metrics['accuracy']:.4f}"
    )


def _epoch_line(report: Any, total_epochs: int, is_best: bool) -> str:
    return (
        f"epoch {report.epoch + 1}/{total_epochs}  loss {report.train_loss:.4f}  {_scores_text(report.metrics)}  "
        f"lr {report.lr:.2e}  {report.seconds:.1f} s" + ("  [green]best[/]" if is_best else "")
    )


@app.command()
@clean_errors
def train(
    corpus: Annotated[Path, typer.Option(help="Corpus folder with train and validation splits.")],
    out: Annotated[Path, typer.Option(help="Where to write the model artefact.")] = Path("models/model.pt"),
    run_dir: Annotated[
        Path | None, typer.Option(help="Folder for the per-epoch checkpoint; an interrupted run resumes from it.")
    ] = None,
    params: Annotated[
        Path | None,
        typer.Option(
            help="A params.yaml to train as its train stage trains the search's winner: tune.model and tune.train, "
            "each searched dimension tune.grid gives one value, and train.overrides. Unset: the library's defaults, "
            "which are the committed params.yaml's (a dimension with several values keeps tune.model's)."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Change one setting: model.<field>=<value> (FusionConfig) or train.<field>=<value> (TrainConfig), "
            "the value as YAML; repeat for several. Checked as params.yaml's values are.",
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (train.epochs).")] = None,
    d_model: Annotated[int | None, typer.Option(help="Width of the Transformer branches (model.d_model).")] = None,
    n_layers: Annotated[int | None, typer.Option(help="Encoder layers per branch (model.n_layers).")] = None,
    n_heads: Annotated[int | None, typer.Option(help="Attention heads, dividing the width (model.n_heads).")] = None,
    modality_dropout: Annotated[
        float | None, typer.Option(help="Probability of dropping a whole modality from a training window.")
    ] = None,
    fusion: Annotated[str | None, typer.Option(help="gated (both branches), visual or audio (ablations).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate of AdamW (train.lr).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training windows per step.")] = None,
    window: Annotated[
        int | None, typer.Option(help="Frames per window; strides not set beside it follow (half a window each).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed of initialisation, batches, modality dropout.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    selection: Annotated[
        str | None,
        typer.Option(help="Select the best epoch on a media-disjoint 'holdout' of the train split, or 'validation'."),
    ] = None,
) -> None:
    """Train the fusion model on a corpus and write the model artefact (weights, config, inference settings).

    With no option it trains the model the pipeline's train stage trains (the same model and training configs),
    given the search's winner; options and --set change single settings.
    """
    import json

    from exprfusion.data.corpus import Corpus

    data = Corpus(corpus)  # a missing corpus is reported before torch is imported
    from exprfusion.core.progress import progress_callback
    from exprfusion.model.artifact import save_model
    from exprfusion.search.params import PipelineParams, run_configs
    from exprfusion.training.train import train_model, training_metadata

    options = {
        "model": _given(
            d_model=d_model, n_layers=n_layers, n_heads=n_heads, modality_dropout=modality_dropout, fusion=fusion
        ),
        "train": _given(
            epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, device=device, window=window, selection=selection
        ),
    }  # each option is a shorthand for --set <group>.<field>=<value>
    changes = [f"{group}.{key}={json.dumps(value)}" for group, given in options.items() for key, value in given.items()]
    model_config, config = run_configs(PipelineParams.read(params) if params else None, [*changes, *(set_ or [])])
    console.print(f"model: {model_config.to_dict()}", highlight=False)
    console.print(f"training on {data.root} ({len(data)} videos): {config.to_dict()}", highlight=False)

    best_so_far = -1.0

    def report_epoch(report: Any) -> None:
        nonlocal best_so_far
        is_best = report.metrics["macro_f1"] > best_so_far
        best_so_far = max(best_so_far, report.metrics["macro_f1"])
        console.print(_epoch_line(report, config.epochs, is_best), highlight=False)

    with progress_callback("train") as update:
        result = train_model(data, model_config, config, run_dir=run_dir, callback=report_epoch, progress=update)
    save_model(out, result.model, config.inference(), training_metadata(result, config, data))
    console.print(
        f"best epoch {result.best_epoch + 1} on the {config.selection} split: {_scores_text(result.best_metrics)}",
        highlight=False,
    )
    if result.refit:
        console.print(
            f"kept the refit: retrained on the whole train split up to epoch {result.best_epoch + 1}", highlight=False
        )
    if result.normalisation_choice:
        console.print(result.normalisation_choice.summary(), highlight=False)
        for warning in result.normalisation_choice.warnings:  # the selection split could not tell them apart
            console.print(f"warning: {warning}", style="bold yellow", highlight=False, markup=False)
    console.print(f"validation: {_scores_text(result.validation_metrics)}", highlight=False)
    console.print(f"wrote {out}", highlight=False)


@app.command()
@clean_errors
def evaluate(
    corpus: Annotated[Path, typer.Option(help="Corpus folder holding the split to score.")],
    model: Annotated[Path, typer.Option(help="Model artefact written by `exprfusion train`.")] = Path(
        "models/model.pt"
    ),
    out: Annotated[Path, typer.Option(help="Folder for metrics.json, plot data and PNG plots.")] = Path("reports"),
    split: Annotated[str | None, typer.Option(help="Labelled split to score: validation or train.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the missing-face masking of the robustness curve.")] = None,
    timeline_videos: Annotated[
        int | None, typer.Option(help="Timeline plots for this many of the longest videos.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Windows per forward pass.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    baseline: Annotated[
        bool | None,
        typer.Option(
            "--baseline/--no-baseline",
            help="Also score the logistic-regression baseline fitted on the corpus's train split (unset: on).",
        ),
    ] = None,
) -> None:
    """Score a model on a corpus split: macro-F1 three ways, per class, robustness to missing faces, plots.

    Also scores a logistic-regression baseline fitted on the corpus's train split, and warns if the model trails it.
    """
    from exprfusion.core.progress import progress_callback
    from exprfusion.evaluation.evaluate import EvaluateConfig, baseline_lines, evaluate_model
    from exprfusion.evaluation.uncertainty import format_interval, interval_line

    config = EvaluateConfig.from_dict(
        _given(
            split=split,
            seed=seed,
            timeline_videos=timeline_videos,
            batch_size=batch_size,
            device=device,
            baseline=None if baseline is None else {"enabled": baseline},
        )
    )
    with progress_callback(f"evaluate {config.split}") as update:
        metrics = evaluate_model(
            model, corpus, metrics_path=out / "metrics.json", plots_dir=out, config=config, progress=update
        )
    table = Table(title=f"{config.split}: {metrics['n_frames']} labelled frames", title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    table.add_column("95 % interval", justify="right")
    rows = ["macro_f1", "macro_f1_voting", "macro_f1_frame", "accuracy", "robustness_auc"]
    for name in rows:
        table.add_row(name, f"{metrics[name]:.4f}", format_interval(metrics.get(f"{name}_ci")))
    for fraction, score in metrics["robustness"].items():
        bounds = metrics.get("robustness_ci", {}).get(fraction)
        table.add_row(f"macro_f1, {100 * float(fraction):.0f} % faces missing", f"{score:.4f}", format_interval(bounds))
    for name, score in metrics["per_class_f1"].items():
        bounds = metrics.get("per_class_f1_ci", {}).get(name)
        table.add_row(f"F1 {name}", f"{score:.4f}", format_interval(bounds))
    console.print(table)
    intervals = interval_line(metrics)
    if intervals:
        console.print(intervals, highlight=False, markup=False)
    summary, warnings = baseline_lines(metrics)
    if summary:
        console.print(summary, highlight=False, markup=False)
    for line in warnings:
        console.print(line, style="bold yellow", highlight=False, markup=False)
    console.print(f"wrote {out}", highlight=False)


def _prediction_target(
    features: Path | None, out: Path | None, corpus: Path | None, submission: Path | None, probabilities: bool
) -> str:
    """Which prediction the options ask for ("features" or "corpus"); contradictory options are an InputError."""
    if (features is None) == (corpus is None):
        raise InputError(
            "give either --features VIDEO.npz (with --out FILE.csv) or --corpus DIR (with --submission FILE), not "
            + ("both" if features is not None else "neither")
        )
    if features is not None:
        if out is None:
            raise InputError("--features needs --out FILE.csv for the per-frame labels")
        if submission is not None:
            raise InputError("--submission goes with --corpus, not --features")
        return "features"
    if submission is None:
        raise InputError("--corpus needs --submission FILE for the submission file")
    if probabilities or out is not None:
        raise InputError("--probabilities and --out go with --features, not --corpus")
    return "corpus"


@app.command()
@clean_errors
def predict(
    model: Annotated[Path, typer.Option(help="Model artefact written by `exprfusion train`.")] = Path(
        "models/model.pt"
    ),
    features: Annotated[
        Path | None, typer.Option(help="One video's .npz with arrays visual, audio and optional face_mask, audio_mask.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="CSV of per-frame labels for --features.")] = None,
    probabilities: Annotated[bool, typer.Option(help="Add one p_<Class> column per class to the CSV.")] = False,
    corpus: Annotated[Path | None, typer.Option(help="Corpus folder: predict every video of --split.")] = None,
    split: Annotated[str, typer.Option(help="Split of --corpus to predict.")] = "validation",
    submission: Annotated[Path | None, typer.Option(help="Official submission file to write for --corpus.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Windows per forward pass.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    video: Annotated[
        Path | None, typer.Option(help="A video file: faces, features and labels by the model's own extractor.")
    ] = None,
    overlay: Annotated[
        Path | None, typer.Option(help="With --video: write the video with face box, expression and timeline.")
    ] = None,
    visual_model: Annotated[
        Path | None, typer.Option(help="With --video: the image model's folder, where the recorded one moved.")
    ] = None,
    audio_model: Annotated[
        Path | None, typer.Option(help="With --video: the speech model's folder, where the recorded one moved.")
    ] = None,
    face_detector: Annotated[
        str | None,
        typer.Option(
            help="With --video: haar, an exprfusion.face_detectors entry point, or module:factory (default: the "
            "detector of the model's training faces, else haar)."
        ),
    ] = None,
) -> None:
    """Label every frame of one video's features (CSV), of a video file (CSV, overlay video), or of a corpus split
    (official submission file)."""
    if video is not None:
        from exprfusion.cli.video_commands import predict_video_file

        predict_video_file(model, video, out, overlay, probabilities, features, corpus, submission, **_given(
            visual_model=visual_model, audio_model=audio_model, face_detector=face_detector, batch_size=batch_size,
            device=device,
        ))  # fmt: skip
        return
    if overlay is not None:
        raise InputError("--overlay goes with --video")
    target = _prediction_target(features, out, corpus, submission, probabilities)  # before the slow imports
    from exprfusion.core.progress import progress_callback
    from exprfusion.inference.predict import predict_npz, write_split_submission

    settings = _given(batch_size=batch_size, device=device)
    if target == "features":
        written = predict_npz(model, features, out, probabilities=probabilities, **settings)
    else:
        with progress_callback(f"predict {split}") as update:
            written = write_split_submission(model, corpus, split, submission, progress=update, **settings)
    console.print(f"wrote {written}", highlight=False)
