"""MLflow's own conventions, read back through the REST API of a real `mlflow server`.

The experiment is marked as model training, and every run the project writes (a search's parent run, a trial's
child run, the final training run) names its corpus as a dataset input and its code in MLflow's source tags.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

import pytest
from factories import git_repository, write_small_corpus

from exprfusion.data.corpus import Corpus
from exprfusion.model.artifact import save_model
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.search.search_runs import parent_run
from exprfusion.search.trial import TrialContext, _child_run
from exprfusion.tracking import runs as tracking
from exprfusion.tracking.registry import log_and_register
from exprfusion.training.train_config import TrainConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXPERIMENT = "exprfusion"
TRAIN = TrainConfig(epochs=1, batch_size=4, window=16, stride=8, eval_stride=8, median_kernel=3)
# MLflow 3's experiment kind: the tag its UI reads, and the value of a model-training experiment (the UI's
# ExperimentKind enum in mlflow/server/js, and the mlflow-onboarding skill shipped with the mlflow package).
KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
DIGEST_LIMIT = 36  # MLflow's stores keep at most 36 characters of a dataset digest


def _get(url: str, endpoint: str, **query: str) -> dict[str, Any]:
    address = f"{url}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(address, timeout=30) as response:
        return json.loads(response.read())


def _post(url: str, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/{endpoint}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _tags(entity: dict[str, Any]) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in entity.get("tags", [])}


def test_experiment_kind_dataset_input_and_source_tags(mlflow_server, tmp_path, monkeypatch):
    commit = git_repository(tmp_path / "repo")
    monkeypatch.chdir(tmp_path / "repo")
    corpus_root = write_small_corpus(tmp_path / "corpus")
    corpus = Corpus(corpus_root)
    corpus_hash = corpus.content_hash()

    # A search's parent run and one trial's child run, created as tune and tune_trial create them.
    experiment_id = tracking.configure_mlflow(EXPERIMENT)
    marker = tmp_path / "search.parent_run"
    parent = parent_run(experiment_id, marker, False, {"corpus_hash": corpus_hash}, {"tune.seed": 0}, corpus)
    context = TrialContext(
        str(corpus_root), str(tmp_path / "trials"), {}, {}, mlflow_server, experiment_id, parent, 1, corpus_hash
    )
    child = _child_run(context, {}, "trial0", {"p": 0.1})
    # The final training run.
    config = FusionConfig.paper(
        visual_dim=corpus.visual_dim, audio_dim=corpus.audio_dim, d_model=16, n_layers=1, n_heads=2
    )
    path = save_model(tmp_path / "model.pt", FusionTransformer(config).eval(), TRAIN.inference())
    final = log_and_register(path, {"macro_f1": 0.5}, config, TRAIN, corpus=corpus, parent_run_id=parent).run_id
    tracking.log_corpus_input(final, corpus_root, corpus_hash)  # logged twice: still one input

    experiment = _get(mlflow_server, "experiments/get-by-name", experiment_name=EXPERIMENT)["experiment"]
    assert _tags(experiment)[KIND_TAG] == TRAINING_KIND
    children = _post(
        mlflow_server,
        "runs/search",
        {"experiment_ids": [experiment_id], "filter": f"tags.`mlflow.parentRunId` = '{parent}'"},
    )["runs"]
    assert [run["info"]["run_id"] for run in children] == [child]

    for run_id in (parent, child, final):
        run = _get(mlflow_server, "runs/get", run_id=run_id)["run"]
        tags = _tags(run["data"])
        assert tags["mlflow.source.git.commit"] == commit, run_id
        assert tags["mlflow.source.type"] == "LOCAL" and tags["mlflow.source.name"], run_id
        (dataset_input,) = run["inputs"]["dataset_inputs"]
        dataset = dataset_input["dataset"]
        assert dataset["digest"] == corpus_hash[:DIGEST_LIMIT]
        assert json.loads(dataset["profile"]) == {"corpus_hash": corpus_hash}
        assert dataset["name"] == "corpus" and json.loads(dataset["source"]) == {"uri": str(corpus_root.resolve())}
        assert _tags(dataset_input)["mlflow.data.context"] == "training"
    parent_tags, child_tags = (_tags(_get(mlflow_server, "runs/get", run_id=i)["run"]["data"]) for i in (parent, child))
    assert child_tags["mlflow.source.name"] == parent_tags["mlflow.source.name"], "a trial names the search's source"

    tracking.client().create_experiment("chosen", tags={KIND_TAG: "genai_development"})
    tracking.configure_mlflow("chosen")
    chosen = _get(mlflow_server, "experiments/get-by-name", experiment_name="chosen")["experiment"]
    assert _tags(chosen)[KIND_TAG] == "genai_development", "a kind chosen in the UI is kept"
