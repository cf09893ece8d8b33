"""Corpus commands: ``synth``, ``import`` and ``describe``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from exprfusion.cli.app import app, clean_errors
from exprfusion.progress import console


@app.command()
@clean_errors
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write the corpus into.")] = Path("data/corpus"),
    profile: Annotated[
        str,
        typer.Option(help="Profile: tiny, default, full (Aff-Wild2 scale), realistic, realistic-tiny (real-like)."),
    ] = "default",
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
    from exprfusion.synthetic import generate_corpus, resolve_profile

    # Bad options are reported before the progress bar starts.
    settings = resolve_profile(profile, visual_dim=visual_dim, audio_dim=audio_dim, missing_face_rate=missing_face_rate)
    with progress_callback(f"synth {settings.name}") as update:
        root = generate_corpus(out, profile=settings, seed=seed, overwrite=overwrite, progress=update)
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
    sources.check_paths_exist()  # before the progress bar starts
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
