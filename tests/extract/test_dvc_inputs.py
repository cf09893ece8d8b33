"""The user's own data is a DVC dependency: in a temporary git+DVC copy of the repository, `dvc status` sees a changed
imported feature file and a changed face image, and `dvc repro validate` extracts a corpus from tiny media."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from extract.media_factories import draw_face, write_tiny_tree
from factories import copy_repository, write_official_tree

from exprfusion.data.corpus import Corpus

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPOSITORY = Path(__file__).resolve().parents[2]


def _run(repo: Path, *command: str) -> str:
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=str(repo / "src"),  # the copy's code, the code DVC hashes
        OMP_NUM_THREADS="1",  # tiny models: one thread is fastest
    )
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=600, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} failed ({done.returncode}):\n{output[-6000:]}"
    return output


def _set_data(repo: Path, **data) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["data"].update(data)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def test_changed_user_inputs_make_the_corpus_stage_stale(tmp_path, tiny_models):
    repo = tmp_path / "repo"
    copy_repository(repo)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "copy"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo, check=True)

    # Imported features, outside the repository (an external dependency).
    features = write_official_tree(tmp_path / "features")
    imports = {key: str(value) for key, value in vars(features).items() if isinstance(value, Path)}
    _set_data(repo, source="import", inputs=str(tmp_path / "features"), **{"import": {**imports, "align": "nearest"}})
    _run(repo, "dvc", "repro", "corpus")
    assert "up to date" in _run(repo, "dvc", "status", "corpus")
    changed = features.visual / "v1.npy"
    changed.write_bytes(changed.read_bytes()[:-2] + b"\x01\x02")  # the same shape, one value changed in place
    status = _run(repo, "dvc", "status", "corpus")
    assert "corpus:" in status and "changed deps" in status and "modified" in status, status

    # Media: the tiny Aff-Wild2 tree with its models, extracted by `dvc repro validate` (corpus, then validate).
    tree = write_tiny_tree(tmp_path / "affwild2", models=tmp_path / "affwild2" / "models")
    shutil.copytree(tiny_models, tree.visual_model.parent, dirs_exist_ok=True)
    media = {
        **{key: str(value) for key, value in vars(tree.sources).items() if value is not None},
        "visual": {"model": str(tree.visual_model), "batch_size": 4},
        "audio": {"model": str(tree.audio_model), "chunk_seconds": 0.2, "context_seconds": 0.2},
        "workers": 0,
    }
    _set_data(repo, source="media", inputs=str(tree.root), media=media)
    output = _run(repo, "dvc", "repro", "validate")
    assert "Running stage 'corpus'" in output and "Running stage 'validate'" in output
    corpus = Corpus(repo / "data" / "corpus")
    assert sorted(corpus.videos()) == sorted(tree.videos)
    assert corpus.extractor["visual"]["model"] == str(tree.visual_model)
    assert "up to date" in _run(repo, "dvc", "status", "corpus")
    draw_face(50).save(tree.sources.cropped_aligned / "w" / "00004.jpg", quality=90)
    status = _run(repo, "dvc", "status", "corpus")
    assert "corpus:" in status and "changed deps" in status, status
