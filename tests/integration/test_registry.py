"""Model registration against a real sqlite MLflow store and a real `mlflow server`: champion rule and lineage."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from factories import git_repository

from exprfusion.core.errors import InputError
from exprfusion.core.git_info import git_commit
from exprfusion.core.labels import CLASS_NAMES
from exprfusion.data.corpus import Corpus
from exprfusion.data.split_tensors import load_split
from exprfusion.evaluation.scoring import score_split
from exprfusion.inference.predict import predict_video
from exprfusion.model.artifact import load_model, save_model
from exprfusion.model.fusion_config import FusionConfig
from exprfusion.model.fusion_transformer import FusionTransformer
from exprfusion.sources.synthetic import generate_corpus
from exprfusion.tracking import runs as tracking
from exprfusion.tracking.lineage import dvc_out_md5, model_lineage, runs_for_corpus
from exprfusion.tracking.packaging import package_model
from exprfusion.tracking.pyfunc_model import frames_table
from exprfusion.tracking.registry import CHAMPION_ALIAS, log_and_register, training_run_id
from exprfusion.training.train import train_model
from exprfusion.training.train_config import TrainConfig

pytestmark = pytest.mark.integration

NAME = "exprfusion-fusion"
MODEL = FusionConfig.paper(d_model=16, n_layers=1, n_heads=2)
TRAIN = TrainConfig(epochs=1, batch_size=8, window=32, stride=16, eval_stride=16, median_kernel=5, lr=3e-3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    root = tmp_path_factory.mktemp("registry") / "corpus"
    generate_corpus(root, profile="tiny", seed=0)
    return Corpus(root)


@pytest.fixture(scope="module")
def scored_models(corpus, tmp_path_factory) -> list[tuple[Path, dict[str, float], FusionConfig]]:
    """Three real models, from worst to best by their real validation macro-F1: one trained, two as initialised."""
    folder = tmp_path_factory.mktemp("models")
    validation = load_split(corpus, "validation")
    trained = train_model(corpus, MODEL, TRAIN).model
    models = [trained]
    for seed in (1, 2):
        torch.manual_seed(seed)
        models.append(FusionTransformer(trained.config).eval())
    scored = []
    for number, model in enumerate(models):
        path = save_model(folder / f"model{number}.pt", model, TRAIN.inference())
        scored.append((path, score_split(model, validation, TRAIN.inference()).metrics, model.config))
    scored.sort(key=lambda item: item[1]["macro_f1"])
    assert len({metrics["macro_f1"] for _, metrics, _ in scored}) == 3, "the three models score differently"
    return scored


@pytest.fixture
def sqlite_store(tmp_path, monkeypatch) -> str:
    """A fresh sqlite MLflow store in a git repository used as the working directory (artifacts land there too)."""
    commit = git_repository(tmp_path / "repo")
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return commit


def _champion_version() -> int:
    return int(tracking.client().get_model_version_by_alias(NAME, CHAMPION_ALIAS).version)


def _register(scored, corpus: Corpus, **kwargs):
    path, metrics, config = scored
    return log_and_register(path, metrics, config, TRAIN, corpus=corpus, **kwargs)


def test_champion_moves_only_to_a_better_model(corpus, scored_models, sqlite_store):
    worst, middle, best = scored_models
    first = _register(middle, corpus)
    assert first.promoted and first.previous_champion_version is None
    assert first.decision == "first champion"
    assert _champion_version() == first.version

    worse = _register(worst, corpus)
    assert not worse.promoted
    assert _champion_version() == first.version
    run = tracking.client().get_run(worse.run_id)
    assert run.data.tags["promoted"] == "false"
    assert run.data.metrics["champion_selection_macro_f1"] == pytest.approx(middle[1]["macro_f1"])
    short = middle[1]["macro_f1"] - worst[1]["macro_f1"]
    assert worse.decision == (
        f"kept v{first.version}: {short:.4f} short "
        f"(selection macro-F1 {worst[1]['macro_f1']:.4f} vs {middle[1]['macro_f1']:.4f})"
    )
    assert run.data.tags["champion_decision"] == worse.decision

    better = _register(best, corpus)
    assert better.promoted and better.previous_champion_version == first.version
    gain = best[1]["macro_f1"] - middle[1]["macro_f1"]
    assert better.decision.startswith(f"beat v{first.version} by {gain:.4f} (selection macro-F1 ")
    assert _champion_version() == better.version
    assert tracking.client().get_run(better.run_id).data.tags["promoted"] == "true"

    lineage = model_lineage(NAME, CHAMPION_ALIAS)
    assert lineage["version"] == better.version and lineage["run_id"] == better.run_id
    assert lineage["git_commit"] == sqlite_store == git_commit()
    assert lineage["corpus_hash"] == corpus.content_hash()
    assert lineage["params"]["model"]["d_model"] == MODEL.d_model
    assert lineage["params"]["train"]["epochs"] == TRAIN.epochs
    assert lineage["metrics"]["selection_macro_f1"] == pytest.approx(best[1]["macro_f1"])
    assert model_lineage(NAME, first.version)["run_id"] == first.run_id

    runs = runs_for_corpus(corpus.content_hash())
    assert set(runs["run_id"]) == {first.run_id, worse.run_id, better.run_id}
    assert runs_for_corpus("0" * 64).empty


def test_training_run_id_is_checked_in_the_store(corpus, scored_models, sqlite_store, tmp_path):
    registration = tmp_path / "registration.json"
    registered = _register(scored_models[0], corpus).to_dict()
    registration.write_text(json.dumps(registered))
    assert training_run_id(registration) == registered["run_id"]
    registration.write_text(json.dumps({**registered, "run_id": "0" * 32}))  # a run this store never held
    with pytest.raises(InputError, match=r"registration\.json names MLflow run 0{32}.*dvc repro --force train"):
        training_run_id(registration)
    registration.write_text("{")
    with pytest.raises(InputError, match=r"registration\.json: cannot read the registration"):
        training_run_id(registration)


def test_champion_trained_on_another_corpus_is_replaced(corpus, scored_models, sqlite_store, tmp_path):
    other_root = tmp_path / "other"
    generate_corpus(other_root, profile="tiny", seed=1)
    other = Corpus(other_root)
    assert other.content_hash() != corpus.content_hash()
    _register(scored_models[2], other)
    replacement = _register(scored_models[0], corpus)
    assert replacement.promoted, "a lower score on another corpus does not keep the old champion"
    assert replacement.decision == f"replaced v{replacement.version - 1}, which was trained on another corpus"


def test_a_tie_with_the_champion_does_not_promote(corpus, scored_models, sqlite_store):
    first = _register(scored_models[1], corpus)
    tie = _register(scored_models[1], corpus)  # a new version with exactly the champion's macro-F1, same corpus
    assert tie.selection_macro_f1 == first.selection_macro_f1 and tie.version == first.version + 1
    assert not tie.promoted and tie.previous_champion_version == first.version
    assert tie.decision.startswith(f"kept v{first.version}: a tie (selection macro-F1 ")
    assert _champion_version() == first.version
    run = tracking.client().get_run(tie.run_id)
    assert run.data.tags["promoted"] == "false"
    assert run.data.metrics["champion_selection_macro_f1"] == pytest.approx(scored_models[1][1]["macro_f1"])


def test_the_version_names_its_selection_and_validation_scores(corpus, scored_models, sqlite_store):
    """The holdout score that chose the model and the validation score it reports differ (0.61 and 0.634 here), so a
    swapped or single score is caught; the champion rule reads the selection score."""
    path, _, config = scored_models[0]
    selection = {"macro_f1": 0.61, "macro_f1_ci": [0.55, 0.66], "best_epoch": 1}
    registration = log_and_register(path, selection, config, TRAIN, corpus=corpus, validation_macro_f1=0.634)
    assert registration.selection_macro_f1 == 0.61 and registration.validation_macro_f1 == 0.634
    client = tracking.client()
    tags = client.get_model_version(NAME, str(registration.version)).tags
    assert float(tags["selection_macro_f1"]) == 0.61 and float(tags["validation_macro_f1"]) == 0.634
    assert "macro_f1" not in tags, "no score under a name that does not say which"
    metrics = client.get_run(registration.run_id).data.metrics
    assert {key: metrics[key] for key in ("selection_macro_f1", "selection_macro_f1_lo", "selection_macro_f1_hi")} == {
        "selection_macro_f1": 0.61, "selection_macro_f1_lo": 0.55, "selection_macro_f1_hi": 0.66
    }  # fmt: skip
    assert metrics["best_epoch"] == 1
    assert not any(key.startswith("validation") for key in metrics), "the evaluate stage reports the split"
    # A later version whose selection score is higher beats it, although its validation score is lower.
    later = log_and_register(path, {"macro_f1": 0.62}, config, TRAIN, corpus=corpus, validation_macro_f1=0.6)
    assert later.promoted and later.decision.startswith(f"beat v{registration.version} by 0.0100 ")


def test_registered_pyfunc_labels_frames_like_the_artefact(corpus, scored_models, sqlite_store):
    registration = _register(scored_models[2], corpus)
    frames = frames_table(corpus, n_frames=70)
    served = mlflow.pyfunc.load_model(f"models:/{NAME}@{CHAMPION_ALIAS}").predict(frames)
    model, inference, _ = load_model(scored_models[2][0])
    record = corpus.load(corpus.videos("validation")[0])
    labels, _ = predict_video(
        model, inference, record.visual[:70], record.audio[:70], record.face_mask[:70], record.audio_mask[:70]
    )
    assert served["label"].tolist() == labels.tolist()
    assert served["expression"].tolist() == [CLASS_NAMES[label] for label in labels]
    assert registration.model_uri == f"models:/{NAME}/{registration.version}"


def test_registered_audio_only_model_labels_frames_like_predict_video(corpus, sqlite_store, tmp_path):
    torch.manual_seed(7)  # an initialisation whose labels vary over these frames, so the comparison has teeth
    config = FusionConfig.paper(
        visual_dim=corpus.visual_dim, audio_dim=corpus.audio_dim, d_model=16, n_layers=1, n_heads=2, fusion="audio"
    )
    model = FusionTransformer(config).eval()
    path = save_model(tmp_path / "audio.pt", model, TRAIN.inference())
    registration = log_and_register(
        path, {"macro_f1": 0.125}, config, TRAIN, corpus=corpus, registered_name="exprfusion-audio"
    )
    served_model = mlflow.pyfunc.load_model(registration.model_uri)

    record = corpus.load(corpus.videos("validation")[0])
    frames = frames_table(corpus, n_frames=70)
    labels, _ = predict_video(
        model, TRAIN.inference(), record.visual[:70], record.audio[:70], record.face_mask[:70], record.audio_mask[:70]
    )
    assert len(set(labels.tolist())) > 1
    served = served_model.predict(frames)
    assert len(served) == 70 and served["label"].tolist() == labels.tolist()
    assert served["expression"].tolist() == [CLASS_NAMES[label] for label in labels]
    no_faces = frames.assign(visual=[np.zeros(corpus.visual_dim)] * 70, face_mask=False)
    assert served_model.predict(no_faces)["label"].tolist() == labels.tolist(), "an audio-only model ignores faces"


def test_dvc_corpus_md5_is_read_from_the_lock_file(corpus, tmp_path):
    lock = tmp_path / "dvc.lock"
    relative = os.path.relpath(corpus.root, tmp_path)  # dvc.lock paths are relative to its folder
    lock.write_text(
        "schema: '2.0'\nstages:\n  corpus:\n    cmd: python pipelines/corpus.py\n    outs:\n"
        f"    - path: {relative}\n      md5: 0123abcd.dir\n      size: 1\n"
    )
    assert dvc_out_md5(corpus.root, lock) == "0123abcd.dir"
    assert dvc_out_md5(tmp_path / "elsewhere", lock) is None
    assert dvc_out_md5(corpus.root, tmp_path / "missing.lock") is None


def test_package_holds_a_checked_copy_and_a_card(scored_models, tmp_path):
    path, metrics, config = scored_models[2]
    evaluation = {**metrics, "split": "validation", "per_class_f1": {"Neutral": 0.5}}
    card_path = package_model(path, tmp_path / "package", metrics=evaluation, registration={"version": 3})
    card = json.loads(card_path.read_text())
    assert (tmp_path / "package" / path.name).read_bytes() == path.read_bytes()
    assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert card["model_config"] == config.to_dict()
    assert card["metrics"]["macro_f1"] == metrics["macro_f1"] and card["registry"] == {"version": 3}
    assert len(card["class_names"]) == 8


@pytest.mark.slow
def test_registration_through_an_mlflow_server(corpus, scored_models, mlflow_server, tmp_path):
    first = _register(scored_models[1], corpus)
    second = _register(scored_models[0], corpus)
    assert first.promoted and not second.promoted
    assert tracking.tracking_uri() == mlflow_server
    lineage = model_lineage(NAME, CHAMPION_ALIAS)
    assert lineage["run_id"] == first.run_id and lineage["corpus_hash"] == corpus.content_hash()
    assert lineage["params"]["model"]["n_layers"] == MODEL.n_layers
    assert set(runs_for_corpus(corpus.content_hash())["run_id"]) == {first.run_id, second.run_id}
    assert not (tmp_path / "mlruns").exists(), "artifacts go through the server, not to a local folder"
