"""Monitoring commands: ``drift-report`` (the service's drift) and ``mlflow-url`` (where the runs are read)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from exprfusion.cli.app import app, clean_errors
from exprfusion.core.params import DEFAULT_PARAMS, load_section
from exprfusion.core.progress import console
from exprfusion.monitoring.drift_report import write_drift_report
from exprfusion.search.tune_params import TuneParams
from exprfusion.tracking.mlflow_ui import experiment_id, runs_url


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


@app.command("mlflow-url")
@clean_errors
def mlflow_url(
    port: Annotated[int, typer.Option(help="The MLflow UI's port.")] = 5000,
    host: Annotated[str, typer.Option(help="The MLflow UI's host.")] = "127.0.0.1",
    params: Annotated[Path, typer.Option(help="The parameters file naming the experiment (tune.experiment).")] = (
        DEFAULT_PARAMS
    ),
) -> None:
    """Print the address that opens the search's experiment on its runs table in the MLflow UI."""
    name = load_section("tune", TuneParams, params).experiment
    url = runs_url(f"http://{host}:{port}", experiment_id(name))
    typer.echo(f"MLflow UI, experiment {name!r} on its runs table: {url}")
