"""The address that opens the project's experiment in the MLflow UI on its runs table.

MLflow 3's UI opens an experiment on its GenAI view unless the address carries ``?workflowType=machine_learning``;
the toggle is remembered in the browser and ignores the experiment's ``mlflow.experimentKind`` tag. ``make mlflow-ui``
prints this address (``exprfusion mlflow-url``) before it starts the server, so one click lands on the runs.
"""

from __future__ import annotations

from pathlib import Path

from exprfusion.tracking.runs import client, tracking_uri

WORKFLOW_QUERY = "workflowType=machine_learning"


def runs_url(base: str, experiment_id: str | None) -> str:
    """The UI address of ``experiment_id``'s runs (or of the experiments list when there is none yet)."""
    base = base.rstrip("/")
    if experiment_id is None:
        return f"{base}/#/experiments?{WORKFLOW_QUERY}"
    return f"{base}/#/experiments/{experiment_id}/runs?{WORKFLOW_QUERY}"


def experiment_id(name: str) -> str | None:
    """The id of the experiment called ``name`` in the tracking store, None before its first run."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        return None  # no store yet: do not create one just to look
    experiment = client(uri).get_experiment_by_name(name)
    return None if experiment is None else experiment.experiment_id
