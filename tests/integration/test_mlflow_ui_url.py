"""`make mlflow-ui`'s address opens the experiment's runs on a real sqlite MLflow store."""

from __future__ import annotations

import subprocess
import sys

import mlflow
import pytest

from exprfusion.tracking.mlflow_ui import experiment_id, runs_url

pytestmark = pytest.mark.integration


def test_the_address_names_the_experiment_and_the_model_training_view(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert experiment_id("exprfusion") is None  # control: no store yet, and looking creates none
    assert not (tmp_path / "mlflow.db").exists()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    created = mlflow.create_experiment("exprfusion")
    mlflow.create_experiment("another")
    found = experiment_id("exprfusion")
    assert found == created
    url = runs_url("http://127.0.0.1:5000/", found)
    assert url == f"http://127.0.0.1:5000/#/experiments/{created}/runs?workflowType=machine_learning"
    assert runs_url("http://h:1", None) == "http://h:1/#/experiments?workflowType=machine_learning"


def test_make_mlflow_ui_prints_the_runs_address_of_the_params_experiment(tmp_path):
    (tmp_path / "params.yaml").write_text("tune:\n  experiment: my-search\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    created = mlflow.create_experiment("my-search")
    command = [sys.executable, "-m", "exprfusion", "mlflow-url", "--port", "5055"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env={"MLFLOW_TRACKING_URI": uri})
    assert done.returncode == 0, done.stderr
    assert f"http://127.0.0.1:5055/#/experiments/{created}/runs?workflowType=machine_learning" in done.stdout
