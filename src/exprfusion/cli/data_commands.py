"""Corpus commands: ``synth``, ``import`` and ``describe``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from exprfusion.cli.app import app, clean_errors
from exprfusion.core.errors import InputError
from exprfusion.core.progress import console


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
    from exprfusion.core.progress import progress_callback
    from exprfusion.sources.synthetic import generate_corpus, resolve_profile

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
    from exprfusion.core.progress import progress_callback
    from exprfusion.sources.importer import ImportSources, import_corpus

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


@app.command()
@clean_errors
def extract(
    annotations: Annotated[Path, typer.Option(help="Official EXPR annotation tree (Train_Set/, Validation_Set/).")],
    videos: Annotated[Path, typer.Option(help="Folder searched at any depth for <media>.mp4 (.avi, ...) files.")],
    cropped_aligned: Annotated[
        Path | None, typer.Option(help="cropped_aligned/<video>/%05d.jpg face images (not with --detect-faces).")
    ] = None,
    detect_faces: Annotated[
        bool,
        typer.Option(
            help="Find and crop the faces in the videos with the detector and crop predict --video uses, instead of "
            "reading cropped_aligned images: train on raw videos, serve raw videos with identical crops."
        ),
    ] = False,
    face_detector: Annotated[
        str | None, typer.Option(help="With --detect-faces: haar, an entry point, or module:factory.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder to write the corpus into.")] = Path("data/corpus"),
    test_list: Annotated[Path | None, typer.Option(help="Text file of test-set video names, one a line.")] = None,
    visual_model: Annotated[str | None, typer.Option(help="HF image model id or folder (BEiT-large).")] = None,
    visual_revision: Annotated[str | None, typer.Option(help="Hub revision of the image model.")] = None,
    visual_pooling: Annotated[str | None, typer.Option(help="pooler, or mean of the patch tokens.")] = None,
    visual_layer: Annotated[int | None, typer.Option(help="Hidden-state index, mean pooling (default: last).")] = None,
    visual_batch_size: Annotated[int | None, typer.Option(help="Face images per forward pass.")] = None,
    audio_model: Annotated[str | None, typer.Option(help="HF wav2vec2-family model id or folder (WavLM).")] = None,
    audio_revision: Annotated[str | None, typer.Option(help="Hub revision of the speech model.")] = None,
    audio_layer: Annotated[int | None, typer.Option(help="Hidden-state index (last if unset).")] = None,
    audio_chunk_seconds: Annotated[float | None, typer.Option(help="Audio kept from each forward pass.")] = None,
    audio_context_seconds: Annotated[float | None, typer.Option(help="Audio added on each side of a chunk.")] = None,
    audio_batch_size: Annotated[int | None, typer.Option(help="Audio chunks per forward pass.")] = None,
    align: Annotated[str | None, typer.Option(help="Audio rows to frames: nearest or linear.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = None,
    precision: Annotated[str | None, typer.Option(help="auto (bf16 on CUDA, fp32 on CPU), fp32, bf16, fp16.")] = None,
    compile: Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile both models.")] = None,
    workers: Annotated[
        str | None, typer.Option(help="Image-decoding processes beside the model, or auto (one per core, at most 4).")
    ] = None,
    cache: Annotated[Path | None, typer.Option(help="Cache of finished videos (default: .<out>.extract).")] = None,
    ray: Annotated[bool, typer.Option(help="Shard over Ray workers, one per GPU (also with RAY_ADDRESS).")] = False,
    allow_missing: Annotated[
        bool, typer.Option(help="Write the corpus even if some images or media cannot be decoded.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing corpus at OUT.")] = False,
) -> None:
    """Extract BEiT face and WavLM audio features from Aff-Wild2 media into a corpus (resumable)."""
    from exprfusion.core.progress import progress_callback
    from exprfusion.sources.extract.build import extract_corpus
    from exprfusion.sources.extract.settings import ExtractSettings, MediaSources, RunOptions, with_overrides

    if (cropped_aligned is None) != detect_faces:
        raise InputError("give --cropped-aligned DIR, or --detect-faces to find the faces in the videos (not both)")
    if face_detector is not None and not detect_faces:
        raise InputError("--face-detector goes with --detect-faces")
    sources = MediaSources(annotations, cropped_aligned, videos, test_list)
    sources.check_paths_exist()  # before the progress bar starts
    settings = with_overrides(
        ExtractSettings(),
        visual_model=visual_model,
        visual_revision=visual_revision,
        visual_pooling=visual_pooling,
        visual_layer=visual_layer,
        visual_batch_size=visual_batch_size,
        audio_model=audio_model,
        audio_revision=audio_revision,
        audio_layer=audio_layer,
        audio_chunk_seconds=audio_chunk_seconds,
        audio_context_seconds=audio_context_seconds,
        audio_batch_size=audio_batch_size,
        align=align,
        device=device,
        precision=precision,
        compile=compile,
        workers=workers,
        faces="detect" if detect_faces else None,
        face_detector=face_detector,
    )
    options = RunOptions(cache=cache, allow_missing=allow_missing, ray=ray, overwrite=overwrite)
    with progress_callback("extract (frames)") as update:
        report = extract_corpus(sources, settings, out, options, progress=update)
    for failure in report.failures:
        console.print(f"[yellow]left out:[/] {failure}", highlight=False)
    console.print(f"extracted {len(report.extracted)} videos, reused {len(report.reused)}; wrote {report.corpus}")


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
    from exprfusion.data.corpus import Corpus
    from exprfusion.evaluation.corpus_description import (
        class_distribution,
        fps_mix,
        plot_class_distribution,
        split_summary,
    )

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


@app.command()
@clean_errors
def validate(
    corpus: Annotated[Path, typer.Argument(help="Corpus folder.")],
    report: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
    data_docs: Annotated[Path | None, typer.Option(help="Build the HTML data docs (GX) into this folder.")] = None,
    verify_hashes: Annotated[bool | None, typer.Option(help="Recompute every video's content hash.")] = None,
    min_face_rate: Annotated[float | None, typer.Option(help="Lowest share of frames with a face per video.")] = None,
    max_face_rate: Annotated[float | None, typer.Option(help="Highest share of frames with a face per video.")] = None,
    min_class_frames: Annotated[
        int | None, typer.Option(help="Labelled train frames every class needs (0: no check).")
    ] = None,
    required_split: Annotated[
        list[str] | None, typer.Option(help="A split that must have videos (repeat for several).")
    ] = None,
) -> None:
    """Run the corpus expectations (the `validate` stage's checks); exit 2 naming each failing video."""
    import dataclasses

    from exprfusion.core.progress import progress_callback
    from exprfusion.data.corpus_checks import ValidationSettings, validate_corpus

    overrides = {
        "verify_hashes": verify_hashes,
        "min_face_rate": min_face_rate,
        "max_face_rate": max_face_rate,
        "min_class_frames": min_class_frames,
        "required_splits": tuple(required_split) if required_split else None,
    }
    settings = dataclasses.replace(ValidationSettings(), **{k: v for k, v in overrides.items() if v is not None})
    with progress_callback("validate") as update:
        result = validate_corpus(corpus, report, data_docs=data_docs, settings=settings, progress=update)
    passed = sum(item["success"] for item in result["expectations"])
    console.print(f"corpus ok: {result['n_videos']} videos pass all {passed} expectations", highlight=False)
    for path in (report, result["data_docs"]):
        if path is not None:
            console.print(f"wrote {path}", highlight=False)
