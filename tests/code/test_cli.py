"""The `exprfusion` command line, run as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from factories import write_official_tree


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exprfusion", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_import_then_describe(tmp_path):
    sources = write_official_tree(tmp_path / "raw")
    out = tmp_path / "corpus"
    result = run_cli(
        "import",
        "--annotations", str(sources.annotations),
        "--visual", str(sources.visual),
        "--audio", str(sources.audio),
        "--cropped-aligned", str(sources.cropped_aligned),
        "--fps-csv", str(sources.fps_csv),
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plot = tmp_path / "classes.png"
    result = run_cli("describe", str(out), "--plot", str(plot), "--verify")
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr
    for expected in ("Frames per split", "missing_face_rate", "Class distribution", "Videos per fps", "7.5"):
        assert expected in text
    assert "all content hashes match" in text
    assert plot.stat().st_size > 5_000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_bad_annotation_gives_one_clear_line_and_exit_2(tmp_path):
    sources = write_official_tree(tmp_path / "raw")
    bad = sources.annotations / "EXPR_Recognition_Challenge" / "Train_Set" / "v1.txt"
    lines = bad.read_text().splitlines()
    lines[5] = "happy"
    bad.write_text("\n".join(lines) + "\n")
    result = run_cli(
        "import", "--annotations", str(sources.annotations), "--visual", str(sources.visual),
        "--audio", str(sources.audio), "--out", str(tmp_path / "corpus"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "v1.txt, line 6" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "corpus").exists()


def test_describe_of_a_missing_corpus_is_a_clear_error(tmp_path):
    result = run_cli("describe", str(tmp_path / "nothing"))
    assert result.returncode == 2
    assert "manifest.parquet is missing" in result.stderr and "Traceback" not in result.stderr
