"""The ``exprfusion`` command line: thin commands over the library."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from exprfusion.progress import console

app = typer.Typer(
    name="exprfusion",
    help="Robust audio-visual facial-expression recognition on Aff-Wild2.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _user_errors() -> tuple[type[BaseException], ...]:
    from exprfusion.annotations import AnnotationError
    from exprfusion.corpus import CorpusError

    return (AnnotationError, CorpusError, ValueError, FileNotFoundError, KeyError)


def clean_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's input errors into one red line and exit status 2, instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except _user_errors() as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


def run_stage(main: Callable[[], None]) -> None:
    """Run a DVC stage's ``main`` with the same clean error reporting as the commands (exit status 2)."""
    try:
        clean_errors(main)()
    except typer.Exit as done:
        raise SystemExit(done.exit_code) from None


@app.command()
@clean_errors
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write the corpus into.")] = Path("data/corpus"),
    profile: Annotated[str, typer.Option(help="Size profile: tiny, default or full (Aff-Wild2 scale).")] = "default",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives byte-identical files.")] = 0,
    visual_dim: Annotated[int | None, typer.Option(help="Visual feature width (profile default if unset).")] = None,
    audio_dim: Annotated[int | None, typer.Option(help="Audio feature width (profile default if unset).")] = None,
    missing_face_rate: Annotated[
        float | None, typer.Option(help="Share of labelled frames with no face (heavy occlusion: e.g. 0.3).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing corpus at OUT.")] = False,
) -> None:
    """Generate the Aff-Wild2-shaped synthetic corpus."""
    from exprfusion.progress import progress_callback
    from exprfusion.synthetic import generate_corpus

    with progress_callback(f"synth {profile}") as update:
        root = generate_corpus(
            out,
            profile=profile,
            seed=seed,
            visual_dim=visual_dim,
            audio_dim=audio_dim,
            missing_face_rate=missing_face_rate,
            overwrite=overwrite,
            progress=update,
        )
    console.print(f"wrote {root}")


@app.command(name="import")
@clean_errors
def import_(
    annotations: Annotated[Path, typer.Option(help="Official EXPR annotation tree (Train_Set/, Validation_Set/).")],
    visual: Annotated[Path, typer.Option(help="Folder of <video>.npy visual features [n_frames, Dv].")],
    audio: Annotated[Path, typer.Option(help="Folder of <video or media>.npy audio features [n, Da].")],
    out: Annotated[Path, typer.Option(help="Folder to write the corpus into.")] = Path("data/corpus"),
    face_mask: Annotated[Path | None, typer.Option(help="Folder of <video>.npy boolean face masks.")] = None,
    cropped_aligned: Annotated[
        Path | None, typer.Option(help="cropped_aligned/<video>/%05d.jpg tree giving face presence.")
    ] = None,
    fps_csv: Annotated[Path | None, typer.Option(help="CSV with columns video (or media) and fps.")] = None,
    align: Annotated[str, typer.Option(help="Audio-to-frame alignment: nearest or linear.")] = "nearest",
    allow_missing_audio: Annotated[bool, typer.Option(help="Import videos with no audio file, audio masked.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing corpus at OUT.")] = False,
) -> None:
    """Import precomputed per-video features and official annotations into the corpus layout."""
    from exprfusion.importer import ImportSources, import_corpus
    from exprfusion.progress import progress_callback

    sources = ImportSources(
        annotations=annotations,
        visual=visual,
        audio=audio,
        face_mask=face_mask,
        cropped_aligned=cropped_aligned,
        fps_csv=fps_csv,
        align=align,
        allow_missing_audio=allow_missing_audio,
    )
    with progress_callback("import") as update:
        manifest = import_corpus(sources, out, overwrite=overwrite, progress=update)
    console.print(f"wrote {manifest.parent}")


def _format_cell(value: Any, percent: bool) -> str:
    if percent:
        return f"{100 * value:.1f} %"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    return str(int(value)) if isinstance(value, float) else str(value)


def _print_frame(title: str, frame: Any, percent: Callable[[str, str], bool] = lambda row, column: False) -> None:
    """Print a DataFrame as a Rich table; ``percent(row, column)`` says which cells are shares."""
    table = Table(title=title, title_justify="left")
    table.add_column(frame.index.name or "", style="bold")
    for column in frame.columns:
        table.add_column(str(column), justify="right")
    for key, row in frame.iterrows():
        table.add_row(str(key), *(_format_cell(v, percent(str(key), str(c))) for c, v in row.items()))
    console.print(table)


@app.command()
@clean_errors
def describe(
    corpus: Annotated[Path, typer.Argument(help="Corpus folder.")],
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of the class distribution here.")] = None,
    verify: Annotated[bool, typer.Option(help="Also recompute every video's content hash.")] = False,
) -> None:
    """Print per split the class distribution, missing-face rate, fps mix and frame counts."""
    from exprfusion.corpus import Corpus
    from exprfusion.describe import class_distribution, fps_mix, plot_class_distribution, split_summary

    data = Corpus(corpus)
    source = data.info.get("source", "")
    console.print(f"[bold]{data.root}[/]  {len(data)} videos  {source}", highlight=False)
    summary = split_summary(data).T.rename_axis("")
    _print_frame("Frames per split", summary, percent=lambda row, column: "rate" in row)
    _print_frame("Class distribution (share of labelled frames)", class_distribution(data), lambda r, c: True)
    _print_frame("Videos per fps", fps_mix(data))
    if verify:
        problems = data.verify()
        for problem in problems:
            console.print(f"[red]hash mismatch:[/] {problem}")
        if problems:
            raise typer.Exit(code=1)
        console.print("all content hashes match the manifest")
    if plot is not None:
        console.print(f"wrote {plot_class_distribution(data, plot)}")


def _scaled_strides(window: int) -> dict[str, int]:
    """Training and evaluation strides for a window length, in the default proportions (1/2 and 1/4 window)."""
    return {"window": window, "stride": max(1, window // 2), "eval_stride": max(1, window // 4)}


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
    epochs: Annotated[int | None, typer.Option(help="Training epochs (unset: the library default).")] = None,
    d_model: Annotated[int | None, typer.Option(help="Width of the Transformer branches.")] = None,
    n_layers: Annotated[int | None, typer.Option(help="Encoder layers per branch.")] = None,
    n_heads: Annotated[int | None, typer.Option(help="Attention heads (must divide --d-model).")] = None,
    modality_dropout: Annotated[
        float | None, typer.Option(help="Probability of dropping a whole modality from a training window.")
    ] = None,
    fusion: Annotated[str | None, typer.Option(help="gated (both branches), visual or audio (ablations).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate of AdamW.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training windows per step.")] = None,
    window: Annotated[
        int | None, typer.Option(help="Frames per window; strides follow (1/2 for training, 1/4 for inference).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed of initialisation, batches, modality dropout.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
) -> None:
    """Train the fusion model on a corpus and write the model artefact (weights, config, inference settings)."""
    from exprfusion.corpus import Corpus

    data = Corpus(corpus)  # a missing corpus is reported before torch is imported
    from exprfusion.artifact import save_model
    from exprfusion.model import FusionConfig
    from exprfusion.progress import progress_callback
    from exprfusion.train import TrainConfig, train_model, training_metadata

    given = {"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads, "modality_dropout": modality_dropout}
    model_config = FusionConfig.from_dict(
        {key: value for key, value in {**given, "fusion": fusion}.items() if value is not None}
    )
    settings = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed, "device": device}
    settings = {key: value for key, value in settings.items() if value is not None}
    config = TrainConfig.from_dict({**settings, **(_scaled_strides(window) if window is not None else {})})
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
    console.print(f"best epoch {result.best_epoch + 1}: {_scores_text(result.best_metrics)}", highlight=False)
    console.print(f"wrote {out}", highlight=False)


@app.command()
@clean_errors
def evaluate(
    corpus: Annotated[Path, typer.Option(help="Corpus folder holding the split to score.")],
    model: Annotated[Path, typer.Option(help="Model artefact written by `exprfusion train`.")] = Path(
        "models/model.pt"
    ),
    out: Annotated[Path, typer.Option(help="Folder for metrics.json, plot data and PNG plots.")] = Path("reports"),
    split: Annotated[str, typer.Option(help="Labelled split to score: validation or train.")] = "validation",
    seed: Annotated[int, typer.Option(help="Seed of the missing-face masking of the robustness curve.")] = 0,
    timeline_videos: Annotated[int, typer.Option(help="Timeline plots for this many of the longest videos.")] = 3,
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Score a model on a corpus split: macro-F1 three ways, per class, robustness to missing faces, plots."""
    from exprfusion.evaluate import evaluate_model
    from exprfusion.progress import progress_callback

    with progress_callback(f"evaluate {split}") as update:
        metrics = evaluate_model(
            model,
            corpus,
            out,
            split=split,
            seed=seed,
            timeline_videos=timeline_videos,
            batch_size=batch_size,
            device=device,
            progress=update,
        )
    table = Table(title=f"{split}: {metrics['n_frames']} labelled frames", title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    rows = ["macro_f1", "macro_f1_voting", "macro_f1_frame", "accuracy", "robustness_auc"]
    for name in rows:
        table.add_row(name, f"{metrics[name]:.4f}")
    for fraction, score in metrics["robustness"].items():
        table.add_row(f"macro_f1, {100 * float(fraction):.0f} % faces missing", f"{score:.4f}")
    for name, score in metrics["per_class_f1"].items():
        table.add_row(f"F1 {name}", f"{score:.4f}")
    console.print(table)
    console.print(f"wrote {out}", highlight=False)


def _prediction_target(
    features: Path | None, out: Path | None, corpus: Path | None, submission: Path | None, probabilities: bool
) -> str:
    """Which prediction the options ask for ("features" or "corpus"); contradictory options are a ValueError."""
    if (features is None) == (corpus is None):
        raise ValueError(
            "give either --features VIDEO.npz (with --out FILE.csv) or --corpus DIR (with --submission FILE), not "
            + ("both" if features is not None else "neither")
        )
    if features is not None:
        if out is None:
            raise ValueError("--features needs --out FILE.csv for the per-frame labels")
        if submission is not None:
            raise ValueError("--submission goes with --corpus, not --features")
        return "features"
    if submission is None:
        raise ValueError("--corpus needs --submission FILE for the submission file")
    if probabilities or out is not None:
        raise ValueError("--probabilities and --out go with --features, not --corpus")
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
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Label every frame of one video's features (CSV), or of a corpus split (official submission file)."""
    target = _prediction_target(features, out, corpus, submission, probabilities)  # before the slow imports
    from exprfusion.predict import predict_npz, write_split_submission
    from exprfusion.progress import progress_callback

    if target == "features":
        written = predict_npz(model, features, out, probabilities=probabilities, device=device)
    else:
        with progress_callback(f"predict {split}") as update:
            written = write_split_submission(
                model, corpus, split, submission, batch_size=batch_size, device=device, progress=update
            )
    console.print(f"wrote {written}", highlight=False)


def main() -> None:
    """Entry point for ``python -m exprfusion``."""
    app()
