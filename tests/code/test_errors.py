"""Bad input is one line and exit status 2, for the commands and the stage scripts; a bug keeps its traceback."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from factories import write_official_tree
from typer.testing import CliRunner

import exprfusion.sources.synthetic
from exprfusion.cli import app
from exprfusion.core.errors import InputError, MissingInputError
from exprfusion.core.params import load_section
from exprfusion.core.stage_runner import run_stage
from exprfusion.data.annotations import AnnotationError, read_annotation_tree, read_expr_annotation
from exprfusion.data.corpus import Corpus, CorpusError, annotation_path
from exprfusion.data.corpus_checks import ValidationSettings
from exprfusion.search.params import PipelineParams
from exprfusion.sources.build_corpus import build_corpus
from exprfusion.sources.importer import import_corpus
from exprfusion.sources.params import DataParams
from exprfusion.tracking.packaging import PackageParams

REPOSITORY = Path(__file__).resolve().parents[2]


def _stderr_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_the_library_error_types_are_input_errors():
    assert issubclass(AnnotationError, InputError) and issubclass(CorpusError, InputError)
    assert issubclass(InputError, ValueError)
    assert issubclass(MissingInputError, InputError) and issubclass(MissingInputError, FileNotFoundError)


def test_a_missing_user_file_is_a_missing_input_error(tmp_path):
    with pytest.raises(MissingInputError, match=r"v\.txt: annotation file not found"):
        read_expr_annotation(tmp_path / "v.txt")
    with pytest.raises(FileNotFoundError, match="no split folder"):  # still a FileNotFoundError for old callers
        read_annotation_tree(tmp_path)


def test_import_reports_a_missing_folder_before_writing_anything(tmp_path):
    sources = dataclasses.replace(write_official_tree(tmp_path / "raw"), visual=tmp_path / "nowhere")
    with pytest.raises(MissingInputError, match=r"nowhere: not found \(the visual input\)"):
        import_corpus(sources, tmp_path / "corpus")
    assert not (tmp_path / "corpus").exists()
    with pytest.raises(InputError, match=r"ImportSources\.align: must be one of 'nearest' or 'linear', got 'cubic'"):
        dataclasses.replace(sources, align="cubic")


def test_a_corpus_annotation_gone_missing_is_a_corpus_error(small_corpus):
    annotation_path(small_corpus, "validation", "b").unlink()
    with pytest.raises(CorpusError, match=r"Validation_Set/b\.txt is missing \(listed in the manifest\)") as caught:
        Corpus(small_corpus).load("b")
    assert isinstance(caught.value, MissingInputError), "every missing file is a MissingInputError"


def test_command_input_error_is_one_line_with_exit_status_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "exprfusion", "synth", "--profile", "[bold]huge", "--out", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    # One line, the name printed as given (not read as markup), no traceback, nothing written.
    assert _stderr_lines(result.stderr) == [
        "error: unknown synthetic profile '[bold]huge'; "
        "choose one of ['default', 'full', 'realistic', 'realistic-tiny', 'tiny']"
    ]
    assert not (tmp_path / "c").exists()


def test_stage_script_names_an_unknown_params_key_in_one_line(tmp_path):
    params = {"data": {"source": "synthetic", "out": "corpus", "synthetic": {"profile": "tiny"}, "import": {}}}
    params["data"]["import"]["bogus"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run(
        [sys.executable, str(REPOSITORY / "pipelines" / "corpus.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    errors = [line for line in _stderr_lines(result.stderr) if line.startswith("error:")]  # beside the progress bar
    assert len(errors) == 1 and errors[0].startswith("error: params.yaml: data.import.bogus: unknown key; known: [")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "corpus").exists()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"validate": {"required_splits": ["train"], "verify_hashes": True, "bogus": 1}},
            "validate.bogus: unknown key",
        ),
        ({"validate": {}, "package": {"smoke_frames": 1, "smoke_frame": 2}}, "package.smoke_frame: unknown key"),
        ({"validate": {}, "package": {"smoke_frames": 0}}, "package.smoke_frames: must be >= 1, got 0"),
        ({"validate": {}, "evaluat": {}}, "evaluat: unknown section"),
    ],
)
def test_load_section_names_a_bad_key_or_value_by_its_dotted_path_in_one_line(tmp_path, params, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    section, schema = ("package", PackageParams) if "package" in params else ("validate", ValidationSettings)
    with pytest.raises(InputError) as caught:
        load_section(section, schema, path)
    assert str(caught.value).startswith(f"{path}: {message}") and "\n" not in str(caught.value)


def test_load_section_errors_name_the_file(tmp_path):
    with pytest.raises(MissingInputError, match="parameters file not found"):
        load_section("data", DataParams, tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("data: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_section("data", DataParams, tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("validate: {}\n")
    with pytest.raises(InputError, match="no 'data' section"):
        load_section("data", DataParams, tmp_path / "params.yaml")


def test_build_corpus_names_an_unknown_synthetic_key(tmp_path):
    data = {"source": "synthetic", "out": str(tmp_path / "c"), "synthetic": {"profile": "tiny", "sead": 1}}
    with pytest.raises(InputError, match=r"^params\.yaml: data\.synthetic\.sead: unknown key; known: \["):
        build_corpus(data)
    assert not (tmp_path / "c").exists()


def test_the_repository_params_file_has_no_unknown_key(monkeypatch):
    monkeypatch.chdir(REPOSITORY)
    PipelineParams.read("params.yaml")


@pytest.mark.parametrize("bug", [KeyError("profile"), ValueError("bad internal state"), ZeroDivisionError()])
def test_a_bug_in_a_command_keeps_its_exception(monkeypatch, tmp_path, bug):
    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(exprfusion.sources.synthetic, "generate_corpus", broken)
    result = CliRunner().invoke(app, ["synth", "--profile", "tiny", "--out", str(tmp_path / "c")])
    assert result.exit_code == 1
    assert result.exception is bug, "the exception propagates, with its traceback, instead of becoming one line"
    assert "error:" not in result.output


def test_a_bug_in_a_stage_keeps_its_exception():
    def main():
        raise KeyError("out")

    with pytest.raises(KeyError, match="out"):
        run_stage(main)


def test_an_input_error_in_a_stage_is_one_line_and_exit_status_2(capsys):
    def main():
        raise CorpusError("data/corpus is not a complete corpus:\nmanifest.parquet is missing")

    with pytest.raises(SystemExit) as exited:
        run_stage(main)
    assert exited.value.code == 2
    assert _stderr_lines(capsys.readouterr().err) == [
        "error: data/corpus is not a complete corpus: manifest.parquet is missing"
    ]
