"""Monitoring commands: ``drift-report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from exprfusion.cli.app import app, clean_errors
from exprfusion.core.progress import console
from exprfusion.monitoring.drift_report import write_drift_report


@app.command("drift-report")
@clean_errors
def drift_report(
    logs: Annotated[
        list[Path],
        typer.Argument(
            help="The service's request log as configured (logs/requests.jsonl: every worker's requests-*.jsonl "
            "beside it and the rotated .1, .2, ... are read too) or its folder."
        ),
    ],
    out: Annotated[Path, typer.Option(help="The HTML report to write.")] = Path("reports/drift_report.html"),
    model: Annotated[
        Path | None,
        typer.Option(help="Model artefact whose prediction_prior is the reference (unset: each record's own)."),
    ] = None,
    bin_seconds: Annotated[
        float | None, typer.Option(help="Width of a time bin in seconds (unset: the span in at most 48 bins).")
    ] = None,
) -> None:
    """Turn the service's request log into an HTML drift report: class shares, drift and missing faces over time."""
    read: dict[Path, int] = {}
    path = write_drift_report(logs, out, model=model, bin_seconds=bin_seconds, read=read)
    for file, records in read.items():
        console.print(f"read {records} {'record' if records == 1 else 'records'} from {file}")
    console.print(f"drift report: {path} ({sum(read.values())} records from {len(read)} files)")
