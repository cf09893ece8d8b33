"""Video-file commands: ``extract-video`` (one video's features as ``.npz``) and what ``predict --video`` does (the
``predict`` command itself is in :mod:`exprfusion.cli.model_commands`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from exprfusion.cli.app import app, clean_errors
from exprfusion.core.errors import InputError
from exprfusion.core.progress import console


def warn_line(line: str) -> None:
    """One warning on stderr: what decoding lost, or how the served faces differ from the training faces."""
    console.print(f"warning: {line}", style="bold yellow", highlight=False, markup=False)


def predict_video_file(
    model: Path,
    video: Path,
    out: Path | None,
    overlay: Path | None,
    probabilities: bool,
    features: Path | None,
    corpus: Path | None,
    submission: Path | None,
    **settings: Any,
) -> None:
    """``predict --video``: labels CSV (``--out``) and/or overlay video (``--overlay``) of one video file."""
    if features is not None or corpus is not None or submission is not None:
        raise InputError("--video goes alone: not with --features, --corpus or --submission")
    if out is None and overlay is None:
        raise InputError("--video needs --out FILE.csv and/or --overlay FILE.mp4")
    from exprfusion.video.video_file import predict_video_path

    written = predict_video_path(
        model, video, out, overlay=overlay, probabilities=probabilities, warn=warn_line, **settings
    )
    for path in written:
        console.print(f"wrote {path}", highlight=False)


@app.command(name="extract-video")
@clean_errors
def extract_video(
    video: Annotated[Path, typer.Argument(help="The video file (any container and codec PyAV decodes).")],
    model: Annotated[Path, typer.Option(help="Model artefact whose extractor record makes the features.")] = Path(
        "models/model.pt"
    ),
    out: Annotated[Path | None, typer.Option(help="The .npz to write (default: the video's name with .npz).")] = None,
    visual_model: Annotated[
        Path | None, typer.Option(help="The image model's folder, where the recorded one moved.")
    ] = None,
    audio_model: Annotated[
        Path | None, typer.Option(help="The speech model's folder, where the recorded one moved.")
    ] = None,
    face_detector: Annotated[
        str | None,
        typer.Option(help="haar, an entry point or module:factory (default: the training faces' detector, else haar)."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Save one video file's features (faces, audio, masks) in the .npz format of /predict_npz, `predict --features`
    and streaming sessions: the features `predict --video` labels."""
    from exprfusion.video.video_file import extract_video_features

    written = extract_video_features(
        model, video, out or video.with_suffix(".npz"), visual_model=visual_model, audio_model=audio_model,
        face_detector=face_detector, device=device, warn=warn_line,
    )  # fmt: skip
    console.print(f"wrote {written}", highlight=False)
