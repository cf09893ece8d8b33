"""The corpus expectations (GX suite on per-video statistics): each planted fault is caught and its video named.

Corpora come from ``write_small_corpus`` (train t0..t3, 60 frames; validation v0, v1, 50 frames), then one file is
damaged the way real corpora break. ``exprfusion validate`` must exit 2 naming the video and the expectation that
catches the fault (beside the content-hash check, which catches most damage too); the library tests run with the
hash check off, so that the expectation alone is what catches it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from factories import copy_repository, make_record, write_official_tree, write_small_corpus
from typer.testing import CliRunner

from exprfusion.cli import app
from exprfusion.core.errors import InputError
from exprfusion.data.corpus import MANIFEST_NAME, CorpusError, VideoRecord, annotation_path, feature_path
from exprfusion.data.corpus_checks import ValidationSettings, validate_corpus
from exprfusion.data.corpus_writer import CorpusWriter

REPOSITORY = Path(__file__).resolve().parents[2]
NO_HASHES = ValidationSettings(verify_hashes=False)


def _set_nan_row(root: Path) -> str:
    path = feature_path(root, "visual", "t1")
    visual = np.load(path)
    visual[7] = np.nan
    np.save(path, visual)
    return "t1"


def _truncate_feature_file(root: Path) -> str:
    path = feature_path(root, "audio", "t2")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return "t2"


def _set_label_9(root: Path) -> str:
    path = annotation_path(root, "train", "t3")
    lines = path.read_text().splitlines()
    lines[10] = "9"
    path.write_text("\n".join(lines) + "\n")
    return "t3"


def _annotate_in_both_splits(root: Path) -> str:
    shutil.copy(annotation_path(root, "train", "t0"), annotation_path(root, "validation", "t0"))
    return "t0"


def _list_in_both_splits(root: Path) -> str:
    manifest = pd.read_parquet(root / MANIFEST_NAME)
    twin = manifest[manifest["video"] == "v1"].assign(split="train")
    pd.concat([manifest, twin], ignore_index=True).to_parquet(root / MANIFEST_NAME, index=False)
    shutil.copy(annotation_path(root, "validation", "v1"), annotation_path(root, "train", "v1"))
    return "v1"


def _remove_annotation(root: Path) -> str:
    annotation_path(root, "train", "t1").unlink()
    return "t1"


# fault -> (damage, the expectation that must name the video)
FAULTS = {
    "nan row": (_set_nan_row, "visual features are finite"),
    "truncated feature file": (_truncate_feature_file, "every file of the video is readable"),
    "label 9": (_set_label_9, "labels lie in -1..7"),
    "annotated in both splits": (_annotate_in_both_splits, "no video is in two splits"),
    "listed in both splits": (_list_in_both_splits, "no video is in two splits"),
    "missing annotation": (_remove_annotation, "every file of the video exists"),
}


@pytest.fixture
def corpus(tmp_path) -> Path:
    return write_small_corpus(tmp_path / "corpus")


def _failure(root: Path, settings: ValidationSettings | None = None, **kwargs) -> str:
    with pytest.raises(CorpusError) as caught:
        validate_corpus(root, settings=settings, **kwargs)
    return str(caught.value)


def _problem_of(message: str, video: str) -> str:
    """The part of a failure message about one video (problems are separated by '; ')."""
    found = [part for part in message.split("; ") if f"{video}: fails" in part]
    assert found, f"{video} is not named in: {message}"
    return found[0]


def test_a_clean_corpus_passes_and_gets_a_report_and_data_docs(corpus, tmp_path):
    report = validate_corpus(corpus, tmp_path / "validation.json", data_docs=tmp_path / "docs")
    assert report["ok"] and report["problems"] == [] and report["hashes_verified"]
    assert report["n_videos"] == 6
    assert report["splits"]["train"]["videos"] == 4 and report["splits"]["train"]["frames"] == 4 * 60
    written = json.loads((tmp_path / "validation.json").read_text())
    assert written["ok"] and all(item["success"] for item in written["expectations"])
    descriptions = {item["description"] for item in written["expectations"]}
    for description in {check for _, check in FAULTS.values()} | {"content hash matches the manifest"}:
        assert description in descriptions
    index = (tmp_path / "docs" / "index.html").read_text()
    assert "corpus_videos" in index
    pages = list((tmp_path / "docs" / "validations").rglob("*.html"))
    assert len(pages) == 1 and "annotation length equals feature length" in pages[0].read_text()


@pytest.mark.parametrize("fault", list(FAULTS))
def test_exprfusion_validate_exits_2_naming_the_video_and_the_expectation(corpus, fault, tmp_path):
    damage, expectation = FAULTS[fault]
    video = damage(corpus)
    result = CliRunner().invoke(app, ["validate", str(corpus), "--report", str(tmp_path / "report.json")])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), "an input error, not a crash"
    # The planted fault is caught by its own expectation, whatever the hash check also says.
    assert f'"{expectation}"' in _problem_of(result.output, video)
    assert set(re.findall(r"(\S+): fails", result.output)) == {video}, "only the damaged video is named"
    report = json.loads((tmp_path / "report.json").read_text())
    assert not report["ok"] and [problem.split(":")[0] for problem in report["problems"]] == [video]


def test_details_of_the_failures(corpus):
    _set_nan_row(corpus)
    _set_label_9(corpus)
    message = _failure(corpus, NO_HASHES)
    assert "nonfinite_visual_rows=1, first_nonfinite_row=7" in _problem_of(message, "t1")
    assert "label_max=9" in _problem_of(message, "t3") and "t3.txt, line 11: label 9" in _problem_of(message, "t3")


def test_the_hash_check_stays(corpus):
    path = feature_path(corpus, "audio", "t0")
    audio = np.load(path)
    audio[3, 0] += 1  # still finite, same shape: only the content hash can tell
    np.save(path, audio)
    assert '"content hash matches the manifest"' in _problem_of(_failure(corpus), "t0")
    assert validate_corpus(corpus, settings=NO_HASHES)["ok"]


def test_an_annotation_shorter_than_the_features(corpus):
    path = annotation_path(corpus, "train", "t2")
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    problem = _problem_of(_failure(corpus, NO_HASHES), "t2")
    assert '"annotation length equals feature length" (annotation_rows=59, visual_rows=60)' in problem


def _fear_free(record: VideoRecord) -> VideoRecord:
    labels = np.where(record.labels == 3, -1, record.labels)
    return VideoRecord(**{**record.__dict__, "labels": labels})


def test_duplicate_content_odd_width_and_no_face(tmp_path):
    root = tmp_path / "corpus"
    with CorpusWriter(root) as writer:
        for i in range(3):
            writer.add(make_record(f"t{i}", "train", n=60, seed=i))
        writer.add(make_record("t0_copy", "train", n=60, seed=0))  # the same files as t0
        writer.add(make_record("wide", "train", n=60, seed=5, dims=(9, 6)))
        faceless = make_record("dark", "validation", n=50, seed=7)
        writer.add(VideoRecord(**{**faceless.__dict__, "face_mask": np.zeros(50, dtype=bool)}))
    message = _failure(root, NO_HASHES)
    for video in ("t0", "t0_copy"):
        assert '"no two videos have the same content hash"' in _problem_of(message, video)
    assert '"visual feature width is the corpus\'s (8)" (visual_width=9)' in _problem_of(message, "wide")
    assert '"face rate lies in [0.01, 1.0]" (face_rate=0.0)' in _problem_of(message, "dark")
    assert set(re.findall(r"(\S+): fails", message)) == {"t0", "t0_copy", "wide", "dark"}


def test_every_class_must_be_present_in_train(tmp_path):
    root = tmp_path / "corpus"
    with CorpusWriter(root) as writer:
        for i in range(3):
            writer.add(_fear_free(make_record(f"t{i}", "train", n=60, seed=i)))
        writer.add(make_record("v0", "validation", n=50, seed=10))
    message = _failure(root, NO_HASHES)
    assert 'corpus: fails "every class is present in train (Fear: ≥ 1 frames)" (observed 0)' in message
    assert "(Anger" not in message
    assert validate_corpus(root, settings=ValidationSettings(verify_hashes=False, min_class_frames=0))["ok"]
    counts = [int(np.sum(make_record(f"t{i}", n=60, seed=i).labels == 0)) for i in range(3)]  # Neutral, by hand
    message = _failure(root, ValidationSettings(verify_hashes=False, min_class_frames=sum(counts) + 1))
    assert f'(Neutral: ≥ {sum(counts) + 1} frames)" (observed {sum(counts)})' in message


def test_required_splits(tmp_path):
    root = tmp_path / "corpus"
    with CorpusWriter(root) as writer:
        for i in range(2):
            writer.add(make_record(f"t{i}", "train", n=60, seed=i))
    assert 'corpus: fails "every required split has videos"' in _failure(root, NO_HASHES)
    assert validate_corpus(root, settings=ValidationSettings(required_splits=("train",), verify_hashes=False))["ok"]


def test_bad_settings_are_input_errors():
    for bad in (
        {"required_splits": ("dev",)},
        {"min_face_rate": 0.5, "max_face_rate": 0.4},
        {"min_face_rate": "x"},
        {"min_class_frames": -1},
        {"verify_hashes": "yes"},
    ):
        with pytest.raises(InputError, match=r"^ValidationSettings[.:]"):
            ValidationSettings(**bad)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=repo, check=True)


@pytest.mark.slow
@pytest.mark.integration
def test_dvc_repro_stops_at_validate_and_trains_nothing(tmp_path):
    """A real `dvc repro` in a git copy of the repository, importing features where one person has no face images.

    The importer accepts it (a person with no ``cropped_aligned`` folder has no face in any frame); the face-rate
    expectation stops the pipeline at `validate`, before anything is tuned or trained.
    """
    sources = write_official_tree(tmp_path / "raw")  # pair_right has no cropped_aligned folder
    repo = tmp_path / "repo"
    copy_repository(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["source"] = "import"
    if "inputs" in params["data"]:  # the folder the corpus stage requires every input to lie in
        params["data"]["inputs"] = str(tmp_path / "raw")
    params["data"]["import"].update(
        annotations=str(sources.annotations),
        visual=str(sources.visual),
        audio=str(sources.audio),
        cropped_aligned=str(sources.cropped_aligned),
        fps_csv=str(sources.fps_csv),
    )
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / "dvc.lock").unlink(missing_ok=True)  # a fresh pipeline: the lock records only the stages that ran
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "imported corpus")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = str(repo / "src")  # the copy's code, the code DVC hashes
    run = subprocess.run(["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-3000:]
    assert "Running stage 'corpus'" in output and "Running stage 'validate'" in output
    assert '"face rate lies in [0.01, 1.0]" (face_rate=0.0)' in output and "pair_right: fails" in output
    assert "Running stage 'tune'" not in output and "Running stage 'train'" not in output
    assert not (repo / "models").exists() and not (repo / "reports" / "best.json").exists()
    report = json.loads((repo / "reports" / "validation.json").read_text())
    assert not report["ok"] and (repo / "reports" / "data_docs" / "index.html").is_file()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"corpus"}, "a failed validate is not recorded as done"
